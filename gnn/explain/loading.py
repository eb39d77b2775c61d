"""Loading a trained model run back from what :mod:`moakg.kg.writeback` / :mod:`moakg.gnn.run` stored.

A ``(:ModelRun)`` holds the experiment config (JSON), its setting, the split record(s) (JSON, with the sha1
of the sorted test keys) and the checkpoint directory (``seed<N>.pt``: state dict, model and train config).
The task is rebuilt from a fresh export with the same config, setting and seed, and the split's test-key
hash is checked against the recorded one, so the explanation is of the same model on the same graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from moakg.kg.connection import Neo4jConnection


@dataclass
class LoadedRun:
    """A trained model with the task (graph, labels, split) it was trained on.

    ``graph`` is ``task.graph`` without label edges: what the model passes messages on. ``kind`` is
    ``'moa'`` or ``'target'``; ``classes`` the MoA names of the classifier's columns (MoA runs).
    """

    run_id: str
    kind: str
    model: nn.Module
    task: Any
    graph: HeteroData
    data: HeteroData
    maps: Any
    seed: int
    config: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # full-graph outputs, computed once

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.task, "classes", []))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def run_record(conn: Neo4jConnection, run_id: str) -> dict[str, Any]:
    rows = conn.query("MATCH (r:ModelRun {id: $id}) RETURN properties(r) AS p", id=run_id)
    if not rows:
        known = [r["id"] for r in conn.query("MATCH (r:ModelRun) RETURN r.id AS id ORDER BY id LIMIT 10")]
        raise ValueError(f"no ModelRun {run_id!r} in the graph; known: {', '.join(known) or 'none'}")
    return rows[0]["p"]


def load_run(conn: Neo4jConnection, run_id: str, seed: int | None = None, data: HeteroData | None = None,
             maps: Any = None, device: str = "cpu") -> LoadedRun:
    """Rebuild the model of ``run_id`` (seed ``seed``, default the run's prediction seed) and its task."""
    from moakg.gnn.models import MoAClassifier, TargetLinkPredictor, build_encoder
    from moakg.gnn.run import ExperimentConfig, compound_smiles, make_task
    from moakg.gnn.train import strip_label_edges

    rec = run_record(conn, run_id)
    cfg_d = dict(_json(rec["config"]))
    setting = rec.get("setting") or cfg_d["settings"][0]
    seed = int(rec.get("predictions_seed", cfg_d["seeds"][0]) if seed is None else seed)
    ckpt_path = Path(rec["checkpoint"]) / f"seed{seed}.pt"
    if not ckpt_path.exists():
        raise ValueError(f"run {run_id}: no checkpoint {ckpt_path}")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    tuples = ("models", "settings", "seeds", "label_noise", "noise_modes", "num_neighbors")
    cfg_kw = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in cfg_d.items()}
    cfg_kw["out"] = Path(cfg_kw["out"]) if cfg_kw.get("out") else None
    cfg = ExperimentConfig(**{k: v for k, v in cfg_kw.items() if k in ExperimentConfig.__dataclass_fields__})
    if cfg.split == "cell_line":
        raise NotImplementedError("explanations are compound-level; signature-level (cell_line) runs are not")
    if data is None or maps is None:
        from moakg.kg.export import export_heterodata

        data, maps = export_heterodata(conn, progress=False)
    smiles = compound_smiles(conn, maps.keys["Compound"]) if cfg.split == "scaffold" else None
    task = make_task(cfg, data, maps, setting, seed, smiles)
    splits = _json(rec.get("split")) or []
    recorded = next((s for s in splits if s.get("seed") == seed), splits[0] if splits else None)
    if recorded and recorded.get("test_sha1") != task.split.as_dict()["test_sha1"]:
        raise ValueError(f"run {run_id}: the rebuilt test split differs from the recorded one (the graph "
                         "changed since training); retrain the run")
    graph = strip_label_edges(task.graph)
    m = ckpt["model"]
    enc = build_encoder(graph, m["kind"], m["hidden"], m["layers"], m["dropout"], m.get("heads", 2))
    model: nn.Module
    if cfg.task == "target":
        model = TargetLinkPredictor(enc, int(task.n_genes))
    else:
        model = MoAClassifier(enc, len(task.classes))
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return LoadedRun(run_id, cfg.task, model, task, graph, data, maps, seed, cfg_d)
