"""Neighbour sampling for mini-batch training, in plain torch.

PyG's ``NeighborLoader`` / ``LinkNeighborLoader`` need ``pyg-lib`` or ``torch-sparse``, which have no wheels
for this torch on PyPI, so the loaders would fail at their first batch on CI. :func:`sample_subgraph` does
what they do for our needs: ``num_neighbors`` incoming edges per node, edge type and hop, chosen uniformly
without replacement, seeds kept, global ids in ``n_id``, and a subgraph made of the *sampled* edges only.

Cost per batch follows the batch, not the graph: each message edge type gets, once per ``edge_index``
tensor, a CSC index (edges grouped by destination, :class:`InEdgeIndex`), and a hop reads only the index
segments of its frontier nodes. Returning the induced subgraph of the reached nodes instead (what this
module did before) let one hub gene reached by a batch pull in every edge between it and the batch's
other nodes, and finding the frontier's edges scanned every edge of every type at every hop.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary
from torch_geometric.data import HeteroData

from moakg.gnn.models import EdgeType, message_edge_types
from moakg.gnn.similarity_vote import expand_groups


@dataclass(frozen=True)
class InEdgeIndex:
    """The edges of one edge type grouped by destination node (CSC), as original edge ids.

    Shapes:
        - ``ptr`` [num_dst + 1] long: node ``v``'s incoming edges are ``perm[ptr[v]:ptr[v + 1]]``.
        - ``perm`` [E] (int32 when ``E`` fits, to halve what the cache holds; else long): edge ids sorted
          by destination (stable, so by edge id within a node).
    """

    ptr: Tensor
    perm: Tensor
    num_dst: int
    num_edges: int

    @classmethod
    def build(cls, edge_index: Tensor, num_dst: int) -> InEdgeIndex:
        """Index of ``edge_index`` [2, E] (long, CPU) whose destinations lie in ``0..num_dst-1``."""
        dst = edge_index[1]
        perm = torch.argsort(dst, stable=True)
        if perm.numel() < 2**31:
            perm = perm.to(torch.int32)
        ptr = torch.zeros(num_dst + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(dst, minlength=num_dst), 0, out=ptr[1:])
        return cls(ptr, perm, num_dst, int(edge_index.size(1)))


#: ``edge_index`` tensor -> its :class:`InEdgeIndex`. Keyed by the tensor's identity and held weakly, so
#: an epoch graph that shares most edge tensors with the training graph (``copy.copy`` plus a few edges
#: dropped) reuses their indexes, and an index dies with its tensor. ``edge_index`` tensors are replaced,
#: never edited in place, everywhere in moakg (``drop_edges``); the size checks in :func:`in_edge_index`
#: catch the common in-place edits anyway.
_INDEX_CACHE: WeakIdKeyDictionary = WeakIdKeyDictionary()


def in_edge_index(edge_index: Tensor, num_dst: int) -> InEdgeIndex:
    """The cached :class:`InEdgeIndex` of ``edge_index`` [2, E], built on first use (O(E log E))."""
    hit = _INDEX_CACHE.get(edge_index)
    if hit is None or hit.num_dst != num_dst or hit.num_edges != edge_index.size(1):
        hit = InEdgeIndex.build(edge_index, num_dst)
        _INDEX_CACHE[edge_index] = hit
    return hit


def _segments(start: Tensor, count: Tensor) -> Tensor:
    """Every position of the segments ``[start[i], start[i] + count[i])``, concatenated, ``[sum(count)]``."""
    owner, within = expand_groups(count)
    return start[owner] + within


def _random_k_of_segments(start: Tensor, deg: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct positions per segment, uniformly, by a random key per position and the ``k`` smallest
    keys of each segment. Costs ``sum(deg)``: for segments of at most ``2k`` positions.

    Shapes: ``start``, ``deg`` [S] (``deg > k``) -> [S * k].
    """
    owner, within = expand_groups(deg)
    # owner + U[0, 1) sorts by segment first, randomly inside one (float64: exact up to 2**53 segments)
    key = owner.to(torch.float64) + torch.rand(owner.numel(), generator=generator, dtype=torch.float64)
    order = torch.argsort(key)
    # segments keep their place and size in the sorted order, so sorted position i is the within[i]-th
    # of its segment
    pick = order[within < k]
    return start[owner[pick]] + within[pick]


def _distinct_offsets(start: Tensor, deg: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct positions per segment, uniformly, touching ``O(k)`` per segment whatever its length.

    Offsets are drawn with replacement and repeats thrown away, in rounds, each node drawing only what it
    still lacks, until every node has ``k``: the first ``k`` distinct values of a sequence of uniform
    draws are a uniform ``k``-subset. With ``deg > 2k`` a draw is new with probability above 1/2, so a
    node's shortfall at least halves per round in expectation (about ``log2(k) + 2`` rounds).

    Shapes: ``start``, ``deg`` [S] (``deg > 2k``) -> [S * k].
    """
    n = deg.numel()
    span = int(deg.max())  # key = node * span + offset: unique per (node, offset), fits int64 here
    active, need = torch.arange(n), torch.full((n,), k, dtype=torch.long)
    pool = torch.empty(0, dtype=torch.long)  # distinct keys of the nodes still short of k
    done: list[Tensor] = []
    while active.numel():
        node = torch.repeat_interleave(active, need)
        u = torch.rand(node.numel(), generator=generator, dtype=torch.float64)
        off = torch.minimum((u * deg[node]).long(), deg[node] - 1)  # rounding could reach deg
        # a node never gets more than k distinct keys: it drew only what it lacked
        pool = torch.unique(torch.cat([pool, node * span + off]))
        owner = pool // span
        count = torch.bincount(owner, minlength=n)
        # complete nodes leave the pool, so later rounds sort only the keys of the few still short
        complete = count[owner] == k
        done.append(pool[complete])
        pool = pool[~complete]
        active = ((count > 0) & (count < k)).nonzero().squeeze(1)
        need = k - count[active]
    keys = torch.cat(done)
    return start[keys // span] + keys % span


def sample_in_edges(index: InEdgeIndex, dst: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """At most ``k`` incoming edges of each node of ``dst``, uniformly without replacement (all of them when
    its in-degree is at most ``k``), reading only those nodes' segments of ``index``.

    Args:
        index: the edge type's :class:`InEdgeIndex`.
        dst: destination nodes (global ids; one listed twice draws two independent samples).
        k: edges per node (>= 1).
        generator: the only source of randomness: the same generator state gives the same edges.

    Shapes:
        - **input:** ``dst`` [F] long.
        - **output:** original edge ids [S] long, ``S = sum(min(deg, k))``, unordered.
    """
    start = index.ptr[dst]
    deg = index.ptr[dst + 1] - start
    few, many = deg <= k, deg > 2 * k
    parts = [_segments(start[few], deg[few])]
    mid = ~few & ~many
    if mid.any():
        parts.append(_random_k_of_segments(start[mid], deg[mid], k, generator))
    if many.any():
        parts.append(_distinct_offsets(start[many], deg[many], k, generator))
    return index.perm[torch.cat(parts)].long()


def _take(value: Any, idx: Tensor, dim: int) -> Any:
    """Rows ``idx`` of a per-node / per-edge attribute (tensor along ``dim``, array or list)."""
    if isinstance(value, Tensor):
        return value.index_select(dim, idx.to(value.device))
    if isinstance(value, np.ndarray):
        return np.take(value, idx.numpy(), axis=dim)
    return type(value)(value[i] for i in idx.tolist())


@dataclass
class _Scratch:
    """Per-graph working memory of :class:`NeighborSampler`: ``slot[t]`` [N_t] long maps a global node id
    to its local id in the sample being built and holds -1 everywhere between samples, so marking and
    relabelling the reached nodes costs O(1) per node instead of a sort against everything reached. The
    lock keeps two threads from sharing it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    slot: dict[str, Tensor] = field(default_factory=dict)

    def slots(self, node_type: str, num_nodes: int) -> Tensor:
        buf = self.slot.get(node_type)
        if buf is None or buf.numel() < num_nodes:
            buf = self.slot[node_type] = torch.full((num_nodes,), -1, dtype=torch.long)
        return buf


#: graph -> its :class:`_Scratch`, held weakly (the scratch never references the graph, so it dies with it)
_SCRATCH: WeakIdKeyDictionary = WeakIdKeyDictionary()


class NeighborSampler:
    """Samples NeighborLoader-style subgraphs of ``graph`` (see :func:`sample_subgraph`).

    Construction looks up (building on first use) the CSC index of each message edge type
    (:func:`in_edge_index`) and the graph's scratch buffers (one ``[N_t]`` long per node type, allocated
    once per graph): cheap after the first time, so constructing one per batch is fine. ``graph`` must
    live on the CPU (the generators the trainers pass are CPU generators).
    """

    def __init__(self, graph: HeteroData) -> None:
        self.graph = graph
        self.edge_types: list[EdgeType] = message_edge_types(graph)
        self.index = {et: in_edge_index(graph[et].edge_index, int(graph[et[2]].num_nodes))
                      for et in self.edge_types}
        scratch = _SCRATCH.get(graph)
        if scratch is None:
            scratch = _SCRATCH[graph] = _Scratch()
        self.scratch: _Scratch = scratch

    def sample(self, seeds: dict[str, Tensor], num_neighbors: Sequence[int], generator: torch.Generator,
               ) -> tuple[HeteroData, dict[str, Tensor]]:
        """See :func:`sample_subgraph`."""
        with self.scratch.lock:
            slot = {t: self.scratch.slots(t, int(self.graph[t].num_nodes)) for t in self.graph.node_types}
            found: dict[str, list[Tensor]] = {}
            try:
                return self._sample(seeds, num_neighbors, generator, slot, found)
            finally:  # leave every slot at -1 for the next sample, whatever happened
                for t, parts in found.items():
                    slot[t][torch.cat(parts)] = -1

    def _sample(self, seeds: dict[str, Tensor], num_neighbors: Sequence[int], generator: torch.Generator,
                slot: dict[str, Tensor], found: dict[str, list[Tensor]],
                ) -> tuple[HeteroData, dict[str, Tensor]]:
        """The sample, with ``slot`` the all -1 global -> local maps; ``found[t]`` collects the nodes
        reached, in order (the caller resets their slots)."""
        graph = self.graph

        def reach(t: str, cand: Tensor) -> Tensor:
            """The nodes of ``cand`` (distinct) not reached yet, given the next local ids."""
            new = cand[slot[t][cand] < 0]
            done = sum(p.numel() for p in found.get(t, ()))
            slot[t][new] = torch.arange(done, done + new.numel())
            found.setdefault(t, []).append(new)
            return new

        frontier = {t: reach(t, torch.unique(idx.cpu().long())) for t, idx in seeds.items()}
        kept: dict[EdgeType, list[Tensor]] = {et: [] for et in self.edge_types}
        for k in num_neighbors:
            sources: dict[str, list[Tensor]] = {}
            for et in self.edge_types:
                dst = frontier.get(et[2])
                if dst is None or dst.numel() == 0 or self.index[et].num_edges == 0:
                    continue
                eid = sample_in_edges(self.index[et], dst, int(k), generator)
                kept[et].append(eid)
                sources.setdefault(et[0], []).append(graph[et].edge_index[0, eid])
            # the next hop samples into the nodes first reached at this one, as NeighborLoader does
            frontier = {t: reach(t, torch.unique(torch.cat(parts))) for t, parts in sources.items()}
        empty = torch.empty(0, dtype=torch.long)
        node_idx = {t: torch.cat(found[t]) if t in found else empty for t in graph.node_types}
        edge_idx = {et: torch.sort(torch.cat(parts)).values if parts else empty for et, parts in kept.items()}
        local = {t: slot[t][idx.cpu().long()] for t, idx in seeds.items()}
        return self._build(node_idx, edge_idx, slot), local

    def _build(self, node_idx: dict[str, Tensor], edge_idx: dict[EdgeType, Tensor],
               slot: dict[str, Tensor]) -> HeteroData:
        """The subgraph of nodes ``node_idx`` (global ids in local order) and message edges ``edge_idx``
        (sorted edge ids): every per-node and per-edge attribute sliced, the rest shared, label edge types
        left out."""
        graph = self.graph
        sub = copy.copy(graph)  # own stores, shared tensors; graph-level attributes kept
        for et in graph.edge_types:
            if et not in edge_idx:  # label edges: supervision, never messages, and no caller reads them
                del sub[et]
        for t, idx in node_idx.items():
            store, out = graph[t], sub[t]
            for key, value in store.items():
                if key != "num_nodes" and store.is_node_attr(key):
                    out[key] = _take(value, idx, graph.__cat_dim__(key, value, store))
            out.num_nodes = idx.numel()
            out.n_id = idx
        for et, eid in edge_idx.items():
            store, out = graph[et], sub[et]
            src, dst = store.edge_index[:, eid]
            for key, value in store.items():
                if key == "edge_index":
                    out.edge_index = torch.stack([slot[et[0]][src], slot[et[2]][dst]])
                elif store.is_edge_attr(key):
                    out[key] = _take(value, eid, graph.__cat_dim__(key, value, store))
        return sub


def sample_subgraph(
    graph: HeteroData, seeds: dict[str, Tensor], num_neighbors: Sequence[int], generator: torch.Generator,
) -> tuple[HeteroData, dict[str, Tensor]]:
    """Sampled neighbourhood of ``seeds``, like PyG's ``NeighborLoader`` (``replace=False``).

    Hop 1 samples, for every seed and message edge type into the seed's type, at most ``num_neighbors[0]``
    incoming edges uniformly without replacement (all of them when it has no more); hop ``h`` does the
    same with ``num_neighbors[h-1]`` for the nodes first reached at hop ``h-1``. Label edges are never
    sampled. The subgraph holds the reached nodes and the sampled edges only (each from a sampled
    neighbour to the node that sampled it): per-batch time and memory follow
    ``len(seeds) * prod(num_neighbors)`` (times the edge types), never the graph's size or a hub's degree;
    what grows with the graph is built once per graph (the CSC indexes, one ``[N_t]`` scratch per node
    type) and reused by every batch.

    Args:
        graph: CPU graph; its message edge types are indexed once per ``edge_index`` tensor (cached).
        seeds: ``{node type: global ids}``.
        num_neighbors: edges per node, edge type and hop (>= 1 each).
        generator: the only source of randomness (the same state gives the same subgraph).

    Returns:
        ``(sub, local)``. ``sub`` has every node type, with ``n_id`` [n_t] the global ids (the seeds first,
        sorted, then each hop's new nodes, sorted, as NeighborLoader orders them) and every per-node
        attribute sliced to them; and every message edge type, with ``edge_index`` [2, E_et] local
        (possibly empty; edges in the graph's order) and every per-edge attribute (``edge_attr``,
        ``source_code``, ...) sliced to the kept edges. Label edge types (HAS_MOA) are left out.
        ``local`` is ``{t: [len(seeds[t])]}``, the seeds' positions in ``sub[t]``.
    """
    return NeighborSampler(graph).sample(seeds, num_neighbors, generator)


def batches(idx: Tensor, size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """``idx`` in slices of ``size``, shuffled when a generator is given."""
    if generator is not None:
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
    for i in range(0, idx.numel(), size):
        yield idx[i : i + size]


def graph_size(graph: HeteroData) -> int:
    """Nodes plus message edges: what full-batch memory grows with."""
    nodes = sum(int(graph[t].num_nodes) for t in graph.node_types)
    return nodes + sum(graph[et].edge_index.size(1) for et in message_edge_types(graph))
