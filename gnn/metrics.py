"""Evaluation metrics for MoA classification and target ranking.

scikit-learn is not a dependency (and torchmetrics neither), so AUROC and average precision are written
here, sorting-based, with ties handled the way sklearn handles them:

* AUROC is the Mann-Whitney U statistic with average ranks for tied scores (a tied positive/negative
  pair counts one half), which equals sklearn's trapezoidal ``roc_auc_score``.
* Average precision follows sklearn's ``average_precision_score``: ``AP = sum_n (R_n - R_{n-1}) P_n``
  over the distinct score thresholds in decreasing order (tied scores form one threshold), a step
  function with no interpolation.

Both are ``nan`` when undefined (no positive, or for AUROC no negative); macro averages skip those.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS_LOGLOSS = 1e-15


def _flat(y: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    y, s = y.reshape(-1).double(), s.reshape(-1).double()
    if y.numel() != s.numel():
        raise ValueError(f"labels and scores differ in size: {y.numel()} vs {s.numel()}")
    return (y > 0.5).double(), s


def roc_auc(y: Tensor, s: Tensor) -> float:
    """Area under the ROC curve of binary labels ``y`` ``[N]`` and scores ``s`` ``[N]`` (nan if undefined)."""
    y, s = _flat(y, s)
    n_pos = float(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Average ranks of tied scores: rank of a tie block = mean of the positions it covers (1-based).
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    upper = torch.cumsum(counts, 0).double()
    avg_rank = upper - (counts.double() - 1) / 2
    rank_sum = float((avg_rank[inverse] * y).sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(y: Tensor, s: Tensor) -> float:
    """Average precision (sklearn's definition) of ``y`` ``[N]``, ``s`` ``[N]``; nan if no positive."""
    y, s = _flat(y, s)
    n_pos = float(y.sum())
    if n_pos == 0:
        return math.nan
    _, inverse = torch.unique(-s, sorted=True, return_inverse=True)  # threshold 0 = highest score
    n_thr = int(inverse.max()) + 1
    tp = torch.zeros(n_thr, dtype=torch.float64).index_add_(0, inverse, y).cumsum(0)
    seen = torch.zeros(n_thr, dtype=torch.float64).index_add_(0, inverse, torch.ones_like(y)).cumsum(0)
    precision = tp / seen
    recall = tp / n_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


def _nanmean(values: list[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return sum(ok) / len(ok) if ok else math.nan


def topk_accuracy(y_true: Tensor, scores: Tensor, k: int) -> float:
    """Fraction of rows (with >= 1 label) whose top-``k`` scored classes contain a true label.

    Ties at the k-th place are broken by ``torch.topk`` (lowest class index first on CPU); rows without
    any label are skipped.
    """
    rows = y_true.sum(1) > 0
    if not rows.any():
        return math.nan
    k = min(k, scores.size(1))
    top = scores[rows].topk(k, dim=1).indices
    return float((y_true[rows].gather(1, top) > 0.5).any(1).double().mean())


def log_loss(y_true: Tensor, probs: Tensor, eps: float = EPS_LOGLOSS) -> float:
    """LISH-MoA score: mean over columns of the mean binary log loss, probabilities clipped to [eps, 1-eps].

    ``-1/(N C) sum_{i,c} [y_ic log p_ic + (1 - y_ic) log(1 - p_ic)]`` for ``[N, C]`` inputs.
    """
    p = probs.double().clamp(eps, 1 - eps)
    y = y_true.double()
    return float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())


def moa_metrics(y_true: Tensor, scores: Tensor) -> dict[str, float]:
    """MoA metrics of multi-hot ``y_true`` ``[N, C]`` and probabilities ``scores`` ``[N, C]``.

    Returns micro_auprc (AP over all ``N*C`` entries), macro_auprc (mean AP over classes with a
    positive), auroc (macro over classes with both labels), top1_acc, top5_acc, log_loss, and the
    counts n (rows) and n_classes_auroc.
    """
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true {tuple(y_true.shape)} and scores {tuple(scores.shape)} differ")
    y, s = y_true.detach().cpu().double(), scores.detach().cpu().double()
    aurocs = [roc_auc(y[:, c], s[:, c]) for c in range(y.size(1))]
    return {
        "micro_auprc": average_precision(y, s),
        "macro_auprc": _nanmean([average_precision(y[:, c], s[:, c]) for c in range(y.size(1))]),
        "auroc": _nanmean(aurocs),
        "top1_acc": topk_accuracy(y, s, 1),
        "top5_acc": topk_accuracy(y, s, 5),
        "log_loss": log_loss(y, s),
        "n": float(y.size(0)),
        "n_classes_auroc": float(sum(not math.isnan(a) for a in aurocs)),
    }


def _codes(pairs: Tensor, n_genes: int) -> Tensor:
    return pairs[0].long() * n_genes + pairs[1].long()


def target_metrics(scores: Tensor, pos: Tensor, compounds: Tensor | None = None, known: Tensor | None = None,
                   k: int = 10) -> dict[str, float]:
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
    excluded): positives are ``pos``, negatives every other candidate.

    Returns auroc, auprc, mrr, hits@k (key ``f'hits@{k}'``), n_pairs, n_compounds.
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
    flat = candidate[eval_rows]
    return {
        "auroc": roc_auc(label[eval_rows][flat], scores[eval_rows][flat]),
        "auprc": average_precision(label[eval_rows][flat], scores[eval_rows][flat]),
        "mrr": float((1 / rank).mean()) if rank.numel() else math.nan,
        f"hits@{k}": float((rank <= k).double().mean()) if rank.numel() else math.nan,
        "n_pairs": float(pos.size(1)),
        "n_compounds": float(eval_rows.numel()),
    }
