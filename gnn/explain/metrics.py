"""How good is an explanation: fidelity, characterization, sparsity, and known-target recovery.

Fidelity is computed here for heterogeneous graphs (PyG 2.8.1's ``fidelity`` fails on a
``HeteroExplanation``) by re-running the model on the computation subgraph ``G`` with the explanation's
message edges ``S`` removed or kept alone. With ``p(.)`` the model's probability of the explained prediction:

- ``fidelity+ = |p(G) - p(G \\ S)|``: how much the prediction moves when the explanation is taken away
  (high is good: the explanation was necessary);
- ``fidelity- = |p(G) - p(S)|``: how much it moves when only the explanation is left (low is good: the
  explanation is sufficient).

These are the probability versions of Amara et al. (GraphFramEx, 2022); the 0/1 "label changed" versions
PyG uses say little about one binary output of one compound. Both lie in [0, 1], so the characterization
score (``torch_geometric.explain.metric.characterization_score``) applies: the weighted harmonic mean of
``fidelity+`` and ``1 - fidelity-``. Sparsity is ``1 - |S| / |E(G)|`` over message edges.

Known-target recovery (phenotype setting: the test compounds' TARGETS edges are hidden from the model): the
fraction of a compound's top-k paths that pass through one of its true targets or a direct interactor
(INTERACTS_WITH neighbour) of one, taken from the full exported graph. Two baselines are measured the same
way on the same computation subgraph: random paths with the same metapaths (same relationship types,
directions and labels, chosen uniformly step by step) and degree-matched random paths (same length, each
node drawn among the neighbours in the same log2-degree bin as the explained path's node), which controls
for explanations simply running through hubs that are near everything.
"""

from __future__ import annotations

import math
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
    """``(fidelity+, fidelity-)`` of the edge set ``mask`` (bool ``{et: [E_t]}``) on ``sub``."""
    p = predict(model, sub, target)
    p_without = predict(model, sub, target, _select(sub, mask, keep=False))
    p_only = predict(model, sub, target, _select(sub, mask, keep=True))
    return abs(p - p_without), abs(p - p_only)


def characterization(fid_plus: float, fid_minus: float, pos_weight: float = 0.5,
                     neg_weight: float = 0.5) -> float:
    """``(w+ + w-) / (w+ / fid+ + w- / (1 - fid-))`` as in PyG's ``characterization_score``; 0 when
    ``fid+ == 0`` or ``fid- == 1`` (the limit of the harmonic mean, where PyG would divide by zero)."""
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
def known_target_genes(data: HeteroData, compound: int, interactors: bool = True) -> set[int]:
    """Gene indices that are a true target of ``compound`` in ``data`` (the full export, not the task
    graph), plus their INTERACTS_WITH neighbours when ``interactors``."""
    et = edge_type("TARGETS")
    if et not in data.edge_types:
        return set()
    ei = data[et].edge_index
    targets = set(ei[1, ei[0] == compound].tolist())
    out = set(targets)
    if interactors and targets:
        t = torch.tensor(sorted(targets))
        for gt in (edge_type("INTERACTS_WITH"), edge_type("INTERACTS_WITH", reverse=True)):
            if gt in data.edge_types:
                e = data[gt].edge_index
                out |= set(e[1, torch.isin(e[0], t)].tolist())
    return out


def path_hits(path: ExplanationPath, genes: set[int]) -> bool:
    """True when a Gene node of the path (after the compound) is in ``genes``."""
    return any(t == "Gene" and i in genes for t, i in path.nodes[1:])


def random_metapath_path(wg: WeightedGraph, path: ExplanationPath,
                         rng: np.random.Generator) -> list[Node] | None:
    """A random simple path from the same start with the same relationship types, directions and labels."""
    nodes = [path.nodes[0]]
    for rel, fwd, t in zip(path.rel_types, path.forward, path.node_types[1:], strict=True):
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
    for t, i in path.nodes[1:]:
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


def _hit_rate(paths: list[list[Node] | None], genes: set[int]) -> float:
    ok = [p for p in paths if p is not None]
    if not ok:
        return float("nan")
    return float(np.mean([any(t == "Gene" and i in genes for t, i in p[1:]) for p in ok]))


def recovery(paths: list[ExplanationPath], wg_all: WeightedGraph, genes: set[int], degree: dict[str, Tensor],
             rng: np.random.Generator, n_random: int = 20) -> dict[str, float]:
    """Known-target recovery of ``paths`` and of both random baselines (``n_random`` draws per path)."""
    if not paths:
        nan = float("nan")
        return {"recovery": nan, "random_metapath": nan, "degree_matched": nan}
    rand = [random_metapath_path(wg_all, p, rng) for p in paths for _ in range(n_random)]
    degm = [degree_matched_path(wg_all, p, degree, rng) for p in paths for _ in range(n_random)]
    return {"recovery": float(np.mean([path_hits(p, genes) for p in paths])),
            "random_metapath": _hit_rate(rand, genes), "degree_matched": _hit_rate(degm, genes)}
