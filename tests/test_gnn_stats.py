"""Bootstrap intervals, paired comparisons and similarity strata (moakg.gnn.stats, moakg.gnn.results),
against hand values and scipy / scikit-learn directly, and wired into run_experiment on toy graphs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.metrics import average_precision_score
from test_gnn_tasks import toy_graph
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.metrics import moa_metrics, target_metrics
from moakg.gnn.results import NO_STRUCTURE, ExperimentResult, similarity_strata_of, stratum_names
from moakg.gnn.run import run_experiment
from moakg.gnn.stats import (
    Scorer,
    bootstrap_ci,
    moa_scorer,
    paired_comparison,
    paired_rows,
    per_compound_mrr,
    per_row_average_precision,
    target_scorer,
)
from moakg.gnn.tasks import make_signature_task


# ---------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_is_scipys_percentile_interval() -> None:
    x = np.random.default_rng(3).normal(size=40)
    got = bootstrap_ci(lambda idx: float(x[idx].mean()), x.size, n_boot=500, seed=7, level=0.9)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=500, vectorized=False, method="percentile",
                                confidence_level=0.9, rng=np.random.default_rng(7)).confidence_interval
    assert got == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert got[0] < x.mean() < got[1]
    # the same seed is the same interval; a higher level is a wider one
    assert bootstrap_ci(lambda idx: float(x[idx].mean()), x.size, n_boot=500, seed=7, level=0.9) == got
    wide = bootstrap_ci(lambda idx: float(x[idx].mean()), x.size, n_boot=500, seed=7, level=0.99)
    assert wide[0] < got[0] and wide[1] > got[1]


def test_bootstrap_ci_skips_undefined_resamples() -> None:
    # defined (always 0.5) only when row 0 is drawn: scipy would give nan, the helper the defined ones
    def half_if_row0(idx: np.ndarray) -> float:
        return 0.5 if (idx == 0).any() else math.nan

    assert bootstrap_ci(half_if_row0, 3, n_boot=200) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ci(lambda idx: math.nan, 5, n_boot=50))
    assert all(math.isnan(v) for v in bootstrap_ci(lambda idx: 1.0, 0))
    assert bootstrap_ci(lambda idx: float(idx.sum()), 1, n_boot=20) == (0.0, 0.0)  # one row: no spread
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(lambda idx: 1.0, 3, level=95)


# ---------------------------------------------------------------------------------------------- per row
def test_per_row_average_precision_hand_values_and_sklearn() -> None:
    y = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.float)
    s = torch.tensor([[0.9, 0.5, 0.1], [0.3, 0.2, 0.1], [0.8, 0.7, 0.1]])
    got = per_row_average_precision(y, s)
    # row 2: negative first, positives at ranks 2 and 3: (1/2 + 2/3) / 2
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == pytest.approx((1 / 2 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    yy, ss = (rng.random((30, 6)) < 0.3).astype(float), rng.random((30, 6))
    ref = [average_precision_score(yy[i], ss[i]) if yy[i].any() else math.nan for i in range(30)]
    np.testing.assert_allclose(per_row_average_precision(yy, ss), ref)


def test_per_compound_mrr_hand_values() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1],   # compound 4: true 1 and 3, known 0
                           [0.5, 0.5, 0.2, 0.0],   # compound 7: true 0, gene 1 tied
                           [0.1, 0.2, 0.3, 0.4]])  # compound 9: no test pair
    pos = torch.tensor([[4, 4, 7], [1, 3, 0]])
    known = torch.tensor([[4, 9], [0, 2]])
    mrr, n = per_compound_mrr(scores, torch.tensor([4, 7, 9]), pos, known)
    # compound 4: competitors are gene 2 only (0 known, 1 and 3 true): ranks 1 and 2 -> (1 + 1/2) / 2;
    # compound 7: one tied competitor, one lower: rank 1 + 1/2
    assert mrr[0] == pytest.approx(0.75) and mrr[1] == pytest.approx(2 / 3) and math.isnan(mrr[2])
    assert n.tolist() == [2, 1, 0]


def _random_target_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    comps = torch.tensor([2, 5, 6, 8, 11, 12])
    scores = torch.rand(6, 15, generator=g)
    scores[0, :5] = 0.5  # ties
    pos = torch.tensor([[2, 2, 5, 6, 6, 6, 8, 11, 12], [0, 3, 7, 1, 2, 14, 9, 4, 4]])
    known = torch.tensor([[2, 5, 8, 8, 3], [1, 8, 0, 2, 0]])
    return scores, comps, pos, known


def test_scorers_reproduce_the_reported_metrics() -> None:
    scores, comps, pos, known = _random_target_case()
    full = target_metrics(scores, pos, compounds=comps, known=known)
    sc = target_scorer(scores, comps, pos, known)
    assert sc.point() == pytest.approx(full["mrr"])
    mrr, n = per_compound_mrr(scores, comps, pos, known)
    assert float((mrr * n).sum() / n.sum()) == pytest.approx(full["mrr"])
    # a subset of rows is the metric of those compounds' pairs alone
    keep = torch.isin(pos[0], comps[[1, 2]])
    sub = target_metrics(scores[[1, 2]], pos[:, keep], compounds=comps[[1, 2]], known=known)
    assert sc.value(np.array([1, 2])) == pytest.approx(sub["mrr"])
    # a row drawn twice counts its pairs twice
    assert sc.value(np.array([0, 0, 1])) == pytest.approx((2 * mrr[0] * 2 + mrr[1]) / 5)

    rng = np.random.default_rng(1)
    y = torch.tensor((rng.random((25, 4)) < 0.3).astype(np.float32))
    s = torch.tensor(rng.random((25, 4)), dtype=torch.float32)
    ms = moa_scorer(y, s, torch.arange(100, 125))
    assert ms.point() == pytest.approx(moa_metrics(y, s)["micro_auprc"])
    np.testing.assert_allclose(ms.per_row, per_row_average_precision(y, s))


# ---------------------------------------------------------------------------------------------- pairs
def test_paired_comparison_is_scipys_wilcoxon() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(30), rng.random(30)
    a[3], b[7] = math.nan, math.nan  # a pair with an undefined score is dropped
    got = paired_comparison(a, b, n_boot=300)
    ok = ~(np.isnan(a) | np.isnan(b))
    ref = scipy.stats.wilcoxon(a[ok], b[ok])
    assert got.n_pairs == 28
    assert got.mean_diff == pytest.approx(float(np.mean(a[ok] - b[ok])))
    assert got.statistic == pytest.approx(ref.statistic) and got.p_value == pytest.approx(ref.pvalue)
    assert got.ci_low < got.mean_diff < got.ci_high
    d = a[ok] - b[ok]
    assert (got.ci_low, got.ci_high) == bootstrap_ci(lambda idx: float(d[idx].mean()), d.size, n_boot=300)


def test_paired_comparison_hand_cases() -> None:
    # differences 1, 2, 3, 4 all positive: W- = 0, exact two-sided p = 2 / 2^4
    pc = paired_comparison(np.array([1.0, 2, 3, 4]), np.zeros(4), n_boot=100)
    assert pc.mean_diff == 2.5 and pc.statistic == 0.0 and pc.p_value == pytest.approx(0.125)
    same = paired_comparison(np.array([0.2, 0.5]), np.array([0.2, 0.5]))
    assert same.p_value == 1.0 and same.mean_diff == 0.0 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    none = paired_comparison(np.array([math.nan]), np.array([0.1]))
    assert none.n_pairs == 0 and math.isnan(none.p_value)
    with pytest.raises(ValueError, match="shape"):
        paired_comparison(np.zeros(2), np.zeros(3))


def test_grouped_bootstrap_counts_a_repeated_compound_once() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.random(20), rng.random(20)
    # every compound twice with the same pair (two seeds): resampling compounds is resampling the 20
    twice = paired_comparison(np.tile(a, 2), np.tile(b, 2), groups=np.tile(np.arange(20), 2), n_boot=300)
    once = paired_comparison(a, b, n_boot=300)
    assert twice.n_pairs == 40 and twice.mean_diff == pytest.approx(once.mean_diff)
    assert (twice.ci_low, twice.ci_high) == pytest.approx((once.ci_low, once.ci_high))


def test_paired_rows_align_by_node() -> None:
    def sc(nodes: list[int], per_row: list[float]) -> Scorer:
        return Scorer("x", np.array(nodes), lambda rows: 0.0, lambda: np.array(per_row))

    a, b, nodes = paired_rows(sc([5, 3, 9], [0.5, 0.3, 0.9]), sc([9, 1, 5], [0.09, 0.01, 0.05]))
    assert nodes.tolist() == [5, 9] and a.tolist() == [0.5, 0.9] and b.tolist() == [0.05, 0.09]


# ---------------------------------------------------------------------------------------------- strata
def test_similarity_strata_of_hand_fingerprints() -> None:
    g = HeteroData()
    g["Compound"].fp = torch.tensor([[1, 1, 1, 0, 0, 0],   # 0 train
                                     [0, 0, 1, 1, 0, 0],   # 1 train
                                     [1, 1, 0, 0, 0, 0],   # 2 test: 2/3 to compound 0
                                     [0, 0, 0, 0, 1, 1],   # 3 test: 0 to both
                                     [1, 1, 1, 0, 0, 0],   # 4 test: compound 0 itself
                                     [0, 0, 0, 0, 0, 0],   # 5 test: no structure
                                     [0, 0, 0, 0, 1, 1]],  # 6 train, but flagged without structure
                                    dtype=torch.float)
    g["Compound"].has_structure = torch.tensor([1, 1, 1, 1, 1, 0, 0], dtype=torch.bool)
    task = SimpleNamespace(graph=g, split=SimpleNamespace(train=torch.tensor([0, 1, 6])))
    # compound 6 (a copy of compound 3) is not a training structure: compound 3 stays below 0.4
    got = similarity_strata_of(task, torch.tensor([2, 3, 4, 5]))
    assert got == ["0.4-0.7", "<0.4", ">=0.7", NO_STRUCTURE]
    del g["Compound"].has_structure  # without the flag an all-zero fingerprint is no structure
    assert similarity_strata_of(task, torch.tensor([5, 4])) == [NO_STRUCTURE, ">=0.7"]
    assert stratum_names() == ["<0.4", "0.4-0.7", ">=0.7", NO_STRUCTURE]


def test_signature_rows_are_stratified_by_their_compound() -> None:
    data, maps = toy_graph(n_compounds=60, signal="signature", n_cells=4)
    task = make_signature_task(data, maps, split="cell_line", seed=0)
    labels = similarity_strata_of(task, task.split.test)
    train_comps = set(task.compound[task.split.train].tolist())
    has = data["Compound"].has_structure
    for sig, lab in zip(task.split.test.tolist(), labels, strict=True):
        c = int(task.compound[sig])
        if not has[c]:
            assert lab == NO_STRUCTURE
        elif c in train_comps:  # the same compound trained in another cell line: similarity 1
            assert lab == ">=0.7"


# ---------------------------------------------------------------------------------------------- wired in
def _parse_ci(text: str) -> tuple[float, float]:
    low, high = text.strip("[]").split(",")
    return float(low), float(high)


def _point(res: ExperimentResult, setting: str, method: str, seed: int) -> float:
    head = res.table_columns[4]
    if method.startswith("gnn:"):
        return res.results[(setting, method[4:], seed)].metrics[head]
    return res.baselines[(setting, method, seed)]["metrics"][head]


def _n_rows(res: ExperimentResult, setting: str, method: str, seed: int) -> int:
    if method.startswith("gnn:"):
        return int(res.results[(setting, method[4:], seed)].test_index.numel())
    return int(res.baselines[(setting, method, seed)]["n_eval"])


def _check_experiment(res: ExperimentResult, head: str) -> None:
    cfg = res.config
    setting, seed0 = cfg.settings[0], cfg.seeds[0]
    # the table keeps its columns and appends ci95, which holds the first seed's point metric
    assert res.table_columns == ["setting", "method", "n_test", "n_sig", *res.table_columns[4:-1], "ci95"]
    assert res.table_columns[4] == head
    assert len(res.table) >= 5
    for row in res.table:
        low, high = _parse_ci(row["ci95"])
        point = _point(res, setting, row["method"], seed0)
        assert low <= point <= high, (row["method"], low, point, high)
        assert res.evaluation.ci95[(setting, row["method"])] == pytest.approx((low, high), abs=5e-4)
    # best GNN vs best baseline, paired on the same test rows, pooled over seeds
    comp = res.evaluation.comparison[setting]
    assert comp["gnn"] == "gnn:sage" and comp["metric"] == head and comp["seeds"] == list(cfg.seeds)
    base_means: dict[str, list[float]] = {}
    for (_s, name, _seed), b in res.baselines.items():
        base_means.setdefault(name, []).append(b["metrics"][head])
    assert np.mean(base_means[comp["baseline"]]) == max(np.mean(v) for v in base_means.values())
    assert comp["baseline_mean"] == pytest.approx(np.mean(base_means[comp["baseline"]]))
    assert 0 <= comp["p_value"] <= 1 and comp["ci_low"] <= comp["mean_diff"] <= comp["ci_high"]
    assert 0 < comp["n_pairs"] <= sum(_n_rows(res, setting, "gnn:sage", s) for s in cfg.seeds)
    assert res.evaluation.comparison_table[0]["n_pairs"] == comp["n_pairs"]
    # the runners-up follow, best first, against the same GNN
    rows = [r for r in res.evaluation.comparison_table if r["setting"] == setting]
    ranked = sorted(base_means, key=lambda n: np.mean(base_means[n]), reverse=True)
    assert [r["baseline"] for r in rows] == ranked[: len(rows)] and len(rows) == min(3, len(ranked))
    assert {r["gnn"] for r in rows} == {"gnn:sage"}
    # strata: per method and seed the n add up to the rows scored, the bins are the known ones
    names = set(stratum_names())
    totals: dict[tuple[str, int], int] = {}
    for r in res.evaluation.strata:
        assert r["stratum"] in names
        totals[(r["method"], r["seed"])] = totals.get((r["method"], r["seed"]), 0) + r["n"]
    methods = {row["method"] for row in res.table}
    assert {m for m, _ in totals} == methods
    for (method, seed), total in totals.items():
        assert total == _n_rows(res, setting, method, seed), (method, seed)
    assert all(r["stratum"] in names for r in res.evaluation.strata_table)
    # metrics.json carries the same, nan as null
    record = json.loads((next(iter(res.out_dirs.values())) / "metrics.json").read_text())
    assert record["comparison"]["p_value"] == pytest.approx(comp["p_value"])
    assert record["test_metric_ci95"] == pytest.approx(list(res.evaluation.ci95[(setting, "gnn:sage")]))
    assert len(record["strata"]) == sum(r["setting"] == setting for r in res.evaluation.strata)


def test_run_experiment_moa_reports_intervals_comparison_and_strata(tmp_path: Path) -> None:
    data, maps = toy_graph(n_compounds=150, signal="fingerprint")
    # a plain GNN (no votes, no own-feature branch: neither baseline is part of it) for 5 epochs
    cfg = TrainConfig(task="moa", models=("sage",), split="random", settings=("phenotype",), seeds=(0, 1),
                      epochs=5, hidden=16, baseline_epochs=10, out=tmp_path, write=False, label_trick=False,
                      feature_mlp=0)
    res = run_experiment(None, cfg, data, maps, log=lambda _: None, n_boot=200)
    _check_experiment(res, "micro_auprc")
    # fingerprints carry the labels here: the fingerprint kNN beats a 5-epoch GNN, and the test says so
    comp = res.evaluation.comparison["phenotype"]
    assert comp["mean_diff"] < 0 and comp["p_value"] < 0.05


def test_run_experiment_target_reports_intervals_comparison_and_strata(tmp_path: Path) -> None:
    data, maps = toy_graph(n_compounds=120, signal="fingerprint")
    cfg = TrainConfig(task="target", models=("sage",), split="random", settings=("phenotype",), seeds=(0,),
                      epochs=3, hidden=16, baseline_epochs=10, out=tmp_path, write=False)
    res = run_experiment(None, cfg, data, maps, log=lambda _: None, n_boot=200)
    _check_experiment(res, "mrr")


def test_run_experiment_signature_task_pairs_signatures(tmp_path: Path) -> None:
    data, maps = toy_graph(n_compounds=80, signal="signature", n_cells=8)  # 8: a non-empty val part
    cfg = TrainConfig(task="moa", models=("sage",), split="cell_line", settings=("phenotype",), seeds=(0,),
                      epochs=3, hidden=16, baseline_epochs=10, out=tmp_path, write=False)
    res = run_experiment(None, cfg, data, maps, log=lambda _: None, n_boot=100)
    _check_experiment(res, "micro_auprc")
    # a test signature's compound was trained on in another cell line: nearly all rows are '>=0.7'
    gnn = [r for r in res.evaluation.strata if r["method"] == "gnn:sage"]
    assert max(gnn, key=lambda r: r["n"])["stratum"] == ">=0.7"
