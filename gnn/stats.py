"""Uncertainty of a test metric and paired comparisons of two methods scored on the same test rows.

A results table of mean ± std over seeds says how much a metric moves with the split and the training
seed, not how much of a difference between two methods the test set can resolve. This module adds:

* :func:`bootstrap_ci`: a percentile bootstrap interval of any metric over test rows (rows resampled
  with replacement, the metric recomputed on each resample), with scipy's ``scipy.stats.bootstrap``
  doing the resampling. Resamples where the metric is undefined (nan: e.g. no positive label drawn) are
  left out of the percentiles rather than making the whole interval nan.
* Per-compound scores for pairing: :func:`per_row_average_precision` (MoA: scikit-learn's average
  precision of each row's labels) and :func:`per_compound_mrr` (targets: the filtered, tie-averaged
  reciprocal rank of :func:`~moakg.gnn.metrics.target_metrics`, averaged over each compound's test
  pairs), and :class:`Scorer`, which recomputes a headline metric on any multiset of rows.
* :func:`paired_comparison`: mean difference, Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) and
  a paired bootstrap interval of the mean difference.

Everything here is a pure function of arrays; :mod:`moakg.gnn.results` wires it into an experiment.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy.stats import bootstrap, wilcoxon
from sklearn.metrics import average_precision_score
from torch import Tensor

from moakg.gnn.metrics import average_precision, target_metrics

#: resamples of the bootstrap intervals (the percentile interval's 2.5 % tail is then 25 resamples)
N_BOOT = 1000


def bootstrap_ci(per_row_fn: Callable[[np.ndarray], float], n_rows: int, n_boot: int = N_BOOT, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of a metric over ``n_rows`` test rows.

    Args:
        per_row_fn: the metric of a multiset of rows, given as a long array of row positions
            ``0..n_rows-1`` (repeats allowed: a row drawn twice counts twice). nan (or None) where the
            metric is undefined on that resample.
        n_rows: rows of the test set; each resample draws ``n_rows`` of them with replacement.
        n_boot: number of resamples; seed: of the resampling (the same seed gives the same interval).
        level: coverage; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of
            the resampled metrics (numpy's linear interpolation, as scipy's ``method='percentile'``).

    The percentile rather than scipy's default BCa interval: BCa's jackknife recomputes the metric
    ``n_rows`` more times and is undefined as soon as one leave-one-out metric is nan. Undefined resamples
    are skipped (the interval is conditional on the metric being defined); ``(nan, nan)`` when no resample
    (or no row) is left. One row gives the degenerate ``(m, m)``.
    """
    if n_rows <= 0 or n_boot <= 0:
        return (math.nan, math.nan)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")

    def stat(idx: np.ndarray) -> float:
        v = per_row_fn(np.asarray(idx, dtype=np.int64))
        return math.nan if v is None else float(v)

    if n_rows == 1:  # every resample is the one row (scipy refuses a single observation)
        v = stat(np.zeros(1, dtype=np.int64))
        return (v, v)
    with warnings.catch_warnings():  # scipy warns when some resamples are nan; they are dropped below
        warnings.simplefilter("ignore")
        res = bootstrap((np.arange(n_rows),), stat, n_resamples=n_boot, vectorized=False,
                        method="percentile", confidence_level=level, rng=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    dist = dist[~np.isnan(dist)]
    if dist.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return (float(low), float(high))


# ---------------------------------------------------------------------------------------------- per row
def per_row_average_precision(y_true: Tensor | np.ndarray, scores: Tensor | np.ndarray) -> np.ndarray:
    """float ``[n]``: scikit-learn's average precision of each row's labels (``y > 0.5``) ranked by its
    scores, nan for a row without a positive (AP is undefined there).

    The per-compound MoA score of a paired comparison: how well a method ranks that compound's true
    MoAs above its other classes.
    """
    y = np.asarray(y_true.detach().cpu().double() if isinstance(y_true, Tensor) else y_true) > 0.5
    s = np.asarray(scores.detach().cpu().double() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ")
    out = np.full(y.shape[0], np.nan)
    for i in np.flatnonzero(y.any(1)):
        out[i] = average_precision_score(y[i], s[i])
    return out


def per_compound_mrr(scores: Tensor, compounds: Tensor, pos: Tensor, known: Tensor | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores``: the mean reciprocal rank of the compound's held-out pairs, and their count.

    Args: as :func:`~moakg.gnn.metrics.target_metrics` (``scores`` ``[n_rows, n_genes]``, ``compounds``
        the compound of each row, ``pos`` ``[2, P]`` test pairs, ``known`` the training pairs).

    Each compound's ranks depend only on its own row, its known pairs and its own held-out pairs, so
    :func:`~moakg.gnn.metrics.target_metrics` is called on that compound alone: the same filtered,
    tie-averaged ranks as the pooled MRR, which is ``sum(n * mrr) / sum(n)`` over the rows. Rows
    without a test pair get ``(nan, 0)``.
    """
    scores, compounds, pos = scores.detach().cpu(), compounds.cpu().long(), pos.cpu().long()
    known = torch.zeros(2, 0, dtype=torch.long) if known is None else known.cpu().long()
    mrr, n = np.full(compounds.numel(), np.nan), np.zeros(compounds.numel(), dtype=np.int64)
    pos_of = _columns_by_first_row(pos)
    known_of = _columns_by_first_row(known)
    empty = torch.zeros(2, 0, dtype=torch.long)
    for r, c in enumerate(compounds.tolist()):
        p = pos_of.get(c)
        if p is None:
            continue
        m = target_metrics(scores[r:r + 1], p, compounds=compounds[r:r + 1], known=known_of.get(c, empty),
                           ranking_only=True)
        mrr[r], n[r] = m["mrr"], p.size(1)
    return mrr, n


def _columns_by_first_row(pairs: Tensor) -> dict[int, Tensor]:
    """``{compound: pairs[:, pairs[0] == compound]}`` in one sort rather than one scan per compound."""
    if pairs.numel() == 0:
        return {}
    order = pairs[0].argsort(stable=True)
    pairs = pairs[:, order]
    keys, counts = torch.unique_consecutive(pairs[0], return_counts=True)
    return dict(zip(keys.tolist(), torch.split(pairs, counts.tolist(), dim=1), strict=True))


@dataclass
class Scorer:
    """One method's test predictions, able to recompute its headline metric on any multiset of rows.

    Attributes:
        metric: the headline metric's name (``'micro_auprc'`` or ``'mrr'``).
        nodes: long ``[n]`` node index of each row (pairs two methods' rows).
        value: the headline metric of the rows at the given positions (repeats count).
        per_row_fn: computes :attr:`per_row`, float ``[n]``: the per-compound score of a paired
            comparison (nan: undefined); only when asked for (per-row AP is one scikit-learn call a row).
    """

    metric: str
    nodes: np.ndarray
    value: Callable[[np.ndarray], float]
    per_row_fn: Callable[[], np.ndarray]

    @cached_property
    def per_row(self) -> np.ndarray:
        return self.per_row_fn()

    @property
    def n_rows(self) -> int:
        return int(self.nodes.size)

    def point(self) -> float:
        """The metric on every row (equal to the table's test metric)."""
        return self.value(np.arange(self.n_rows))


def moa_scorer(y_true: Tensor, scores: Tensor, nodes: Tensor) -> Scorer:
    """Micro AUPRC (average precision over every (row, class) entry, nan without a positive: the
    ``micro_auprc`` of :func:`~moakg.gnn.metrics.moa_metrics`); per row: :func:`per_row_average_precision`."""
    y, s = y_true.detach().cpu().double(), scores.detach().cpu().double()

    def value(rows: np.ndarray) -> float:
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return average_precision(y[idx], s[idx]) if idx.numel() else math.nan

    return Scorer("micro_auprc", nodes.cpu().long().numpy(), value, lambda: per_row_average_precision(y, s))


def target_scorer(scores: Tensor, nodes: Tensor, pos: Tensor, known: Tensor | None = None) -> Scorer:
    """MRR over test pairs, a compound's pairs resampled with it (the ``mrr`` of
    :func:`~moakg.gnn.metrics.target_metrics` on all rows); per row: the compound's MRR
    (:func:`per_compound_mrr`)."""
    mrr, n = per_compound_mrr(scores, nodes, pos, known)
    weighted = np.where(n > 0, np.nan_to_num(mrr) * n, 0.0)

    def value(rows: np.ndarray) -> float:
        rows = np.asarray(rows, dtype=np.int64)
        total = n[rows].sum()
        return float(weighted[rows].sum() / total) if total else math.nan

    return Scorer("mrr", nodes.cpu().long().numpy(), value, lambda: mrr)


# ---------------------------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class PairedComparison:
    """Method A against method B on the same test rows (differences are A - B).

    Attributes:
        n_pairs: pairs where both per-row scores are defined.
        mean_diff: mean of A - B over the pairs.
        statistic, p_value: ``scipy.stats.wilcoxon`` (two-sided, zero differences dropped: ``'wilcox'``);
            ``p_value`` 1.0 when every difference is 0 and nan without a pair.
        ci_low, ci_high: paired percentile bootstrap interval of ``mean_diff``.
    """

    n_pairs: int
    mean_diff: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n_pairs": self.n_pairs, "mean_diff": self.mean_diff, "wilcoxon_statistic": self.statistic,
                "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def paired_comparison(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None, n_boot: int = N_BOOT,
                      seed: int = 0, level: float = 0.95) -> PairedComparison:
    """Paired test of per-row scores ``a`` and ``b`` (same rows, same order; nan pairs are dropped).

    The Wilcoxon signed-rank test rather than a paired t-test: per-compound AP and reciprocal ranks are
    bounded and skewed (many 1s), so the differences are far from normal.

    ``groups`` (e.g. the compound of each pair, when pairs are pooled over seeds and a compound is tested
    under several seeds) makes the bootstrap resample whole groups, so repeated compounds are not counted
    as independent evidence; without it pairs are resampled. The Wilcoxon test always treats pairs as
    independent, so with repeated compounds its p-value is optimistic.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in shape: {a.shape} vs {b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    d = a[ok] - b[ok]
    if d.size == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    if np.all(d == 0):
        stat, p = 0.0, 1.0  # no pair differs: no evidence either way (scipy would warn and divide by 0)
    else:
        w = wilcoxon(d)
        stat, p = float(w.statistic), float(w.pvalue)
    if groups is None:
        low, high = bootstrap_ci(lambda idx: float(d[idx].mean()), d.size, n_boot, seed, level)
    else:
        g = np.asarray(groups)[ok]
        _, inv = np.unique(g, return_inverse=True)
        sums, counts = np.bincount(inv, weights=d), np.bincount(inv)
        low, high = bootstrap_ci(lambda idx: float(sums[idx].sum() / counts[idx].sum()), sums.size, n_boot,
                                 seed, level)
    return PairedComparison(int(d.size), float(d.mean()), stat, p, low, high)


def paired_rows(a: Scorer, b: Scorer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row scores of ``a`` and ``b`` on the nodes both scored (in ``a``'s order), and those nodes."""
    pos_b = {int(n): i for i, n in enumerate(b.nodes.tolist())}
    ia = np.array([i for i, n in enumerate(a.nodes.tolist()) if n in pos_b], dtype=np.int64)
    ib = np.array([pos_b[int(a.nodes[i])] for i in ia], dtype=np.int64)
    return a.per_row[ia], b.per_row[ib], a.nodes[ia]
