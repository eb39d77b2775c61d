r"""Heterogeneous GNN encoders (GraphSAGE, RGCN, HGT) and the MoA / target heads on top of them.

Every module follows PyG's heterogeneous convention, ``forward(x_dict, edge_index_dict)``, so PyG's
``Explainer`` can call it directly. :func:`model_inputs` turns an exported
:class:`~torch_geometric.data.HeteroData` (or a sampled subgraph of it) into those two dicts:

- ``x_dict[t]``: ``graph[t].x`` [N_t, F_t] for featured node types (Compound [N, 2048 + 978], Signature
  [N, 978]); for the types that only get a learned embedding (Gene, GOTerm, MoA, CellLine) the long
  global node ids [N_t, 1] (``graph[t].n_id`` in a sampled subgraph, else ``0..N_t-1``). The ids are a
  column, not a vector, because PyG's explainers read every ``x_dict[t].size()`` as ``(N, F)``.
- ``edge_index_dict[et]``: [2, E_et] for the message edge types only.

Label edges (the schema's ``role = "label"`` relationships, HAS_MOA, both directions) never reach message
passing: :func:`message_edge_types` drops them, :func:`model_inputs` never passes one, and an encoder
refuses one in its metadata.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, HGTConv, RGCNConv, SAGEConv

from moakg.errors import UserError
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN, label_width
from moakg.gnn.link_vote import LinkVotes, LinkVoteTable
from moakg.gnn.similarity_vote import LabelVotes, safe_logit
from moakg.kg.schema import is_label_edge as schema_is_label_edge

EdgeType = tuple[str, str, str]
Metadata = tuple[list[str], list[EdgeType]]

KINDS = ("sage", "rgcn", "hgt")


def is_label_edge(edge_type: EdgeType) -> bool:
    """True for label relationships of the schema (``role = "label"`` in kg/schema.toml: HAS_MOA) and their
    reverses: edges that are supervision, never messages."""
    return schema_is_label_edge(edge_type)


def message_edge_types(graph: HeteroData) -> list[EdgeType]:
    """The graph's edge types minus label edges (HAS_MOA both ways), in the graph's order."""
    return [et for et in graph.edge_types if not is_label_edge(et)]


def strip_label_edges(graph: HeteroData) -> HeteroData:
    """A shallow copy of ``graph`` without label edge types (they are labels, never messages)."""
    out = copy.copy(graph)
    for et in [et for et in graph.edge_types if is_label_edge(et)]:
        del out[et]
    return out


def graph_metadata(graph: HeteroData) -> Metadata:
    """``(node_types, message edge types that hold edges)``: what an encoder for ``graph`` is built on.

    An edge type without a single edge in the graph (a relationship the schema declares but no source
    or derive step has written yet) carries no message; left in, it would still add its own root
    weights to the layer of its end type and change the model of a graph that does not have it.
    """
    return list(graph.node_types), [et for et in message_edge_types(graph) if graph[et].edge_index.numel()]


def feature_dims(graph: HeteroData) -> dict[str, int]:
    """Input width of each node type that has a feature matrix ``x`` [N, F] (plus its label input's
    ``C + 1`` columns when it has one, see :mod:`moakg.gnn.label_trick`)."""
    return {t: int(graph[t].x.size(-1)) + label_width(graph, t) for t in graph.node_types if "x" in graph[t]}


def node_counts(graph: HeteroData) -> dict[str, int]:
    return {t: int(graph[t].num_nodes) for t in graph.node_types}


#: consensus z beyond this are clipped at the model's input (CMap's tools clip at +-10 too)
Z_CLIP = 10.0


def signature_input(z: Tensor) -> Tensor:
    """The model's view of z-scores: clipped at +-:data:`Z_CLIP`, divided by it, so in [-1, 1].

    Raw consensus z reach 207 on the demo: fed as they are, a few such values dominate the first linear
    layer and the encoder fitted them instead of the fingerprint (validation macro AUPRC 0.50 against
    0.65 once clipped, seed 0 of the demo). A fixed transform, not statistics of the data, so a new
    compound added later is read exactly as the training compounds were.
    """
    return z.clamp(-Z_CLIP, Z_CLIP) / Z_CLIP


def model_inputs(graph: HeteroData, device: torch.device | str | None = None,
                 ) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor]]:
    """``(x_dict, edge_index_dict)`` of ``graph`` for the models here (message edges only, never labels).

    Featured types give ``x`` [N_t, F_t], followed by ``label_in`` [N_t, C] and ``label_known`` [N_t, 1]
    when the type carries a label input (:mod:`moakg.gnn.label_trick`); the others their long global ids
    [N_t, 1] (``n_id`` when the graph is a sampled subgraph, else ``arange``). Tensors are moved to
    ``device`` when given.
    """
    x_dict: dict[str, Tensor] = {}
    for t in graph.node_types:
        store = graph[t]
        if "x" in store and LABEL_INPUT in store:
            x_dict[t] = torch.cat([store.x, store[LABEL_INPUT], store[LABEL_KNOWN].view(-1, 1)], dim=1)
        elif "x" in store:
            x_dict[t] = store.x
        else:
            n_id = store.get("n_id")
            x_dict[t] = (n_id if n_id is not None else torch.arange(int(store.num_nodes))).view(-1, 1)
    edge_index_dict = {et: graph[et].edge_index for et in message_edge_types(graph)}
    if device is not None:
        x_dict = {t: x.to(device) for t, x in x_dict.items()}
        edge_index_dict = {et: ei.to(device) for et, ei in edge_index_dict.items()}
    return x_dict, edge_index_dict


class InputProjection(nn.Module):
    r"""The input layer of every encoder: a linear map for featured node types, a learned embedding
    looked up by global node id for the others.

    .. math::
        \mathbf{h}^{(0)}_v = \mathbf{W}_{\tau(v)} \mathbf{x}_v + \mathbf{b}_{\tau(v)}
        \quad\text{(featured type } \tau(v)\text{)}, \qquad
        \mathbf{h}^{(0)}_v = \mathbf{E}_{\tau(v)}[\mathrm{id}(v)] \quad\text{(otherwise)}

    Embeddings are indexed by the global id, so a sampled subgraph reads the full graph's table.

    Args:
        node_types: every node type, in the graph's order.
        num_nodes: node count per featureless type (rows of its embedding table).
        in_dims: feature width per featured type.
        hidden: output width.

    Shapes:
        - **input:** ``x_dict``: ``{t: [N_t, F_t]}`` float for featured types, ``{t: [N_t] or [N_t, 1]}``
          long global ids for the others; a featureless type left out reads its whole table (the full
          graph, ids ``0..N_t-1``).
        - **output:** ``{t: [N_t, hidden]}``, in ``node_types`` order.
    """

    def __init__(self, node_types: Sequence[str], num_nodes: dict[str, int], in_dims: dict[str, int],
                 hidden: int) -> None:
        super().__init__()
        self.node_types = list(node_types)
        self.proj = nn.ModuleDict()
        for t in self.node_types:
            if t in in_dims:
                self.proj[t] = nn.Linear(in_dims[t], hidden)
            else:
                self.proj[t] = nn.Embedding(max(num_nodes[t], 1), hidden)

    def reset_parameters(self) -> None:
        for layer in self.proj.values():
            layer.reset_parameters()

    def forward(self, x_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for t in self.node_types:
            layer = self.proj[t]
            if isinstance(layer, nn.Linear):
                if t in x_dict:
                    out[t] = layer(x_dict[t])
            elif t in x_dict:
                out[t] = layer(x_dict[t].view(-1))
            else:
                out[t] = layer.weight
        return out


class HeteroEncoder(nn.Module):
    r"""Base of the encoders: :class:`InputProjection`, then ``layers`` residual message-passing layers.

    .. math::
        \mathbf{h}^{(l+1)}_v = \mathbf{h}^{(l)}_v
            + \mathrm{Dropout}\big(\mathrm{ReLU}(\mathrm{conv}^{(l)}(\mathbf{h}^{(l)})_v)\big)

    The residual keeps a node type that receives few or no messages at its own projection. A subclass
    sets ``kind``, builds ``self.convs`` and implements :meth:`conv` (one layer on the dicts).

    Args:
        metadata: ``(node_types, edge_types)``; label edge types are refused.
        num_nodes: node count per node type (embedding tables of featureless types).
        in_dims: feature width per featured node type.
        hidden: width of every layer.
        layers: number of message-passing layers.
        dropout: dropout rate on each layer's update.

    Shapes:
        - **input:** ``x_dict`` as :class:`InputProjection`; ``edge_index_dict``: ``{et: [2, E_et]}``
          (edge types the encoder was not built on are ignored).
        - **output:** ``{t: [N_t, hidden]}``.
    """

    kind = ""

    def __init__(self, metadata: Metadata, num_nodes: dict[str, int], in_dims: dict[str, int],
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        node_types, edge_types = list(metadata[0]), [tuple(et) for et in metadata[1]]
        leaked = [et for et in edge_types if is_label_edge(et)]
        if leaked:
            raise ValueError(f"label edges cannot be message-passing edges: {leaked}")
        self.node_types, self.edge_types = node_types, edge_types
        self.hidden, self.dropout, self.num_layers = hidden, dropout, layers
        self.input = InputProjection(node_types, num_nodes, in_dims, hidden)
        self.convs = nn.ModuleList()

    def reset_parameters(self) -> None:
        self.input.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def conv(self, layer: nn.Module, h: dict[str, Tensor],
             edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """One layer's (pre-activation) output per node type; types without an output keep ``h``."""
        raise NotImplementedError

    def forward(self, x_dict: dict[str, Tensor],
                edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        h = self.input(x_dict)
        known = set(self.edge_types)
        edges = {et: ei for et, ei in edge_index_dict.items() if et in known}
        for layer in self.convs:
            new = self.conv(layer, h, edges)
            h = {t: x + F.dropout(torch.relu(new[t]), self.dropout, self.training)
                 if new.get(t) is not None else x for t, x in h.items()}
        return h


class SAGEEncoder(HeteroEncoder):
    r"""GraphSAGE per edge type, summed over the edge types into a node type (PyG ``HeteroConv`` of
    ``SAGEConv``), residual as in :class:`HeteroEncoder`:

    .. math::
        \mathrm{conv}^{(l)}(\mathbf{h})_v = \sum_{r = (s, \rho, \tau(v))} \Big(
            \mathbf{W}^{(l)}_{r,1} \mathbf{h}_v
            + \mathbf{W}^{(l)}_{r,2} \frac{1}{|\mathcal{N}_r(v)|} \sum_{u \in \mathcal{N}_r(v)} \mathbf{h}_u
        \Big)

    Every edge type has its own ``SAGEConv``, so edge masks attach per edge type (what the explainers
    in :mod:`moakg.gnn.explain` need).

    Args:
        metadata, num_nodes, in_dims, hidden, layers, dropout: as :class:`HeteroEncoder`.

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as :class:`HeteroEncoder`.
        - **output:** ``{t: [N_t, hidden]}``.
    """

    kind = "sage"

    def __init__(self, metadata: Metadata, num_nodes: dict[str, int], in_dims: dict[str, int],
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__(metadata, num_nodes, in_dims, hidden, layers, dropout)
        for _ in range(layers):
            self.convs.append(HeteroConv({et: SAGEConv((hidden, hidden), hidden) for et in self.edge_types},
                                         aggr="sum"))

    def conv(self, layer: nn.Module, h: dict[str, Tensor],
             edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        return layer(h, edge_index_dict)


class RGCNEncoder(HeteroEncoder):
    r"""Relational GCN (PyG ``RGCNConv``) on the homogeneous view of the graph: node types stacked in
    order, one relation per edge type, mean over each relation's neighbours:

    .. math::
        \mathrm{conv}^{(l)}(\mathbf{h})_v = \mathbf{W}^{(l)}_0 \mathbf{h}_v + \mathbf{b}^{(l)}
            + \sum_{r} \frac{1}{|\mathcal{N}_r(v)|}
              \sum_{u \in \mathcal{N}_r(v)} \mathbf{W}^{(l)}_r \mathbf{h}_u,
        \qquad \mathbf{W}^{(l)}_r = \sum_{b=1}^{B} a^{(l)}_{rb} \mathbf{V}^{(l)}_b

    with ``B = 8`` basis matrices when there are more than 8 relations (a bounded parameter count
    however many relations the schema declares), else one full matrix per relation.

    Args:
        metadata, num_nodes, in_dims, hidden, layers, dropout: as :class:`HeteroEncoder`.

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as :class:`HeteroEncoder`.
        - **output:** ``{t: [N_t, hidden]}``.
    """

    kind = "rgcn"
    #: relations above which the weights share a basis
    MAX_FULL_RELATIONS = 8

    def __init__(self, metadata: Metadata, num_nodes: dict[str, int], in_dims: dict[str, int],
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__(metadata, num_nodes, in_dims, hidden, layers, dropout)
        n_rel = max(len(self.edge_types), 1)
        bases = self.MAX_FULL_RELATIONS if n_rel > self.MAX_FULL_RELATIONS else None
        for _ in range(layers):
            self.convs.append(RGCNConv(hidden, hidden, n_rel, num_bases=bases, aggr="mean"))

    def conv(self, layer: nn.Module, h: dict[str, Tensor],
             edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        types = [t for t in self.node_types if t in h]
        offset, start = {}, 0
        for t in types:
            offset[t] = start
            start += h[t].size(0)
        x = torch.cat([h[t] for t in types], dim=0)
        eis, rels = [], []
        for rel_id, et in enumerate(self.edge_types):
            ei = edge_index_dict.get(et)
            if ei is None or ei.numel() == 0 or et[0] not in offset or et[2] not in offset:
                continue
            shift = torch.tensor([[offset[et[0]]], [offset[et[2]]]], device=ei.device)
            eis.append(ei + shift)
            rels.append(torch.full((ei.size(1),), rel_id, dtype=torch.long, device=ei.device))
        if not eis:
            return {t: torch.zeros_like(h[t]) for t in types}
        out = layer(x, torch.cat(eis, dim=1), torch.cat(rels))
        return {t: out[offset[t] : offset[t] + h[t].size(0)] for t in types}


class HGTEncoder(HeteroEncoder):
    r"""Heterogeneous Graph Transformer (PyG ``HGTConv``): per-type keys, queries and values, attention
    per relation and head, a per-relation message transform:

    .. math::
        \mathrm{conv}^{(l)}(\mathbf{h})_v = \mathbf{A}_{\tau(v)} \Big( \Big\Vert_{i=1}^{H}
            \sum_{(u, r) \in \mathcal{N}(v)} \mathrm{softmax}_u\Big(
            \frac{\mathbf{K}^i_{\tau(u)} \mathbf{h}_u \, \mathbf{W}^{ATT}_{r,i} \,
            (\mathbf{Q}^i_{\tau(v)} \mathbf{h}_v)^\top \mu_r}{\sqrt{d}} \Big)
            \mathbf{V}^i_{\tau(u)} \mathbf{h}_u \, \mathbf{W}^{MSG}_{r,i} \Big)

    (``HGTConv`` also mixes in ``h_v`` through a learned per-type skip gate.)

    Args:
        metadata, num_nodes, in_dims, hidden, layers, dropout: as :class:`HeteroEncoder`.
        heads: attention heads ``H``; must divide ``hidden``.

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as :class:`HeteroEncoder`.
        - **output:** ``{t: [N_t, hidden]}``.
    """

    kind = "hgt"

    def __init__(self, metadata: Metadata, num_nodes: dict[str, int], in_dims: dict[str, int],
                 hidden: int = 128, layers: int = 2, dropout: float = 0.2, heads: int = 2) -> None:
        super().__init__(metadata, num_nodes, in_dims, hidden, layers, dropout)
        self.heads = heads
        for _ in range(layers):
            self.convs.append(HGTConv(hidden, hidden, (self.node_types, self.edge_types), heads=heads))

    def conv(self, layer: nn.Module, h: dict[str, Tensor],
             edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        return layer(h, edge_index_dict)


ENCODERS: dict[str, type[HeteroEncoder]] = {"sage": SAGEEncoder, "rgcn": RGCNEncoder, "hgt": HGTEncoder}


class FeatureMLP(nn.Module):
    r"""Logits of a node's own input features alone, no message: the fingerprint + signature MLP
    baseline as one branch of the MoA model.

    .. math::
        \mathbf{f}_v = \mathbf{W}_2\, \mathrm{Dropout}\big(\mathrm{ReLU}(\mathbf{W}_1
            \mathbf{x}_v[\mathrm{cols}] + \mathbf{b}_1)\big)

    Why a branch of its own: the encoder's view of a compound's own features is linear
    (:class:`InputProjection`) plus residual message-passing updates that mix in its neighbours, and
    on the demo the GNN scored like the *linear* model on those features (0.543 against 0.549 micro
    AUPRC) while the MLP on them was ahead (0.597). The MoA trainer fits this branch first, alone, with
    the MLP baseline's recipe (:meth:`~moakg.gnn.train_moa.MoATrainer.pretrain_features`), so the
    baseline is where the model starts, before the votes are tuned on top of it.

    Args:
        hidden: hidden width.
        n_classes: number of classes ``C``.
        cols: ``(start, stop)`` of the feature columns in ``x`` (the label input that follows them is
            never read here).
        dropout: dropout on the hidden layer.

    Shapes:
        - **input:** ``x`` [N, F] (F >= stop).
        - **output:** logits [N, C], without bias (the classifier's head carries the bias).
    """

    def __init__(self, hidden: int, n_classes: int, cols: tuple[int, int], dropout: float = 0.2) -> None:
        super().__init__()
        self.cols = cols
        self.net = nn.Sequential(nn.Linear(cols[1] - cols[0], hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes, bias=False))

    def reset_parameters(self) -> None:
        self.net[0].reset_parameters()
        self.net[-1].reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x[:, self.cols[0]:self.cols[1]])


class MoAClassifier(nn.Module):
    r"""Multi-label MoA logits of one node type's embeddings (Compound, or Signature for the
    signature-level task), plus, optionally, an MLP of the node's own features (:class:`FeatureMLP`)
    and, with the label trick, the similarity votes of the known neighbours' labels
    (:class:`~moakg.gnn.similarity_vote.LabelVotes`):

    .. math::
        \mathbf{z}_v = \mathbf{W}\, \mathrm{Dropout}(\mathbf{h}_v) + \mathbf{b} + \mathbf{f}_v
            + \sum_r \mathbf{a}_r \odot \mathbf{v}^{(r)}_v

    With both, the two strongest baselines are special cases of the model: the tuned kNN (head and
    feature branch at zero) and the feature MLP (head and votes' gates at zero); training starts from
    the MLP with the votes tuned on top of it.

    Args:
        encoder: a :class:`HeteroEncoder`.
        n_classes: number of MoA classes ``C``.
        node_type: the classified node type.
        votes: the vote layer over similarity edges, or None (no label trick).
        label_cols: ``(start, stop)`` of the label input's ``C`` columns in ``x_dict[node_type]`` (the
            ``label_known`` column follows); needed with ``votes``.
        features: the own-feature branch, or None.

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as :class:`HeteroEncoder`.
        - **output:** logits ``[N_node_type, C]``.
    """

    def __init__(self, encoder: HeteroEncoder, n_classes: int, node_type: str = "Compound",
                 votes: LabelVotes | None = None, label_cols: tuple[int, int] | None = None,
                 features: FeatureMLP | None = None) -> None:
        super().__init__()
        if votes is not None and label_cols is None:
            raise ValueError("votes need the label input's columns (label_cols)")
        self.encoder, self.node_type, self.votes, self.label_cols = encoder, node_type, votes, label_cols
        self.features = features
        self.head = nn.Sequential(nn.Dropout(encoder.dropout), nn.Linear(encoder.hidden, n_classes))
        self._zero_head()

    def _zero_head(self) -> None:
        # With votes the model starts as the vote alone (the kNN special case): a random head adds logit
        # noise that drowned the votes (demo, seed 0: test micro AUPRC 0.64 of the votes alone fell to 0.42
        # at the first epoch). Gradients still reach the encoder once the zero weights move.
        if self.votes is not None:
            nn.init.zeros_(self.head[-1].weight)

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.head[-1].reset_parameters()
        if self.votes is not None:
            self.votes.reset_parameters()
        if self.features is not None:
            self.features.reset_parameters()
        self._zero_head()

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        logits = self.head(self.encoder(x_dict, edge_index_dict)[self.node_type])
        x = x_dict[self.node_type]
        if self.features is not None:
            logits = logits + self.features(x)
        if self.votes is None or self.label_cols is None:
            return logits
        lo, hi = self.label_cols
        return logits + self.votes(x, x[:, lo:hi], x[:, hi], edge_index_dict)


class TargetLinkPredictor(nn.Module):
    r"""Compound -> Gene link scores: DistMult plus a learned per-gene bias, plus, with the label trick,
    the votes of the compound's similar compounds' targets (:class:`~moakg.gnn.link_vote.LinkVotes`):

    .. math::
        s(c, g) = \langle \mathbf{h}_c, \mathbf{r}, \mathbf{h}_g \rangle + b_g + \Delta s_{cg} .

    The bias starts at the log-odds of how often each gene is a training target (:meth:`set_prior`, the
    frequency prior), so the embedding term is spent on what is compound-specific. With votes,
    :math:`\mathbf{r}` starts at zero: the model starts as the neighbours' vote (the kNN special case)
    and moves away from it where the encoder helps (a random DistMult term at the start drowned the
    vote, as a random head did for MoA). :meth:`forward` returns the encoder's embeddings;
    :meth:`score` and :meth:`score_all` turn them into logits, with the vote tables of the same graph
    (:meth:`link_votes`); :meth:`logits_all` does all three on one full graph.

    Args:
        encoder: a :class:`HeteroEncoder`.
        n_genes: number of Gene nodes (rows of the bias table, indexed by global gene id).
        votes: the neighbour target votes, or None.

    Shapes:
        - **input:** ``x_dict``, ``edge_index_dict`` as :class:`HeteroEncoder`.
        - **output:** ``{t: [N_t, hidden]}``.
    """

    def __init__(self, encoder: HeteroEncoder, n_genes: int, votes: LinkVotes | None = None) -> None:
        super().__init__()
        self.encoder, self.votes = encoder, votes
        self.rel = nn.Parameter(torch.empty(encoder.hidden))
        self.gene_bias = nn.Embedding(max(n_genes, 1), 1)
        self.register_buffer("bias0", torch.zeros(max(n_genes, 1)))
        self._reset_link()

    def _reset_link(self) -> None:
        nn.init.constant_(self.rel, 0.0 if self.votes is not None else 1.0)
        with torch.no_grad():
            self.gene_bias.weight.copy_(self.bias0.unsqueeze(-1))

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        if self.votes is not None:
            self.votes.reset_parameters()
        self._reset_link()

    def set_prior(self, pos_train: Tensor, n_train_compounds: int) -> None:
        """Start the gene bias at the log-odds of each gene's share of the ``n_train_compounds``
        training compounds (pairs ``pos_train`` [2, P]); the votes shrink towards the same prior."""
        n = self.bias0.numel()
        counts = torch.bincount(torch.unique(pos_train[0] * n + pos_train[1]) % n, minlength=n).float()
        prior = (counts / max(n_train_compounds, 1)).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.bias0.copy_(safe_logit(prior))
            self.gene_bias.weight.copy_(self.bias0.unsqueeze(-1))
            if self.votes is not None:
                self.votes.prior.copy_(prior)

    def forward(self, x_dict: dict[str, Tensor],
                edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        return self.encoder(x_dict, edge_index_dict)

    def link_votes(self, x_dict: dict[str, Tensor],
                   edge_index_dict: dict[EdgeType, Tensor]) -> list[LinkVoteTable | None] | None:
        """The vote tables of the graph ``(x_dict, edge_index_dict)`` (None without votes)."""
        if self.votes is None:
            return None
        return self.votes.tables(x_dict["Compound"], edge_index_dict, int(x_dict["Gene"].size(0)))

    def score(
        self, h: dict[str, Tensor], comp: Tensor, gene: Tensor, gene_global: Tensor | None = None,
        votes: list[LinkVoteTable | None] | None = None,
    ) -> Tensor:
        """Logits [E] for pairs (``comp[i]``, ``gene[i]``), local indices into ``h`` (and ``votes``, the
        tables of the same graph); ``gene_global`` (defaults to ``gene``) indexes the per-gene bias."""
        g_glob = gene if gene_global is None else gene_global
        s = (h["Compound"][comp] * self.rel * h["Gene"][gene]).sum(-1)
        s = s + self.gene_bias(g_glob).squeeze(-1)
        if votes is not None and self.votes is not None:
            s = s + self.votes.offset(votes, comp, gene, g_glob)
        return s

    def score_all(self, h: dict[str, Tensor], comp: Tensor,
                  votes: list[LinkVoteTable | None] | None = None) -> Tensor:
        """Logits [len(comp), n_genes] of the given compounds against every gene (full-graph ``h``, and
        ``votes`` of the full graph)."""
        s = (h["Compound"][comp] * self.rel) @ h["Gene"].T
        s = s + self.gene_bias.weight.squeeze(-1)[None, : s.size(1)]
        if votes is not None and self.votes is not None:
            s = s + self.votes.offset_all(votes, comp)[:, : s.size(1)]
        return s

    def logits_all(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                   comp: Tensor) -> Tensor:
        """:meth:`score_all` of compounds ``comp`` on one full graph (embeddings and votes of it)."""
        return self.score_all(self(x_dict, edge_index_dict), comp, self.link_votes(x_dict, edge_index_dict))


def build_encoder(
    graph: HeteroData, kind: str = "sage", hidden: int = 128, layers: int = 2, dropout: float = 0.2,
    heads: int = 2,
) -> HeteroEncoder:
    """The ``kind`` encoder sized for ``graph`` (its node types, message edge types, node counts, feature
    widths)."""
    check_kinds([kind])
    extra = {"heads": heads} if kind == "hgt" else {}
    return ENCODERS[kind](graph_metadata(graph), node_counts(graph), feature_dims(graph), hidden, layers,
                          dropout, **extra)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """Validate model names (a clear error for the CLI)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UserError(f"unknown model {bad[0]!r}; choose from {', '.join(KINDS)}")
    return list(kinds)
