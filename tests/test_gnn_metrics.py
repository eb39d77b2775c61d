"""Metrics and losses (moakg.gnn.metrics, moakg.gnn.losses) against hand-computed values, scikit-learn
and brute-force references written out plainly here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score, top_k_accuracy_score
from sklearn.metrics import log_loss as sk_log_loss

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


def _tied_scores(g: torch.Generator, *shape: int, levels: int = 6) -> torch.Tensor:
    """Integer-valued scores in [0, 1]: few distinct values, so many ties."""
    return torch.randint(0, levels, shape, generator=g).double() / (levels - 1)


def test_roc_auc_hand_values_and_ties() -> None:
    # pos 0.9 beats both negatives, pos 0.7 beats 0.1 only: 3/4.
    assert roc_auc(T([1, 0, 1, 0]), T([0.9, 0.8, 0.7, 0.1])) == pytest.approx(0.75)
    # tie (0.5 vs 0.5) counts 1/2: (0.5 + 1 + 1 + 1) / 4.
    assert roc_auc(T([1, 0, 1, 0]), T([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)
    assert math.isnan(roc_auc(T([1, 1, 1, 1]), T([0.1, 0.2, 0.3, 0.4])))  # no negative
    assert math.isnan(roc_auc(T([0, 0]), T([0.1, 0.2])))
    with pytest.raises(ValueError, match="differ in size"):
        roc_auc(T([1, 0]), T([0.1, 0.2, 0.3]))


def test_average_precision_sklearn_definition_with_ties() -> None:
    # thresholds .9 (P=1, R=.5), .8 (R unchanged), .7 (P=2/3, R=1): .5 * 1 + .5 * 2/3
    assert average_precision(T([1, 0, 1, 0]), T([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6)
    # the tie at .5 is one threshold: P = 2/3 at R = 1 -> 2/3 (not 0.583 or 0.833 of a broken tie)
    assert average_precision(T([0, 1, 1, 0]), T([0.9, 0.5, 0.5, 0.1])) == pytest.approx(2 / 3)
    # no positive: nan (scikit-learn would return 0 with a warning)
    assert math.isnan(average_precision(T([0, 0]), T([0.3, 0.2])))


def test_auc_ap_match_sklearn_and_brute_force_on_random_ties() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        y = (torch.rand(30, generator=g) < 0.3).long()
        y[0], y[1] = 1, 0
        s = _tied_scores(g, 30)
        yl, sl = y.tolist(), s.tolist()
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(yl, sl), abs=1e-12)
        assert roc_auc(y, s) == pytest.approx(_brute_auc(yl, sl), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(average_precision_score(yl, sl), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(_brute_ap(yl, sl), abs=1e-12)


def test_moa_metrics_match_sklearn_micro_and_macro_and_skip_undefined_columns() -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        y = (torch.rand(25, 8, generator=g) < 0.3).double()
        y[:, 0] = 0  # no positive: no AP, no AUROC
        y[:, 1] = 1  # no negative: AP = 1, no AUROC
        y[:3, 2], y[3:, 2] = 1, 0
        s = _tied_scores(g, 25, 8)
        m = moa_metrics(y, s)
        yn, sn = y.numpy().astype(int), s.numpy()
        pos, both = yn.any(0), yn.any(0) & (yn == 0).any(0)
        assert m["micro_auprc"] == pytest.approx(average_precision_score(yn, sn, average="micro"), abs=1e-12)
        brute = _brute_ap(yn.ravel().tolist(), sn.ravel().tolist())
        assert m["micro_auprc"] == pytest.approx(brute, abs=1e-12)
        assert m["macro_auprc"] == pytest.approx(
            average_precision_score(yn[:, pos], sn[:, pos], average="macro"), abs=1e-12)
        macro_auc = roc_auc_score(yn[:, both], sn[:, both], average="macro")
        assert m["auroc"] == pytest.approx(macro_auc, abs=1e-12)
        assert m["n_classes_auroc"] == both.sum() and m["n"] == 25
    # The class without a positive is left out of the macro AP, not counted as 0 as scikit-learn's
    # own macro average (with a warning) would.
    with pytest.warns(UserWarning, match="No positive class"):
        sk_all = average_precision_score(yn, sn, average="macro")
    assert sk_all == pytest.approx(m["macro_auprc"] * pos.sum() / len(pos))


def test_moa_metrics_hand_values_and_no_defined_column() -> None:
    y = T([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.float)
    p = T([[0.9, 0.2, 0.5], [0.8, 0.1, 0.6], [0.7, 0.3, 0.4], [0.1, 0.4, 0.7]])
    m = moa_metrics(y, p)
    # class 0 only: class 1 has no positive, class 2 no negative
    assert m["auroc"] == pytest.approx(0.75) and m["n_classes_auroc"] == 1
    # AP of class 0 = 5/6, class 2 (all positive) = 1, class 1 undefined and skipped
    assert m["macro_auprc"] == pytest.approx((5 / 6 + 1) / 2)
    # no positive anywhere: every ranking metric is nan, the log loss is still defined
    empty = moa_metrics(torch.zeros(3, 2), p[:3, :2])
    assert all(math.isnan(empty[k]) for k in ("micro_auprc", "macro_auprc", "auroc", "top1_acc", "top5_acc"))
    assert empty["n_classes_auroc"] == 0
    expected = sk_log_loss([0] * 6, p[:3, :2].reshape(-1).tolist(), labels=[0, 1])
    assert empty["log_loss"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="differ"):
        moa_metrics(y, p[:, :2])


def test_topk_accuracy_hand_values() -> None:
    y = torch.zeros(3, 6)
    y[0, 1] = y[1, 0] = y[2, 3] = 1
    s = T([[0.1, 0.9, 0.2, 0.3, 0.4, 0.5],  # true class first: top1 hit
           [0.0, 0.9, 0.8, 0.7, 0.6, 0.5],  # true class last of 6: miss even in top5
           [0.9, 0.8, 0.7, 0.6, 0.1, 0.0]])  # true class 4th: top5 hit only
    assert topk_accuracy(y, s, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(y, s, 5) == pytest.approx(2 / 3)
    assert topk_accuracy(y, s, 6) == 1.0  # k >= classes: every labelled row is a hit
    y2 = torch.cat([y, torch.zeros(1, 6)])  # a row without labels is skipped
    assert topk_accuracy(y2, torch.cat([s, torch.rand(1, 6)]), 1) == pytest.approx(1 / 3)
    assert math.isnan(topk_accuracy(torch.zeros(2, 3), torch.rand(2, 3), 1))
    m = moa_metrics(y, s)
    assert (m["top1_acc"], m["top5_acc"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    # ties: scikit-learn's order, the higher class index first
    assert topk_accuracy(T([[0.0, 1.0]]), T([[0.5, 0.5]]), 1) == 1.0
    assert topk_accuracy(T([[1.0, 0.0]]), T([[0.5, 0.5]]), 1) == 0.0


def test_topk_accuracy_matches_sklearn_and_a_multilabel_reference_on_ties() -> None:
    g = torch.Generator().manual_seed(2)
    for n_classes, k in [(3, 1), (3, 2), (7, 1), (7, 2), (7, 5)]:
        s = _tied_scores(g, 40, n_classes, levels=3)
        # single-label rows: exactly scikit-learn's top_k_accuracy_score, ties included
        labels = torch.randint(0, n_classes, (40,), generator=g)
        expected = top_k_accuracy_score(labels.numpy(), s.numpy(), k=k, labels=np.arange(n_classes))
        assert topk_accuracy(F.one_hot(labels, n_classes), s, k) == pytest.approx(expected), (n_classes, k)
        # multi-label rows (and rows without a label): a hit when any true class is in the top k
        y = (torch.rand(40, n_classes, generator=g) < 0.3).double()
        assert topk_accuracy(y, s, k) == pytest.approx(_brute_topk(y, s, k)), (n_classes, k)
    s, y = _tied_scores(g, 40, 2, levels=3), (torch.rand(40, 2, generator=g) < 0.5).double()
    assert topk_accuracy(y, s, 1) == pytest.approx(_brute_topk(y, s, 1))  # two classes


def _brute_topk(y: torch.Tensor, s: torch.Tensor, k: int) -> float:
    """Rows with a label; classes ordered by score, ties by the higher index; any true class in the top k."""
    hits = []
    for yr, sr in zip(y.tolist(), s.tolist(), strict=True):
        if any(yr):
            order = sorted(range(len(sr)), key=lambda c, sr=sr: (-sr[c], -c))
            hits.append(any(yr[c] for c in order[:k]))
    return sum(hits) / len(hits)


def test_log_loss_formula_clipping_and_sklearn() -> None:
    y = T([[1.0, 0.0], [0.0, 1.0]])
    p = T([[0.8, 0.3], [0.4, 0.9]])
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.9)) / 4
    assert log_loss(y, p) == pytest.approx(expected)
    # clipped to [1e-15, 1 - 1e-15] (LISH-MoA), not to the float epsilon as scikit-learn alone would
    assert log_loss(T([[1.0]]), T([[0.0]])) == pytest.approx(-math.log(1e-15))
    g = torch.Generator().manual_seed(3)
    y = (torch.rand(20, 5, generator=g) < 0.3).double()
    p = _tied_scores(g, 20, 5).clamp(0.01, 0.99)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y.reshape(-1).numpy(), p.reshape(-1).numpy()))


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
    # the validation grid's ranking-only metrics: the same ranking figures, no AUROC / AUPRC
    ranking = target_metrics(scores, pos, compounds=T([10, 11]), known=T([[10], [0]]), k=1, ranking_only=True)
    assert ranking == {key: v for key, v in m.items() if key not in ("auroc", "auprc")}
    unfiltered = target_metrics(scores, pos, compounds=T([10, 11]), k=10)
    assert unfiltered["mrr"] < m["mrr"] and unfiltered["hits@10"] == 1.0
    # rows = compound indices when compounds is None
    full = torch.zeros(12, 5)
    full[10:] = scores
    assert target_metrics(full, pos, known=T([[10], [0]]), k=1)["mrr"] == pytest.approx(m["mrr"])
    with pytest.raises(ValueError, match="no row"):
        target_metrics(scores, pos, compounds=T([10, 12]))


def _brute_target_ranks(scores: list[list[float]], compounds: list[int], pos: list[tuple[int, int]],
                        known: set[tuple[int, int]]) -> list[float]:
    """Filtered, tie-averaged rank of each held-out (compound, gene) pair, one pair at a time."""
    held_out = set(pos)
    ranks = []
    for c, g in pos:
        row = scores[compounds.index(c)]
        others = [h for h in range(len(row)) if h != g and (c, h) not in known and (c, h) not in held_out]
        higher = sum(row[h] > row[g] for h in others)
        tied = sum(row[h] == row[g] for h in others)
        ranks.append(1 + higher + tied / 2)
    return ranks


def test_target_metrics_match_a_brute_force_reference_and_sklearn_on_ties() -> None:
    g = torch.Generator().manual_seed(4)
    for _ in range(25):
        n_rows, n_genes = 5, 12
        compounds = torch.randperm(20, generator=g)[:n_rows]
        scores = _tied_scores(g, n_rows, n_genes, levels=4)
        pairs = torch.randperm(n_rows * n_genes, generator=g)[:18]  # distinct (row, gene) cells
        rows_, genes = pairs // n_genes, pairs % n_genes
        pos = torch.stack([compounds[rows_[:10]], genes[:10]])
        known = torch.stack([compounds[rows_[10:]], genes[10:]])
        m = target_metrics(scores, pos, compounds=compounds, known=known, k=3)

        pos_l = [tuple(p) for p in pos.t().tolist()]
        known_l = {tuple(p) for p in known.t().tolist()}
        ranks = _brute_target_ranks(scores.tolist(), compounds.tolist(), pos_l, known_l)
        assert m["mrr"] == pytest.approx(sum(1 / r for r in ranks) / len(ranks), abs=1e-12)
        assert m["hits@3"] == pytest.approx(sum(r <= 3 for r in ranks) / len(ranks), abs=1e-12)
        # AUROC / AUPRC: every (compound, gene) of the evaluated compounds except known pairs
        y, s = [], []
        for c in sorted({c for c, _ in pos_l}):
            for gene in range(n_genes):
                if (c, gene) not in known_l:
                    y.append(int((c, gene) in pos_l))
                    s.append(float(scores[compounds.tolist().index(c), gene]))
        assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert m["auprc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert (m["n_pairs"], m["n_compounds"]) == (10, len({c for c, _ in pos_l}))


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
