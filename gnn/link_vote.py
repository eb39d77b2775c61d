r"""Neighbour target votes for link prediction: the Tanimoto kNN of targets as a term of the link model.

For MoA, :class:`~moakg.gnn.similarity_vote.LabelVotes` made the tuned nearest-neighbour vote a special
case of the GNN. Targets are links, not node labels, so the vote here is read off the message graph's
``Compound-TARGETS-Gene`` edges themselves: a compound's similar compounds (``SIMILAR_STRUCTURE`` /
``SIMILAR_SIGNATURE`` edges) vote for the genes they target. Whichever TARGETS edges the graph passed in
holds are the votes' input (training compounds' targets; in each training epoch the supervised
compounds' targets are hidden, as held-out compounds' are), so no held-out target can vote.

One more relation, :data:`~moakg.gnn.train.MOA_MEDIATED`, votes through the MoA layer of the graph: the
metapath ``Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA-HAS_MOA-Compound-TARGETS-Gene``. A similar
compound votes with the targets that compounds sharing its MoAs have (``P(g | m)``, the share of the
compounds with MoA ``m`` and visible targets that target ``g``), not only with its own: a held-out
compound whose nearest neighbours are annotated "HDAC inhibitor" but target HDAC1 alone still gets votes
for HDAC2 and HDAC3. The MoAs are an input column block of the compound features (the label-trick layout,
:mod:`moakg.gnn.label_trick`), held only by compounds outside validation and test
(:attr:`~moakg.gnn.tasks.TargetTask.moa`), so no held-out MoA or target reaches a vote.

The votes are computed with plain index operations rather than a ``MessagePassing`` layer because a
vote is a two-hop quantity per (compound, gene) pair (similar compound, then its targets), and only the
pairs some neighbour targets need storing: a dense [compounds, genes] table of the full graph would not
fit in memory, while the sparse join has one entry per (similarity edge, neighbour's target).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moakg.gnn.similarity_vote import SimilarityVote, VoteSpec, expand_groups, fixed_similarities, safe_logit

EdgeType = tuple[str, str, str]


def join_rows(src: Tensor, deg: Tensor) -> tuple[Tensor, Tensor]:
    """``(edge, at)``: each similarity edge (neighbour ``src``) met with each of its neighbour's rows in a
    CSR layout grouped by compound, whose row counts are ``deg`` [N]: ``edge`` indexes the edges, ``at``
    the rows (its targets, or its MoAs)."""
    edge, within = expand_groups(deg[src])
    return edge, (torch.cumsum(deg, 0) - deg)[src[edge]] + within


@dataclass
class LinkVoteTable:
    """One relation's vote on one graph, in that graph's (compound, gene) index space.

    ``keys`` are the sorted codes ``compound * n_genes + gene`` of the pairs some neighbour votes for,
    ``num`` [K] their summed neighbour weights, ``den`` [N_compounds] each compound's summed weights of
    neighbours with known targets, ``kappa`` the prior's pseudo-count and ``n_genes`` the code's base.
    """

    keys: Tensor
    num: Tensor
    den: Tensor
    kappa: Tensor
    n_genes: int

    def numerators(self, comp: Tensor, gene: Tensor) -> Tensor:
        """Summed weights [E] of the votes for pairs (``comp[i]``, ``gene[i]``) (0 where none)."""
        code = comp * self.n_genes + gene
        if self.keys.numel() == 0:
            return torch.zeros(code.shape, dtype=self.den.dtype, device=code.device)
        pos = torch.searchsorted(self.keys, code).clamp(max=self.keys.numel() - 1)
        return torch.where(self.keys[pos] == code, self.num[pos], torch.zeros_like(self.num[pos]))

    def numerators_all(self, comp: Tensor) -> Tensor:
        """Summed weights [len(comp), n_genes] of the votes of compounds ``comp`` for every gene."""
        uniq, inverse = torch.unique(comp, return_inverse=True)
        row_of = torch.full((self.den.numel(),), -1, dtype=torch.long, device=comp.device)
        row_of[uniq] = torch.arange(uniq.numel(), device=comp.device)
        rows = row_of[torch.div(self.keys, self.n_genes, rounding_mode="floor")]
        hit = rows >= 0
        dense = torch.zeros(uniq.numel() * self.n_genes, dtype=self.den.dtype, device=comp.device)
        dense = dense.index_add(0, rows[hit] * self.n_genes + self.keys[hit] % self.n_genes, self.num[hit])
        return dense.view(uniq.numel(), self.n_genes)[inverse]


@dataclass
class MoAVoteTable:
    r"""The MoA-mediated relation's vote on one graph: the same interface as :class:`LinkVoteTable`.

    ``moa_weight`` [N_compounds, M] is each compound's summed neighbour weight per MoA (a neighbour's
    weight split evenly over its MoAs), ``gene_given_moa`` [n_genes, M] is :math:`P(g \mid m)`; a
    compound's numerator for gene ``g`` is their product summed over the MoAs.
    """

    moa_weight: Tensor
    gene_given_moa: Tensor
    den: Tensor
    kappa: Tensor
    n_genes: int

    def numerators(self, comp: Tensor, gene: Tensor) -> Tensor:
        return (self.moa_weight[comp] * self.gene_given_moa[gene]).sum(-1)

    def numerators_all(self, comp: Tensor) -> Tensor:
        return self.moa_weight[comp] @ self.gene_given_moa.T


class LinkVotes(nn.Module):
    r"""Similarity-weighted, prior-shrunk votes of a compound's neighbours' targets, added to the link
    logits as log-odds ratios with one learned gate per similarity relation:

    .. math::
        v^{(r)}_{cg} = \frac{\kappa_r\, p_g + \sum_{c' \in \mathcal{N}_r(c)} w_{cc'}\, A_{c'g}}
                            {\kappa_r + \sum_{c' \in \mathcal{N}_r(c)} w_{cc'}\, m_{c'}}, \qquad
        \Delta s_{cg} = \sum_r a_r \big(\mathrm{logit}\, v^{(r)}_{cg} - \mathrm{logit}\, p_g\big)

    with :math:`A` the TARGETS edges of the graph passed in, :math:`m_{c'}` whether :math:`c'` has any,
    :math:`p_g` the share of training compounds targeting gene :math:`g`, and :math:`w` and
    :math:`\kappa_r` as in :class:`~moakg.gnn.similarity_vote.SimilarityVote` (whose parameters each
    relation reuses). With :math:`a_r = 1`, one relation, and a link model whose own logit is
    :math:`\mathrm{logit}\, p_g`, the scores rank as a similarity-weighted kNN of targets.

    Args:
        relations: ``{relation: (similarity, feature_cols, edge types, initial gate)}`` (Compound to
            Compound), as for :class:`~moakg.gnn.similarity_vote.LabelVotes`.
        target_edge_type: the ``(Compound, TARGETS, Gene)`` edge type whose edges vote.
        n_genes: genes of the full graph (the prior's length).
        moa_relations: relations of ``relations`` that vote through the neighbours' MoAs
            (:class:`MoAVoteTable`) instead of their own targets.
        moa_cols: ``(lo, hi)`` the MoA multi-hot columns of the compound features (needed with
            ``moa_relations``).

    Shapes:
        - **input** (:meth:`tables`): ``x`` [N_c, F] compound features, ``edge_index_dict``; the gene
          count ``n_genes_local`` of that graph.
        - **output** (:meth:`offset`): logit offsets ``[E]`` of pairs; (:meth:`offset_all`)
          ``[B, n_genes]``.
    """

    #: :math:`p_g`, set by :meth:`~moakg.gnn.models.TargetLinkPredictor.set_prior`
    prior: Tensor

    def __init__(self, relations: dict[str, VoteSpec], target_edge_type: EdgeType, n_genes: int,
                 moa_relations: Sequence[str] = (), moa_cols: tuple[int, int] | None = None) -> None:
        super().__init__()
        if moa_relations and moa_cols is None:
            raise ValueError("MoA-mediated relations need the MoA columns of the compound features")
        self.relations = {rel: list(spec[2]) for rel, spec in relations.items()}
        self.moa_relations, self.moa_cols = set(moa_relations), moa_cols
        self.target_edge_type = target_edge_type
        self.gate0 = torch.tensor([float(spec[3]) for spec in relations.values()])
        self.votes = nn.ModuleDict({rel: SimilarityVote(spec[0], spec[1]) for rel, spec in relations.items()})
        self.gates = nn.Parameter(torch.empty(len(relations)))
        self.register_buffer("prior", torch.full((max(n_genes, 1),), 1e-3))
        #: explanation mask on the TARGETS edges (``[E]``, a factor on each neighbour target's vote), set
        #: only while :func:`moakg.gnn.explain.masking.attached_masks` explains the model
        self.target_mask: Tensor | None = None
        #: tables by (relation, beta, kappa, top_k) while :meth:`fixed_inputs` is open
        self._cache: dict[tuple[str, float, float, int], LinkVoteTable | MoAVoteTable | None] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for vote in self.votes.values():
            vote.reset_parameters()
        with torch.no_grad():
            self.gates.copy_(self.gate0)

    def tables(self, x: Tensor, edge_index_dict: dict[EdgeType, Tensor],
               n_genes: int) -> list[LinkVoteTable | MoAVoteTable | None]:
        """Each relation's :class:`LinkVoteTable` on the graph of ``edge_index_dict`` (None where it has no
        similarity edges); ``x`` are its compound features, ``n_genes`` its gene count."""
        n_c = x.size(0)
        targets = edge_index_dict.get(self.target_edge_type)
        if targets is None:
            targets = torch.zeros(2, 0, dtype=torch.long, device=x.device)
        # the neighbours' targets as CSR rows: compound -> its genes
        order = torch.argsort(targets[0] * n_genes + targets[1])
        t_comp, t_gene = targets[0][order], targets[1][order]
        t_weight = None if self.target_mask is None else self.target_mask[order]
        deg = torch.bincount(t_comp, minlength=n_c)
        shared = (x, edge_index_dict, targets, t_gene, t_weight, deg, n_genes)
        out: list[LinkVoteTable | MoAVoteTable | None] = []
        for rel, vote in self.votes.items():
            if self._cache is None:
                out.append(self._table(rel, vote, *shared))
                continue
            key = (rel, vote.raw_beta.item(), vote.raw_kappa.item(), int(vote.top_k))
            if key not in self._cache:
                self._cache[key] = self._table(rel, vote, *shared)
            out.append(self._cache[key])
        return out

    @contextmanager
    def fixed_inputs(self) -> Iterator[None]:
        """Within this context the inputs of :meth:`tables` are taken to be fixed (the validation grid of
        :func:`~moakg.gnn.vote_tuning.tune_votes`, without gradients): each relation's table is computed
        once per (beta, kappa, top_k) and reused while other relations' parameters and the gates move, and
        each relation's edge similarities once."""
        self._cache = {}
        try:
            with fixed_similarities(self.votes.values()):
                yield
        finally:
            self._cache = None

    def _table(self, rel: str, vote: SimilarityVote, x: Tensor, edge_index_dict: dict[EdgeType, Tensor],
               targets: Tensor, t_gene: Tensor, t_weight: Tensor | None, deg: Tensor,
               n_genes: int) -> LinkVoteTable | MoAVoteTable | None:
        """Relation ``rel``'s table (None where the graph has none of its similarity edges)."""
        n_c = x.size(0)
        known = (deg > 0).to(x.dtype)
        eis = [ei for et in self.relations[rel]
               if (ei := edge_index_dict.get(et)) is not None and ei.numel()]
        if not eis:
            return None
        if rel in self.moa_relations:
            return self._moa_table(vote, x, eis, targets, deg > 0, n_genes)
        # messages src (neighbour) -> dst (voted-for compound)
        (src, dst), w = vote.weighted_edges(x, eis, known)
        den = torch.zeros(n_c, dtype=x.dtype, device=x.device).index_add(0, dst, w * known[src])
        # join each similarity edge with its neighbour's targets
        edge, at = join_rows(src, deg)
        gene = t_gene[at]
        keys, inverse = torch.unique(dst[edge] * n_genes + gene, return_inverse=True)
        weight = w[edge] if t_weight is None else w[edge] * t_weight[at]
        num = torch.zeros(keys.numel(), dtype=x.dtype, device=x.device).index_add(0, inverse, weight)
        return LinkVoteTable(keys, num, den, F.softplus(vote.raw_kappa), n_genes)

    def _moa_table(self, vote: SimilarityVote, x: Tensor, eis: list[Tensor], targets: Tensor,
                   has_targets: Tensor, n_genes: int) -> MoAVoteTable:
        r""":class:`MoAVoteTable` of ``vote``'s similarity edges: :math:`P(g \mid m)` from the compounds
        with both an MoA input and visible TARGETS edges (``targets``), and each compound's neighbour
        weight per MoA from its neighbours with an MoA that some such compound has."""
        lo, hi = self.moa_cols  # type: ignore[misc]
        moa = (x[:, lo:hi] > 0).to(x.dtype)
        with torch.no_grad():  # P(g | m) depends on the graph's edges and inputs only
            per_moa = moa[has_targets].sum(0)
            gene_given_moa = torch.zeros(n_genes, moa.size(1), dtype=x.dtype, device=x.device)
            gene_given_moa.index_add_(0, targets[1], moa[targets[0]])
            gene_given_moa = gene_given_moa / per_moa.clamp(min=1)
            usable = moa * (per_moa > 0).to(x.dtype)
            share = usable / usable.sum(1, keepdim=True).clamp(min=1)  # a neighbour's weight over its MoAs
        known = (usable.sum(1) > 0).to(x.dtype)
        (src, dst), w = vote.weighted_edges(x, eis, known)
        den = torch.zeros(x.size(0), dtype=x.dtype, device=x.device).index_add(0, dst, w * known[src])
        # join each similarity edge with its neighbour's MoAs (sparse: E x M would not fit the full graph)
        m_comp, m_moa = share.nonzero(as_tuple=True)  # row-major: grouped by compound
        edge, at = join_rows(src, torch.bincount(m_comp, minlength=x.size(0)))
        n_m = moa.size(1)
        flat = torch.zeros(x.size(0) * n_m, dtype=x.dtype, device=x.device).index_add(
            0, dst[edge] * n_m + m_moa[at], w[edge] * share[m_comp[at], m_moa[at]])
        return MoAVoteTable(flat.view(x.size(0), n_m), gene_given_moa, den, F.softplus(vote.raw_kappa),
                            n_genes)

    def _log_odds(self, table: LinkVoteTable | MoAVoteTable, num: Tensor, den: Tensor, p: Tensor) -> Tensor:
        v = (num + table.kappa * p) / (table.kappa + den)
        return safe_logit(v) - safe_logit(p)

    def offset(self, tables: list[LinkVoteTable | MoAVoteTable | None], comp: Tensor, gene: Tensor,
               gene_global: Tensor) -> Tensor:
        """Logit offsets [E] of pairs (``comp[i]``, ``gene[i]``) in the tables' index space;
        ``gene_global`` indexes the prior."""
        out = torch.zeros(comp.shape, dtype=self.prior.dtype, device=comp.device)
        p = self.prior[gene_global]
        for r, table in enumerate(tables):
            if table is not None:
                out = out + self.gates[r] * self._log_odds(table, table.numerators(comp, gene),
                                                           table.den[comp], p)
        return out

    def offset_all(self, tables: list[LinkVoteTable | MoAVoteTable | None], comp: Tensor) -> Tensor:
        """Logit offsets [len(comp), n_genes] of compounds ``comp`` against every gene (tables of the
        full graph, whose gene ids are the prior's)."""
        out = torch.zeros(comp.numel(), self.prior.numel(), dtype=self.prior.dtype, device=comp.device)
        for r, table in enumerate(tables):
            if table is not None:
                n = table.n_genes
                out[:, :n] = out[:, :n] + self.gates[r] * self._log_odds(
                    table, table.numerators_all(comp), table.den[comp].unsqueeze(-1), self.prior[None, :n])
        return out
