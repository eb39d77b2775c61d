"""``moakg derive similarity``: similarity relationships computed from the graph, recorded as an ingest.

:class:`SimilarityDeriver` is a :class:`~moakg.ingest.base.SourceAdapter` (source ``derive_similarity``)
whose input is the graph itself: its run id hashes the ids of the completed IngestRuns of every data
source (derive runs left out) together with its parameters. :func:`derive_similarity` therefore

- does nothing when a completed run with that id exists (re-deriving an unchanged graph changes nothing);
- otherwise removes every relationship an earlier derive wrote, writes the new ones under the new
  ``(:IngestRun)`` (``running -> completed | failed``; a failed run is completed by re-running), and
  then drops the IngestRun nodes of the replaced derive runs, so the graph holds one derive run and its
  edges.

What it writes (see :mod:`moakg.derive.similarity` for the scores):

- ``SIMILAR_STRUCTURE {score}``: Tanimoto of Morgan fingerprints, top-k per compound above a threshold;
- ``SIMILAR_SIGNATURE {score}``: signed Spearman correlation of consensus landmark z-vectors, top-k per
  compound by ``|score|`` above a threshold;
  both are symmetric: one relationship per unordered pair (start = the smaller ``Compound.id``), kept
  when either compound has the other in its top-k (so a compound can have more than k);
- ``MIMICS`` / ``OPPOSES {score}``: compound -> the gene whose overexpression signature its
  consensus signature agrees (score > 0) / disagrees (score < 0) with, top-k genes per compound by
  ``|score|`` above a threshold; ``score`` is signed. Several overexpression signatures of one gene
  count once, by the one with the largest ``|score|``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moakg.derive.similarity import (
    DEFAULT_BLOCK,
    best_per_group,
    blocked_topk,
    connectivity_scorer,
    signed_gene_vectors,
    spearman_scorer,
    tanimoto_scorer,
    unordered_pairs,
)
from moakg.ingest.base import SourceAdapter
from moakg.kg import derive_queries as q
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export_features import morgan_fingerprints
from moakg.kg.writer import (
    DEFAULT_BATCH_SIZE,
    Batch,
    Delete,
    IngestReport,
    RelBatch,
    WriteCounts,
    ingest_run_id,
)

SOURCE = "derive_similarity"
DERIVED_TYPES = ("SIMILAR_STRUCTURE", "SIMILAR_SIGNATURE", "MIMICS", "OPPOSES")
COMPOUND = ("Compound", "id")


@dataclass(frozen=True)
class SimilarityParams:
    """Everything that changes what the derive writes (part of its run id)."""

    # 20, the kNN baselines' budget (k in 1..20): the neighbour votes can only count the neighbours the
    # graph holds. With 10, on the demo's Tanimoto-cluster splits (whole analogue clusters held out, so
    # the nearest training compounds are far and the tuned kNN picks k = 6-18), the Tanimoto kNN limited
    # to each compound's graph neighbours lost 0.020 validation MRR on targets (0.171 against 0.191); with
    # 20 it loses 0.004 (0.188; 30: 0.189), and on the scaffold splits 20 equals the unrestricted kNN.
    structure_k: int = 20
    # No floor: the tuned Tanimoto kNN draws most of its MoA signal from neighbours at Tanimoto 0.2-0.4
    # (README, "Models"); a 0.5 floor left 70 of 80 demo test compounds without a structural neighbour.
    structure_min: float = 0.0
    radius: int = 2
    bits: int = 2048
    signature_k: int = 10
    signature_min: float = 0.3
    perturbation_k: int = 10
    perturbation_min: float = 0.3
    perturbation_min_genes: int = 20  # a cosine on fewer genes is mostly noise (README)


class SimilarityDeriver(SourceAdapter):
    source = SOURCE

    def __init__(self, conn: Neo4jConnection, params: SimilarityParams = SimilarityParams(),
                 block: int = DEFAULT_BLOCK, device: str | None = None) -> None:
        super().__init__()
        self.conn, self.p, self.block, self.device = conn, params, block, device
        self.inputs = q.input_runs(conn)

    def files(self) -> list[Path]:
        return []

    def params(self) -> dict[str, Any]:
        # block and device change how, not what: not part of the run's identity
        return {**asdict(self.p), "input_runs": self.inputs}

    @property
    def run_id(self) -> str:
        return ingest_run_id(self.source, [], self.params())

    def batches(self) -> Iterator[Batch]:
        for rel in DERIVED_TYPES:  # an earlier derive's edges (or a failed attempt's) go first
            yield Delete("Compound", {"source": SOURCE}, rel)
        yield from self.structure()
        yield from self.signature()

    # ------------------------------------------------------------------------------ structure

    def structure(self) -> Iterator[Batch]:
        ids, smiles = q.compound_smiles(self.conn)
        fp, ok = morgan_fingerprints(smiles, self.p.radius, self.p.bits)
        keep = ok.numpy()
        ids = [k for k, good in zip(ids, keep, strict=True) if good]
        self.count("structure_compounds", len(ids))
        self.count("structure_unparsed", int((~keep).sum()))
        bits = fp.numpy()[keep]
        r, c, s = blocked_topk(tanimoto_scorer(bits, self.device), len(ids), len(ids), self.p.structure_k,
                               self.p.structure_min, self.block, exclude_self=True)
        yield self._pairs("SIMILAR_STRUCTURE", ids, r, c, s)

    # ------------------------------------------------------------------------------ signature

    def signature(self) -> Iterator[Batch]:
        genes = q.landmark_symbols(self.conn)
        ids, z = q.compound_consensus(self.conn, len(genes))
        self.count("signature_compounds", len(ids))
        if ids:
            r, c, s = blocked_topk(spearman_scorer(z, self.device), len(ids), len(ids), self.p.signature_k,
                                   self.p.signature_min, self.block, signed=True, exclude_self=True)
            yield self._pairs("SIMILAR_SIGNATURE", ids, r, c, s)
        yield from self.perturbation(ids, z, genes)

    def perturbation(self, ids: list[str], z: np.ndarray, genes: list[str]) -> Iterator[Batch]:
        yield from perturbation_batches(self.conn, self.p, ids, z, genes, self.count, self.block, self.device)

    def _pairs(self, rel: str, ids: list[str], r: np.ndarray, c: np.ndarray, s: np.ndarray) -> RelBatch:
        a, b, v = unordered_pairs(r, c, s)
        rows = [{"start": ids[i], "end": ids[j], "score": round(float(x), 6)}
                for i, j, x in zip(a.tolist(), b.tolist(), v.tolist(), strict=True)]
        self.count(f"{rel.lower()}_written", len(rows))
        return RelBatch(rel, COMPOUND, COMPOUND, rows)


def perturbation_batches(
    conn: Neo4jConnection, p: SimilarityParams, ids: list[str], z: np.ndarray, genes: list[str],
    count: Callable[[str, int], None], block: int = DEFAULT_BLOCK, device: str | None = None,
) -> Iterator[Batch]:
    """MIMICS / OPPOSES rows from compounds ``ids`` (consensus landmark z [n, len(genes)]) to the genes
    whose over-expression signature they agree / disagree with (``moakg predict`` calls it for new
    compounds only); ``count(key, n)`` records the statistics."""
    sigs = q.overexpression_signatures(conn)
    count("perturbation_signatures", len(sigs))
    if not ids or not sigs:
        return
    values, mask, outside = signed_gene_vectors([(x["genes"], x["z"]) for x in sigs], genes)
    count("perturbation_genes_not_landmark", outside)
    targets = sorted({x["gene"] for x in sigs})
    group = np.searchsorted(np.array(targets), np.array([x["gene"] for x in sigs]))
    scorer = best_per_group(connectivity_scorer(z, values, mask, p.perturbation_min_genes, device),
                            group, len(targets))
    r, c, s = blocked_topk(scorer, len(ids), len(targets), p.perturbation_k, p.perturbation_min, block,
                           signed=True)
    rows: dict[str, list[dict[str, Any]]] = {"MIMICS": [], "OPPOSES": []}
    for i, j, v in zip(r.tolist(), c.tolist(), s.tolist(), strict=True):
        rows["MIMICS" if v > 0 else "OPPOSES"].append({"start": ids[i], "end": targets[j],
                                                       "score": round(v, 6)})
    for rel, rs in rows.items():
        count(f"{rel.lower()}_written", len(rs))
        yield RelBatch(rel, COMPOUND, ("Gene", "symbol"), rs)


def derive_similarity(
    conn: Neo4jConnection, params: SimilarityParams = SimilarityParams(), *, block: int = DEFAULT_BLOCK,
    device: str | None = None, force: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> IngestReport:
    """Derive the similarity relationships unless the graph and parameters are those of the last
    completed derive (``status`` ``up to date`` then, and nothing is written); ``force`` re-derives."""
    deriver = SimilarityDeriver(conn, params, block, device)
    run_id = deriver.run_id
    if not force and q.run_status(conn, run_id) == "completed":
        return IngestReport(run_id, SOURCE, "up to date", WriteCounts(), {})
    report = deriver.ingest(conn, batch_size=batch_size, progress=progress)
    report.stats["replaced_runs"] = q.drop_other_runs(conn, SOURCE, run_id)
    return report
