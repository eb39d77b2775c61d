"""MoA training: multi-label node classification of Compounds (or of Signatures for the unseen-cell-line
task), full batch or on sampled mini-batches, validated on micro AUPRC (the headline metric, which the
kNN baselines are tuned on and the MLP baselines select their epoch by)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import eval_generator
from moakg.gnn.label_trick import LABEL_INPUT, attach_label_input, split_known
from moakg.gnn.losses import make_loss, pos_weight_from_labels, set_loss_epoch
from moakg.gnn.metrics import average_precision, moa_metrics
from moakg.gnn.models import MoAClassifier, model_inputs
from moakg.gnn.sampling import batches, sample_subgraph
from moakg.gnn.tasks import COMPOUND, GENE, drop_incident, target_relations
from moakg.gnn.vote_tuning import VotePoint, tune_votes


def make_moa_loss(cfg: TrainConfig, y_train: Tensor) -> Callable[..., Tensor]:
    """``loss(logits [B, C], y [B, C], sample_weight [B] | None) -> scalar`` for ``cfg.loss``; the
    ``weighted`` loss takes its positive-class weights from the training labels ``y_train``, the
    ``small_loss`` loss is stateful (``set_epoch``, one per run)."""
    pos_weight = pos_weight_from_labels(y_train) if cfg.loss == "weighted" else None
    return make_loss(cfg.loss, pos_weight, q=cfg.gce_q, forget_rate=cfg.forget_rate,
                     forget_ramp=cfg.forget_ramp)


def init_prior_bias(layer: nn.Linear, y_train: Tensor, eps: float = 1e-3) -> None:
    """Start the output layer at the training class frequencies: bias = logit(freq) [C].

    With 100+ rare classes and a zero bias every class starts at p = 0.5 and the first many steps only
    push all outputs down; starting at the frequency prior means the model begins where the
    frequency baseline ends and spends its steps on what distinguishes compounds.
    """
    freq = y_train.float().mean(0).clamp(eps, 1 - eps)
    with torch.no_grad():
        layer.bias.copy_(torch.log(freq / (1 - freq)))


class MoATrainer:
    """Trains a :class:`~moakg.gnn.models.MoAClassifier` on ``task`` (see :class:`~moakg.gnn.fit.Trainer`).

    ``y`` overrides ``task.y`` for training and validation (label-noise experiments): the loss, the label
    input and the validation metric (early stopping, ``val_metrics``) read ``y``'s training and validation
    rows, so a ``y`` with flipped validation rows (``noisy_validation``) is validated on those; the test
    metrics always read the clean ``task.y``. ``sample_weight`` [n_nodes] weights each labelled node's
    loss when ``cfg.quality_weights``. The loss is told the epoch before each one (``set_epoch``).
    """

    task, metric = "moa", "micro_auprc"

    def __init__(self, task: object, graph: HeteroData, model: MoAClassifier, cfg: TrainConfig, seed: int,
                 mini: bool, device: torch.device, gen: torch.Generator, y: Tensor | None = None,
                 sample_weight: Tensor | None = None) -> None:
        self.graph, self.cfg, self.seed, self.mini = graph, cfg, seed, mini
        self.device, self.gen = device, gen
        self.split = task.split  # type: ignore[attr-defined]
        self.setting = getattr(task, "setting", "phenotype")
        self.y_clean = task.y.float()  # type: ignore[attr-defined]
        y_train = (y if y is not None else task.y).float()  # type: ignore[attr-defined]
        # the given (possibly noisy) labels: the loss, the label input (training rows only) and the validation
        # metric read them; the test metric reads y_clean
        self.y_given = y_train
        init_prior_bias(model.head[-1], y_train[self.split.train])
        if getattr(model, "votes", None) is not None:
            model.votes.set_prior(y_train[self.split.train])
        self.model = model.to(device)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loss_fn = make_moa_loss(cfg, y_train[self.split.train])
        self.label_trick = LABEL_INPUT in graph[model.node_type]
        if self.label_trick:
            attach_label_input(graph, model.node_type, y_train, self.split.train)
        self.inputs = None if mini else model_inputs(graph, device)
        self.y_dev = y_train.to(device)
        if getattr(model, "features", None) is not None:
            self.pretrain_features()
        tune = cfg.tune_votes and self.label_trick and getattr(model, "votes", None) is not None
        self.vote_choice = self._tune_votes() if tune else {}
        use_w = sample_weight is not None and cfg.quality_weights
        self.w_dev = sample_weight.float().to(device) if use_w else None  # type: ignore[union-attr]
        self.epochs_done = 0

    def pretrain_features(self) -> None:
        """Fit the own-feature branch (:class:`~moakg.gnn.models.FeatureMLP`) with the head's bias, alone,
        by the MLP baselines' recipe (:func:`~moakg.gnn.baselines.train_mlp`: every training compound,
        full batch, ``cfg.baseline_epochs`` epochs, the epoch chosen on validation micro AUPRC), with this
        run's loss; the graph is not read. The model then starts as the fp+signature MLP baseline."""
        from moakg.gnn.baselines import train_mlp

        model, train, val = self.model, self.split.train, self.split.val
        x = self.graph[model.node_type].x
        y_val = self.y_given[val]
        branch = _BiasedBranch(model.features, model.head[-1].bias)
        train_mlp(branch, x[train], self.y_given[train], x[val], y_val, self.cfg.baseline_epochs, self.cfg.lr,
                  val_score=lambda p: average_precision(y_val, p),  # micro AUPRC, without the rest
                  loss_fn=lambda logits, y: self.loss_fn(logits, y, None))

    def _tune_votes(self) -> dict[str, VotePoint]:
        """Choose the votes' starting point on validation micro AUPRC of the model as it starts (the bias,
        the own-feature branch if any, and the votes: the head's weights are zero), every training label
        an input, as at evaluation."""
        model, val = self.model, self.split.val
        if val.numel() == 0:
            return {}
        x_dict, edges = self.inputs or model_inputs(self.graph, self.device)
        x = x_dict[model.node_type]
        lo, hi = model.label_cols
        model.eval()
        with torch.no_grad():
            base = model.head[-1].bias.detach() + (0 if model.features is None else model.features(x))
        y_val = self.y_given[val]

        def val_auprc() -> float:
            with torch.no_grad():
                logits = base + model.votes(x, x[:, lo:hi], x[:, hi], edges)
            return average_precision(y_val, torch.sigmoid(logits[val.to(self.device)]).cpu())  # micro AUPRC

        return tune_votes(model.votes, val_auprc, first_may_close=model.features is not None)

    def _step(self, logits: Tensor, rows: Tensor) -> float:
        rows = rows.to(self.device)
        loss = self.loss_fn(logits, self.y_dev[rows], None if self.w_dev is None else self.w_dev[rows])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def _set_label_input(self, known: Tensor) -> None:
        attach_label_input(self.graph, self.model.node_type, self.y_given, known)
        if not self.mini:
            self.inputs = model_inputs(self.graph, self.device)

    def _epoch_graph(self, supervised: Tensor) -> HeteroData:
        """The graph of one epoch: in the phenotype setting, a random ``cfg.target_edge_dropout`` share
        of the supervised compounds lose their TARGETS edges, as every held-out compound has (so the
        model does not learn to lean on edges that test compounds never have)."""
        rate = self.cfg.target_edge_dropout
        if self.setting != "phenotype" or rate <= 0 or self.model.node_type != COMPOUND:
            return self.graph
        hide = supervised[torch.rand(supervised.numel(), generator=self.gen) < rate]
        mask = torch.zeros(int(self.graph[COMPOUND].num_nodes), dtype=torch.bool)
        mask[hide] = True
        graph = copy.copy(self.graph)
        drop_incident(graph, COMPOUND, GENE, nodes_a=mask, relations=target_relations())
        return graph

    def train_epoch(self) -> list[float]:
        cfg = self.cfg
        set_loss_epoch(self.loss_fn, self.epochs_done)
        self.epochs_done += 1
        supervised = self.split.train
        if self.label_trick:
            # This epoch's known labels are inputs; the loss is on the other training compounds only.
            known, supervised = split_known(self.split.train, cfg.label_known_frac, self.gen)
            self._set_label_input(known)
        try:
            return self._train_rows(self._epoch_graph(supervised), supervised)
        finally:
            if self.label_trick:  # evaluation reads every training label
                self._set_label_input(self.split.train)

    def _train_rows(self, graph: HeteroData, rows: Tensor) -> list[float]:
        node_type, cfg = self.model.node_type, self.cfg
        if not self.mini:
            tr = rows.to(self.device)
            inputs = self.inputs if graph is self.graph else model_inputs(graph, self.device)
            return [self._step(self.model(*inputs)[tr], tr)]
        losses = []
        for batch in batches(rows, cfg.batch_size, self.gen):
            sub, local = sample_subgraph(graph, {node_type: batch}, cfg.num_neighbors, self.gen)
            logits = self.model(*model_inputs(sub, self.device))[local[node_type].to(self.device)]
            losses.append(self._step(logits, batch))
        return losses

    def predict(self, idx: Tensor) -> Tensor:
        """Probabilities [len(idx), C] (eval mode, no grad; mini-batch: a fixed sample per pass)."""
        model, node_type = self.model, self.model.node_type
        model.eval()
        with torch.no_grad():
            if not self.mini:
                return torch.sigmoid(model(*self.inputs)[idx.to(self.device)]).cpu()
            gen = eval_generator(self.seed)
            out = []
            for batch in batches(idx, self.cfg.batch_size, None):
                sub, local = sample_subgraph(self.graph, {node_type: batch}, self.cfg.num_neighbors, gen)
                logits = model(*model_inputs(sub, self.device))[local[node_type].to(self.device)]
                out.append(torch.sigmoid(logits).cpu())
            return torch.cat(out) if out else torch.zeros(0, model.head[-1].out_features)

    def evaluate(self, part: str, scores: Tensor) -> dict[str, float]:
        """Metrics of ``part``: validation against the given labels (noisy with ``noisy_validation``, as a
        user's would be), test against the clean ``task.y``."""
        y = self.y_clean if part == "test" else self.y_given
        return moa_metrics(y[getattr(self.split, part)], scores)


class _BiasedBranch(nn.Module):
    """``features(x) + bias``: the own-feature branch with the classifier's bias, the MLP baseline's
    shape, for :meth:`MoATrainer.pretrain_features` (the parameters are the model's own)."""

    def __init__(self, features: nn.Module, bias: Tensor) -> None:
        super().__init__()
        self.features, self.bias = features, bias

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x) + self.bias
