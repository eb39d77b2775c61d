"""Loading a trained model run back from what :mod:`moakg.kg.writeback` / :mod:`moakg.gnn.run` stored.

A ``(:ModelRun)`` holds its :class:`~moakg.gnn.config.TrainConfig` (JSON), its setting and model kind,
the split record(s) (JSON, with the sha1 of the sorted test keys) and the checkpoint directory
(``seed<N>.pt``: state dict and the same config). The model is rebuilt from that config alone and the task
from a fresh export with the same config, setting and seed; the split's test-key hash is checked against
the recorded one, so the explanation is of the same model on the same graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from moakg.errors import UserError
from moakg.gnn.config import TrainConfig
from moakg.kg.connection import Neo4jConnection
from moakg.kg.lookups import model_run, model_run_ids


@dataclass
class LoadedRun:
    """A trained model with the task (graph, labels, split) it was trained on.

    ``graph`` is ``task.graph`` without label edges: what the model passes messages on. ``kind`` is
    ``'moa'`` or ``'target'``; ``model_kind`` the encoder (``sage`` ...); ``config`` the run's training
    configuration; ``classes`` the MoA names of the classifier's columns (MoA runs).
    """

    run_id: str
    kind: str
    model: nn.Module
    task: Any
    graph: HeteroData
    data: HeteroData
    maps: Any
    seed: int
    config: TrainConfig
    model_kind: str = "sage"
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # full-graph outputs, computed once

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.task, "classes", []))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def run_record(conn: Neo4jConnection, run_id: str) -> dict[str, Any]:
    """The properties of ModelRun ``run_id``; a :class:`~moakg.errors.UserError` naming some known runs
    when there is none."""
    rec = model_run(conn, run_id)
    if rec is None:
        known = model_run_ids(conn, 10)
        raise UserError(f"no ModelRun {run_id!r} in the graph; known: {', '.join(known) or 'none'}")
    return rec


def run_config(rec: dict[str, Any]) -> TrainConfig:
    """The training configuration stored on a ModelRun record (strict: unknown keys are an error).

    A run stored before a model option existed was trained without it: such keys read as "off"
    (:data:`ADDED_OFF`), not as today's default, so its checkpoint still fits the model rebuilt."""
    stored = _json(rec["config"])
    return TrainConfig.from_dict({**ADDED_OFF, **stored}, source=f"ModelRun {rec.get('id', '?')} config")


#: model options added after runs were stored, with the value that means "not there"
ADDED_OFF: dict[str, Any] = {"feature_mlp": 0, "moa_votes": False}


def load_run(conn: Neo4jConnection, run_id: str, seed: int | None = None, data: HeteroData | None = None,
             maps: Any = None, device: str = "cpu") -> LoadedRun:
    """Rebuild the model of ``run_id`` (seed ``seed``, default the run's prediction seed) and its task,
    from the configuration stored on the run."""
    from moakg.gnn.run import make_task, split_smiles
    from moakg.gnn.train import build_model, model_graph

    rec = run_record(conn, run_id)
    cfg = run_config(rec)
    setting = rec.get("setting") or cfg.settings[0]
    kind = rec.get("model") or cfg.models[0]
    seed = int(rec.get("predictions_seed", cfg.seeds[0]) if seed is None else seed)
    ckpt_path = Path(rec["checkpoint"]) / f"seed{seed}.pt"
    if not ckpt_path.exists():
        raise UserError(f"run {run_id}: no checkpoint {ckpt_path}; retrain the run")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if ckpt.get("config") != cfg.to_dict() or ckpt.get("kind") != kind:
        # Checkpoints from before the single config (or of another run) do not fit the rebuilt model.
        raise UserError(f"run {run_id}: checkpoint {ckpt_path} was not written with this run's config "
                        "(an older moakg?); retrain the run")
    if cfg.split == "cell_line":
        raise UserError("explanations are compound-level; signature-level (cell_line) runs cannot be "
                        "explained")
    if data is None or maps is None:
        from moakg.kg.export import export_heterodata

        data, maps = export_heterodata(conn, progress=False)
    task = make_task(cfg, data, maps, setting, seed, split_smiles(cfg, conn, maps))
    splits = _json(rec.get("split")) or []
    recorded = next((s for s in splits if s.get("seed") == seed), splits[0] if splits else None)
    if recorded and recorded.get("test_sha1") != task.split.as_dict()["test_sha1"]:
        raise UserError(f"run {run_id}: the rebuilt test split differs from the recorded one (the graph "
                        "changed since training); retrain the run")
    graph = model_graph(task, cfg)
    model = build_model(task, graph, cfg, kind)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return LoadedRun(run_id, cfg.task, model, task, graph, data, maps, seed, cfg, kind)
