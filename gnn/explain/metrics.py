"""How good is an explanation: fidelity, characterization, sparsity, and known-target recovery.

Fidelity is computed here for heterogeneous graphs (PyG 2.8.1's ``fidelity`` fails on a
``HeteroExplanation``) by re-running the model on the computation subgraph ``G`` with the explanation's
message edges ``S`` removed or kept alone. With ``p(.)`` the model's probability of the explained prediction:

- ``fidelity+ = p(G) - p(G \\ S)``: how much the prediction FALLS when the explanation is taken away
  (high is good: the explanation was necessary; negative: removing it raised the prediction);
- ``fidelity- = p(G) - p(S)``: how much it falls when only the explanation is left (near 0 or below is
  good: the explanation is sufficient).

These are the signed probability versions of Amara et al. (GraphFramEx, 2022): an explanation whose
removal raises the prediction has negative fidelity+, where an absolute value would reward it. The 0/1
"label changed" versions PyG uses say little about one binary output of one compound. The
characterization score (``torch_geometric.explain.metric.characterization_score``) is the weighted
harmonic mean of ``fidelity+`` and ``1 - fidelity-``, both clipped to [0, 1] first. Sparsity is
``1 - |S| / |E(G)|`` over message edges.

Path validation (phenotype setting: the test compounds' TARGETS edges are hidden from the model), per
compound over its top-k paths, each against two random baselines drawn on the same computation subgraph:
random paths with the same metapaths (same relationship types, directions and labels, chosen uniformly
step by step) and degree-matched random paths (same length, each node drawn among the neighbours in the
same log2-degree bin as the explained path's node), which controls for explanations simply running through
hubs that are near everything:

- known-target recovery: whether any of the top-k paths passes through one of the compound's true
  targets (the full export's TARGETS: DrugBank and the Hub; averaged, the fraction of compounds), and
  the rank of the first such path;
- MoA consistency (MoA runs): the fraction of paths that end at a reference compound carrying the
  predicted MoA or at a gene targeted by a training compound with that MoA.

:func:`compare_to_random` gives the bootstrap interval over compounds and a paired permutation p-value
(``scipy.stats.permutation_test``) of each explainer rate against each random baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.explain.base import CompSubgraph, EdgeType, Target, explained_inputs, predict
from moakg.gnn.explain.paths import ExplanationPath, Node, WeightedGraph
from moakg.gnn.models import message_edge_types
from moakg.kg.schema import edge_type


def explanation_mask(sub: CompSubgraph, paths: list[ExplanationPath]) -> dict[EdgeType, Tensor]:
    """bool ``{et: [E_t]}``: the message edges realising any step of ``paths`` (both directions, every
    per-source copy of each relationship)."""
    mask = {et: torch.zeros(sub.graph[et].edge_index.size(1), dtype=torch.bool) for et in sub.edge_types}
    for p in paths:
        for refs in p.edge_refs:
            for et, pos in refs:
                mask[et][pos] = True
    return mask


def _select(sub: CompSubgraph, mask: dict[EdgeType, Tensor], keep: bool) -> dict[EdgeType, Tensor]:
    _, ei = explained_inputs(sub)
    return {et: e[:, mask[et] if keep else ~mask[et]] for et, e in ei.items()}


def fidelity(model: nn.Module, sub: CompSubgraph, target: Target,
             mask: dict[EdgeType, Tensor]) -> tuple[float, float]:
    """Signed ``(fidelity+, fidelity-)`` of the edge set ``mask`` (bool ``{et: [E_t]}``) on ``sub``."""
    p = predict(model, sub, target)
    p_without = predict(model, sub, target, _select(sub, mask, keep=False))
    p_only = predict(model, sub, target, _select(sub, mask, keep=True))
    return p - p_without, p - p_only


def characterization(fid_plus: float, fid_minus: float, pos_weight: float = 0.5,
                     neg_weight: float = 0.5) -> float:
    """``(w+ + w-) / (w+ / fid+ + w- / (1 - fid-))`` as in PyG's ``characterization_score``, on the signed
    fidelities clipped to [0, 1]; 0 when ``fid+ <= 0`` or ``fid- >= 1`` (the limit of the harmonic mean,
    where PyG would divide by zero)."""
    fid_plus, fid_minus = min(fid_plus, 1.0), max(fid_minus, 0.0)
    if fid_plus <= 0 or fid_minus >= 1:
        return 0.0
    return (pos_weight + neg_weight) / (pos_weight / fid_plus + neg_weight / (1 - fid_minus))


def sparsity(sub: CompSubgraph, mask: dict[EdgeType, Tensor]) -> float:
    """``1 - |S| / |E|`` over the computation subgraph's message edges (1.0 for an empty subgraph)."""
    total = sum(int(m.numel()) for m in mask.values())
    chosen = sum(int(m.sum()) for m in mask.values())
    return 1.0 - chosen / total if total else 1.0


@dataclass
class Fidelity:
    fidelity_plus: float
    fidelity_minus: float
    characterization: float
    sparsity: float
    n_edges: int

    def as_dict(self) -> dict[str, float]:
        return {"fidelity_plus": self.fidelity_plus, "fidelity_minus": self.fidelity_minus,
                "characterization": self.characterization, "sparsity": self.sparsity}


def path_fidelity(model: nn.Module, sub: CompSubgraph, target: Target,
                  paths: list[ExplanationPath]) -> Fidelity:
    """All four numbers for the explanation made of ``paths``' edges."""
    mask = explanation_mask(sub, paths)
    fp, fm = fidelity(model, sub, target, mask)
    return Fidelity(fp, fm, characterization(fp, fm), sparsity(sub, mask), int(sum(int(m.sum())
                                                                                  for m in mask.values())))


# ------------------------------------------------------------------------------------------ recovery
def known_target_genes(data: HeteroData, compound: int) -> set[int]:
    """Gene indices that are a true target of ``compound`` in ``data`` (the full export, not the task
    graph, so the targets hidden from the model in the phenotype setting count)."""
    et = edge_type("TARGETS")
    if et not in data.edge_types:
        return set()
    ei = data[et].edge_index
    return set(ei[1, ei[0] == compound].tolist())


#: a hit test on a path's message nodes (compound first)
HitFn = Callable[[list[Node]], bool]


def passes_through(genes: set[int]) -> HitFn:
    """Known-target recovery: a Gene node of the path (after the compound) is in ``genes``."""
    return lambda nodes: any(t == "Gene" and i in genes for t, i in nodes[1:])


def ends_in(compounds: set[int], genes: set[int]) -> HitFn:
    """MoA consistency: the path ends at one of ``compounds`` or at a Gene in ``genes``."""
    def hit(nodes: list[Node]) -> bool:
        t, i = nodes[-1]
        return (t == "Compound" and i in compounds) or (t == "Gene" and i in genes)
    return hit


def path_hits(path: ExplanationPath, hit: HitFn) -> bool:
    return hit(path.message_nodes)


def random_metapath_path(wg: WeightedGraph, path: ExplanationPath,
                         rng: np.random.Generator) -> list[Node] | None:
    """A random simple path from the same start with the same relationship types, directions and labels
    (over the message steps; a trailing label step is not a message edge)."""
    nodes = [path.nodes[0]]
    n = len(path.message_nodes) - 1
    for rel, fwd, t in zip(path.rel_types[:n], path.forward[:n], path.node_types[1 : n + 1], strict=True):
        cands = sorted(n for (n, r, f) in wg.adj.get(nodes[-1], {}) if r == rel and f == fwd and n[0] == t
                       and n not in nodes)
        if not cands:
            return None
        nodes.append(cands[int(rng.integers(len(cands)))])
    return nodes


def _bin(d: int) -> int:
    return int(math.floor(math.log2(max(d, 1))))


def degree_matched_path(wg: WeightedGraph, path: ExplanationPath, degree: dict[str, Tensor],
                        rng: np.random.Generator) -> list[Node] | None:
    """A random simple path of the same length whose ``i``-th node has the log2-degree bin of the path's
    ``i``-th node (the closest bin among the neighbours when none matches); any relationship, any label."""
    nodes = [path.nodes[0]]
    for t, i in path.message_nodes[1:]:
        want = _bin(int(degree[t][i]))
        cands = sorted({n for (n, _, _) in wg.adj.get(nodes[-1], {}) if n not in nodes})
        if not cands:
            return None
        gaps = np.array([abs(_bin(int(degree[n[0]][n[1]])) - want) for n in cands])
        best = [c for c, g in zip(cands, gaps, strict=True) if g == gaps.min()]
        nodes.append(best[int(rng.integers(len(best)))])
    return nodes


def node_degrees(graph: HeteroData) -> dict[str, Tensor]:
    """Message in-degree per node (every relation has both directions, so this is the graph degree)."""
    deg = {t: torch.zeros(int(graph[t].num_nodes), dtype=torch.long) for t in graph.node_types}
    for et in message_edge_types(graph):
        deg[et[2]] += torch.bincount(graph[et].edge_index[1], minlength=int(graph[et[2]].num_nodes))
    return deg


def _score(hits: list[bool], rule: str) -> float:
    if not hits:
        return float("nan")
    return float(any(hits)) if rule == "any" else float(np.mean(hits))


def hit_rates(paths: list[ExplanationPath], wg_all: WeightedGraph, hit: HitFn, degree: dict[str, Tensor],
              rng: np.random.Generator, n_random: int = 20, rule: str = "mean") -> dict[str, float]:
    """One compound's score over its top ``paths`` -- ``rule`` 'mean': the fraction of paths that hit;
    'any': 1 when at least one does -- the same score of ``n_random`` random-metapath and degree-matched
    path sets (one random path per explained path, averaged over the draws), and the rank of the first
    hitting path (nan: none)."""
    nan = float("nan")
    if not paths:
        return {"rate": nan, "random_metapath": nan, "degree_matched": nan, "first_rank": nan}
    hits = [path_hits(p, hit) for p in paths]
    draws: dict[str, list[float]] = {"random_metapath": [], "degree_matched": []}
    for _ in range(n_random):
        rand = [random_metapath_path(wg_all, p, rng) for p in paths]
        degm = [degree_matched_path(wg_all, p, degree, rng) for p in paths]
        for name, drawn in (("random_metapath", rand), ("degree_matched", degm)):
            draws[name].append(_score([hit(q) for q in drawn if q is not None], rule))
    first = next((p.rank for p, h in zip(paths, hits, strict=True) if h), nan)
    out = {"rate": _score(hits, rule), "first_rank": float(first)}
    out.update({name: float(np.nanmean(v)) if np.isfinite(v).any() else nan
                for name, v in draws.items()})
    return out


#: permutation resamples of :func:`compare_to_random` (smallest p-value about 1e-4)
N_PERMUTATIONS = 9999


def compare_to_random(rate: np.ndarray, random_rate: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Explainer rate against a random baseline's over the same compounds: the mean difference, its
    percentile bootstrap interval over compounds, and the one-sided paired permutation p-value (signs of
    the per-compound differences flipped at random: ``scipy.stats.permutation_test``, 'samples')."""
    from scipy.stats import permutation_test

    from moakg.gnn.stats import bootstrap_ci

    ok = ~(np.isnan(rate) | np.isnan(random_rate))
    a, b = rate[ok], random_rate[ok]
    nan = float("nan")
    if a.size < 2:
        return {"diff": nan, "ci_low": nan, "ci_high": nan, "p": nan, "n": int(a.size)}
    d = a - b
    lo, hi = bootstrap_ci(lambda rows: float(d[rows].mean()), d.size, seed=seed)
    if np.all(d == 0):
        p = 1.0
    else:
        res = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                               permutation_type="samples", alternative="greater",
                               n_resamples=N_PERMUTATIONS, random_state=seed)
        p = float(res.pvalue)
    return {"diff": float(d.mean()), "ci_low": lo, "ci_high": hi, "p": p, "n": int(a.size)}
