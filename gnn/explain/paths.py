"""Top-k typed paths from the explained compound, scored from edge importances (PaGE-Link style).

Edge importances live on message edges (``u -> v`` of an edge type, reverses included). For paths they
are folded onto the graph's ORIGINAL relationships: message edge ``(s, X, d)`` is relationship ``X`` from
``s`` to ``d``; ``(s, rev_X, d)`` (the schema's reverse name of ``X``) is ``X`` from ``d`` to ``s``. A
relationship's importance is the largest of its message edges' (both directions, every per-source copy),
divided by the largest importance in the subgraph so that all weights lie in (0, 1]. Paths walk
relationships in either direction and are simple.

Score: the geometric mean of the path's step weights. Why not the minimum: many paths share their weakest
edge (typically the first Compound-Signature step), so ``min`` ties them and says nothing about the rest of
the path; the geometric mean ranks a path high only when every step matters, and it does not prefer short
paths the way a plain product does, so a 3-step path through a strong gene can beat a weak 1-step path.

Search: a best-first (Dijkstra-like) k-best search over the weighted graph with cost ``sum(-log w)``.
Costs only grow when a path is extended, so complete paths of each length ``l`` come off the heap in
increasing cost, i.e. decreasing product; for a fixed ``l`` the geometric mean is a monotone function of the
product, so the first ``k`` paths of each length are exactly its top-``k`` by geometric mean. Their union
holds the overall top-``k``. Only paths cheaper than the ``k``-th of their length are ever expanded, not
every path (``max_expansions`` bounds the worst case on dense neighbourhoods).

Paths longer than the model's depth usually have no importance on their far edges (those messages never
reach the compound), so with a ``k``-layer model mostly paths of length <= ``k`` come out.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from moakg.gnn.explain.base import CompSubgraph, EdgeType
from moakg.kg.schema import current_schema

Node = tuple[str, int]  # (node type, global index)
#: (et, local edge position): the message edges realising one step
EdgeRef = tuple[EdgeType, int]


def original_rel(et: EdgeType) -> tuple[str, bool]:
    """``(relationship type, True if the message source is the relationship's start node)``: the schema's
    name for a message edge type or its reverse (``rev_X`` by convention, whatever kg/schema.toml says)."""
    rel, forward = current_schema().edge_name(et[1])
    return rel.name, forward


@dataclass
class WeightedGraph:
    """Undirected view of a computation subgraph's relationships.

    ``adj[u][(v, rel, forward)] = [weight, refs]``: a relationship ``rel`` between ``u`` and ``v``;
    ``forward`` is True when it points ``u -> v`` in Neo4j; ``refs`` the message edges realising it.
    """

    adj: dict[Node, dict[tuple[Node, str, bool], list[Any]]]
    scale: float

    def degree(self, node: Node) -> int:
        return len(self.adj.get(node, {}))


def build_weighted_graph(sub: CompSubgraph, importance: dict[EdgeType, Tensor] | None = None,
                         min_weight: float = 0.0) -> WeightedGraph:
    """Fold message-edge ``importance`` ``{et: [E_t]}`` (``None``: every edge weight 1) onto relationships.

    Relationships whose weight is ``<= min_weight`` (after scaling to max 1) are left out.
    """
    g = sub.graph
    raw: dict[tuple[Node, Node, str], list[Any]] = {}  # (start, end, rel) -> [w, refs]
    for et in sub.edge_types:
        ei = g[et].edge_index
        src_ids, dst_ids = g[et[0]].n_id[ei[0]].tolist(), g[et[2]].n_id[ei[1]].tolist()
        w = importance.get(et) if importance is not None else None
        ws = [1.0] * ei.size(1) if w is None else w.tolist()
        rel, fwd = original_rel(et)
        for pos, (s, d, x) in enumerate(zip(src_ids, dst_ids, ws, strict=True)):
            a, b = ((et[0], s), (et[2], d)) if fwd else ((et[2], d), (et[0], s))
            slot = raw.setdefault((a, b, rel), [0.0, []])
            slot[0] = max(slot[0], float(x))
            slot[1].append((et, pos))
    scale = max((v[0] for v in raw.values()), default=0.0) or 1.0
    adj: dict[Node, dict[tuple[Node, str, bool], list[Any]]] = {}
    for (a, b, rel), (w, refs) in raw.items():
        w = w / scale
        if w <= min_weight or a == b:
            continue
        adj.setdefault(a, {})[(b, rel, True)] = [w, refs]
        adj.setdefault(b, {})[(a, rel, False)] = [w, refs]
    return WeightedGraph(adj, scale)


@dataclass
class ExplanationPath:
    """One path from the compound: nodes ``0..l``, steps ``1..l`` (step ``i`` joins node ``i-1`` and ``i``).

    ``rel_types[i-1]`` is the original relationship type of step ``i`` and ``forward[i-1]`` says whether
    it points from node ``i-1`` to node ``i`` in Neo4j. ``weights`` are the steps' importances in (0, 1].
    ``node_keys`` are graph keys (``maps.keys``), ``node_types`` the Neo4j labels.
    """

    score: float
    node_types: list[str]
    node_index: list[int]
    rel_types: list[str]
    forward: list[bool]
    weights: list[float]
    node_keys: list[str] = field(default_factory=list)
    rank: int = 0
    edge_refs: list[list[EdgeRef]] = field(default_factory=list, repr=False)
    #: trailing steps read from the label input, not message edges (0 or 1: a reference compound's
    #: HAS_MOA, the label the vote reads); they are shown and stored but not scored
    label_steps: int = 0

    @property
    def length(self) -> int:
        return len(self.rel_types)

    @property
    def message_nodes(self) -> list[Node]:
        """The nodes joined by message edges: the path without its trailing label step."""
        return self.nodes[: len(self.nodes) - self.label_steps]

    @property
    def end(self) -> Node:
        """The last node reached by message edges (a reference compound, a gene, ...)."""
        return self.message_nodes[-1]

    @property
    def metapath(self) -> str:
        """``Compound-HAS_SIGNATURE-Signature-UPREGULATES-Gene``: labels and relationship types."""
        parts = [self.node_types[0]]
        for rel, t in zip(self.rel_types, self.node_types[1:], strict=True):
            parts += [rel, t]
        return "-".join(parts)

    @property
    def nodes(self) -> list[Node]:
        return list(zip(self.node_types, self.node_index, strict=True))

    def pretty(self, names: dict[Node, str] | None = None) -> str:
        """``(Compound X)-[:HAS_SIGNATURE]->(Signature s)<-[:...]-(...)``."""
        def node(i: int) -> str:
            n = (self.node_types[i], self.node_index[i])
            label = (names or {}).get(n) or (self.node_keys[i] if self.node_keys else str(n[1]))
            return f"({self.node_types[i]} {label})"

        out = node(0)
        for i, (rel, fwd) in enumerate(zip(self.rel_types, self.forward, strict=True), start=1):
            out += f"-[:{rel}]->" if fwd else f"<-[:{rel}]-"
            out += node(i)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "metapath": self.metapath,
                "node_types": self.node_types, "node_keys": self.node_keys, "rel_types": self.rel_types,
                "forward": self.forward, "weights": self.weights, "label_steps": self.label_steps}

    def with_label_step(self, rel: str, node: Node, key: str | None) -> ExplanationPath:
        """This path with a trailing label step ``-[:rel]->(node)`` (weight 1, not scored)."""
        return ExplanationPath(
            score=self.score, node_types=[*self.node_types, node[0]], node_index=[*self.node_index, node[1]],
            rel_types=[*self.rel_types, rel], forward=[*self.forward, True], weights=[*self.weights, 1.0],
            node_keys=[*self.node_keys, key] if self.node_keys and key is not None else self.node_keys,
            rank=self.rank, edge_refs=[*self.edge_refs, []], label_steps=self.label_steps + 1)


def _make_path(nodes: tuple[Node, ...], steps: tuple[tuple[str, bool, float, list[EdgeRef]], ...],
               keys: dict[str, list[str]] | None) -> ExplanationPath:
    weights = [s[2] for s in steps]
    score = math.exp(sum(math.log(w) for w in weights) / len(weights))
    return ExplanationPath(
        score=score, node_types=[n[0] for n in nodes], node_index=[n[1] for n in nodes],
        rel_types=[s[0] for s in steps], forward=[s[1] for s in steps], weights=weights,
        node_keys=[keys[t][i] for t, i in nodes] if keys else [],
        edge_refs=[s[3] for s in steps],
    )


#: node labels a path should end at to count as evidence for a prediction
EVIDENCE_LABELS = frozenset({"Gene", "GOTerm"})


def top_k_paths(wg: WeightedGraph, start: Node, k: int = 5, max_length: int = 3, end: Node | None = None,
                keys: dict[str, list[str]] | None = None,
                max_expansions: int = 200_000,
                end_labels: Collection[str] | None = None,
                end_nodes: Collection[Node] = ()) -> list[ExplanationPath]:
    """The ``k`` best simple paths from ``start`` (length ``1..max_length``) by geometric-mean weight.

    With ``end``, only paths ending at ``end`` count (e.g. the predicted target gene); with
    ``end_labels``, only paths ending at a node of one of those labels or at one of ``end_nodes``. Ties
    are broken by length, then by the node sequence, so the result is deterministic.
    """
    if k <= 0 or max_length <= 0 or start not in wg.adj:
        return []
    tie = itertools.count()
    heap: list[tuple[float, int, tuple[Node, ...], tuple]] = [(0.0, next(tie), (start,), ())]
    found: dict[int, list[ExplanationPath]] = {n: [] for n in range(1, max_length + 1)}
    expansions = 0
    while heap and expansions < max_expansions:
        cost, _, nodes, steps = heapq.heappop(heap)
        length = len(steps)
        if length:
            ends_ok = end_labels is None or nodes[-1][0] in end_labels or nodes[-1] in end_nodes
            if (end is None or nodes[-1] == end) and ends_ok and len(found[length]) < k:
                found[length].append(_make_path(nodes, steps, keys))
            if all(len(v) >= k for v in found.values()):
                break
            if end is not None and nodes[-1] == end:
                continue  # a path to the target stops there
        if length >= max_length:
            continue
        expansions += 1
        seen = set(nodes)
        for (nbr, rel, fwd), (w, refs) in sorted(wg.adj[nodes[-1]].items(), key=lambda kv: (kv[0][0],
                                                                                              kv[0][1])):
            if nbr in seen:
                continue
            step = (rel, fwd, w, refs)
            heapq.heappush(heap, (cost - math.log(w), next(tie), (*nodes, nbr), (*steps, step)))
    cands = [p for v in found.values() for p in v]
    cands.sort(key=lambda p: (-p.score, p.length, p.nodes))
    out = cands[:k]
    for r, p in enumerate(out, start=1):
        p.rank = r
    return out


@dataclass
class MoAEvidence:
    """What an MoA prediction's paths may end at besides genes and GO terms: the reference compounds
    whose label input carries the predicted MoA (training compounds; the vote reads their labels), and
    the MoA node their HAS_MOA step leads to."""

    moa_node: Node
    compounds: frozenset[int]
    moa_key: str | None = None


@dataclass
class PathExplanation:
    """Paths of one prediction: ``paths`` end anywhere; for targets ``to_target`` end at the gene."""

    compound: Node
    target: tuple[str, int]
    paths: list[ExplanationPath]
    to_target: list[ExplanationPath]

    @property
    def best(self) -> list[ExplanationPath]:
        """What to show and store: the paths to the predicted gene when there are any, else all paths."""
        return self.to_target or self.paths


def explain_paths(sub: CompSubgraph, importance: dict[EdgeType, Tensor], target: tuple[str, int],
                  k: int = 5, max_length: int = 3,
                  keys: dict[str, list[str]] | None = None,
                  moa: MoAEvidence | None = None) -> PathExplanation:
    """Top-``k`` paths of an explanation on ``sub`` (see the module docstring for score and search).

    With ``moa`` (MoA predictions), a path may also end at a reference compound carrying the predicted
    MoA, and is then shown with that compound's HAS_MOA step to the MoA (the Connectivity Map argument:
    "a compound like this one has this MoA"). The explained compound's own labels are never a step.
    """
    wg = build_weighted_graph(sub, importance)
    start = ("Compound", sub.global_id("Compound", sub.compound))
    refs = {("Compound", c) for c in moa.compounds} - {start} if moa else set()
    # Paths that end in evidence (a gene, a GO term, a reference compound with the MoA) first: a path
    # that stops at a signature or at the cell line all signatures share says little; fall back to them
    # only when nothing else is reachable.
    paths = top_k_paths(wg, start, k, max_length, keys=keys, end_labels=EVIDENCE_LABELS, end_nodes=refs)
    paths = paths or top_k_paths(wg, start, k, max_length, keys=keys)
    if moa is not None:
        paths = [p.with_label_step("HAS_MOA", moa.moa_node, moa.moa_key) if p.end in refs else p
                 for p in paths]
    to_target: list[ExplanationPath] = []
    if target[0] == "target":
        to_target = top_k_paths(wg, start, k, max_length, end=("Gene", int(target[1])), keys=keys)
    return PathExplanation(start, target, paths, to_target)
