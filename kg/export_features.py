"""Node features for the PyG export (:mod:`moakg.kg.export`): Morgan fingerprints, landmark z-vectors.

Every reader takes the node keys in export order and returns tensors whose row ``i`` belongs to key ``i``;
the queries are the named ``queries/export_*.cypher`` files, run over the keys in batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection
from moakg.kg.queries import load_query

#: Signature properties stacked (in this order) into ``data['Signature'].quality`` [N, 3]
QUALITY_FIELDS: tuple[str, ...] = ("cc_mean", "n_replicates", "tas")


def run_batched(
    conn: Neo4jConnection, query: str, keys: Sequence[str], batch_size: int, desc: str, progress: bool,
    **params: Any,
) -> Iterator[list[Any]]:
    """Run the Cypher ``query`` (text) over ``keys`` in slices of ``batch_size`` (``$keys``), yielding row
    values.

    Each slice is one read transaction (retried on transient errors), so memory is bounded by one
    slice's rows and a long export never holds one huge transaction open.
    """
    text = query
    with tqdm(total=len(keys), desc=desc, unit="nodes", disable=not progress, leave=False) as bar:
        for i in range(0, len(keys), batch_size):
            chunk = list(keys[i : i + batch_size])

            def work(tx: Any, chunk: list[str] = chunk) -> list[list[Any]]:
                return [rec.values() for rec in tx.run(text, keys=chunk, **params)]

            yield from conn.read(work)
            bar.update(len(chunk))


def landmark_genes(conn: Neo4jConnection) -> list[str]:
    """Landmark gene symbols, sorted: position ``j`` of every ``z_landmark`` list is gene ``j``."""
    return [r["symbol"] for r in conn.query(load_query("export_landmark_genes").text)]


def _check_z(z: list[float], n_landmarks: int, what: str) -> None:
    if len(z) != n_landmarks:
        raise UserError(
            f"{what} has a z_landmark of length {len(z)} but the graph has {n_landmarks} landmark genes "
            "(Gene.is_landmark); the z positions cannot be named. Re-ingest L1000 so that signatures and "
            "landmark genes come from the same gene table"
        )


def morgan_fingerprints(
    smiles: Sequence[str | None], radius: int, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Morgan (ECFP-like) bit vectors: ``fp`` [N, bits] float32 and ``has_structure`` [N] bool.

    A missing or unparseable SMILES gives a zero row and ``has_structure = False`` (models can mask it).
    """
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    fp = np.zeros((len(smiles), bits), dtype=np.float32)
    ok = np.zeros(len(smiles), dtype=bool)
    RDLogger.DisableLog("rdApp.*")  # odd SMILES would flood the log; the mask records them instead
    try:
        for i, smi in enumerate(smiles):
            mol = Chem.MolFromSmiles(smi) if smi else None
            if mol is not None:
                fp[i] = gen.GetFingerprintAsNumPy(mol)
                ok[i] = True
    finally:
        RDLogger.EnableLog("rdApp.*")
    return torch.from_numpy(fp), torch.from_numpy(ok)


def compound_features(
    conn: Neo4jConnection, keys: Sequence[str], n_landmarks: int, radius: int, bits: int, batch_size: int,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Compound features in key order.

    Returns ``fp`` [N, bits], ``has_structure`` [N] bool, ``z`` [N, L] (mean landmark z over all the
    compound's signatures in the graph, zeros when none), ``has_signature`` [N] bool and
    ``x = cat(fp, z)`` [N, bits + L].
    """
    smiles: list[str | None] = [None] * len(keys)
    z_sum = np.zeros((len(keys), n_landmarks), dtype=np.float64)  # float64 sums: means exact to float32
    n_sig = np.zeros(len(keys), dtype=np.int64)
    pos = {k: i for i, k in enumerate(keys)}
    text = load_query("export_compound_features").text
    for key, smi, zs in run_batched(conn, text, keys, batch_size, "compound features", progress):
        i = pos[key]
        smiles[i] = smi
        for z in zs:
            _check_z(z, n_landmarks, f"a signature of compound {key!r}")
            z_sum[i] += np.nan_to_num(np.asarray(z, dtype=np.float64))
        n_sig[i] = len(zs)
    fp, has_structure = morgan_fingerprints(smiles, radius, bits)
    z = torch.from_numpy((z_sum / np.maximum(n_sig, 1)[:, None]).astype(np.float32))
    # fp and z are views of x: one storage, so the saved file holds these numbers once, not twice
    x = torch.cat([fp, z], dim=1)
    return {
        "x": x, "fp": x[:, :bits], "z": x[:, bits:], "has_structure": has_structure,
        "has_signature": torch.from_numpy(n_sig > 0),
    }


def signature_features(
    conn: Neo4jConnection, keys: Sequence[str], n_landmarks: int, batch_size: int, progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Signature features in key order: ``x`` [N, L] landmark z (NaN -> 0) and ``quality`` [N, 3].

    ``quality`` columns are :data:`QUALITY_FIELDS`; a property missing on a signature (level 3 plates have
    no ``tas``, for instance) is 0, since NaN would poison any layer that reads it.
    """
    x = np.zeros((len(keys), n_landmarks), dtype=np.float32)
    quality = np.zeros((len(keys), len(QUALITY_FIELDS)), dtype=np.float32)
    pos = {k: i for i, k in enumerate(keys)}
    text = load_query("export_signature_features").text
    for key, z, *q in run_batched(conn, text, keys, batch_size, "signature features", progress):
        i = pos[key]
        if z is not None:
            _check_z(z, n_landmarks, f"signature {key!r}")
            x[i] = np.nan_to_num(np.asarray(z, dtype=np.float32))
        quality[i] = [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in q]
    return {"x": torch.from_numpy(x), "quality": torch.from_numpy(quality)}
