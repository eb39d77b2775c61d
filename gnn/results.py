"""What an experiment leaves behind: the results tables, and per (setting, model) a run directory
(``seed<N>.pt``, ``metrics.json``, ``curves.png``) and a ``(:ModelRun)`` with its top-k predictions.

The run id is a hash of the config and the graph version, so re-running the same experiment on the same
graph rewrites the same run (same counts). The ModelRun and every checkpoint store the full
:class:`~moakg.gnn.config.TrainConfig` (``to_dict``), from which :func:`~moakg.gnn.explain.loading.load_run`
rebuilds the model.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import RunResult
from moakg.gnn.tasks import SignatureTask
from moakg.kg.connection import Neo4jConnection

#: metrics shown in the table, headline first
TABLE_METRICS = {
    "moa": ("micro_auprc", "macro_auprc", "auroc", "top1_acc", "top5_acc", "log_loss"),
    "target": ("mrr", "hits@10", "auprc", "auroc"),
}
#: config fields that do not change the trained GNN: not part of the run id
NOT_IN_RUN_ID = ("out", "write", "models", "settings", "device", "baselines", "baseline_epochs")


@dataclass
class ExperimentResult:
    """Tables (list of row dicts, ready for :func:`moakg.console.print_table`) and where things went."""

    config: TrainConfig
    table: list[dict[str, Any]]
    noise_table: list[dict[str, Any]]
    run_ids: dict[tuple[str, str], str]  # (setting, model) -> ModelRun id
    out_dirs: dict[str, Path]
    results: dict[tuple[str, str, int], RunResult] = field(repr=False)  # (setting, model, seed)
    baselines: dict[tuple[str, str, int], dict[str, Any]] = field(repr=False)  # (setting, name, seed)
    predictions_written: dict[str, int] = field(default_factory=dict)
    data_version: list[str] = field(default_factory=list)

    @property
    def table_columns(self) -> list[str]:
        return ["setting", "method", "n_test", "n_sig", *TABLE_METRICS[self.config.task]]


# ---------------------------------------------------------------------------------------------- numbers
def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(x) for x in values if x is not None and not math.isnan(float(x))]


def mean_std(values: Sequence[float | None]) -> str:
    """``'0.412 ± 0.013'`` (sample std over seeds), the value alone for one seed; nan values are
    ignored, ``'n/a'`` when none is left."""
    v = _finite(values)
    if not v:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{np.mean(v):.3f} ± {float(np.std(v, ddof=1)):.3f}"


def mean(values: Sequence[float | None]) -> float:
    v = _finite(values)
    return float(np.mean(v)) if v else float("nan")


def std(values: Sequence[float | None]) -> float:
    v = _finite(values)
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def table_rows(cfg: TrainConfig, results: dict, baselines: dict,
               n_sig: dict[tuple[str, int], int] | None = None) -> list[dict[str, Any]]:
    """One row per (setting, method): GNNs first, then baselines, metrics as mean ± std over seeds.

    ``n_test`` is the rows scored, ``n_sig`` (from ``n_sig[(setting, seed)]``) how many of the test
    compounds have an L1000 signature; values differing between seeds are joined with ``/``.
    """
    metrics = TABLE_METRICS[cfg.task]
    n_sig = n_sig or {}
    rows = []
    for setting in cfg.settings:
        groups: dict[str, list[tuple[dict, int, int | None]]] = {}
        for kind in cfg.models:
            for seed in cfg.seeds:
                r = results.get((setting, kind, seed))
                if r is not None:
                    groups.setdefault(f"gnn:{kind}", []).append(
                        (r.metrics, int(r.test_index.numel()), n_sig.get((setting, seed))))
        for (s, name, seed), b in baselines.items():
            if s == setting:
                groups.setdefault(name, []).append((b["metrics"], b["n_eval"], n_sig.get((setting, seed))))
        for name, items in groups.items():
            row: dict[str, Any] = {
                "setting": setting, "method": name,
                "n_test": "/".join(sorted({str(n) for _, n, _ in items})),
                "n_sig": "/".join(sorted({str(k) for _, _, k in items if k is not None})) or "n/a",
            }
            for m in metrics:
                row[m] = mean_std([d.get(m, float("nan")) for d, _, _ in items])
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- runs
def run_id_for(cfg: TrainConfig, setting: str, kind: str, version: Sequence[str]) -> str:
    """Deterministic run id: the same config on the same graph is the same run (idempotent re-runs)."""
    keep = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_RUN_ID}
    blob = json.dumps([keep, setting, kind, list(version)], sort_keys=True, default=str)
    return f"{cfg.task}-{kind}-{setting}-{cfg.split}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def runs_dir(cfg: TrainConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    from moakg.kg.local_server import moakg_home

    return moakg_home() / "runs"


def plot_curves(results: Sequence[RunResult], path: Path, title: str) -> Path | None:
    """Training loss and validation metric per epoch (one line per seed) as a PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the run still completes; the table and metrics.json carry the numbers
        return None
    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in results:
        label = f"seed {r.seed}"
        ax_l.plot(r.curves["epoch"], r.curves["loss"], label=label)
        ax_v.plot(r.curves["epoch"], r.curves["val"], label=label)
        ax_v.axvline(r.best_epoch, ls=":", lw=0.8, color=ax_v.lines[-1].get_color())
    ax_l.set(xlabel="epoch", ylabel="training loss", title="loss")
    name = results[0].val_metric_name if results else "val"
    ax_v.set(xlabel="epoch", ylabel=f"val {name}", title=f"validation {name} (dotted: best epoch)")
    ax_v.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prediction_rows(cfg: TrainConfig, task: Any, maps: Any, res: RunResult) -> tuple[str, list[dict]]:
    """Top-k writer rows of one run's test predictions (compound-level) and the relationship type."""
    from moakg.kg.writeback import top_k_rows

    comp_keys = maps.keys["Compound"]
    scores, idx = res.test_scores, res.test_index
    if cfg.task == "target":
        scores = scores.clone()
        known = task.pos["train"]
        row_of = torch.full((len(comp_keys),), -1, dtype=torch.long)
        row_of[idx] = torch.arange(idx.numel())
        hit = row_of[known[0]] >= 0
        scores[row_of[known[0][hit]], known[1][hit]] = -1.0  # predictions are new targets, not known ones
        rows = top_k_rows(scores, [comp_keys[i] for i in idx.tolist()], maps.keys["Gene"], cfg.top_k)
        return "PREDICTED_TARGET", [r for r in rows if r["score"] >= 0]
    if isinstance(task, SignatureTask):  # signature-level: average the test signatures of each compound
        comp = task.compound[idx]
        ok = comp >= 0
        uc, inv = torch.unique(comp[ok], return_inverse=True)
        agg = torch.zeros(uc.numel(), scores.size(1)).index_add_(0, inv, scores[ok])
        agg /= torch.bincount(inv, minlength=uc.numel()).clamp(min=1).unsqueeze(1)
        scores, idx = agg, uc
    return "PREDICTED_MOA", top_k_rows(scores, [comp_keys[i] for i in idx.tolist()], task.classes, cfg.top_k)


def _nan_low(x: float | None) -> float:
    return -float("inf") if x is None or math.isnan(x) else x


def _summary(per_seed: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    return {m: {"mean": mean([d.get(m, float("nan")) for d in per_seed]),
                "std": std([d.get(m, float("nan")) for d in per_seed])} for m in names}


def save_and_write(conn: Neo4jConnection | None, cfg: TrainConfig, maps: Any, tasks_by: dict,
                   out: ExperimentResult) -> None:
    """Checkpoints, metrics.json and curves.png per (setting, model); ModelRun + predictions in Neo4j."""
    from moakg.kg.writeback import write_model_run, write_predictions

    head = TABLE_METRICS[cfg.task][0]
    config = cfg.to_dict()
    for setting in cfg.settings:
        base_by_name: dict[str, list[dict]] = {}
        for (s, name, _seed), b in out.baselines.items():
            if s == setting:
                base_by_name.setdefault(name, []).append(b["metrics"])
        base_summary = {name: _summary(ds, TABLE_METRICS[cfg.task]) for name, ds in base_by_name.items()}
        best_name = max(base_summary, key=lambda n: _nan_low(base_summary[n][head]["mean"]), default=None)
        for kind in cfg.models:
            runs = [out.results[(setting, kind, seed)] for seed in cfg.seeds]
            run_id = run_id_for(cfg, setting, kind, out.data_version)
            out.run_ids[(setting, kind)] = run_id
            d = runs_dir(cfg) / run_id
            d.mkdir(parents=True, exist_ok=True)
            for r in runs:
                ckpt = {"state_dict": r.model.state_dict(), "config": config, "kind": kind, "seed": r.seed}
                torch.save(ckpt, d / f"seed{r.seed}.pt")
            metrics = _summary([r.metrics for r in runs], list(runs[0].metrics))
            splits = [tasks_by[(setting, s)].split.as_dict() for s in cfg.seeds]
            record = {"run_id": run_id, "config": config, "setting": setting, "model": kind,
                      "data_version": out.data_version, "splits": splits, "metrics": metrics,
                      "per_seed": [r.summary() for r in runs], "baselines": base_summary}
            (d / "metrics.json").write_text(json.dumps(record, indent=2, default=str))
            png = plot_curves(runs, d / "curves.png", f"{run_id}")
            out.out_dirs[run_id] = d
            if not (cfg.write and conn is not None):
                continue
            task0 = tasks_by[(setting, cfg.seeds[0])]
            first = splits[0]
            props = {
                "task": cfg.task, "model": kind, "setting": setting, "config": config,
                "data_version": out.data_version, "split": splits, "split_method": cfg.split,
                "split_sizes": [first["n_train"], first["n_val"], first["n_test"]], "seeds": list(cfg.seeds),
                "metrics": metrics, "baselines": base_summary, "checkpoint": str(d),
                "curves": str(png) if png else None, "val_metric": runs[0].val_metric_name,
                "metric": head, "test_metric_mean": metrics[head]["mean"],
                "test_metric_std": metrics[head]["std"],
                "best_baseline": best_name,
                "best_baseline_mean": base_summary[best_name][head]["mean"] if best_name else None,
                "predictions_seed": cfg.seeds[0], "top_k": cfg.top_k,
                "n_classes": len(getattr(task0, "classes", [])) or None,
            }
            for m in TABLE_METRICS[cfg.task]:
                props[f"test_{m.replace('@', '_at_')}"] = metrics.get(m, {}).get("mean")
            write_model_run(conn, run_id, props)
            rel, rows = prediction_rows(cfg, task0, maps, runs[0])
            counts = write_predictions(conn, run_id, rel, rows)
            out.predictions_written[run_id] = counts["written"]
