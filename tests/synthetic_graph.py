"""A tiny synthetic graph laid out exactly as :func:`moakg.kg.export.export_heterodata` lays out its output,
with the MoA signal placed in one input only: the compounds' structure or their signatures.

Shape (what the exporter produces, no Neo4j involved):

- every node type the schema exports (Compound, Signature, CellLine, Gene, GOTerm, MoA), nodes in key
  order, each with ``num_nodes`` and ``node_id``;
- Compound: ``fp`` [N, bits] Morgan-like bits, ``z`` [N, L] the consensus landmark z (mean over the
  compound's signatures, zeros without one), ``x = cat(fp, z)`` with ``fp`` and ``z`` views of it,
  ``has_structure`` and ``has_signature``; Signature: ``x`` [S, L] landmark z and ``quality`` [S, 3];
- every exported relationship of the schema as ``(start, REL, end)`` plus its reverse ``(end, rev_REL,
  start)``, each with ``edge_index`` [2, E] sorted by (src, dst, source), ``edge_attr`` [E, 1] (the
  schema's weight: z for UP/DOWNREGULATES, combined_score / 1000 for INTERACTS_WITH, the similarity
  score for SIMILAR_*, 1.0 otherwise) and ``source_code`` [E] int8; relationships the toy has no data
  for (PERTURBS, MIMICS, OPPOSES) are present and empty, as the exporter leaves them;
- ``SIMILAR_STRUCTURE`` / ``SIMILAR_SIGNATURE`` made by ``moakg derive similarity``'s own code
  (:mod:`moakg.derive.similarity`, default :class:`~moakg.derive.run.SimilarityParams`): top-10 Tanimoto
  per compound, top-10 signed Spearman with ``|rho| >= 0.3``, one edge per unordered pair;
- maps: a real :class:`~moakg.kg.export.IdMaps` (keys, sources, landmark genes) plus ``maps.smiles``,
  distinct valid SMILES on a pool of Murcko scaffolds (three compounds per scaffold), so the scaffold
  split groups compounds as it would real ones. The scaffolds are independent of the class and of the
  fingerprint bits, which are generated directly (the SMILES only decide the split).

``signal``:
    ``'signature'``: class ``c`` has its own pattern over a few landmark genes, added to every
        signature of its compounds (z noise on top); the fingerprint bits are random, independent of
        the class.
    ``'structure'``: class ``c`` has a prototype set of fingerprint bits, each kept with probability
        ``keep`` in its compounds, plus random background bits; the signatures are pure noise.

TARGETS (unless ``class_targets``), INTERACTS_WITH, ANNOTATED_WITH, IS_A, PART_OF and IN_CELL are random
and class-independent, so the signal sits in exactly one place.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from moakg.derive.run import SimilarityParams
from moakg.derive.similarity import blocked_topk, spearman_scorer, tanimoto_scorer, unordered_pairs
from moakg.gnn.splits import murcko_scaffold
from moakg.kg.export import IdMaps
from moakg.kg.schema import current_schema

SIGNALS = ("signature", "structure")
RINGS = ("c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccoc1", "c1ccsc1", "C1CCNCC1", "C1CCOC1", "C1CC1",
         "c1cncnc1", "C1CCCC1", "c1ccc2ccccc2c1", "c1cnccn1")
LINKERS = ("", "C", "CC", "C(=O)N", "O", "CCC")
SUBSTITUENTS = ("C", "CC", "CCC", "OC", "N", "F", "Cl", "Br")
SOURCES = ("derive_similarity", "go", "l1000", "repurposing_hub", "string")


def scaffold_pool(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` ring-linker-ring SMILES with pairwise distinct Murcko scaffolds, in an order shuffled by
    ``rng``."""
    combos = [a + link + b for i, a in enumerate(RINGS) for b in RINGS[i:] for link in LINKERS]
    out, seen = [], set()
    for j in rng.permutation(len(combos)):
        scaffold = murcko_scaffold(combos[j])
        if scaffold and scaffold not in seen:
            seen.add(scaffold)
            out.append(combos[j])
        if len(out) == n:
            return out
    raise ValueError(f"only {len(out)} distinct scaffolds, {n} asked")


def _sorted_edges(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, code: np.ndarray
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exporter's ``edge_index``, ``edge_attr``, ``source_code``: sorted by (src, dst, source)."""
    order = np.lexsort((code, dst, src))
    ei = torch.from_numpy(np.stack([src[order], dst[order]]).astype(np.int64).reshape(2, -1))
    attr = torch.from_numpy(np.asarray(weight, np.float32)[order].reshape(-1, 1))
    return ei, attr, torch.from_numpy(code[order].astype(np.int8))


def _top_pairs(scorer, n: int, k: int, min_score: float, signed: bool) -> tuple[np.ndarray, ...]:
    r, c, s = blocked_topk(scorer, n, n, k, min_score, signed=signed, exclude_self=True)
    return unordered_pairs(r, c, s)


def synthetic_export(
    signal: str, n_compounds: int = 240, n_classes: int = 4, seed: int = 0, n_bits: int = 512,
    n_genes: int = 80, n_landmarks: int = 40, n_cells: int = 4, n_go: int = 20, sig_frac: float = 0.92,
    pattern_genes: int = 10, pattern_z: float = 1.0, noise_z: float = 1.5, proto_bits: int = 32,
    keep: float = 0.15, background: float = 0.05, per_scaffold: int = 3, class_targets: bool = False,
) -> tuple[HeteroData, IdMaps]:
    """``(data, maps)`` as the exporter returns them, the MoA labels carried by ``signal`` only (see the
    module docstring). ``class_targets``: each compound targets 2 genes of its class's own 4 (so the
    targets follow the class, and ``signal`` carries them too) instead of 2 random genes.
    Deterministic given the arguments."""
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, not {signal!r}")
    rng = np.random.default_rng(seed)
    schema = current_schema()
    src_code = {s: i for i, s in enumerate(sorted(SOURCES))}

    # ---- keys, in the exporter's (sorted) order
    keys = {
        "Compound": [f"CPD{i:05d}" for i in range(n_compounds)],
        "CellLine": [f"CELL{i}" for i in range(n_cells)],
        "Gene": [f"G{i:04d}" for i in range(n_genes)],
        "GOTerm": [f"GO:{i:07d}" for i in range(n_go)],
        "MoA": [f"moa {chr(ord('a') + c)}" for c in range(n_classes)] + ["zz rare moa"],
    }
    landmark_idx = np.sort(rng.choice(n_genes, n_landmarks, replace=False))
    landmarks = [keys["Gene"][j] for j in landmark_idx]

    # ---- compounds: classes, SMILES on a scaffold pool, fingerprint bits
    cls = rng.permutation(np.arange(n_compounds) % n_classes)
    pool = scaffold_pool(rng, -(-n_compounds // per_scaffold))
    smiles = [SUBSTITUENTS[i % per_scaffold] + pool[i // per_scaffold] for i in range(n_compounds)]
    fp = (rng.random((n_compounds, n_bits)) < background).astype(np.float32)
    if signal == "structure":
        protos = [rng.choice(n_bits, proto_bits, replace=False) for _ in range(n_classes)]
        for i, c in enumerate(cls):
            on = protos[c][rng.random(proto_bits) < keep]
            fp[i, on] = 1.0
    else:  # random bits of the same density, independent of the class
        extra = (rng.random((n_compounds, n_bits)) < keep * proto_bits / n_bits).astype(np.float32)
        fp = np.maximum(fp, extra)

    # ---- signatures: 1-3 per profiled compound, each in a distinct cell line
    patterns = np.zeros((n_classes, n_landmarks), np.float32)
    if signal == "signature":
        for c in range(n_classes):
            genes = rng.choice(n_landmarks, pattern_genes, replace=False)
            patterns[c, genes] = rng.choice([-1.0, 1.0], pattern_genes) * pattern_z * rng.uniform(
                0.75, 1.25, pattern_genes)
    sig_z, sig_comp, sig_cell = [], [], []
    for i, c in enumerate(cls):
        if rng.random() >= sig_frac:
            continue
        for cell in rng.choice(n_cells, int(rng.integers(1, 4)), replace=False):
            sig_z.append(patterns[c] + rng.normal(0.0, noise_z, n_landmarks).astype(np.float32))
            sig_comp.append(i)
            sig_cell.append(int(cell))
    n_sig = len(sig_z)
    keys["Signature"] = [f"SIG{s:05d}" for s in range(n_sig)]  # signature s of compound sig_comp[s]
    sz = np.asarray(sig_z, np.float32)
    sig_comp_a = np.asarray(sig_comp, np.int64)
    z_sum = np.zeros((n_compounds, n_landmarks), np.float64)
    np.add.at(z_sum, sig_comp_a, sz)
    n_per = np.bincount(sig_comp_a, minlength=n_compounds)
    z = (z_sum / np.maximum(n_per, 1)[:, None]).astype(np.float32)

    # ---- nodes and features
    data = HeteroData()
    for label in schema.export_labels:
        n = len(keys[label])
        data[label].num_nodes = n
        data[label].node_id = torch.arange(n)
    x = torch.cat([torch.from_numpy(fp), torch.from_numpy(z)], dim=1)
    comp = data["Compound"]
    comp.x, comp.fp, comp.z = x, x[:, :n_bits], x[:, n_bits:]
    comp.has_structure = torch.ones(n_compounds, dtype=torch.bool)
    comp.has_signature = torch.from_numpy(n_per > 0)
    data["Signature"].x = torch.from_numpy(sz)
    data["Signature"].quality = torch.from_numpy(np.stack([
        rng.uniform(0.2, 0.9, n_sig), rng.integers(2, 6, n_sig), rng.uniform(0.1, 0.8, n_sig)], 1)
        .astype(np.float32))

    # ---- edges: (src, dst, weight, source) per relationship
    edges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]] = {}

    def put(rel: str, s, d, w, source: str) -> None:
        s, d = np.asarray(s, np.int64), np.asarray(d, np.int64)
        w = np.ones(len(s), np.float32) if w is None else np.asarray(w, np.float32)
        edges[rel] = (s, d, w, source)

    put("HAS_SIGNATURE", sig_comp_a, np.arange(n_sig), None, "l1000")
    put("IN_CELL", np.arange(n_sig), sig_cell, None, "l1000")
    k_reg = 5  # each signature's top / bottom landmark genes by z
    order = np.argsort(sz, axis=1, kind="stable")
    up_cols, down_cols = order[:, -k_reg:], order[:, :k_reg]
    rows = np.repeat(np.arange(n_sig), k_reg)
    put("UPREGULATES", rows, landmark_idx[up_cols.reshape(-1)],
        np.take_along_axis(sz, up_cols, 1).reshape(-1), "l1000")
    put("DOWNREGULATES", rows, landmark_idx[down_cols.reshape(-1)],
        np.take_along_axis(sz, down_cols, 1).reshape(-1), "l1000")
    a, b = rng.integers(0, n_genes, (2, 3 * n_genes))
    ok = a < b
    pairs = np.unique(np.stack([a[ok], b[ok]]), axis=1)
    score = rng.integers(400, 1000, pairs.shape[1])  # STRING combined_score; the schema scales it by 1/1000
    put("INTERACTS_WITH", pairs[0], pairs[1], score, "string")
    ann = np.unique(np.stack([rng.integers(0, n_genes, 2 * n_genes), rng.integers(0, n_go, 2 * n_genes)]),
                    axis=1)
    put("ANNOTATED_WITH", ann[0], ann[1], None, "go")
    child = np.arange(1, n_go)
    put("IS_A", child, rng.integers(0, child), None, "go")  # child -> a parent with a smaller index
    part = child[rng.random(child.size) < 0.3]
    put("PART_OF", part, rng.integers(0, part), None, "go")
    if class_targets:
        class_genes = rng.permutation(n_genes)[: 4 * n_classes].reshape(n_classes, 4)
        genes = np.stack([rng.choice(class_genes[c], 2, replace=False) for c in cls]).reshape(-1)
    else:
        genes = rng.integers(0, n_genes, 2 * n_compounds)
    tgt = np.unique(np.stack([np.repeat(np.arange(n_compounds), 2), genes]), axis=1)
    put("TARGETS", tgt[0], tgt[1], None, "repurposing_hub")
    moa_s, moa_d = list(range(n_compounds)), cls.tolist()
    moa_s += [0, 1]  # a rare MoA (below min_per_class): dropped from the classes, its compounds keep theirs
    moa_d += [n_classes, n_classes]
    put("HAS_MOA", moa_s, moa_d, None, "repurposing_hub")
    params = SimilarityParams()
    a, b, s = _top_pairs(tanimoto_scorer(fp), n_compounds, params.structure_k, params.structure_min, False)
    put("SIMILAR_STRUCTURE", a, b, s, "derive_similarity")
    profiled = np.flatnonzero(n_per > 0)
    a, b, s = _top_pairs(spearman_scorer(z[profiled]), profiled.size, params.signature_k,
                         params.signature_min, True)
    put("SIMILAR_SIGNATURE", profiled[a], profiled[b], s, "derive_similarity")

    for rel in schema.exported_rels:
        decl = schema.rel(rel)
        if rel in edges:
            s_, d_, w_, source = edges[rel]
            code = np.full(len(s_), src_code[source], np.int64)
        else:  # the exporter writes every exported relationship, empty where the graph has none
            s_, d_, w_, code = (np.zeros(0, np.int64),) * 2 + (np.zeros(0, np.float32), np.zeros(0, np.int64))
        ei, attr, codes = _sorted_edges(s_, d_, w_ * decl.scale, code)
        forward, backward = data[decl.edge_type()], data[decl.edge_type(reverse=True)]
        forward.edge_index, forward.edge_attr, forward.source_code = ei, attr, codes
        backward.edge_index, backward.edge_attr = ei.flip(0), attr.clone()
        backward.source_code = codes.clone()

    maps = IdMaps(keys=keys, sources=sorted(SOURCES), landmark_genes=landmarks)
    maps.smiles = smiles  # type: ignore[attr-defined]  # what run_experiment reads for a scaffold split
    return data, maps
