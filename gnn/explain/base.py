"""One interface for edge explainers of a trained MoA / target model, and the computation subgraph they
work on.

An explainer answers: which message edges around compound ``c`` made the model predict ``target``?
``target`` is ``('moa', class_idx)`` (a column of :class:`~moakg.gnn.models.MoAClassifier`) or
``('target', gene_idx)`` (the link logit of :class:`~moakg.gnn.models.TargetLinkPredictor` for gene
``gene_idx``). Every explainer returns non-negative importances (evidence for the prediction), one
``[E_t]`` tensor per edge type ``t`` of the computation subgraph (:class:`CompSubgraph`), so a new method
is one new :class:`EdgeExplainer` class.

The computation subgraph of a ``k``-layer model around seed nodes keeps exactly the message edges that can
reach a seed within ``k`` layers: edge ``u -> v`` is kept when ``v`` is at most ``k - 1`` incoming hops from
a seed. That gives the seeds the same embeddings as the full graph (every node within ``k - 1`` hops keeps
all its in-edges, so mean aggregation sees the same neighbours) at a fraction of the cost, and every kept
edge type has a gradient path to the output (PyG's explainers raise on edge types without one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.explain.masking import attached_masks, mask_slots, slot_masks
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN
from moakg.gnn.models import (
    HeteroEncoder,
    MoAClassifier,
    TargetLinkPredictor,
    message_edge_types,
    model_inputs,
)

EdgeType = tuple[str, str, str]
#: ('moa', class index) or ('target', gene index)
Target = tuple[str, int]


def encoder_of(model: nn.Module) -> HeteroEncoder:
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, HeteroEncoder):
        raise TypeError(f"expected a MoAClassifier or TargetLinkPredictor, got {type(model).__name__}")
    return enc


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live: explanation inputs are moved there."""
    return next(model.parameters()).device


def model_depth(model: nn.Module) -> int:
    """Number of message-passing layers: how far a message can travel to the explained node."""
    return len(encoder_of(model).convs)


@dataclass
class CompSubgraph:
    """The ``k``-hop computation subgraph of a compound (and, for a target, of the gene too).

    Attributes:
        graph: HeteroData with every node type of the model; ``graph[t].n_id`` [n_t] global indices
            (sorted), ``graph[t].x`` sliced for featured types, only the kept message edges.
        compound: local index of the explained compound in ``graph['Compound']``.
        gene: local index of the target gene in ``graph['Gene']`` (``-1`` for MoA targets).
        edge_ids: ``{edge type: [E_t]}`` positions of the kept edges in the source graph's edge type,
            so importances can be mapped back to the full graph.
        depth: ``k``, the model depth the subgraph was cut for.
    """

    graph: HeteroData
    compound: int
    gene: int
    edge_ids: dict[EdgeType, Tensor]
    depth: int

    @property
    def edge_types(self) -> list[EdgeType]:
        """Edge types with at least one kept edge."""
        return [et for et in self.graph.edge_types if self.graph[et].edge_index.size(1) > 0]

    def num_edges(self) -> int:
        return sum(int(self.graph[et].edge_index.size(1)) for et in self.graph.edge_types)

    def global_id(self, node_type: str, local: int) -> int:
        return int(self.graph[node_type].n_id[local])


def computation_subgraph(graph: HeteroData, compound: int, depth: int,
                         gene: int | None = None) -> CompSubgraph:
    """Cut the ``depth``-layer computation subgraph of ``compound`` (and ``gene``) out of ``graph``.

    ``graph`` is the message-passing graph (label edges are ignored). Distances are counted along message
    direction (incoming edges), which is what a ``depth``-layer encoder reads.
    """
    edge_types = message_edge_types(graph)
    inf = depth + 1
    dist = {t: torch.full((int(graph[t].num_nodes),), inf, dtype=torch.long) for t in graph.node_types}
    dist["Compound"][compound] = 0
    if gene is not None and gene >= 0:
        dist["Gene"][gene] = 0
    for hop in range(1, depth):  # nodes at distance <= depth - 1 are the ones whose in-edges count
        for et in edge_types:
            src, _, dst = et
            ei = graph[et].edge_index
            hit = dist[dst][ei[1]] == hop - 1
            if hit.any():
                s = ei[0, hit]
                dist[src][s] = torch.minimum(dist[src][s], torch.full_like(s, hop))
    keep_nodes = {t: torch.zeros(int(graph[t].num_nodes), dtype=torch.bool) for t in graph.node_types}
    for t, d in dist.items():
        keep_nodes[t] |= d <= depth - 1
    kept_edges: dict[EdgeType, Tensor] = {}
    for et in edge_types:
        src, _, dst = et
        ei = graph[et].edge_index
        ids = (dist[dst][ei[1]] <= depth - 1).nonzero().view(-1)
        kept_edges[et] = ids
        keep_nodes[src][ei[0, ids]] = True
        keep_nodes[dst][ei[1, ids]] = True
    node_idx = {t: m.nonzero().view(-1) for t, m in keep_nodes.items()}
    sub = HeteroData()
    for t in graph.node_types:
        idx = node_idx[t]
        sub[t].num_nodes = int(idx.numel())
        sub[t].n_id = idx
        store = graph[t]
        for attr in ("x", LABEL_INPUT, LABEL_KNOWN):  # the label trick's inputs slice with x
            if attr in store:
                sub[t][attr] = store[attr][idx]
    local = {t: torch.full((int(graph[t].num_nodes),), -1, dtype=torch.long) for t in graph.node_types}
    for t, idx in node_idx.items():
        local[t][idx] = torch.arange(idx.numel())
    for et, ids in kept_edges.items():
        src, _, dst = et
        ei = graph[et].edge_index[:, ids]
        sub[et].edge_index = torch.stack([local[src][ei[0]], local[dst][ei[1]]])
    c_local = int(local["Compound"][compound])
    g_local = int(local["Gene"][gene]) if gene is not None and gene >= 0 else -1
    return CompSubgraph(sub, c_local, g_local, kept_edges, depth)


class ExplainedModel(nn.Module):
    """The model as PyG's ``Explainer`` wants it: ``forward(x_dict, edge_index_dict) -> [N, 1]`` raw logits.

    Only the explained edge types come in through ``edge_index_dict`` (so PyG puts masks on exactly those);
    every other message edge type of ``sub`` is added back unmasked, as plain dict entries (no copy of the
    graph per call). Row ``i`` of the output is the logit of ``target`` for compound ``i`` (MoA class, or
    the link to the fixed target gene).
    """

    def __init__(self, model: nn.Module, sub: CompSubgraph, target: Target) -> None:
        super().__init__()
        # Empty edge types stay: a SAGEConv with no edges still adds its root term lin_r(x_dst) + bias to
        # every destination node, so dropping them would change the prediction.
        self.model, self.target, self.gene_local = model, target, sub.gene
        self.base_edges = model_inputs(sub.graph, model_device(model))[1]
        # where PyG's set_hetero_masks puts each explained edge type's mask, for the layers it cannot
        # reach itself (votes, RGCN, HGT: see moakg.gnn.explain.masking)
        self.mask_slots = mask_slots(sub.edge_types)
        if target[0] == "moa" and not isinstance(model, MoAClassifier):
            raise TypeError("an ('moa', class) target needs a MoAClassifier")
        if target[0] == "target" and not isinstance(model, TargetLinkPredictor):
            raise TypeError("a ('target', gene) target needs a TargetLinkPredictor")

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        edges = {**self.base_edges, **edge_index_dict}
        with attached_masks(self.model, slot_masks(self.mask_slots), edges):
            return self._logit(x_dict, edges)

    def _logit(self, x_dict: dict[str, Tensor], edges: dict[EdgeType, Tensor]) -> Tensor:
        kind, idx = self.target
        if kind == "moa":
            return self.model(x_dict, edges)[:, idx : idx + 1]
        h = self.model(x_dict, edges)
        comp = torch.arange(h["Compound"].size(0), device=h["Compound"].device)
        gene = torch.full_like(comp, self.gene_local)
        glob = torch.full_like(comp, idx)
        # the votes read the same (masked or pruned) edges, so removing a neighbour's TARGETS edge moves them
        votes = self.model.link_votes(x_dict, edges)
        return self.model.score(h, comp, gene, glob, votes).unsqueeze(-1)


def explained_inputs(sub: CompSubgraph, device: torch.device | None = None,
                     ) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor]]:
    """``(x_dict, edge_index_dict)`` for :class:`ExplainedModel`: the model's inputs on ``sub``
    (:func:`~moakg.gnn.models.model_inputs`, on ``device``) over the explained (non-empty) edge types."""
    x, edges = model_inputs(sub.graph, device)
    return x, {et: edges[et] for et in sub.edge_types}


def predict(model: nn.Module, sub: CompSubgraph, target: Target,
            edge_index_dict: dict[EdgeType, Tensor] | None = None) -> float:
    """Probability (sigmoid of the logit) of ``target`` for the subgraph's compound, optionally with the
    explained edges replaced by ``edge_index_dict`` (edge types left out keep the subgraph's edges)."""
    wrapped = ExplainedModel(model, sub, target)
    device = model_device(model)
    x, ei = explained_inputs(sub, device)
    if edge_index_dict is not None:
        ei = {**ei, **{et: e.to(device) for et, e in edge_index_dict.items()}}
    model.eval()
    with torch.no_grad():
        return float(torch.sigmoid(wrapped(x, ei)[sub.compound, 0]))


class EdgeExplainer(ABC):
    """Edge importances for one prediction. Subclasses set ``name`` and implement :meth:`explain_sub`."""

    name: str = "base"

    def explain(self, model: nn.Module, graph: HeteroData, index: int,
                target: Target) -> dict[EdgeType, Tensor]:
        """Importances ``{edge type: [E_t] >= 0}`` on the computation subgraph of compound ``index``.

        ``graph`` is the message-passing graph the model was trained on (task graph); use
        :meth:`explain_with_subgraph` to also get the subgraph the tensors index into.
        """
        return self.explain_with_subgraph(model, graph, index, target)[0]

    def explain_with_subgraph(self, model: nn.Module, graph: HeteroData, index: int,
                              target: Target) -> tuple[dict[EdgeType, Tensor], CompSubgraph]:
        gene = target[1] if target[0] == "target" else None
        sub = computation_subgraph(graph, index, model_depth(model), gene)
        model.eval()
        if not sub.edge_types:  # no edge reaches the compound: nothing to explain
            return {}, sub
        imp = self.explain_sub(model, sub, target)
        out = {}
        for et in sub.edge_types:
            v = imp.get(et)
            n = sub.graph[et].edge_index.size(1)
            v = torch.zeros(n) if v is None else v.detach().float().cpu().view(-1).clamp(min=0)
            if v.numel() != n:
                raise RuntimeError(f"{self.name}: {et} importance has {v.numel()} values, expected {n}")
            out[et] = torch.nan_to_num(v, nan=0.0)
        return out, sub

    @abstractmethod
    def explain_sub(self, model: nn.Module, sub: CompSubgraph, target: Target) -> dict[EdgeType, Tensor]:
        """Importances on ``sub.graph``'s explained edge types (``sub.edge_types``): evidence FOR the
        prediction. Negative values (edges that argue against it) are set to 0 by :meth:`explain`, so
        paths are built from what supports the prediction, not from what merely moves it."""
