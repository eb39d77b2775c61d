"""Metrics and losses (moakg.gnn.metrics, moakg.gnn.losses) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from moakg.gnn.losses import gce_loss, make_loss, pos_weight_from_labels, quality_weights, weighted_bce
from moakg.gnn.metrics import average_precision, log_loss, moa_metrics, roc_auc, target_metrics, topk_accuracy

T = torch.tensor


def _brute_auc(y: list[int], s: list[float]) -> float:
    pos = [b for a, b in zip(y, s, strict=True) if a]
    neg = [b for a, b in zip(y, s, strict=True) if not a]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def _brute_ap(y: list[int], s: list[float]) -> float:
    """sklearn's step-function AP: thresholds = distinct scores, descending."""
    ap, prev_r, n_pos = 0.0, 0.0, sum(y)
    for t in sorted(set(s), reverse=True):
        sel = [a for a, b in zip(y, s, strict=True) if b >= t]
        r = sum(sel) / n_pos
        ap += (r - prev_r) * sum(sel) / len(sel)
        prev_r = r
    return ap


def test_roc_auc_hand_values_and_ties() -> None:
    # pos 0.9 beats both negatives, pos 0.7 beats 0.1 only: 3/4.
    assert roc_auc(T([1, 0, 1, 0]), T([0.9, 0.8, 0.7, 0.1])) == pytest.approx(0.75)
    # tie (0.5 vs 0.5) counts 1/2: (0.5 + 1 + 1 + 1) / 4.
    assert roc_auc(T([1, 0, 1, 0]), T([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)
    assert math.isnan(roc_auc(T([1, 1, 1, 1]), T([0.1, 0.2, 0.3, 0.4])))  # no negative
    assert math.isnan(roc_auc(T([0, 0]), T([0.1, 0.2])))


def test_average_precision_sklearn_definition_with_ties() -> None:
    # thresholds .9 (P=1, R=.5), .8 (R unchanged), .7 (P=2/3, R=1): .5 * 1 + .5 * 2/3
    assert average_precision(T([1, 0, 1, 0]), T([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6)
    # the tie at .5 is one threshold: P = 2/3 at R = 1 -> 2/3 (not 0.583 or 0.833 of a broken tie)
    assert average_precision(T([0, 1, 1, 0]), T([0.9, 0.5, 0.5, 0.1])) == pytest.approx(2 / 3)
    assert math.isnan(average_precision(T([0, 0]), T([0.3, 0.2])))


def test_auc_ap_match_brute_force_on_random_ties() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = (torch.rand(30, generator=g) < 0.3).long()
        y[0] = 1
        y[1] = 0
        s = torch.randint(0, 6, (30,), generator=g).float() / 5  # many ties
        assert roc_auc(y, s) == pytest.approx(_brute_auc(y.tolist(), s.tolist()))
        assert average_precision(y, s) == pytest.approx(_brute_ap(y.tolist(), s.tolist()))


def test_moa_metrics_macro_skips_classes_without_positives() -> None:
    y = T([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.float)
    p = T([[0.9, 0.2, 0.5], [0.8, 0.1, 0.6], [0.7, 0.3, 0.4], [0.1, 0.4, 0.7]])
    m = moa_metrics(y, p)
    # class 0 only: class 1 has no positive, class 2 no negative
    assert m["auroc"] == pytest.approx(0.75) and m["n_classes_auroc"] == 1
    # AP of class 0 = 5/6, class 2 (all positive) = 1, class 1 undefined and skipped
    assert m["macro_auprc"] == pytest.approx((5 / 6 + 1) / 2)
    assert m["micro_auprc"] == pytest.approx(_brute_ap(y.view(-1).long().tolist(), p.view(-1).tolist()))
    assert m["n"] == 4


def test_topk_accuracy() -> None:
    y = torch.zeros(3, 6)
    y[0, 1] = y[1, 0] = y[2, 3] = 1
    s = T([[0.1, 0.9, 0.2, 0.3, 0.4, 0.5],  # true class first: top1 hit
           [0.0, 0.9, 0.8, 0.7, 0.6, 0.5],  # true class last of 6: miss even in top5
           [0.9, 0.8, 0.7, 0.6, 0.1, 0.0]])  # true class 4th: top5 hit only
    assert topk_accuracy(y, s, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(y, s, 5) == pytest.approx(2 / 3)
    y2 = torch.cat([y, torch.zeros(1, 6)])  # a row without labels is skipped
    assert topk_accuracy(y2, torch.cat([s, torch.rand(1, 6)]), 1) == pytest.approx(1 / 3)
    m = moa_metrics(y, s)
    assert (m["top1_acc"], m["top5_acc"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))


def test_log_loss_formula_and_clipping() -> None:
    y = T([[1.0, 0.0], [0.0, 1.0]])
    p = T([[0.8, 0.3], [0.4, 0.9]])
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.9)) / 4
    assert log_loss(y, p) == pytest.approx(expected)
    assert log_loss(T([[1.0]]), T([[0.0]])) == pytest.approx(-math.log(1e-15))  # clipped, finite


def test_target_metrics_filtered_ranking() -> None:
    # compounds 10, 11; 5 genes. (10, 0) is a known training pair with the top score: filtered out.
    scores = T([[0.9, 0.5, 0.8, 0.1, 0.7], [0.3, 0.3, 0.3, 0.3, 0.3]])
    pos = T([[10, 10, 11], [1, 2, 4]])
    m = target_metrics(scores, pos, compounds=T([10, 11]), known=T([[10], [0]]), k=1)
    # gene 1 (0.5): only gene 4 (0.7) above it (gene 0 filtered, gene 2 is another true gene) -> rank 2;
    # gene 2 (0.8) -> rank 1; compound 11: 4 ties -> rank 1 + 4/2 = 3.
    assert m["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert m["hits@1"] == pytest.approx(1 / 3)
    # pooled candidates: positives .5 .8 .3; negatives .1 .7 and four .3 -> (5 + 6 + 3) / 18
    assert m["auroc"] == pytest.approx(14 / 18)
    assert m["auprc"] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 8)
    assert (m["n_pairs"], m["n_compounds"]) == (3, 2)
    unfiltered = target_metrics(scores, pos, compounds=T([10, 11]), k=10)
    assert unfiltered["mrr"] < m["mrr"] and unfiltered["hits@10"] == 1.0
    # rows = compound indices when compounds is None
    full = torch.zeros(12, 5)
    full[10:] = scores
    assert target_metrics(full, pos, known=T([[10], [0]]), k=1)["mrr"] == pytest.approx(m["mrr"])
    with pytest.raises(ValueError, match="no row"):
        target_metrics(scores, pos, compounds=T([10, 12]))


# ------------------------------------------------------------------------------------------ losses
def test_pos_weight_from_training_frequencies() -> None:
    y = T([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.float)
    w = pos_weight_from_labels(y, train_idx=T([0, 1, 2]))
    assert w.tolist() == pytest.approx([0.5, 2.0, 1.0])  # neg/pos; class 2 has no training positive


def test_weighted_bce_matches_torch_and_sample_weights() -> None:
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(6, 4, generator=g), (torch.rand(6, 4, generator=g) < 0.4).float()
    pw = T([1.0, 2.0, 3.0, 0.5])
    ref = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)
    assert weighted_bce(logits, y, pw) == pytest.approx(float(ref))
    sw = T([1.0, 0, 0, 0, 0, 0])
    assert weighted_bce(logits, y, None, sw) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits[:1], y[:1])))
    assert make_loss("weighted", pos_weight=pw)(logits, y) == pytest.approx(float(ref))


def test_gce_limits() -> None:
    logits = torch.linspace(-4, 4, 17).view(-1, 1).repeat(1, 2)
    y = torch.zeros_like(logits)
    y[:, 0] = 1
    bce = F.binary_cross_entropy_with_logits(logits, y)
    # q -> 0: (1 - p^q) / q -> -log p, i.e. BCE; the gap shrinks with q.
    gaps = [abs(float(gce_loss(logits, y, q)) - float(bce)) for q in (0.1, 0.01, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3
    # q = 1: mean absolute error 1 - p_y
    p = torch.sigmoid(logits)
    mae = torch.where(y > 0, 1 - p, p).mean()
    assert gce_loss(logits, y, 1.0) == pytest.approx(float(mae), abs=1e-6)
    # hand value: one entry, logit 0 (p = 0.5), y = 1, q = 0.5: (1 - 0.5 ** 0.5) / 0.5
    assert gce_loss(T([[0.0]]), T([[1.0]]), 0.5) == pytest.approx((1 - 0.5 ** 0.5) / 0.5)
    # bounded: a confidently wrong entry costs at most 1/q under GCE, unboundedly under BCE
    assert gce_loss(T([[-50.0]]), T([[1.0]]), 0.7) <= 1 / 0.7 + 1e-6
    with pytest.raises(ValueError):
        gce_loss(logits, y, 0.0)


def test_quality_weights() -> None:
    q = T([[0.9, 3, 0.5], [0.05, 2, 1.0], [float("nan"), 1, 0.2]])
    w = quality_weights(q, floor=0.1)
    raw = torch.tensor([0.9 * 0.5, 0.1 * 1.0, 1.0 * 0.2])  # cc_mean x tas, floored, nan -> 1
    assert torch.allclose(w, raw / raw.mean())
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("focal")
