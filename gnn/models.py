"""Heterogeneous GNN encoders (GraphSAGE, RGCN, HGT) and the MoA / target heads on top of them.

Every model reads a :class:`~torch_geometric.data.HeteroData` as exported by :mod:`moakg.kg.export` (or a
sampled subgraph of it): ``graph[t].x`` for featured node types (Compound [N, 2048 + 978], Signature
[N, 978]), ``graph[t].n_id`` (global node index, set by the samplers; ``arange`` in full batch) for the
types that only get a learned embedding (Gene, GOTerm, MoA, CellLine).

Label edges never reach message passing: :func:`message_edge_types` drops every ``HAS_MOA`` /
``rev_HAS_MOA`` edge type, so even a graph that still carries them cannot leak labels into the
encoder, and :class:`HeteroEncoder` refuses such an edge type in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, HGTConv, RGCNConv, SAGEConv

from moakg.kg.schema import is_label_edge as schema_is_label_edge

EdgeType = tuple[str, str, str]
Metadata = tuple[list[str], list[EdgeType]]

KINDS = ("sage", "rgcn", "hgt")
#: relationship names that are labels: never messages (with or without the ``rev_`` prefix)


def is_label_edge(edge_type: EdgeType) -> bool:
    """True for label relationships of the schema (``role = "label"`` in kg/schema.toml: HAS_MOA) and their
    reverses: edges that are supervision, never messages."""
    return schema_is_label_edge(edge_type)


def message_edge_types(graph: HeteroData) -> list[EdgeType]:
    """The graph's edge types minus label edges (HAS_MOA both ways), in the graph's order."""
    return [et for et in graph.edge_types if not is_label_edge(et)]


def graph_metadata(graph: HeteroData) -> Metadata:
    """``(node_types, message edge types)``: what an encoder for ``graph`` is built on."""
    return list(graph.node_types), message_edge_types(graph)


def feature_dims(graph: HeteroData) -> dict[str, int]:
    """Input width of each node type that has a feature matrix ``x`` [N, F]."""
    return {t: int(graph[t].x.size(-1)) for t in graph.node_types if "x" in graph[t]}


def node_counts(graph: HeteroData) -> dict[str, int]:
    return {t: int(graph[t].num_nodes) for t in graph.node_types}


def _global_ids(store: object, n: int, device: torch.device) -> Tensor:
    """Global node indices of a (possibly sampled) node store: ``n_id`` when sampled, else 0..n-1."""
    n_id = getattr(store, "n_id", None)
    return n_id.to(device) if n_id is not None else torch.arange(n, device=device)


class HeteroEncoder(nn.Module):
    """Per-type input projection, then ``layers`` heterogeneous message-passing layers of one ``kind``.

    - projection: ``Linear(in_dims[t], hidden)`` for featured types, ``Embedding(num_nodes[t], hidden)``
      otherwise (indexed by the global ``n_id``, so sampled subgraphs share the full graph's table);
    - ``sage``: ``HeteroConv`` of one ``SAGEConv`` per edge type, summed over edge types;
    - ``rgcn``: ``RGCNConv`` on the homogeneous view (node types concatenated, one relation per edge
      type; basis decomposition when there are many relations);
    - ``hgt``: ``HGTConv`` with ``heads`` attention heads.

    Each layer is residual (``h + dropout(relu(conv(h)))``) so types with few incoming edges keep their
    own projection. ``forward(graph)`` returns ``{node_type: [N_t, hidden]}``.
    """

    def __init__(
        self,
        metadata: Metadata,
        num_nodes: dict[str, int],
        in_dims: dict[str, int],
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.2,
        kind: str = "sage",
        heads: int = 2,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"model kind must be one of {', '.join(KINDS)}, not {kind!r}")
        node_types, edge_types = list(metadata[0]), [tuple(et) for et in metadata[1]]
        leaked = [et for et in edge_types if is_label_edge(et)]
        if leaked:
            raise ValueError(f"label edges cannot be message-passing edges: {leaked}")
        self.node_types, self.edge_types = node_types, edge_types
        self.kind, self.hidden, self.dropout = kind, hidden, dropout
        self.proj = nn.ModuleDict()
        for t in node_types:
            if t in in_dims:
                self.proj[t] = nn.Linear(in_dims[t], hidden)
            else:
                self.proj[t] = nn.Embedding(max(num_nodes[t], 1), hidden)
        self.convs = nn.ModuleList()
        for _ in range(layers):
            if kind == "sage":
                self.convs.append(
                    HeteroConv({et: SAGEConv((hidden, hidden), hidden) for et in edge_types}, aggr="sum")
                )
            elif kind == "rgcn":
                n_rel = max(len(edge_types), 1)
                # Bases keep the parameter count bounded by 8 matrices however many relations there are.
                bases = 8 if n_rel > 8 else None
                self.convs.append(RGCNConv(hidden, hidden, n_rel, num_bases=bases, aggr="mean"))
            else:
                self.convs.append(HGTConv(hidden, hidden, (node_types, edge_types), heads=heads))

    def project(self, graph: HeteroData) -> dict[str, Tensor]:
        """Input projection: ``{t: [N_t, hidden]}``."""
        device = next(self.parameters()).device
        out = {}
        for t in self.node_types:
            if t not in graph.node_types:
                continue
            store = graph[t]
            layer = self.proj[t]
            if isinstance(layer, nn.Linear):
                out[t] = layer(store.x.to(device))
            else:
                out[t] = layer(_global_ids(store, int(store.num_nodes), device))
        return out

    def edge_index_dict(self, graph: HeteroData) -> dict[EdgeType, Tensor]:
        """Message edges of ``graph`` known to this encoder (label edges never included)."""
        device = next(self.parameters()).device
        known = set(self.edge_types)
        return {
            et: graph[et].edge_index.to(device)
            for et in graph.edge_types
            if et in known and not is_label_edge(et)
        }

    def forward(self, graph: HeteroData) -> dict[str, Tensor]:
        h = self.project(graph)
        edges = self.edge_index_dict(graph)
        for conv in self.convs:
            if self.kind == "rgcn":
                new = self._rgcn(conv, h, edges)
            elif self.kind == "sage":
                new = conv(h, edges)
            else:
                new = conv(h, edges)
            h = {
                t: x + nn.functional.dropout(torch.relu(new[t]), self.dropout, self.training)
                if new.get(t) is not None
                else x
                for t, x in h.items()
            }
        return h

    def _rgcn(self, conv: RGCNConv, h: dict[str, Tensor], edges: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """One RGCN layer on the homogeneous view: node types stacked in order, relation = edge-type id."""
        types = [t for t in self.node_types if t in h]
        offset, start = {}, 0
        for t in types:
            offset[t] = start
            start += h[t].size(0)
        x = torch.cat([h[t] for t in types], dim=0)
        eis, rels = [], []
        for rel_id, et in enumerate(self.edge_types):
            ei = edges.get(et)
            if ei is None or ei.numel() == 0 or et[0] not in offset or et[2] not in offset:
                continue
            shift = torch.tensor([[offset[et[0]]], [offset[et[2]]]], device=ei.device)
            eis.append(ei + shift)
            rels.append(torch.full((ei.size(1),), rel_id, dtype=torch.long, device=ei.device))
        if not eis:
            return {t: torch.zeros_like(h[t]) for t in types}
        out = conv(x, torch.cat(eis, dim=1), torch.cat(rels))
        return {t: out[offset[t] : offset[t] + h[t].size(0)] for t in types}


class MoAClassifier(nn.Module):
    """Multi-label MoA logits from the encoder's embeddings of ``node_type`` (Compound, or Signature for
    the signature-level task). ``forward(graph) -> [N_node_type, n_classes]`` logits."""

    def __init__(self, encoder: HeteroEncoder, n_classes: int, node_type: str = "Compound") -> None:
        super().__init__()
        self.encoder, self.node_type = encoder, node_type
        self.head = nn.Sequential(nn.Dropout(encoder.dropout), nn.Linear(encoder.hidden, n_classes))

    def forward(self, graph: HeteroData) -> Tensor:
        return self.head(self.encoder(graph)[self.node_type])


class TargetLinkPredictor(nn.Module):
    """Compound -> Gene link scores: DistMult ``<h_c, r, h_g>`` plus a learned per-gene bias.

    The bias lets the model learn how often each gene is a target (the degree prior) and spend the
    embedding term on what is compound-specific. ``forward(graph)`` returns the encoder embeddings;
    :meth:`score` / :meth:`score_all` turn them into logits.
    """

    def __init__(self, encoder: HeteroEncoder, n_genes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.rel = nn.Parameter(torch.ones(encoder.hidden))
        self.gene_bias = nn.Embedding(max(n_genes, 1), 1)
        nn.init.zeros_(self.gene_bias.weight)

    def forward(self, graph: HeteroData) -> dict[str, Tensor]:
        return self.encoder(graph)

    def score(
        self, h: dict[str, Tensor], comp: Tensor, gene: Tensor, gene_global: Tensor | None = None
    ) -> Tensor:
        """Logits [E] for pairs (``comp[i]``, ``gene[i]``), local indices into ``h``; ``gene_global``
        (defaults to ``gene``) indexes the per-gene bias."""
        g_glob = gene if gene_global is None else gene_global
        s = (h["Compound"][comp] * self.rel * h["Gene"][gene]).sum(-1)
        return s + self.gene_bias(g_glob).squeeze(-1)

    def score_all(self, h: dict[str, Tensor], comp: Tensor) -> Tensor:
        """Logits [len(comp), n_genes] of the given compounds against every gene (full-graph ``h``)."""
        s = (h["Compound"][comp] * self.rel) @ h["Gene"].T
        return s + self.gene_bias.weight.squeeze(-1)[None, : s.size(1)]


def build_encoder(
    graph: HeteroData, kind: str = "sage", hidden: int = 128, layers: int = 2, dropout: float = 0.2,
    heads: int = 2,
) -> HeteroEncoder:
    """An encoder sized for ``graph`` (its node types, message edge types, node counts, feature widths)."""
    return HeteroEncoder(
        graph_metadata(graph), node_counts(graph), feature_dims(graph), hidden, layers, dropout, kind, heads
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """Validate model names (a clear error for the CLI)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown model {bad[0]!r}; choose from {', '.join(KINDS)}")
    return list(kinds)
