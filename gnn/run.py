"""The experiment driver: seeds x settings x models, every baseline on the same split, one results table.

    from moakg.gnn.config import TrainConfig
    from moakg.gnn.run import run_experiment
    result = run_experiment(conn, TrainConfig(task="moa", models=("sage", "hgt"), seeds=(0, 1, 2)))
    print(result.table)                 # GNNs next to the baselines, mean ± std over seeds, ci95
    print(result.evaluation.comparison_table)  # best GNN vs best baseline: paired Wilcoxon, bootstrap CI
    print(result.evaluation.strata_table)      # headline metric by similarity to the training compounds

For every setting (``phenotype``, ``known_targets``) and seed the task and its split are made once; each
GNN and every baseline of :mod:`moakg.gnn.baselines` is trained and scored on that same split. Per
(setting, model) one ``(:ModelRun)`` is written with the config, the graph's completed IngestRun ids, the
split(s), metrics and baseline metrics, and a checkpoint directory (see :mod:`moakg.gnn.results`); the
first seed's model writes the top-k predictions of its test compounds.

``label_noise`` adds the robustness experiment: training labels flipped (uniform and target-structured,
:mod:`moakg.gnn.noise`) at each rate (with ``noisy_validation`` the validation labels too), BCE against
GCE and small-loss selection, GCE's q and the forget rate chosen on validation, test metric on clean
labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.errors import UserError
from moakg.gnn import tasks
from moakg.gnn.config import STRUCTURE_SPLITS, TrainConfig
from moakg.gnn.fit import RunResult
from moakg.gnn.results import (
    TABLE_METRICS,
    ExperimentResult,
    evaluation_tables,
    mean_std,
    save_and_write,
    table_rows,
)
from moakg.gnn.stats import N_BOOT
from moakg.gnn.train import train
from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import edge_type

__all__ = ["ExperimentResult", "TrainConfig", "make_task", "mean_std", "run_experiment"]


def make_task(cfg: TrainConfig, data: HeteroData, maps: Any, setting: str, seed: int,
              smiles: Sequence[str | None] | None) -> Any:
    """The task of ``cfg`` for one setting and seed, checked for label leakage."""
    if cfg.task == "target":
        task = tasks.make_target_task(data, maps, cfg.split, seed, setting, smiles,
                                      cluster_threshold=cfg.cluster_threshold)
    elif cfg.split == "cell_line":
        task = tasks.make_signature_task(data, maps, "cell_line", seed, cfg.min_per_class, setting)
    else:
        task = tasks.make_moa_task(data, maps, cfg.split, seed, cfg.min_per_class, setting, smiles,
                                   cluster_threshold=cfg.cluster_threshold)
    tasks.assert_no_leakage(task)
    require_labels(task)
    return task


def split_smiles(cfg: TrainConfig, conn: Neo4jConnection | None, maps: Any) -> list[str | None] | None:
    """Compound SMILES for a scaffold or cluster split (from the export, else from the graph); None
    otherwise."""
    if cfg.split not in STRUCTURE_SPLITS:
        return None
    smiles = getattr(maps, "smiles", None)
    if smiles is None and conn is not None:
        from moakg.kg.lookups import compound_smiles

        smiles = compound_smiles(conn, maps.keys["Compound"])
    return smiles


def _sample_weights(cfg: TrainConfig, task: Any, maps: Any) -> Tensor | None:
    """Signature-quality weights per labelled node (signatures; compounds: mean over their signatures)."""
    if not cfg.quality_weights or "quality" not in task.graph["Signature"]:
        return None
    from moakg.gnn.losses import quality_weights

    w_sig = quality_weights(task.graph["Signature"].quality, getattr(maps, "quality_fields", None)
                            or ("cc_mean", "n_replicates", "tas"))
    if isinstance(task, tasks.SignatureTask):
        return w_sig
    n_c = int(task.graph["Compound"].num_nodes)
    et = edge_type("HAS_SIGNATURE")
    total, count = torch.zeros(n_c), torch.zeros(n_c)
    if et in task.graph.edge_types:
        ei = task.graph[et].edge_index
        total.index_add_(0, ei[0], w_sig[ei[1]])
        count.index_add_(0, ei[0], torch.ones(ei.size(1)))
    return torch.where(count > 0, total / count.clamp(min=1), torch.ones(n_c))


def run_experiment(
    conn: Neo4jConnection | None,
    cfg: TrainConfig,
    data: HeteroData | None = None,
    maps: Any = None,
    log: Callable[[str], object] = print,
    n_boot: int = N_BOOT,
) -> ExperimentResult:
    """Run ``cfg`` end to end (export, tasks, GNNs, baselines, noise experiment, write-back).

    ``conn`` may be None when ``data``/``maps`` are given and ``cfg.write`` is False (nothing is read
    from or written to Neo4j then; the scaffold and cluster splits need ``maps.smiles``). ``n_boot``:
    bootstrap resamples of the ``ci95`` column and the comparison's interval
    (:func:`~moakg.gnn.results.evaluation_tables`).
    """
    cfg.validate()
    from moakg.gnn.baselines import n_with_signature

    if data is None or maps is None:
        if conn is None:
            raise ValueError("run_experiment needs a Neo4j connection or data and maps")
        from moakg.kg.export import export_heterodata

        data, maps = export_heterodata(conn, progress=False)
    version = _data_version(conn, maps)
    smiles = split_smiles(cfg, conn, maps)
    results: dict[tuple[str, str, int], RunResult] = {}
    base: dict[tuple[str, str, int], dict[str, Any]] = {}
    tasks_by: dict[tuple[str, int], Any] = {}
    n_sig: dict[tuple[str, int], int] = {}
    head = TABLE_METRICS[cfg.task][0]
    reusable: dict[int, tuple[Any, list[Any]]] = {}  # seed -> (MoA task, its setting-free baselines)
    for setting in cfg.settings:
        for seed in cfg.seeds:
            task = make_task(cfg, data, maps, setting, seed, smiles)
            tasks_by[(setting, seed)] = task
            n_sig[(setting, seed)] = n_with_signature(task)
            weights = _sample_weights(cfg, task, maps)
            for kind in cfg.models:
                res = train(task, cfg, kind, seed, sample_weight=weights)
                results[(setting, kind, seed)] = res
                value = res.metrics.get(head, float("nan"))
                log(f"{setting:13s} seed {seed}  gnn:{kind:5s} {head} {value:.3f}  (best epoch "
                    f"{res.best_epoch}/{res.epochs_run}, {res.seconds_per_epoch * 1000:.0f} ms/epoch, "
                    f"{res.mode})")
            if cfg.baselines:
                for b in _baselines(task, cfg, seed, reusable):
                    base[(setting, b.name, seed)] = {"metrics": b.metrics, "n_eval": b.n_eval, "note": b.note,
                                                     "scores": b.scores, "eval_idx": b.eval_idx}
    ev = evaluation_tables(cfg, tasks_by, results, base, n_boot=n_boot)
    table = table_rows(cfg, results, base, n_sig, ev.ci95)
    noise_table = _noise_experiment(cfg, data, tasks_by, log) if cfg.label_noise else []
    out = ExperimentResult(cfg, table, noise_table, {}, {}, results, base, data_version=version,
                           evaluation=ev)
    save_and_write(conn, cfg, maps, tasks_by, out)
    return out


def _baselines(task: Any, cfg: TrainConfig, seed: int, reusable: dict[int, tuple[Any, list[Any]]]) -> list:
    """Every baseline of ``task``. An MoA task's baselines read features, labels and the split, never the
    held-out compounds' TARGETS edges, save the setting-dependent ones: when this seed's other setting
    had the same split and labels, its results are reused and only :func:`setting_baselines` run
    (halves the baseline time of ``--setting both``)."""
    from moakg.gnn.baselines import SETTING_BASELINES, run_baselines, setting_baselines

    prev = reusable.get(seed)
    if prev is not None and _same_labels_and_split(prev[0], task):
        return prev[1] + setting_baselines(task, seed, cfg.baseline_epochs, cfg.device, lr=cfg.lr)
    out = run_baselines(task, seed=seed, epochs=cfg.baseline_epochs, device=cfg.device, lr=cfg.lr)
    if isinstance(task, tasks.MoATask):
        reusable[seed] = (task, [b for b in out if b.name not in SETTING_BASELINES])
    return out


def _same_labels_and_split(a: Any, b: Any) -> bool:
    return (isinstance(a, tasks.MoATask) and isinstance(b, tasks.MoATask) and torch.equal(a.y, b.y)
            and all(torch.equal(getattr(a.split, p), getattr(b.split, p)) for p in ("train", "val", "test")))


def _data_version(conn: Neo4jConnection | None, maps: Any) -> list[str]:
    state = getattr(maps, "graph_state", None)
    if state:
        return sorted(r["id"] for r in state if r.get("status") == "completed")
    if conn is not None:
        from moakg.kg.writeback import data_version

        return data_version(conn)
    return []


#: the label-noise experiment's candidates, each chosen on validation: GCE's q and small-loss's forget rate
GCE_Q_GRID = (0.1, 0.3, 0.5)
FORGET_RATE_GRID = (0.1, 0.2, 0.4)


def _noise_experiment(cfg: TrainConfig, data: HeteroData, tasks_by: dict, log: Callable,
                      q_grid: Sequence[float] = GCE_Q_GRID,
                      forget_grid: Sequence[float] = FORGET_RATE_GRID) -> list[dict]:
    """Test metric on clean labels after training on flipped labels: BCE vs GCE vs small-loss selection
    per mode and rate.

    GCE's ``gce_q`` (from ``q_grid``) and small-loss's ``forget_rate`` (from ``forget_grid``) are chosen
    per mode and rate by the mean over seeds of the validation micro AUPRC (ties: the first in the grid);
    the row gives the chosen value (``gce_q``, ``small_loss_forget``) and the test metric of that choice.
    Validation labels are clean, or flipped like the training labels with ``cfg.noisy_validation``
    (``val_labels``: what a user with noisy labels could validate on); test labels are never flipped and
    never read by a choice. Runs the first model kind in the first setting (the table would otherwise
    multiply by both).
    """
    from moakg.gnn.noise import noisy_split_labels

    setting, kind = cfg.settings[0], cfg.models[0]
    head = TABLE_METRICS["moa"][0]
    rows = []
    et = edge_type("TARGETS")
    pairs = data[et].edge_index if et in data.edge_types else torch.zeros(2, 0, dtype=torch.long)
    candidates: list[tuple[str, str | None, Sequence[Any]]] = [
        ("bce", None, [None]), ("gce", "gce_q", q_grid), ("small_loss", "forget_rate", forget_grid)]
    chosen_column = {"gce_q": "gce_q", "forget_rate": "small_loss_forget"}
    for mode in cfg.noise_modes:
        for p in cfg.label_noise:
            noisy: dict[int, Tensor] = {}
            for seed in cfg.seeds:
                task = tasks_by[(setting, seed)]
                share = None
                if mode == "structured":
                    share = _shares_target(task, pairs, int(data["Gene"].num_nodes))
                noisy[seed] = noisy_split_labels(task.y, task.split, p, mode, seed, share,
                                                 validation=cfg.noisy_validation)
            row: dict[str, Any] = {"setting": setting, "model": kind, "noise": mode, "p": p,
                                   "val_labels": "noisy" if cfg.noisy_validation else "clean"}
            for loss, name, grid in candidates:
                best: tuple[float, Any, list[float]] | None = None
                for value in grid:
                    run_cfg = cfg.updated({"loss": loss, **({name: value} if name else {})})
                    val, test = [], []
                    for seed in cfg.seeds:
                        res = train(tasks_by[(setting, seed)], run_cfg, kind, seed, y=noisy[seed])
                        val.append(res.val_metrics.get(head, float("nan")))
                        test.append(res.metrics[head])
                    score = _mean_or_worst(val)
                    if name:
                        log(f"noise {mode:10s} p={p:.2f} {loss} {name}={value}: validation {head} "
                            f"{score:.4f}")
                    if best is None or score > best[0]:
                        best = (score, value, test)
                assert best is not None
                row[f"{loss}_{head}"] = mean_std(best[2])
                if name:
                    row[chosen_column[name]] = best[1]
                chosen = f" ({name} {best[1]}, chosen on validation)" if name else ""
                log(f"noise {mode:10s} p={p:.2f} {loss}: {head} {row[f'{loss}_{head}']}{chosen}")
            rows.append(row)
    return rows


def _mean_or_worst(values: Sequence[float]) -> float:
    """Mean of the finite ``values``; -inf without one (a candidate without a validation score loses)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else -float("inf")


def _shares_target(task: Any, pairs: Tensor, n_genes: int) -> Tensor:
    """[C, C] MoAs sharing a target, from the training compounds' TARGETS (signature task: their
    compounds)."""
    from moakg.gnn.noise import target_sharing

    if isinstance(task, tasks.SignatureTask):  # training signatures -> their compounds' labels and targets
        comp = task.compound[task.split.train]
        comp = comp[comp >= 0].unique()
        y_c = torch.zeros(int(task.graph["Compound"].num_nodes), task.y.size(1))
        ok = task.compound >= 0
        y_c[task.compound[ok]] = task.y[ok]
        return target_sharing(y_c, pairs, n_genes, rows=comp)
    return target_sharing(task.y, pairs, n_genes, rows=task.split.train)


def require_labels(task: Any) -> None:
    """Raise a clear error when ``task`` has nothing to learn (e.g. a graph without MoA labels)."""
    if task.split.train.numel() == 0 or task.split.test.numel() == 0:
        raise UserError("the graph has no labelled compounds to train and test on (MoA: HAS_MOA edges of "
                        "classes with >= --min-per-class compounds; targets: TARGETS edges); ingest a "
                        "source with labels first")
