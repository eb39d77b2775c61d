r"""Neighbour label votes over the graph's similarity edges: the nearest-neighbour baselines as a layer.

A tuned Tanimoto kNN was the strongest MoA and target baseline (README). :class:`SimilarityVote` makes
it a special case of the GNN: over the ``SIMILAR_STRUCTURE`` (or ``SIMILAR_SIGNATURE``) edges of a
compound, it averages the *input labels* of the neighbours whose labels are known (the label trick,
:mod:`moakg.gnn.label_trick`), weighted by a learned sharpening of their similarity; :class:`LabelVotes`
adds one such vote per similarity edge type to the classifier's logits with learned per-class gates.
With the gates at a large value and the encoder's term constant, the logits rank like a
similarity-weighted kNN; training moves away from that where the graph's other evidence helps.

The similarity of an edge is recomputed from its endpoints' input features (Tanimoto of the Morgan
bits, Pearson correlation of the consensus z-vectors) rather than read from the edge's stored score:
the model's interface stays ``forward(x_dict, edge_index_dict)`` (what PyG's explainers call, and
what a subgraph or an explanation with edges removed passes), and the recomputed value is the one
the kNN baselines use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

EdgeType = tuple[str, str, str]
#: one vote relation: (similarity, feature columns, its edge types, initial gate)
VoteSpec = tuple[str, tuple[int, int], list[EdgeType], float]


def edge_tanimoto(x_i: Tensor, x_j: Tensor) -> Tensor:
    """Tanimoto similarity [E] of the bit rows ``x_i``, ``x_j`` [E, B] (0 where both are empty)."""
    a, b = (x_i > 0).float(), (x_j > 0).float()
    inter = (a * b).sum(-1)
    union = a.sum(-1) + b.sum(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.zeros_like(inter))


def edge_pearson(x_i: Tensor, x_j: Tensor) -> Tensor:
    """Pearson correlation [E] of the rows ``x_i``, ``x_j`` [E, D] (0 where either row is constant)."""
    a = x_i - x_i.mean(-1, keepdim=True)
    b = x_j - x_j.mean(-1, keepdim=True)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(den > 0, (a * b).sum(-1) / den.clamp(min=1e-12), torch.zeros_like(den))


SIMILARITIES = {"tanimoto": edge_tanimoto, "pearson": edge_pearson}
#: the similarity of compounds that share targets: Jaccard of their TARGETS gene sets, computed on the
#: relation's ``(Compound, TARGETS, Gene)`` edges themselves (the metapath Compound-TARGETS-Gene-TARGETS-
#: Compound), so only the targets in the graph passed in count
TARGET_JACCARD = "target_jaccard"
#: neighbours kept per compound by :func:`shared_target_pairs` (the kNN baselines' k lies in 1..20)
SHARED_TARGET_TOP_K = 20


def expand_groups(reps: Tensor) -> tuple[Tensor, Tensor]:
    """``(owner, within)``: each index ``i`` of ``reps`` repeated ``reps[i]`` times, and each copy's
    position ``0..reps[i]-1`` among them: the index arithmetic of a sparse join, where row ``i`` meets
    each of its ``reps[i]`` partners (``partners[start[i] + within]`` in a CSR layout)."""
    owner = torch.repeat_interleave(torch.arange(reps.numel(), device=reps.device), reps)
    first = torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
    return owner, torch.arange(owner.numel(), device=reps.device) - first


def top_k_in_groups(group: Tensor, score: Tensor, k: int, tiebreak: Tensor | None = None) -> Tensor:
    """Boolean mask [E]: whether each element is among the ``k`` highest ``score`` of its ``group``
    (ties broken by the smaller ``tiebreak``, else by position). Three stable sorts, least significant
    key first, then each element's rank is its distance from its group's first sorted position: a
    segmented top-k without a Python loop over groups (PyG's ``topk`` pools nodes per graph by a ratio,
    not edges per destination by a count)."""
    order = torch.arange(group.numel(), device=group.device) if tiebreak is None \
        else torch.argsort(tiebreak, stable=True)
    order = order[torch.argsort(-score[order], stable=True)]
    order = order[torch.argsort(group[order], stable=True)]
    sorted_group = group[order]
    rank = torch.arange(group.numel(), device=group.device) - torch.searchsorted(sorted_group, sorted_group)
    keep = torch.zeros(group.numel(), dtype=torch.bool, device=group.device)
    keep[order] = rank < k
    return keep


def shared_target_pairs(targets: Tensor, n_nodes: int, top_k: int = SHARED_TARGET_TOP_K
                        ) -> tuple[Tensor, Tensor]:
    """``(edge_index [2, P], jaccard [P])``: for each compound, the ``top_k`` other compounds whose
    target sets (``targets``: ``[2, E]`` compound -> gene edges) overlap its own most (Jaccard; ties
    broken by id), as messages ``neighbour -> compound``.

    The overlaps are a join of the edges on their gene (each edge paired with every edge of the same
    gene, by :func:`expand_groups` as in :mod:`moakg.gnn.link_vote`), counted per compound pair: memory
    follows the pairs that share a gene, never a dense compounds x compounds table. PyG and
    scikit-learn offer no sparse set-Jaccard join; ``torch.sparse.mm`` does it too but warns that its
    CSR path is beta.
    """
    dev = targets.device
    if targets.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=dev), torch.zeros(0, device=dev)
    n_genes = int(targets[1].max()) + 1
    code = torch.unique(targets[1] * n_nodes + targets[0])  # by gene; one source per pair counts once
    gene, comp = torch.div(code, n_nodes, rounding_mode="floor"), code % n_nodes
    per_gene = torch.bincount(gene, minlength=n_genes)
    start = torch.cumsum(per_gene, 0) - per_gene
    edge, within = expand_groups(per_gene[gene])
    partner = comp[start[gene[edge]] + within]
    pair, inter = torch.unique(comp[edge] * n_nodes + partner, return_counts=True)
    dst, src = torch.div(pair, n_nodes, rounding_mode="floor"), pair % n_nodes
    off = dst != src
    dst, src, inter = dst[off], src[off], inter[off].float()
    deg = torch.bincount(comp, minlength=n_nodes).to(inter.dtype)
    jac = inter / (deg[dst] + deg[src] - inter)
    keep = top_k_in_groups(dst, jac, top_k, tiebreak=src)
    return torch.stack([src[keep], dst[keep]]), jac[keep]


class SimilarityVote(MessagePassing):
    r"""Similarity-weighted, prior-shrunk mean of the known neighbours' labels over one edge type.

    .. math::
        w_{ij} = \exp\big(\beta\,(s(\mathbf{f}_i, \mathbf{f}_j) - 1)\big), \qquad
        \mathbf{v}_i = \frac{\kappa\,\mathbf{p} + \sum_{j \in \mathcal{N}(i)} w_{ij}\, m_j\, \mathbf{y}_j}
                            {\kappa + \sum_{j \in \mathcal{N}(i)} w_{ij}\, m_j}

    with :math:`s` the Tanimoto of the fingerprint columns or the Pearson correlation of the signature
    columns ``f`` of the endpoints (or, for ``'target_jaccard'``, the Jaccard of their target sets over
    the :func:`shared_target_pairs` of the relation's TARGETS edges), :math:`m_j \in \{0, 1\}` whether
    neighbour :math:`j`'s labels :math:`\mathbf{y}_j` are an input, :math:`\mathbf{p}` the training label
    frequencies, and learned
    :math:`\beta = \mathrm{softplus}(\cdot) > 0` (how much more a close neighbour counts) and
    :math:`\kappa = \mathrm{softplus}(\cdot) > 0` (the prior's pseudo-count: a vote of few or distant
    neighbours stays near :math:`\mathbf{p}`, as the kNN's shrinkage does). A node without known
    neighbours gets :math:`\mathbf{p}`. With ``top_k`` :math:`k > 0` (a buffer, set by
    :meth:`set_params`; 0, the default, keeps all) only each node's :math:`k` known neighbours of largest
    :math:`w_{ij}` vote: the hard cut of a kNN, which no sharpness :math:`\beta` reproduces when a node's
    neighbours are about equally similar.

    Args:
        similarity: ``'tanimoto'``, ``'pearson'`` or ``'target_jaccard'``.
        feature_cols: ``(start, stop)`` columns of the node features compared (unused by
            ``'target_jaccard'``).
        beta: initial :math:`\beta`.
        kappa: initial :math:`\kappa`.

    Shapes:
        - **input:** features ``x`` [N, F], labels ``y`` [N, C] (rows of unknown nodes are ignored),
          ``known`` [N] float 0/1, ``prior`` [C], ``edge_indices``: the relation's ``[2, E]`` edge
          indices (both directions; messages flow ``edge_index[0] -> [1]``), summed before the division
          (``'target_jaccard'``: the Compound -> Gene TARGETS edges the pairs are derived from).
        - **output:** votes ``[N, C]`` in (0, 1).
    """

    def __init__(self, similarity: str, feature_cols: tuple[int, int], beta: float = 2.0,
                 kappa: float = 0.5) -> None:
        super().__init__(aggr="sum")
        if similarity not in (*SIMILARITIES, TARGET_JACCARD):
            known = " | ".join((*SIMILARITIES, TARGET_JACCARD))
            raise ValueError(f"unknown similarity {similarity!r} ({known})")
        self.similarity, self.feature_cols = similarity, feature_cols
        self.beta0, self.kappa0 = beta, kappa
        self.raw_beta = nn.Parameter(torch.empty(()))
        self.raw_kappa = nn.Parameter(torch.empty(()))
        self.register_buffer("top_k", torch.zeros((), dtype=torch.long))
        #: explanation mask: a factor on each edge's weight (``[E]``, the edges of :meth:`weighted_edges`),
        #: set only while :func:`moakg.gnn.explain.masking.attached_masks` explains the model
        self.edge_mask: Tensor | None = None
        #: whether :meth:`fixed_inputs` is open, and the edges and similarities it keeps meanwhile
        self._fixed = False
        self._kept: tuple[Tensor, Tensor] | None = None
        self.reset_parameters()

    @contextmanager
    def fixed_inputs(self) -> Iterator[None]:
        """Within this context the features and edges passed in are taken to be fixed (a validation grid
        over beta, kappa and top_k, without gradients): the edges' similarities are computed once."""
        self._fixed, self._kept = True, None
        try:
            yield
        finally:
            self._fixed, self._kept = False, None

    @staticmethod
    def _inv_softplus(v: float) -> float:
        return v + math.log(-math.expm1(-v))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.set_params(self.beta0, self.kappa0)

    def set_params(self, beta: float, kappa: float, top_k: int = 0) -> None:
        r"""Set :math:`\beta` and :math:`\kappa` (both > 0) and ``top_k`` (0: every neighbour)."""
        with torch.no_grad():
            self.raw_beta.fill_(self._inv_softplus(beta))
            self.raw_kappa.fill_(self._inv_softplus(kappa))
            self.top_k.fill_(int(top_k))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # checkpoints from before ``top_k`` voted with every neighbour
        state_dict.setdefault(prefix + "top_k", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor, y: Tensor, known: Tensor, prior: Tensor,
                edge_indices: Sequence[Tensor]) -> Tensor:
        payload = torch.cat([y * known.unsqueeze(-1), known.unsqueeze(-1)], dim=-1)
        edge_index, w = self.weighted_edges(x, edge_indices, known)
        out = self.propagate(edge_index, payload=payload, w=w, size=(x.size(0), x.size(0)))
        kappa = F.softplus(self.raw_kappa)
        return (out[:, :-1] + kappa * prior) / (kappa + out[:, -1:])

    def weighted_edges(self, x: Tensor, edge_indices: Sequence[Tensor],
                       known: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""``(edge_index [2, E], w [E])``: the relation's messages ``edge_index[0] -> [1]`` (every edge
        type of it; an unordered pair is stored once, so both directions are listed) and :math:`w_{ij}`,
        0 beyond each node's ``top_k`` neighbours with ``known`` [N] (float 0/1; None: all known)."""
        if self._kept is not None:
            edge_index, s = self._kept
        elif self.similarity == TARGET_JACCARD:
            edge_index, s = shared_target_pairs(torch.cat(list(edge_indices), 1), x.size(0))
            s = s.to(x.dtype)
        else:
            edge_index = torch.cat(list(edge_indices), 1)
            lo, hi = self.feature_cols
            s = SIMILARITIES[self.similarity](x[edge_index[1], lo:hi], x[edge_index[0], lo:hi])
        if self._fixed:
            self._kept = (edge_index, s)
        w = torch.exp(F.softplus(self.raw_beta) * (s - 1.0))
        k = int(self.top_k)
        if k > 0:
            ranked = w if known is None else w * known[edge_index[0]]
            w = w * top_k_in_groups(edge_index[1], ranked.detach(), k).to(w.dtype)
        return edge_index, (w if self.edge_mask is None else w * self.edge_mask)

    def message(self, payload_j: Tensor, w: Tensor) -> Tensor:
        return w.unsqueeze(-1) * payload_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.similarity}, cols={self.feature_cols})"


@contextmanager
def fixed_similarities(votes: Iterable[SimilarityVote]) -> Iterator[None]:
    """Every vote of ``votes`` inside its :meth:`SimilarityVote.fixed_inputs` at once (both vote layers)."""
    with ExitStack() as stack:
        for vote in votes:
            stack.enter_context(vote.fixed_inputs())
        yield


def safe_logit(p: Tensor, eps: float = 1e-4) -> Tensor:
    """log(p / (1 - p)) with p clamped to [eps, 1 - eps]."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class LabelVotes(nn.Module):
    r"""The vote of every similarity relation into a compound, as log-odds ratios against the prior,
    added to its logits with learned per-class gates:

    .. math::
        \Delta\mathbf{z}_i = \sum_{r} \mathbf{a}_r \odot
            \big(\mathrm{logit}\,\mathbf{v}^{(r)}_i - \mathrm{logit}\,\mathbf{p}\big)

    where :math:`\mathbf{v}^{(r)}` is the :class:`SimilarityVote` over relation :math:`r`'s edges in both
    directions (an unordered pair is stored once, so a compound's neighbours sit in either edge type).
    With the gates at 1, one relation and a classifier that outputs :math:`\mathrm{logit}\,\mathbf{p}`
    otherwise, the probabilities are the vote itself: a similarity-weighted kNN with a prior
    pseudo-count. Several relations add their evidence as independent log-odds (naive Bayes); the gates
    learn how much each is worth per class.

    Args:
        relations: ``{relation: (similarity, feature_cols, edge types, initial gate)}`` (Compound to
            Compound).
        n_classes: label columns ``C``.

    Shapes:
        - **input:** ``x`` [N, F] compound features, ``y`` [N, C], ``known`` [N],
          ``edge_index_dict`` (types of no relation ignored; missing types add nothing).
        - **output:** ``[N, C]`` logit offsets.
    """

    prior: Tensor

    def __init__(self, relations: dict[str, VoteSpec], n_classes: int) -> None:
        super().__init__()
        self.relations = {rel: list(spec[2]) for rel, spec in relations.items()}
        self.gate0 = torch.tensor([float(spec[3]) for spec in relations.values()])
        self.votes = nn.ModuleDict({rel: SimilarityVote(spec[0], spec[1]) for rel, spec in relations.items()})
        self.gates = nn.Parameter(torch.empty(len(relations), n_classes))
        # the training label frequencies (a buffer: saved with the checkpoint, set by the trainer)
        self.register_buffer("prior", torch.full((n_classes,), 0.5))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for vote in self.votes.values():
            vote.reset_parameters()
        with torch.no_grad():
            self.gates.copy_(self.gate0.unsqueeze(1).expand_as(self.gates))

    def fixed_inputs(self) -> AbstractContextManager[None]:
        """Within this context the inputs are taken to be fixed (the validation grid of
        :func:`~moakg.gnn.vote_tuning.tune_votes`): each relation's edge similarities are computed once."""
        return fixed_similarities(self.votes.values())

    def set_prior(self, y_train: Tensor) -> None:
        r"""Set :math:`\mathbf{p}` to the label frequencies of ``y_train`` [n, C]."""
        with torch.no_grad():
            self.prior.copy_(y_train.float().mean(0).clamp(1e-4, 1 - 1e-4))

    def forward(self, x: Tensor, y: Tensor, known: Tensor,
                edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        out = torch.zeros_like(y)
        base = safe_logit(self.prior)
        for r, (rel, vote) in enumerate(self.votes.items()):
            eis = [ei for et in self.relations[rel]
                   if (ei := edge_index_dict.get(et)) is not None and ei.numel()]
            if eis:
                out = out + self.gates[r] * (safe_logit(vote(x, y, known, self.prior, eis)) - base)
        return out
