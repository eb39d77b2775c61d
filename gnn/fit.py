"""The epoch loop both tasks share: train an epoch, validate, stop early, restore the best epoch, and
build the :class:`RunResult` (test and validation metrics of the best epoch).

A task plugs in as a :class:`Trainer` (:mod:`moakg.gnn.train_moa`, :mod:`moakg.gnn.train_target`): how to
train one epoch, how to score nodes, how to turn scores into metrics.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from moakg.gnn.config import TrainConfig
from moakg.gnn.models import count_parameters


@dataclass
class RunResult:
    """What one training run (one model kind, one seed) produced.

    ``test_scores`` [n_test, n_classes] probabilities (MoA) or [n_test_compounds, n_genes] sigmoid scores
    (targets), rows aligned with ``test_index`` (node indices of ``task``'s node type).
    ``curves``: ``epoch``, ``loss`` (mean training loss), ``val`` (validation metric) per trained epoch;
    ``start_val`` the validation metric of the model as it started (epoch 0, a candidate for
    ``best_epoch`` too).
    ``val_metrics`` and ``curves['val']`` are scored against the trainer's validation labels (in the
    label-noise experiment with ``noisy_validation``: the flipped ones), ``metrics`` against the clean
    test labels.
    """

    task: str
    kind: str
    seed: int
    config: TrainConfig
    metrics: dict[str, float]
    val_metrics: dict[str, float]
    val_metric_name: str
    best_epoch: int
    epochs_run: int
    curves: dict[str, list[float]]
    test_index: Tensor
    test_scores: Tensor
    seconds: float
    seconds_per_epoch: float
    mode: str
    n_params: int
    model: nn.Module = field(repr=False)
    #: each vote relation's starting (gate, beta, kappa), chosen on validation (empty without votes)
    vote_start: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    start_val: float = float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record without tensors, the model or the config (stored once per run)."""
        return {
            "task": self.task, "model": self.kind, "seed": self.seed, "metrics": self.metrics,
            "val_metrics": self.val_metrics, "val_metric": self.val_metric_name,
            "best_epoch": self.best_epoch, "epochs_run": self.epochs_run, "seconds": round(self.seconds, 3),
            "seconds_per_epoch": round(self.seconds_per_epoch, 4), "mode": self.mode,
            "n_params": self.n_params, "vote_start": self.vote_start, "start_val": self.start_val,
        }


class Trainer(Protocol):
    """One task's training: ``fit`` calls :meth:`train_epoch` and :meth:`predict` / :meth:`evaluate`."""

    task: str  # 'moa' | 'target'
    metric: str  # validation metric, higher is better
    model: nn.Module

    def train_epoch(self) -> list[float]:
        """One pass over the training data; the loss of each optimiser step."""
        ...

    def predict(self, idx: Tensor) -> Tensor:
        """Scores of nodes ``idx`` (eval mode, no grad), rows aligned with ``idx``."""
        ...

    def evaluate(self, part: str, scores: Tensor) -> dict[str, float]:
        """Metrics of ``scores`` for the split part ``'val'`` or ``'test'``."""
        ...


def seed_all(seed: int) -> torch.Generator:
    """Seed torch and numpy; returns the generator of the run's training randomness."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def eval_generator(seed: int) -> torch.Generator:
    """A fresh generator for one evaluation pass: every pass of a run samples the same neighbourhoods
    (epochs are compared on equal terms), and runs with different seeds sample different ones."""
    return torch.Generator().manual_seed(seed)


class EarlyStop:
    """Keeps the best state dict by validation metric; says when ``patience`` epochs brought nothing."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best, self.best_epoch, self.state, self.bad = patience, -float("inf"), -1, None, 0

    def step(self, epoch: int, value: float, model: nn.Module) -> bool:
        if value > self.best + 1e-6 or self.state is None:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best state seen back into ``model``."""
        if self.state is not None:
            model.load_state_dict(self.state)


def fit(trainer: Trainer, cfg: TrainConfig, kind: str, seed: int, split: Any, mini: bool,
        log: Callable[[str], object] | None = None) -> RunResult:
    """Train ``trainer`` for at most ``cfg.epochs`` epochs with early stopping on its validation metric,
    restore the best epoch and score the validation and test parts of ``split``."""
    model = trainer.model
    stop = EarlyStop(cfg.patience)
    curves: dict[str, list[float]] = {"epoch": [], "loss": [], "val": []}
    t0 = time.perf_counter()
    epochs_run = 0
    # Epoch 0, the model as it starts (with votes: the tuned kNN, and the MLP with a feature branch), is
    # a candidate too: where no trained epoch beats it on validation, it is what the run keeps.
    start = float(trainer.evaluate("val", trainer.predict(split.val))[trainer.metric])
    stop.step(0, start, model)
    if log is not None:
        log(f"epoch    0  (start)       val {trainer.metric} {start:.4f}")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = trainer.train_epoch()
        val = float(trainer.evaluate("val", trainer.predict(split.val))[trainer.metric])
        epochs_run = epoch
        curves["epoch"].append(epoch)
        curves["loss"].append(float(np.mean(losses)))
        curves["val"].append(val)
        if log is not None:
            log(f"epoch {epoch:4d}  loss {curves['loss'][-1]:.4f}  val {trainer.metric} {val:.4f}")
        if stop.step(epoch, val, model):
            break
    seconds = time.perf_counter() - t0
    stop.restore(model)
    val_scores = trainer.predict(split.val)
    test_scores = trainer.predict(split.test)
    return RunResult(
        task=trainer.task, kind=kind, seed=seed, config=cfg, metrics=trainer.evaluate("test", test_scores),
        val_metrics=trainer.evaluate("val", val_scores), val_metric_name=trainer.metric,
        best_epoch=stop.best_epoch, epochs_run=epochs_run, curves=curves, test_index=split.test.clone(),
        test_scores=test_scores, seconds=seconds, seconds_per_epoch=seconds / max(epochs_run, 1),
        mode="mini-batch" if mini else "full-batch", n_params=count_parameters(model), model=model.cpu(),
        vote_start=dict(getattr(trainer, "vote_choice", {})), start_val=start,
    )
