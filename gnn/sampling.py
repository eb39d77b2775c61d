"""Neighbour sampling for mini-batch training, in plain torch.

PyG's ``NeighborLoader`` / ``LinkNeighborLoader`` need ``pyg-lib`` or ``torch-sparse``, which have no wheels
for this torch on PyPI, so the loaders would fail at their first batch on CI. :func:`sample_subgraph` does
what they do for our needs (``num_neighbors`` incoming edges per node, edge type and hop, seeds kept,
global ids in ``n_id``) and returns the induced subgraph of the sampled nodes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.gnn.models import message_edge_types


def _group_rank(key: Tensor, generator: torch.Generator) -> Tensor:
    """Random rank of each element within its group of equal ``key`` (0 = first), ``[E] -> [E]``."""
    perm = torch.randperm(key.numel(), generator=generator)
    order = perm[torch.argsort(key[perm], stable=True)]  # grouped by key, random inside a group
    sorted_key = key[order]
    first = torch.searchsorted(sorted_key, sorted_key, right=False)
    rank = torch.empty_like(key)
    rank[order] = torch.arange(key.numel()) - first
    return rank


def sample_subgraph(
    graph: HeteroData, seeds: dict[str, Tensor], num_neighbors: tuple[int, ...], generator: torch.Generator,
) -> tuple[HeteroData, dict[str, Tensor]]:
    """Sampled neighbourhood of ``seeds`` as an induced subgraph, like PyG's ``NeighborLoader``.

    Hop ``h`` keeps at most ``num_neighbors[h]`` incoming message edges (label edges never) per
    frontier node and edge type, chosen at random with ``generator``. Returns the induced subgraph of
    all reached nodes (node attributes sliced, ``sub[t].n_id`` [n_t] = global indices, sorted) and
    ``{t: [len(seeds[t])]}`` local positions of the seeds in it.
    """
    edge_types = message_edge_types(graph)
    reached = {t: torch.zeros(int(graph[t].num_nodes), dtype=torch.bool) for t in graph.node_types}
    frontier = {t: torch.zeros_like(m) for t, m in reached.items()}
    for t, idx in seeds.items():
        reached[t][idx.cpu()] = True
        frontier[t][idx.cpu()] = True
    for k in num_neighbors:
        new = {t: torch.zeros_like(m) for t, m in reached.items()}
        for et in edge_types:
            src_t, _, dst_t = et
            ei = graph[et].edge_index
            if ei.numel() == 0 or not frontier[dst_t].any():
                continue
            cand = frontier[dst_t][ei[1]].nonzero().squeeze(1)
            if cand.numel() == 0:
                continue
            if cand.numel() > k:
                cand = cand[_group_rank(ei[1, cand], generator) < k]
            new[src_t][ei[0, cand]] = True
        frontier = {t: new[t] & ~reached[t] for t in reached}
        for t in reached:
            reached[t] |= new[t]
    node_idx = {t: m.nonzero().squeeze(1) for t, m in reached.items()}
    sub = graph.subgraph(node_idx)
    for t, idx in node_idx.items():
        sub[t].n_id = idx
    local = {t: torch.searchsorted(node_idx[t], idx.cpu()) for t, idx in seeds.items()}
    return sub, local


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
