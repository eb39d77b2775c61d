"""Training one GNN on one task and split: the entry point.

:func:`train` takes a :class:`~moakg.gnn.tasks.MoATask` (multi-label node classification; Compound, or
Signature for the unseen-cell-line task) or a :class:`~moakg.gnn.tasks.TargetTask` (Compound -> Gene link
prediction), a :class:`~moakg.gnn.config.TrainConfig`, the model kind and the seed, and returns a
:class:`~moakg.gnn.fit.RunResult`: the test metrics of the epoch with the best validation metric (macro
AUPRC for MoA, filtered MRR for targets), per-epoch curves, the test scores and the model.

    result = train(task, TrainConfig(hidden=64, epochs=50), kind="hgt", seed=1)

The work is split by job: :mod:`~moakg.gnn.config` (the options), :mod:`~moakg.gnn.sampling` (neighbour
sampling), :mod:`~moakg.gnn.fit` (epoch loop, early stopping, result), :mod:`~moakg.gnn.train_moa` and
:mod:`~moakg.gnn.train_target` (one task each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import RunResult, fit, seed_all
from moakg.gnn.models import MoAClassifier, TargetLinkPredictor, build_encoder, check_kinds, strip_label_edges
from moakg.gnn.sampling import graph_size
from moakg.gnn.tasks import COMPOUND, SIGNATURE, SignatureTask, TargetTask
from moakg.gnn.train_moa import MoATrainer
from moakg.gnn.train_target import TargetTrainer

__all__ = ["RunResult", "TrainConfig", "build_model", "train"]


def build_model(task: Any, graph: HeteroData, cfg: TrainConfig, kind: str) -> nn.Module:
    """The model ``kind`` for ``task`` on its message graph ``graph``, shaped by ``cfg``: a
    :class:`~moakg.gnn.models.TargetLinkPredictor` for target tasks, else a
    :class:`~moakg.gnn.models.MoAClassifier` (of Signatures for the signature-level task). Training and
    :func:`~moakg.gnn.explain.loading.load_run` both build models here, so a checkpoint always fits."""
    encoder = build_encoder(graph, kind, cfg.hidden, cfg.layers, cfg.dropout, cfg.heads)
    if isinstance(task, TargetTask):
        return TargetLinkPredictor(encoder, int(task.n_genes))
    return MoAClassifier(encoder, task.y.size(1), SIGNATURE if isinstance(task, SignatureTask) else COMPOUND)


def train(task: Any, cfg: TrainConfig | None = None, kind: str | None = None, seed: int | None = None, *,
          y: Tensor | None = None, sample_weight: Tensor | None = None,
          log: Callable[[str], object] | None = None) -> RunResult:
    """Train model ``kind`` (default ``cfg.models[0]``) with ``seed`` (default ``cfg.seeds[0]``) on ``task``
    and evaluate it on the test split.

    ``y`` overrides ``task.y`` for training only (label-noise experiments: val and test stay clean);
    ``sample_weight`` [n_nodes] weights each labelled node's loss (signature quality); ``log`` receives
    one line per epoch.
    """
    cfg = cfg or TrainConfig()
    cfg.validate()
    kind = check_kinds([kind or cfg.models[0]])[0]
    seed = cfg.seeds[0] if seed is None else seed
    gen = seed_all(seed)
    graph = strip_label_edges(task.graph)
    mini = cfg.mini_batch if cfg.mini_batch is not None else graph_size(graph) > cfg.node_budget
    device = torch.device(cfg.device)
    model = build_model(task, graph, cfg, kind)
    trainer: MoATrainer | TargetTrainer
    if isinstance(task, TargetTask):
        trainer = TargetTrainer(task, graph, model, cfg, seed, mini, device, gen)  # type: ignore[arg-type]
    else:
        trainer = MoATrainer(task, graph, model, cfg, seed, mini, device, gen, y,  # type: ignore[arg-type]
                             sample_weight)
    return fit(trainer, cfg, kind, seed, task.split, mini, log)
