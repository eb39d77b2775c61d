"""The experiment driver: seeds x settings x models, every baseline on the same split, one results table.

    from moakg.gnn.run import ExperimentConfig, run_experiment
    result = run_experiment(conn, ExperimentConfig(task="moa", models=("sage", "hgt"), seeds=(0, 1, 2)))
    print(result.table)                 # GNNs next to the baselines, mean ± std over seeds

For every setting (``phenotype``, ``known_targets``) and seed the task and its split are made once; each
GNN and every baseline of :mod:`moakg.gnn.baselines` is trained and scored on that same split. Per
(setting, model) one ``(:ModelRun)`` is written (:mod:`moakg.kg.writeback`) with the config, the graph's
completed IngestRun ids, the split(s), metrics and baseline metrics, and the checkpoint directory
(``$MOAKG_HOME/runs/<run id>/``: one state dict per seed, ``config.json``, ``metrics.json``,
``curves.png``); the first seed's model writes the top-k predictions of its test compounds.

The run id is a hash of the config and the graph version, so re-running the same experiment on the same
graph rewrites the same run (same counts). ``label_noise`` adds the robustness experiment: training labels
flipped (uniform and target-structured, :mod:`moakg.gnn.noise`) at each rate, BCE against GCE, test
metric on clean labels.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.gnn.models import check_kinds
from moakg.gnn.train import ModelConfig, RunResult, TrainConfig, train
from moakg.kg.connection import Neo4jConnection

TASKS = ("moa", "target")
SPLITS = ("random", "scaffold", "cell_line")
SETTINGS = ("phenotype", "known_targets")
NOISE_MODES = ("uniform", "structured")
#: metrics shown in the table, headline first
TABLE_METRICS = {
    "moa": ("micro_auprc", "macro_auprc", "auroc", "top1_acc", "top5_acc", "log_loss"),
    "target": ("mrr", "hits@10", "auprc", "auroc"),
}


@dataclass
class ExperimentConfig:
    """Everything one ``moakg train`` invocation decides (see ``moakg train --help``)."""

    task: str = "moa"
    models: tuple[str, ...] = ("sage",)
    split: str = "random"
    settings: tuple[str, ...] = SETTINGS
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 200
    patience: int = 20
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.2
    heads: int = 2
    lr: float = 1e-3
    weight_decay: float = 0.0
    min_per_class: int = 5
    loss: str = "bce"
    # q = 0.7 (the paper's value for single-label softmax) leaves the rare positives of 100+ one-vs-rest
    # MoA columns almost no gradient (p^q at p ~ 0.01); on the demo graph it never left the prior, while
    # q = 0.3 trains like BCE on clean labels (micro AUPRC 0.50 vs 0.53, sage, 40 epochs).
    gce_q: float = 0.3
    label_noise: tuple[float, ...] = ()
    noise_modes: tuple[str, ...] = NOISE_MODES
    quality_weights: bool = False
    mini_batch: bool = False
    batch_size: int = 256
    num_neighbors: tuple[int, ...] = (15, 10)
    device: str = "cpu"
    top_k: int = 10
    baselines: bool = True
    baseline_epochs: int = 200
    out: Path | None = None
    write: bool = True

    def validate(self) -> None:
        """Raise ValueError with one clear line for a bad combination."""
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, not {self.task!r}")
        check_kinds(self.models)
        if not self.models:
            raise ValueError("give at least one --model")
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if self.split == "cell_line" and self.task != "moa":
            raise ValueError("--split cell_line is a signature-level MoA split; use it with --task moa")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise ValueError(f"--setting must be phenotype, known_targets or both, not {bad or 'nothing'}")
        if not self.seeds:
            raise ValueError("give at least one --seeds value")
        if self.loss not in ("bce", "weighted", "gce"):
            raise ValueError(f"--loss must be bce, weighted or gce, not {self.loss!r}")
        if any(not 0 <= p < 1 for p in self.label_noise):
            raise ValueError(f"--label-noise rates must be in [0, 1), got {list(self.label_noise)}")
        if self.label_noise and self.task != "moa":
            raise ValueError("--label-noise flips MoA labels; use it with --task moa")
        if self.epochs < 1 or self.hidden < 1 or self.layers < 1 or self.top_k < 0:
            raise ValueError("--epochs, --hidden and --layers must be >= 1 and --top-k >= 0")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out) if self.out else None
        return d

    def model_config(self, kind: str) -> ModelConfig:
        return ModelConfig(kind, self.hidden, self.layers, self.dropout, self.heads)

    def train_config(self, seed: int, loss: str | None = None) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, patience=self.patience,
            loss=loss or self.loss, gce_q=self.gce_q, quality_weights=self.quality_weights,
            mini_batch=self.mini_batch, batch_size=self.batch_size, num_neighbors=tuple(self.num_neighbors),
            device=self.device, seed=seed,
        )


@dataclass
class ExperimentResult:
    """Tables (list of row dicts, ready for :func:`moakg.console.print_table`) and where things went."""

    config: ExperimentConfig
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
        return ["setting", "method", "n_test", *TABLE_METRICS[self.config.task]]


# --------------------------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> str:
    """``'0.412 ± 0.013'`` (sample std over seeds; ``± 0.000`` for one seed); nan values are ignored."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return "n/a"
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{np.mean(v):.3f} ± {std:.3f}"


def _mean(values: Sequence[float]) -> float:
    v = [float(x) for x in values if not math.isnan(float(x))]
    return float(np.mean(v)) if v else float("nan")


def _std(values: Sequence[float]) -> float:
    v = [float(x) for x in values if not math.isnan(float(x))]
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def compound_smiles(conn: Neo4jConnection, keys: Sequence[str]) -> list[str | None]:
    """SMILES aligned with ``keys`` (Compound.id), None where unknown."""
    rows = conn.query("UNWIND $keys AS k MATCH (c:Compound {id: k}) RETURN c.id AS id, c.smiles AS smiles",
                      keys=list(keys))
    by_id = {r["id"]: r["smiles"] for r in rows}
    return [by_id.get(k) for k in keys]


def make_task(cfg: ExperimentConfig, data: HeteroData, maps: Any, setting: str, seed: int,
              smiles: Sequence[str | None] | None) -> Any:
    """The task of ``cfg`` for one setting and seed, checked for label leakage."""
    from moakg.gnn import tasks

    if cfg.task == "target":
        task = tasks.make_target_task(data, maps, cfg.split, seed, setting, smiles)
    elif cfg.split == "cell_line":
        task = tasks.make_signature_task(data, maps, "cell_line", seed, cfg.min_per_class, setting)
    else:
        task = tasks.make_moa_task(data, maps, cfg.split, seed, cfg.min_per_class, setting, smiles)
    tasks.assert_no_leakage(task)
    return task


def _sample_weights(cfg: ExperimentConfig, task: Any, maps: Any) -> Tensor | None:
    """Signature-quality weights per labelled node (signatures; compounds: mean over their signatures)."""
    if not cfg.quality_weights or "quality" not in task.graph["Signature"]:
        return None
    from moakg.gnn.losses import quality_weights
    from moakg.gnn.tasks import SignatureTask

    w_sig = quality_weights(task.graph["Signature"].quality, getattr(maps, "quality_fields", None)
                            or ("cc_mean", "n_replicates", "tas"))
    if isinstance(task, SignatureTask):
        return w_sig
    n_c = int(task.graph["Compound"].num_nodes)
    et = ("Compound", "HAS_SIGNATURE", "Signature")
    total, count = torch.zeros(n_c), torch.zeros(n_c)
    if et in task.graph.edge_types:
        ei = task.graph[et].edge_index
        total.index_add_(0, ei[0], w_sig[ei[1]])
        count.index_add_(0, ei[0], torch.ones(ei.size(1)))
    return torch.where(count > 0, total / count.clamp(min=1), torch.ones(n_c))


def run_id_for(cfg: ExperimentConfig, setting: str, kind: str, version: Sequence[str]) -> str:
    """Deterministic run id: the same config on the same graph is the same run (idempotent re-runs)."""
    # Where results go, the device and the baselines do not change the GNN: not part of the id.
    skip = ("out", "write", "models", "settings", "device", "baselines", "baseline_epochs")
    keep = {k: v for k, v in cfg.as_dict().items() if k not in skip}
    blob = json.dumps([keep, setting, kind, list(version)], sort_keys=True, default=str)
    return f"{cfg.task}-{kind}-{setting}-{cfg.split}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def runs_dir(cfg: ExperimentConfig) -> Path:
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
        label = f"seed {r.train_cfg.seed}"
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


# --------------------------------------------------------------------------------------------------


def _prediction_rows(cfg: ExperimentConfig, task: Any, maps: Any, res: RunResult) -> tuple[str, list[dict]]:
    """Top-k writer rows of one run's test predictions (compound-level) and the relationship type."""
    from moakg.gnn.tasks import SignatureTask
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


def _table_rows(cfg: ExperimentConfig, results: dict, baselines: dict) -> list[dict[str, Any]]:
    """One row per (setting, method): GNNs first, then baselines, metrics as mean ± std over seeds."""
    metrics = TABLE_METRICS[cfg.task]
    rows = []
    for setting in cfg.settings:
        groups: dict[str, list[tuple[dict, int]]] = {}
        for kind in cfg.models:
            for seed in cfg.seeds:
                r = results.get((setting, kind, seed))
                if r is not None:
                    groups.setdefault(f"gnn:{kind}", []).append((r.metrics, int(r.test_index.numel())))
        for (s, name, _seed), b in baselines.items():
            if s == setting:
                groups.setdefault(name, []).append((b["metrics"], b["n_eval"]))
        for name, items in groups.items():
            row: dict[str, Any] = {"setting": setting, "method": name,
                                   "n_test": "/".join(sorted({str(n) for _, n in items}))}
            for m in metrics:
                row[m] = mean_std([d.get(m, float("nan")) for d, _ in items])
            rows.append(row)
    return rows


def run_experiment(
    conn: Neo4jConnection | None,
    cfg: ExperimentConfig,
    data: HeteroData | None = None,
    maps: Any = None,
    log: Callable[[str], object] = print,
) -> ExperimentResult:
    """Run ``cfg`` end to end (export, tasks, GNNs, baselines, noise experiment, write-back).

    ``conn`` may be None when ``data``/``maps`` are given and ``cfg.write`` is False (nothing is read
    from or written to Neo4j then; the scaffold split needs ``maps.smiles``).
    """
    cfg.validate()
    from moakg.gnn.baselines import run_baselines

    if data is None or maps is None:
        if conn is None:
            raise ValueError("run_experiment needs a Neo4j connection or data and maps")
        from moakg.kg.export import export_heterodata

        data, maps = export_heterodata(conn, progress=False)
    version = _data_version(conn, maps)
    smiles = None
    if cfg.split == "scaffold":
        smiles = getattr(maps, "smiles", None)
        if smiles is None and conn is not None:
            smiles = compound_smiles(conn, maps.keys["Compound"])
    results: dict[tuple[str, str, int], RunResult] = {}
    base: dict[tuple[str, str, int], dict[str, Any]] = {}
    tasks_by: dict[tuple[str, int], Any] = {}
    for setting in cfg.settings:
        for seed in cfg.seeds:
            task = make_task(cfg, data, maps, setting, seed, smiles)
            tasks_by[(setting, seed)] = task
            weights = _sample_weights(cfg, task, maps)
            for kind in cfg.models:
                res = train(task, cfg.model_config(kind), cfg.train_config(seed), sample_weight=weights)
                results[(setting, kind, seed)] = res
                head = TABLE_METRICS[cfg.task][0]
                value = res.metrics.get(head, float("nan"))
                log(f"{setting:13s} seed {seed}  gnn:{kind:5s} {head} {value:.3f}  (best epoch "
                    f"{res.best_epoch}/{res.epochs_run}, {res.seconds_per_epoch * 1000:.0f} ms/epoch, "
                    f"{res.mode})")
            if cfg.baselines:
                for b in run_baselines(task, seed=seed, epochs=cfg.baseline_epochs, device=cfg.device):
                    base[(setting, b.name, seed)] = {"metrics": b.metrics, "n_eval": b.n_eval, "note": b.note}
    table = _table_rows(cfg, results, base)
    noise_table = _noise_experiment(cfg, data, tasks_by, log) if cfg.label_noise else []
    out = ExperimentResult(cfg, table, noise_table, {}, {}, results, base, data_version=version)
    _save_and_write(conn, cfg, maps, tasks_by, out)
    return out


def _data_version(conn: Neo4jConnection | None, maps: Any) -> list[str]:
    state = getattr(maps, "graph_state", None)
    if state:
        return sorted(r["id"] for r in state if r.get("status") == "completed")
    if conn is not None:
        from moakg.kg.writeback import data_version

        return data_version(conn)
    return []


def _noise_experiment(cfg: ExperimentConfig, data: HeteroData, tasks_by: dict, log: Callable) -> list[dict]:
    """Test metric on clean labels after training on flipped labels: BCE vs GCE per mode and rate.

    Runs the first model kind in the first setting (the table would otherwise multiply by both).
    """
    from moakg.gnn.noise import flip_labels

    setting, kind = cfg.settings[0], cfg.models[0]
    head = TABLE_METRICS["moa"][0]
    rows = []
    et = ("Compound", "TARGETS", "Gene")
    pairs = data[et].edge_index if et in data.edge_types else torch.zeros(2, 0, dtype=torch.long)
    for mode in cfg.noise_modes:
        for p in cfg.label_noise:
            row: dict[str, Any] = {"setting": setting, "model": kind, "noise": mode, "p": p}
            for loss in ("bce", "gce"):
                vals = []
                for seed in cfg.seeds:
                    task = tasks_by[(setting, seed)]
                    share = None
                    if mode == "structured":
                        share = _shares_target(cfg, task, pairs, int(data["Gene"].num_nodes))
                    y_noisy = flip_labels(task.y, task.split.train, p, mode, seed, share)
                    res = train(task, cfg.model_config(kind), cfg.train_config(seed, loss), y=y_noisy)
                    vals.append(res.metrics[head])
                row[f"{loss}_{head}"] = mean_std(vals)
                log(f"noise {mode:10s} p={p:.2f} {loss}: {head} {row[f'{loss}_{head}']}")
            rows.append(row)
    return rows


def _shares_target(cfg: ExperimentConfig, task: Any, pairs: Tensor, n_genes: int) -> Tensor:
    """[C, C] MoAs sharing a target, from the training compounds' TARGETS (signature task: their
    compounds)."""
    from moakg.gnn.noise import target_sharing
    from moakg.gnn.tasks import SignatureTask

    if isinstance(task, SignatureTask):  # map training signatures to their compounds' labels and targets
        comp = task.compound[task.split.train]
        comp = comp[comp >= 0].unique()
        y_c = torch.zeros(int(task.graph["Compound"].num_nodes), task.y.size(1))
        ok = task.compound >= 0
        y_c[task.compound[ok]] = task.y[ok]
        return target_sharing(y_c, pairs, n_genes, rows=comp)
    return target_sharing(task.y, pairs, n_genes, rows=task.split.train)


def _save_and_write(conn: Neo4jConnection | None, cfg: ExperimentConfig, maps: Any, tasks_by: dict,
                    out: ExperimentResult) -> None:
    """Checkpoints, metrics.json and curves.png per (setting, model); ModelRun + predictions in Neo4j."""
    from moakg.kg.writeback import write_model_run, write_predictions

    head = TABLE_METRICS[cfg.task][0]
    for setting in cfg.settings:
        base_by_name: dict[str, list[dict]] = {}
        for (s, name, _seed), b in out.baselines.items():
            if s == setting:
                base_by_name.setdefault(name, []).append(b["metrics"])
        base_summary = {
            name: {m: {"mean": _mean([d.get(m, float("nan")) for d in ds]),
                       "std": _std([d.get(m, float("nan")) for d in ds])} for m in TABLE_METRICS[cfg.task]}
            for name, ds in base_by_name.items()
        }
        best_name = max(base_summary, key=lambda n: _nan_low(base_summary[n][head]["mean"]), default=None)
        for kind in cfg.models:
            runs = [out.results[(setting, kind, seed)] for seed in cfg.seeds]
            run_id = run_id_for(cfg, setting, kind, out.data_version)
            out.run_ids[(setting, kind)] = run_id
            d = runs_dir(cfg) / run_id
            d.mkdir(parents=True, exist_ok=True)
            for r in runs:
                torch.save({"state_dict": r.model.state_dict(), "model": asdict(r.model_cfg),
                            "train": asdict(r.train_cfg)}, d / f"seed{r.train_cfg.seed}.pt")
            metrics = {m: {"mean": _mean([r.metrics.get(m, float("nan")) for r in runs]),
                           "std": _std([r.metrics.get(m, float("nan")) for r in runs])}
                       for m in runs[0].metrics}
            splits = [tasks_by[(setting, s)].split.as_dict() for s in cfg.seeds]
            record = {"run_id": run_id, "config": cfg.as_dict(), "setting": setting, "model": kind,
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
                "task": cfg.task, "model": kind, "setting": setting, "config": cfg.as_dict(),
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
            rel, rows = _prediction_rows(cfg, task0, maps, runs[0])
            counts = write_predictions(conn, run_id, rel, rows)
            out.predictions_written[run_id] = counts["written"]


def _nan_low(x: float) -> float:
    return -float("inf") if x is None or math.isnan(x) else x
