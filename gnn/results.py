"""What an experiment leaves behind: the results tables, and per (setting, model) a run directory
(``seed<N>.pt``, ``metrics.json``, ``curves.png``) and a ``(:ModelRun)`` with its top-k predictions.

The table's ``ci95`` column, the ``comparison`` of the best GNN with the best baseline and the ``strata``
table (the headline metric by similarity to the training compounds) come from :func:`evaluation_tables`,
with the statistics of :mod:`moakg.gnn.stats`.

The run id is a hash of the config and the graph version, so re-running the same experiment on the same
graph rewrites the same run (same counts). The ModelRun and every checkpoint store the full
:class:`~moakg.gnn.config.TrainConfig` (``to_dict``), from which :func:`~moakg.gnn.explain.loading.load_run`
rebuilds the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import RunResult
from moakg.gnn.similarity_strata import DEFAULT_EDGES, max_train_similarity, strata
from moakg.gnn.stats import (
    N_BOOT,
    Scorer,
    bootstrap_ci,
    moa_scorer,
    paired_comparison,
    paired_rows,
    target_scorer,
)
from moakg.gnn.tasks import SignatureTask
from moakg.kg.connection import Neo4jConnection

#: metrics shown in the table, headline first
TABLE_METRICS = {
    "moa": ("micro_auprc", "macro_auprc", "auroc", "top1_acc", "top5_acc", "log_loss"),
    "target": ("mrr", "hits@10", "auprc", "auroc"),
}
#: config fields that do not change the trained GNN: not part of the run id
NOT_IN_RUN_ID = ("out", "write", "models", "settings", "device", "baselines", "baseline_epochs")


#: the best GNN is compared, paired, with this many baselines, best first (the first is the run's
#: recorded comparison); the runners-up show whether a win over the best holds over the next ones
COMPARED_BASELINES = 3

#: the stratum of a test row whose compound has no structure (no fingerprint to compare)
NO_STRUCTURE = "no structure"


@dataclass
class Evaluation:
    """What :func:`evaluation_tables` adds to an experiment.

    ``ci95``: ``(setting, method) -> (low, high)`` bootstrap interval of the headline metric (the table's
    ``ci95`` column). ``comparison``: ``setting -> record`` of the best GNN against the best baseline,
    ``comparison_table`` its printable rows. ``strata``: one record per (setting, method, seed,
    stratum), ``strata_table`` the printable rows (mean ± std over seeds).
    """

    ci95: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparison_table: list[dict[str, Any]] = field(default_factory=list)
    strata: list[dict[str, Any]] = field(default_factory=list)
    strata_table: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExperimentResult:
    """Tables (list of row dicts, ready for :func:`moakg.console.print_table`) and where things went;
    ``evaluation`` holds the intervals, the paired comparison and the similarity strata."""

    config: TrainConfig
    table: list[dict[str, Any]]
    noise_table: list[dict[str, Any]]
    run_ids: dict[tuple[str, str], str]  # (setting, model) -> ModelRun id
    out_dirs: dict[str, Path]
    results: dict[tuple[str, str, int], RunResult] = field(repr=False)  # (setting, model, seed)
    baselines: dict[tuple[str, str, int], dict[str, Any]] = field(repr=False)  # (setting, name, seed)
    predictions_written: dict[str, int] = field(default_factory=dict)
    data_version: list[str] = field(default_factory=list)
    evaluation: Evaluation = field(default_factory=Evaluation)

    @property
    def table_columns(self) -> list[str]:
        return ["setting", "method", "n_test", "n_sig", *TABLE_METRICS[self.config.task], "ci95"]

    def sections(self) -> list[tuple[str, list[dict[str, Any]], list[str] | None]]:
        """``(title, rows, columns)`` of each table ``moakg train`` prints, in order (empty ones left
        out): the results, the paired comparison, the similarity strata, the label-noise table."""
        ev = self.evaluation
        out = [("results (test set, mean ± std over seeds " + " ".join(map(str, self.config.seeds)) + ")",
                self.table, self.table_columns),
               ("best GNN against the best baselines (paired per test compound and seed; Wilcoxon)",
                ev.comparison_table, None),
               ("by the test compound's highest Tanimoto similarity to the training compounds",
                ev.strata_table, None),
               ("label noise (training labels flipped; test labels clean)", self.noise_table, None)]
        return [(title, rows, cols) for title, rows, cols in out if rows]


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


def format_ci(ci: tuple[float, float] | None) -> str:
    """``'[0.381, 0.442]'``; ``'n/a'`` when missing or undefined."""
    if ci is None or any(math.isnan(x) for x in ci):
        return "n/a"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def table_rows(cfg: TrainConfig, results: dict, baselines: dict,
               n_sig: dict[tuple[str, int], int] | None = None,
               ci95: dict[tuple[str, str], tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """One row per (setting, method): GNNs first, then baselines, metrics as mean ± std over seeds.

    ``n_test`` is the rows scored, ``n_sig`` (from ``n_sig[(setting, seed)]``) how many of the test
    compounds have an L1000 signature; values differing between seeds are joined with ``/``. The last
    column, ``ci95``, is ``ci95[(setting, method)]`` (the headline metric's bootstrap interval over the
    test rows of the first seed, :func:`evaluation_tables`), ``'n/a'`` where not given.
    """
    metrics = TABLE_METRICS[cfg.task]
    n_sig = n_sig or {}
    ci95 = ci95 or {}
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
            row["ci95"] = format_ci(ci95.get((setting, name)))
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- uncertainty
#: what the per-compound score of a comparison is, per task
PER_ROW_SCORE = {
    "moa": "average precision of each test row's MoA labels (rows without a positive skipped)",
    "target": "mean reciprocal rank of each test compound's held-out targets (filtered, ties averaged)",
}


def headline_scorer(cfg: TrainConfig, task: Any, scores: Tensor, nodes: Tensor) -> Scorer:
    """The headline metric (``TABLE_METRICS[cfg.task][0]``) of one method's test predictions ``scores``,
    rows aligned with the node indices ``nodes`` (compounds; signature tasks: signatures)."""
    if cfg.task == "target":
        return target_scorer(scores, nodes, task.pos["test"], task.pos["train"])
    return moa_scorer(task.y[nodes.cpu().long()], scores, nodes)


def method_predictions(cfg: TrainConfig, results: dict, baselines: dict, setting: str, seed: int
                       ) -> dict[str, tuple[Tensor, Tensor]]:
    """``method -> (test scores, their node indices)`` of one setting and seed, GNNs first (``gnn:<kind>``)
    then the baselines whose entry kept ``scores`` and ``eval_idx``."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for kind in cfg.models:
        r = results.get((setting, kind, seed))
        if r is not None:
            out[f"gnn:{kind}"] = (r.test_scores, r.test_index)
    for (s, name, sd), b in baselines.items():
        if s == setting and sd == seed and b.get("scores") is not None and b.get("eval_idx") is not None:
            out[name] = (b["scores"], b["eval_idx"])
    return out


def stratum_names(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """The strata of ``edges`` in ascending order, then :data:`NO_STRUCTURE`."""
    probes = torch.tensor([edges[0] - 1.0, *edges], dtype=torch.float64)
    return [*strata(probes, edges), NO_STRUCTURE]


def similarity_strata_of(task: Any, nodes: Tensor, edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """The similarity stratum of each test row ``nodes``: its compound's highest Tanimoto similarity to
    the split's training compounds (:func:`~moakg.gnn.similarity_strata.max_train_similarity` on the task
    graph's ``Compound.fp``), binned by :func:`~moakg.gnn.similarity_strata.strata`.

    Rows are compounds, or for a signature task signatures (their compound, compared with the compounds of
    the training signatures). A row whose compound has no structure (``has_structure`` false, or an
    all-zero fingerprint where that flag is missing; a signature without a compound) is
    :data:`NO_STRUCTURE`; so is every row when the graph has no fingerprints or no training compound has
    a structure (nothing to compare with).
    """
    nodes = nodes.cpu().long().reshape(-1)
    labels = [NO_STRUCTURE] * nodes.numel()
    g = task.graph["Compound"]
    if "fp" not in g or nodes.numel() == 0:
        return labels
    fp = g.fp
    if isinstance(task, SignatureTask):
        comp, train = task.compound[nodes], task.compound[task.split.train]
    else:
        comp, train = nodes, task.split.train
    has = g.has_structure.bool() if "has_structure" in g else (fp > 0).any(1)
    train = train[train >= 0].unique()
    train = train[has[train]]
    ok = comp >= 0
    ok[ok.clone()] = has[comp[ok]]
    if train.numel() == 0 or not ok.any():
        return labels
    sims = max_train_similarity(fp[comp[ok]], fp[train])
    for i, name in zip(ok.nonzero().view(-1).tolist(), strata(sims, edges), strict=True):
        labels[i] = name
    return labels


def _best(names: Sequence[str], per_seed: dict[str, list[float]]) -> str | None:
    return max(names, key=lambda n: _nan_low(mean(per_seed[n])), default=None)


def _compound_groups(task: Any, nodes: np.ndarray) -> np.ndarray:
    """The compound of each row (signature tasks: the signature's compound; a signature without one is
    its own group, numbered below -1): the unit a paired bootstrap resamples."""
    if not isinstance(task, SignatureTask):
        return nodes
    comp = task.compound[torch.from_numpy(nodes).long()].numpy()
    return np.where(comp >= 0, comp, -2 - nodes)


def _joined(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "/".join(str(v) for v in values)


def evaluation_tables(cfg: TrainConfig, tasks_by: dict, results: dict, baselines: dict, n_boot: int = N_BOOT,
                      boot_seed: int = 0) -> Evaluation:
    """Bootstrap intervals, the best GNN against the best baseline, and the similarity strata.

    * ``ci95[(setting, method)]``: percentile bootstrap interval (``n_boot`` resamples of the test rows,
      :func:`~moakg.gnn.stats.bootstrap_ci`) of the headline metric on the test rows of the **first
      seed** the method ran with: the uncertainty from the finite test set of one split (the ± std over
      seeds is the split-to-split spread). Targets resample compounds with all their test pairs; a
      signature task resamples test signatures (signatures of one compound are not kept together).
    * ``comparison[setting]``: the GNN and the baseline with the highest mean headline metric over seeds
      (the table's means; ``comparison_table`` also has the next :data:`COMPARED_BASELINES` - 1
      baselines), paired per test row (same setting, seed, split and row), pooled over seeds,
      per-row scores as :data:`PER_ROW_SCORE` says: mean difference GNN - baseline, Wilcoxon signed-rank
      p-value, and a paired bootstrap interval of the mean difference that resamples whole compounds (a
      compound tested under several seeds, or with several signatures, is one unit). The Wilcoxon test
      treats every pair as independent, so with such repeats its p-value is optimistic.
    * ``strata``: per setting, method, seed and stratum (:func:`similarity_strata_of`) the number of test
      rows ``n`` and the headline metric on those rows (nan when undefined); ``strata_table``: per
      setting, method and stratum, ``n`` per seed (joined with ``/`` where seeds differ) and the metric's
      mean ± std over seeds.
    """
    head = TABLE_METRICS[cfg.task][0]
    ev = Evaluation()
    names = stratum_names()
    for setting in cfg.settings:
        scorers: dict[int, dict[str, Scorer]] = {}
        labels: dict[int, dict[str, list[str]]] = {}
        for seed in cfg.seeds:
            task = tasks_by.get((setting, seed))
            if task is None:
                continue
            preds = method_predictions(cfg, results, baselines, setting, seed)
            scorers[seed] = {m: headline_scorer(cfg, task, s, n) for m, (s, n) in preds.items()}
            if preds:  # one Tanimoto pass per split: every method's rows are among its test rows
                union = torch.cat([n.cpu().long() for _, n in preds.values()]).unique()
                label_of = dict(zip(union.tolist(), similarity_strata_of(task, union), strict=True))
                labels[seed] = {m: [label_of[i] for i in n.tolist()] for m, (_, n) in preds.items()}
        # ci95 of the first seed each method ran with
        for by_method in scorers.values():
            for m, sc in by_method.items():
                if (setting, m) not in ev.ci95:
                    ev.ci95[(setting, m)] = bootstrap_ci(sc.value, sc.n_rows, n_boot, boot_seed)
        # strata
        methods = list(dict.fromkeys(m for by_method in scorers.values() for m in by_method))
        for m in methods:
            per_stratum: dict[str, list[tuple[int, float]]] = {}
            for seed, by_method in scorers.items():
                if m not in by_method:
                    continue
                sc, lab = by_method[m], np.array(labels[seed][m], dtype=object)
                for name in names:
                    rows = np.flatnonzero(lab == name)
                    value = sc.value(rows) if rows.size else math.nan
                    ev.strata.append({"setting": setting, "method": m, "seed": seed, "stratum": name,
                                      "n": int(rows.size), head: value})
                    per_stratum.setdefault(name, []).append((int(rows.size), value))
            for name in names:
                items = per_stratum.get(name, [])
                if any(n for n, _ in items):
                    ev.strata_table.append({"setting": setting, "method": m, "stratum": name,
                                            "n": _joined([n for n, _ in items]),
                                            head: mean_std([v for _, v in items])})
        # best GNN vs best baseline
        gnn_means = {f"gnn:{k}": [results[(setting, k, s)].metrics.get(head, math.nan)
                                  for s in cfg.seeds if (setting, k, s) in results] for k in cfg.models}
        base_means: dict[str, list[float]] = {}
        for (s, name, _seed), b in baselines.items():
            if s == setting:
                base_means.setdefault(name, []).append(b["metrics"].get(head, math.nan))
        gnn = _best(list(gnn_means), gnn_means)
        if gnn is None:
            continue
        ranked = sorted(base_means, key=lambda n: _nan_low(mean(base_means[n])), reverse=True)
        for rank, base in enumerate(ranked[:COMPARED_BASELINES]):
            a_all, b_all, g_all, seeds_used = [], [], [], []
            for seed, by_method in scorers.items():
                if gnn in by_method and base in by_method:
                    a, b, nodes = paired_rows(by_method[gnn], by_method[base])
                    a_all.append(a)
                    b_all.append(b)
                    g_all.append(_compound_groups(tasks_by[(setting, seed)], nodes))
                    seeds_used.append(seed)
            if not seeds_used:
                continue
            pc = paired_comparison(np.concatenate(a_all), np.concatenate(b_all), groups=np.concatenate(g_all),
                                   n_boot=n_boot, seed=boot_seed)
            record = {"setting": setting, "metric": head, "gnn": gnn, "baseline": base,
                      "gnn_mean": mean(gnn_means[gnn]), "baseline_mean": mean(base_means[base]),
                      "per_row_score": PER_ROW_SCORE[cfg.task], "seeds": seeds_used, **pc.as_dict()}
            if rank == 0:
                ev.comparison[setting] = record
            ev.comparison_table.append({
                "setting": setting, "metric": head, "gnn": gnn, "baseline": base,
                "gnn_mean": f"{record['gnn_mean']:.3f}", "baseline_mean": f"{record['baseline_mean']:.3f}",
                "n_pairs": pc.n_pairs, "mean_diff": f"{pc.mean_diff:+.3f}",
                "ci95_diff": format_ci((pc.ci_low, pc.ci_high)),
                "wilcoxon_p": "n/a" if math.isnan(pc.p_value) else f"{pc.p_value:.3g}",
            })
    return ev


def json_safe(value: Any) -> Any:
    """``value`` with nan / inf floats as None and tuples as lists (strict JSON and Neo4j properties)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


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


def replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(temporary path)`` in the same folder, then rename it over ``path``:
    a reader, or another training writing the same run, never sees a half-written file."""
    tmp = path.with_name(f".{path.stem}-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plot_curves(results: Sequence[RunResult], path: Path, title: str) -> Path | None:
    """Training loss and validation metric per epoch (one line per seed) as a PNG; None without matplotlib.

    A figure of its own, not pyplot's: pyplot's global figure list is not safe for two trainings at
    once in one process (threads)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # the run still completes; the table and metrics.json carry the numbers
        return None
    fig = Figure(figsize=(10, 3.8))
    ax_l, ax_v = fig.subplots(1, 2)
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
    replace_file(path, lambda tmp: fig.savefig(tmp, dpi=110))
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
    """Checkpoints, metrics.json and curves.png per (setting, model); ModelRun + predictions in Neo4j.

    metrics.json and the ModelRun also carry ``test_metric_ci95`` (this GNN's headline interval,
    ``[low, high]``), ``comparison`` (the setting's best GNN vs best baseline record) and ``strata`` (the
    setting's per-seed stratum records) of :func:`evaluation_tables`, nan as null; on the ModelRun the
    last two are JSON strings (as ``metrics`` and ``baselines`` are).
    """
    from moakg.kg.writeback import write_model_run
    from moakg.kg.writer import run_lock

    head = TABLE_METRICS[cfg.task][0]
    config = cfg.to_dict()
    for setting in cfg.settings:
        base_by_name: dict[str, list[dict]] = {}
        for (s, name, _seed), b in out.baselines.items():
            if s == setting:
                base_by_name.setdefault(name, []).append(b["metrics"])
        base_summary = {name: _summary(ds, TABLE_METRICS[cfg.task]) for name, ds in base_by_name.items()}
        best_name = _best(list(base_by_name), {n: [d.get(head, math.nan) for d in ds]
                                               for n, ds in base_by_name.items()})
        for kind in cfg.models:
            runs = [out.results[(setting, kind, seed)] for seed in cfg.seeds]
            run_id = run_id_for(cfg, setting, kind, out.data_version)
            out.run_ids[(setting, kind)] = run_id
            writing = cfg.write and conn is not None
            # Trainings of the same run (same config, same graph) at once take turns: one writes the
            # files and the graph, then the other rewrites them whole, never a mix of the two.
            with run_lock(conn, "ModelRun", run_id) if writing and conn is not None else nullcontext():
                d = runs_dir(cfg) / run_id
                d.mkdir(parents=True, exist_ok=True)
                for r in runs:
                    ckpt = {"state_dict": r.model.state_dict(), "config": config, "kind": kind,
                            "seed": r.seed}
                    replace_file(d / f"seed{r.seed}.pt", lambda tmp, ckpt=ckpt: torch.save(ckpt, tmp))
                metrics = _summary([r.metrics for r in runs], list(runs[0].metrics))
                splits = [tasks_by[(setting, s)].split.as_dict() for s in cfg.seeds]
                ci = out.evaluation.ci95.get((setting, f"gnn:{kind}"))
                evaluation = {  # JSON-safe: nan -> null
                    "test_metric_ci95": json_safe(list(ci)) if ci is not None else None,
                    "comparison": json_safe(out.evaluation.comparison.get(setting)),
                    "strata": json_safe([r for r in out.evaluation.strata if r["setting"] == setting]),
                }
                record = {"run_id": run_id, "config": config, "setting": setting, "model": kind,
                          "data_version": out.data_version, "splits": splits, "metrics": metrics,
                          "per_seed": [r.summary() for r in runs], "baselines": base_summary, **evaluation}
                text = json.dumps(record, indent=2, default=str)
                replace_file(d / "metrics.json", lambda tmp, text=text: tmp.write_text(text))
                png = plot_curves(runs, d / "curves.png", f"{run_id}")
                out.out_dirs[run_id] = d
                if not writing or conn is None:
                    continue
                task0 = tasks_by[(setting, cfg.seeds[0])]
                first = splits[0]
                props = {
                    "task": cfg.task, "model": kind, "setting": setting, "config": config,
                    "data_version": out.data_version, "split": splits, "split_method": cfg.split,
                    "split_sizes": [first["n_train"], first["n_val"], first["n_test"]],
                    "seeds": list(cfg.seeds),
                    "metrics": metrics, "baselines": base_summary, "checkpoint": str(d),
                    "curves": str(png) if png else None, "val_metric": runs[0].val_metric_name,
                    "metric": head, "test_metric_mean": metrics[head]["mean"],
                    "test_metric_std": metrics[head]["std"],
                    "best_baseline": best_name,
                    "best_baseline_mean": base_summary[best_name][head]["mean"] if best_name else None,
                    "predictions_seed": cfg.seeds[0], "top_k": cfg.top_k,
                    "n_classes": len(getattr(task0, "classes", [])) or None,
                    **evaluation,
                }
                for m in TABLE_METRICS[cfg.task]:
                    props[f"test_{m.replace('@', '_at_')}"] = metrics.get(m, {}).get("mean")
                # the run node and its predictions in one lifecycle: `completed` only with every
                # prediction written (a crash in between leaves it `running`, and train again completes it)
                rel, rows = prediction_rows(cfg, task0, maps, runs[0])
                counts = write_model_run(conn, run_id, props, predictions=(rel, rows))
                out.predictions_written[run_id] = counts["written"]
