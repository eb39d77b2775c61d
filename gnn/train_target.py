"""Target training: Compound -> Gene link prediction, validated on filtered MRR.

Each epoch hides a share (``supervision_frac``) of the training compounds' targets from message passing and
predicts exactly those (a softmax over every gene, or BCE against ``neg_ratio`` random genes per
positive), so the model learns to predict edges it cannot see, as at test time.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import eval_generator
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN
from moakg.gnn.metrics import target_metrics
from moakg.gnn.models import TargetLinkPredictor, model_inputs
from moakg.gnn.sampling import batches, sample_subgraph
from moakg.gnn.tasks import COMPOUND, GENE, drop_incident, target_relations
from moakg.gnn.vote_tuning import TOP_KS, VotePoint, tune_votes

#: genes (or compounds) embedded per sampled batch at evaluation: larger than training batches, since
#: nothing is kept for a backward pass
EVAL_BATCH = 1024


def without_pairs(graph: HeteroData, pairs: Tensor, n_genes: int) -> HeteroData:
    """Shallow copy of ``graph`` (own stores, shared tensors) without the TARGETS edges of ``pairs``
    [2, E] (compound, gene), in both directions (a MIMICS edge of the same pair is phenotype and stays),
    and without the label input (the MoAs of the MoA-mediated vote) of their compounds: those enter the
    epoch as a held-out compound does, with neither."""
    out = copy.copy(graph)
    drop_incident(out, COMPOUND, GENE, pairs=pairs, n_b=n_genes, relations=target_relations())
    store = out[COMPOUND]
    if LABEL_INPUT in store:
        keep = torch.ones(store[LABEL_KNOWN].numel(), dtype=store[LABEL_KNOWN].dtype)
        keep[pairs[0]] = 0.0
        store[LABEL_INPUT] = store[LABEL_INPUT] * keep.unsqueeze(1)
        store[LABEL_KNOWN] = store[LABEL_KNOWN] * keep
    return out


class TargetTrainer:
    """Trains a :class:`~moakg.gnn.models.TargetLinkPredictor` on a
    :class:`~moakg.gnn.tasks.TargetTask` (see :class:`~moakg.gnn.fit.Trainer`)."""

    task, metric = "target", "mrr"

    def __init__(self, task: object, graph: HeteroData, model: TargetLinkPredictor, cfg: TrainConfig,
                 seed: int, mini: bool, device: torch.device, gen: torch.Generator) -> None:
        self.graph, self.cfg, self.seed, self.mini = graph, cfg, seed, mini
        self.device, self.gen = device, gen
        self.split, self.pos = task.split, task.pos  # type: ignore[attr-defined]
        self.setting = getattr(task, "setting", "phenotype")
        self.n_genes = int(task.n_genes)  # type: ignore[attr-defined]
        # the prior's denominator: training compounds with a target (the kNN baselines' known compounds)
        model.set_prior(self.pos["train"], int(self.pos["train"][0].unique().numel()))
        self.model = model.to(device)
        self.inputs = None if mini else model_inputs(graph, device)
        self.vote_choice = self._tune_votes() if cfg.tune_votes and model.votes is not None else {}
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.bce = nn.BCEWithLogitsLoss()

    def _tune_votes(self, top_ks: tuple[int, ...] = TOP_KS) -> dict[str, VotePoint]:
        """Choose the votes' starting point, with how many neighbours vote (``top_ks``), on validation
        MRR of the votes alone (the gene bias plus the vote offsets, the whole model while ``rel`` is
        zero)."""
        model, device = self.model, self.device
        inputs = self.inputs or model_inputs(self.graph, device)
        val = torch.as_tensor(self.split.val)
        if val.numel() == 0 or self.pos["val"].numel() == 0:
            return {}
        bias = model.gene_bias.weight.detach().squeeze(-1)

        def val_mrr() -> float:
            with torch.no_grad():
                tables = model.link_votes(*inputs)
                logits = bias[None, :] + model.votes.offset_all(tables, val.to(device))
            return self.evaluate("val", logits.cpu(), ranking_only=True)["mrr"]

        return tune_votes(model.votes, val_mrr, top_ks=top_ks)

    def train_epoch(self) -> list[float]:
        cfg, gen, device, model = self.cfg, self.gen, self.device, self.model
        sup = self._supervised_pairs()
        msg_graph = without_pairs(self.graph, sup, self.n_genes)
        # the whole message graph's inputs: the full-batch forward, and the votes (cheap, no encoder) in
        # mini-batches too, so they are exact there; a mini-batch model without votes never needs them
        full_inputs = model_inputs(msg_graph, device) if not self.mini or model.votes is not None else None
        if not self.mini and cfg.target_loss == "softmax":
            return [self._step(self._full_softmax_loss(full_inputs, sup))]
        losses = []
        for b in batches(torch.arange(sup.size(1)), cfg.batch_size if self.mini else sup.size(1), gen):
            p = sup[:, b]
            comp = p[0].repeat(cfg.neg_ratio + 1)
            neg = torch.randint(0, self.n_genes, (p.size(1) * cfg.neg_ratio,), generator=gen)
            gene = torch.cat([p[1], neg])
            votes = None if full_inputs is None else model.link_votes(*full_inputs)
            comp_d, gene_d = comp.to(device), gene.to(device)
            if self.mini:
                uc, ci = torch.unique(comp, return_inverse=True)
                ug, gi = torch.unique(gene, return_inverse=True)
                sub, local = sample_subgraph(msg_graph, {COMPOUND: uc, GENE: ug}, cfg.num_neighbors, gen)
                h = model(*model_inputs(sub, device))
                logits = model.score(h, local[COMPOUND][ci].to(device), local[GENE][gi].to(device), gene_d)
                if votes is not None and model.votes is not None:
                    logits = logits + model.votes.offset(votes, comp_d, gene_d, gene_d)
            else:
                logits = model.score(model(*full_inputs), comp_d, gene_d, votes=votes)
            if cfg.target_loss == "softmax":
                # sampled softmax: each positive (column 0) against its own neg_ratio negatives
                loss = F.cross_entropy(logits.view(cfg.neg_ratio + 1, -1).T,
                                       torch.zeros(p.size(1), dtype=torch.long, device=device))
            else:
                label = torch.cat([torch.ones(p.size(1)), torch.zeros(p.size(1) * cfg.neg_ratio)])
                loss = self.bce(logits, label.to(device))
            losses.append(self._step(loss))
        return losses

    def _full_softmax_loss(self, inputs: tuple, sup: Tensor) -> Tensor:
        r"""Mean over the supervised pairs :math:`(c, g)` of :math:`-\log \mathrm{softmax}_{g'}(s_{cg'})_g`,
        the softmax over every gene: the loss ranks each hidden target above all other genes, as the
        filtered MRR judges it (the compound's other hidden targets are left out of its denominator)."""
        comps, row = torch.unique(sup[0], return_inverse=True)
        device = self.device
        logits = self.model.logits_all(*inputs, comps.to(device))
        # a compound's other true targets are not negatives of this pair: mask them out of the softmax
        other = torch.zeros_like(logits, dtype=torch.bool)
        other[row.to(device), sup[1].to(device)] = True
        pair_logit = logits[row.to(device), sup[1].to(device)]
        masked = logits.masked_fill(other, float("-inf"))
        log_norm = torch.logaddexp(torch.logsumexp(masked, dim=1)[row.to(device)], pair_logit)
        return (log_norm - pair_logit).mean()

    def _step(self, loss: Tensor) -> float:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def _supervised_pairs(self) -> Tensor:
        """This epoch's supervised pairs [2, S], hidden from message passing and predicted.

        Phenotype setting: a ``supervision_frac`` share of the training compounds with *all* their target
        pairs, so that these compounds enter the epoch as every held-out compound does, without a single
        TARGETS edge (hiding random pairs left most compounds their other targets, and the model learned
        to read a compound's targets off its remaining TARGETS edges, which held-out compounds never
        have). Known-targets setting: a ``supervision_frac`` share of the pairs, as held-out compounds
        keep some of their targets there.
        """
        pos_train, frac, gen = self.pos["train"], self.cfg.supervision_frac, self.gen
        if self.setting == "phenotype":
            comps = pos_train[0].unique()
            n = max(1, int(round(frac * comps.numel())))
            chosen = comps[torch.randperm(comps.numel(), generator=gen)[:n]]
            return pos_train[:, torch.isin(pos_train[0], chosen)]
        n_sup = max(1, int(round(frac * pos_train.size(1))))
        return pos_train[:, torch.randperm(pos_train.size(1), generator=gen)[:n_sup]]

    def predict(self, idx: Tensor) -> Tensor:
        """Sigmoid scores [len(idx), n_genes] of compounds ``idx`` against every gene (eval, no grad)."""
        model, device = self.model, self.device
        model.eval()
        with torch.no_grad():
            if not self.mini:
                return torch.sigmoid(model.logits_all(*self.inputs, idx.to(device))).cpu()
            # Mini-batch: embed genes and compounds in sampled batches, then score all pairs; the votes
            # come from the whole graph.
            gen = eval_generator(self.seed)
            tables: dict[str, Tensor] = {}
            for t, ids in ((GENE, torch.arange(self.n_genes)), (COMPOUND, idx)):
                parts = []
                for batch in batches(ids, max(self.cfg.batch_size, EVAL_BATCH), None):
                    sub, local = sample_subgraph(self.graph, {t: batch}, self.cfg.num_neighbors, gen)
                    parts.append(model(*model_inputs(sub, device))[t][local[t].to(device)])
                tables[t] = torch.cat(parts)
            logits = model.score_all(tables, torch.arange(idx.numel(), device=device))
            if model.votes is not None:
                votes = model.link_votes(*model_inputs(self.graph, device))
                logits = logits + model.votes.offset_all(votes, idx.to(device))
            return torch.sigmoid(logits).cpu()

    def evaluate(self, part: str, scores: Tensor, ranking_only: bool = False) -> dict[str, float]:
        """Filtered ranking metrics against the part's true pairs; training pairs are left out
        (``ranking_only``: MRR and Hits@k only)."""
        return target_metrics(scores, self.pos[part], compounds=getattr(self.split, part),
                              known=self.pos["train"], ranking_only=ranking_only)
