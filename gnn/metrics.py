"""Evaluation metrics for MoA classification and target ranking.

AUROC, average precision, log loss and top-k accuracy are scikit-learn's (``sklearn.metrics``); this
module adds the conventions the project reports with:

* **Undefined scores are nan, and macro averages skip them.** AUROC of a column with a single class
  (no positive or no negative) and average precision of a column without a positive are ``nan``
  (scikit-learn raises, respectively returns 0 with a warning); ``moa_metrics`` averages the columns
  where the score is defined and reports how many had an AUROC (``n_classes_auroc``).
* AUROC is ``roc_auc_score`` (trapezoidal; a tied positive/negative pair counts one half).
  Average precision is ``average_precision_score``: ``AP = sum_n (R_n - R_{n-1}) P_n`` over the
  distinct thresholds in decreasing order (tied scores form one threshold), without interpolation.
* Top-k accuracy is multi-label: a row with several true classes is a hit when any of them is in the
  top ``k``. It is ``top_k_accuracy_score`` on each row's best-ranked true class, with scikit-learn's
  order (score descending, ties: the higher class index first).
* Log loss is ``log_loss`` over every (row, class) entry with probabilities clipped to
  ``[1e-15, 1 - 1e-15]`` first (the LISH-MoA competition's clipping; scikit-learn clips only to the
  float epsilon).

The filtered, tie-averaged MRR and Hits@k of :func:`target_metrics` are computed here: see there.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, top_k_accuracy_score
from sklearn.metrics import log_loss as sk_log_loss
from torch import Tensor

EPS_LOGLOSS = 1e-15


def _flat(y: Tensor, s: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels (``y > 0.5``) and float64 scores, both flattened to numpy ``[N]``."""
    y, s = y.detach().cpu().reshape(-1).double(), s.detach().cpu().reshape(-1).double()
    if y.numel() != s.numel():
        raise ValueError(f"labels and scores differ in size: {y.numel()} vs {s.numel()}")
    return (y > 0.5).numpy(), s.numpy()


def roc_auc(y: Tensor, s: Tensor) -> float:
    """Area under the ROC curve of binary labels ``y`` ``[N]`` and scores ``s`` ``[N]`` (nan if undefined)."""
    y, s = _flat(y, s)
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, s))


def average_precision(y: Tensor, s: Tensor) -> float:
    """Average precision (scikit-learn's) of ``y`` ``[N]``, ``s`` ``[N]``; nan if no positive."""
    y, s = _flat(y, s)
    if not y.any():
        return math.nan
    return float(average_precision_score(y, s))


def topk_accuracy(y_true: Tensor, scores: Tensor, k: int) -> float:
    """Fraction of rows (with >= 1 label) whose top-``k`` scored classes contain a true label.

    Rows without any label are skipped (nan when none is left). Ties are ranked as scikit-learn's
    ``top_k_accuracy_score`` ranks them: among equal scores the higher class index comes first.
    """
    y = y_true.detach().cpu().double() > 0.5
    s = scores.detach().cpu().double()
    rows = y.any(1)
    if not rows.any():
        return math.nan
    n_classes = s.size(1)
    if k >= n_classes:  # every class is in the top k
        return 1.0
    y, s = y[rows], s[rows]
    # The row's best-ranked true class in scikit-learn's order (score, then class index, descending):
    # the row is a hit exactly when that class is in the top k.
    col = torch.arange(n_classes, dtype=torch.float64).expand_as(s)
    best_score = torch.where(y, s, -math.inf).amax(1, keepdim=True)
    best = torch.where(y & (s == best_score), col, -1.0).amax(1).long()
    # One extra class column, scored below everything, keeps scikit-learn in its multiclass mode when
    # there are only two classes; it never enters a top k with k < n_classes.
    pad = torch.full((s.size(0), 1), float(s.min()) - 1.0, dtype=torch.float64)
    return float(top_k_accuracy_score(best.numpy(), torch.cat([s, pad], 1).numpy(), k=k,
                                      labels=np.arange(n_classes + 1)))


def log_loss(y_true: Tensor, probs: Tensor, eps: float = EPS_LOGLOSS) -> float:
    """LISH-MoA score: mean over columns of the mean binary log loss, probabilities clipped to [eps, 1-eps].

    ``-1/(N C) sum_{i,c} [y_ic log p_ic + (1 - y_ic) log(1 - p_ic)]`` for ``[N, C]`` inputs; labels are
    binarised at 0.5.
    """
    y, p = _flat(y_true, probs)
    return float(sk_log_loss(y, np.clip(p, eps, 1 - eps), labels=[False, True]))


def _per_column(score: object, y: np.ndarray, s: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """``score(y[:, c], s[:, c])`` for the columns where it is ``defined``, nan elsewhere (one scikit-learn
    call with ``average=None`` checks the inputs once rather than once per column)."""
    out = np.full(y.shape[1], np.nan)
    cols = np.flatnonzero(defined)
    if cols.size == 1:
        out[cols] = score(y[:, cols[0]], s[:, cols[0]])  # type: ignore[operator]
    elif cols.size > 1:
        out[cols] = score(y[:, cols], s[:, cols], average=None)  # type: ignore[operator]
    return out


def _nanmean_array(values: np.ndarray) -> float:
    ok = values[~np.isnan(values)]
    return float(ok.mean()) if ok.size else math.nan


def moa_metrics(y_true: Tensor, scores: Tensor) -> dict[str, float]:
    """MoA metrics of multi-hot ``y_true`` ``[N, C]`` and probabilities ``scores`` ``[N, C]``.

    Returns micro_auprc (AP over all ``N*C`` entries), macro_auprc (mean AP over the classes with a
    positive; classes without one are left out), auroc (mean over the classes with both a positive and
    a negative; nan when there is none), top1_acc, top5_acc, log_loss, and the counts n (rows) and
    n_classes_auroc (classes in the AUROC mean).
    """
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true {tuple(y_true.shape)} and scores {tuple(scores.shape)} differ")
    y = (y_true.detach().cpu().double() > 0.5).numpy().astype(np.int8)
    s = scores.detach().cpu().double().numpy()
    has_pos, has_neg = y.any(0), (y == 0).any(0)
    aurocs = _per_column(roc_auc_score, y, s, has_pos & has_neg)
    aps = _per_column(average_precision_score, y, s, has_pos)
    return {
        "micro_auprc": average_precision(y_true, scores),
        "macro_auprc": _nanmean_array(aps),
        "auroc": _nanmean_array(aurocs),
        "top1_acc": topk_accuracy(y_true, scores, 1),
        "top5_acc": topk_accuracy(y_true, scores, 5),
        "log_loss": log_loss(y_true, scores),
        "n": float(y.shape[0]),
        "n_classes_auroc": float((~np.isnan(aurocs)).sum()),
    }


def target_metrics(scores: Tensor, pos: Tensor, compounds: Tensor | None = None, known: Tensor | None = None,
                   k: int = 10, ranking_only: bool = False) -> dict[str, float]:
    """Filtered target-ranking metrics over all genes.

    Args:
        scores: ``[n_rows, n_genes]`` compound x gene scores.
        pos: long ``[2, P]`` held-out true (compound, gene) pairs to evaluate.
        compounds: long ``[n_rows]`` compound index of each row of ``scores`` (``None``: row ``i`` is
            compound ``i``). Every compound of ``pos`` must have a row.
        known: long ``[2, K]`` pairs known at training time (``task.pos['train']``).

    Filtered setting (Bordes et al. 2013): the candidates of a compound are all genes except its known
    (training) positives; when ranking one true gene, the compound's other held-out true genes are also
    removed, so a model is never penalised for ranking another correct answer higher. The rank of a
    true gene is ``1 + #(higher) + #(tied) / 2`` (the mean of the optimistic and pessimistic rank).
    AUROC / AUPRC pool the candidate (compound, gene) pairs of the evaluated compounds (known positives
    excluded): positives are ``pos``, negatives every other candidate (scikit-learn's scores).

    MRR and Hits@k are computed here because no library computes exactly this: scikit-learn's
    ranking scores (``label_ranking_average_precision_score``, ``coverage_error``) neither filter nor
    average ties (they count a tie at its worst rank), and PyG's ``LinkPredMRR`` / torchmetrics'
    ``RetrievalMRR`` rank by a sort that breaks ties arbitrarily and cannot drop the other true genes
    per ranked pair.

    Returns auroc, auprc, mrr, hits@k (key ``f'hits@{k}'``), n_pairs, n_compounds; with ``ranking_only``
    no auroc and auprc (a validation grid that reads MRR only: they are most of the time taken).
    """
    scores = scores.detach().cpu().double()
    n_rows, n_genes = scores.shape
    comp_ids = torch.arange(n_rows) if compounds is None else compounds.cpu().long()
    row_of = {c: r for r, c in enumerate(comp_ids.tolist())}
    pos = pos.cpu().long()
    missing = {c for c in pos[0].unique().tolist() if c not in row_of}
    if missing:
        raise ValueError(f"{len(missing)} compounds of pos have no row in scores")
    rows = torch.tensor([row_of[c] for c in pos[0].tolist()], dtype=torch.long)
    eval_rows = rows.unique()
    label = torch.zeros(n_rows, n_genes, dtype=torch.bool)
    label[rows, pos[1]] = True
    candidate = torch.zeros(n_rows, n_genes, dtype=torch.bool)
    candidate[eval_rows] = True
    if known is not None and known.numel():
        known = known.cpu().long()
        in_eval = torch.tensor([row_of.get(c, -1) for c in known[0].tolist()], dtype=torch.long)
        ok = in_eval >= 0
        candidate[in_eval[ok], known[1][ok]] = False
    candidate |= label  # a pair both known and held out counts as held out (should not happen)
    # Ranks: competitors of (r, g) are candidates of row r that are not true held-out genes.
    competitor = candidate & ~label
    rank = torch.empty(rows.numel(), dtype=torch.float64)
    for i in range(0, rows.numel(), 1024):  # chunks keep memory at 1024 x n_genes
        r, g = rows[i:i + 1024], pos[1][i:i + 1024]
        true_scores, comp_scores = scores[r, g].unsqueeze(1), scores[r]  # [B, 1], [B, n_genes]
        higher = ((comp_scores > true_scores) & competitor[r]).sum(1).double()
        tied = ((comp_scores == true_scores) & competitor[r]).sum(1).double()
        rank[i:i + 1024] = 1 + higher + tied / 2
    out = {
        "mrr": float((1 / rank).mean()) if rank.numel() else math.nan,
        f"hits@{k}": float((rank <= k).double().mean()) if rank.numel() else math.nan,
        "n_pairs": float(pos.size(1)),
        "n_compounds": float(eval_rows.numel()),
    }
    if ranking_only:
        return out
    flat = candidate[eval_rows]
    return {"auroc": roc_auc(label[eval_rows][flat], scores[eval_rows][flat]),
            "auprc": average_precision(label[eval_rows][flat], scores[eval_rows][flat]), **out}
