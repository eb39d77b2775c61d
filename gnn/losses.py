"""Multi-label losses: (class-weighted) BCE, generalized cross-entropy, signature-quality sample weights.

All losses take logits ``[N, C]`` and multi-hot targets ``[N, C]`` and an optional per-row
``sample_weight`` ``[N]``, and return the mean over rows and classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[..., Tensor]


def pos_weight_from_labels(y: Tensor, train_idx: Tensor | None = None, max_weight: float = 100.0) -> Tensor:
    """BCE ``pos_weight`` ``[C]`` = (#negatives / #positives) per class over the training rows.

    Rare MoAs would otherwise be learned as "always absent". Classes without a training positive get
    weight 1 (there is nothing to up-weight); weights are clipped at ``max_weight`` so one positive
    among thousands cannot dominate the loss.
    """
    y = y if train_idx is None else y[train_idx]
    pos = y.sum(0)
    neg = y.size(0) - pos
    w = torch.where(pos > 0, neg / pos.clamp(min=1), torch.ones_like(pos))
    return w.clamp(min=1e-6, max=max_weight)


def _reduce(loss: Tensor, sample_weight: Tensor | None) -> Tensor:
    if sample_weight is None:
        return loss.mean()
    w = sample_weight.to(loss).view(-1, *([1] * (loss.dim() - 1)))
    return (loss * w).sum() / (w.sum() * loss[0].numel()).clamp(min=1e-12)


def weighted_bce(logits: Tensor, y: Tensor, pos_weight: Tensor | None = None,
                 sample_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with logits, optional class ``pos_weight`` ``[C]`` and row weights ``[N]``."""
    loss = F.binary_cross_entropy_with_logits(logits, y.to(logits), pos_weight=pos_weight, reduction="none")
    return _reduce(loss, sample_weight)


def gce_loss(logits: Tensor, y: Tensor, q: float = 0.7, sample_weight: Tensor | None = None) -> Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu, 2018), per class as a binary problem.

    For each entry with probability ``p = sigmoid(logit)`` of the positive class, the probability given
    to the observed label is ``p_y = p`` if ``y = 1`` else ``1 - p`` and the loss is ``(1 - p_y^q) / q``.
    ``q -> 0`` recovers BCE (``-log p_y``), ``q = 1`` is the noise-robust MAE ``1 - p_y``; in between the
    gradient of confidently wrong (likely mislabelled) entries is damped by ``p_y^q``. Soft ``y`` in
    [0, 1] mixes the two terms linearly.
    """
    if q <= 0:
        raise ValueError(f"GCE needs q > 0 (q -> 0 is BCE), got {q}")
    y = y.to(logits)
    # log-space for stability: p^q = exp(q * logsigmoid(x)), (1 - p)^q = exp(q * logsigmoid(-x))
    pos_term = (1 - torch.exp(q * F.logsigmoid(logits))) / q
    neg_term = (1 - torch.exp(q * F.logsigmoid(-logits))) / q
    return _reduce(y * pos_term + (1 - y) * neg_term, sample_weight)


def quality_weights(quality: Tensor, fields: Sequence[str] = ("cc_mean", "n_replicates", "tas"),
                    use: Sequence[str] = ("cc_mean", "tas"), floor: float = 0.1) -> Tensor:
    """Per-signature sample weights ``[N]`` from the quality columns ``quality`` ``[N, len(fields)]``.

    The weight is the product of the ``use`` columns clipped to ``[floor, 1]`` (replicate correlation
    ``cc_mean`` and transcriptional activity ``tas`` are both in [0, 1]; ``floor`` keeps weak but real
    signatures in play), missing values (nan) count as 1, and weights are rescaled to mean 1 so the
    loss scale does not change.
    """
    w = torch.ones(quality.size(0), dtype=torch.float32)
    for name in use:
        col = quality[:, list(fields).index(name)].float()
        w = w * torch.where(torch.isnan(col), torch.ones_like(col), col.clamp(floor, 1.0))
    return w / w.mean().clamp(min=1e-12)


def make_loss(name: str, pos_weight: Tensor | None = None, q: float = 0.7) -> LossFn:
    """``loss(logits, y, sample_weight=None)`` for ``name`` in ``bce | weighted | gce``."""
    if name == "bce":
        return lambda logits, y, sample_weight=None: weighted_bce(logits, y, None, sample_weight)
    if name == "weighted":
        if pos_weight is None:
            raise ValueError("loss 'weighted' needs pos_weight (pos_weight_from_labels)")
        pw = pos_weight
        return lambda logits, y, sample_weight=None: weighted_bce(logits, y, pw.to(logits), sample_weight)
    if name == "gce":
        return lambda logits, y, sample_weight=None: gce_loss(logits, y, q, sample_weight)
    raise ValueError(f"unknown loss {name!r} (bce | weighted | gce)")
