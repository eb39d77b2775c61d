"""Multi-label losses: (class-weighted) BCE, generalized cross-entropy, small-loss selection (the
co-teaching family), signature-quality sample weights.

All losses take logits ``[N, C]`` and multi-hot targets ``[N, C]`` and an optional per-row
``sample_weight`` ``[N]``, and return the mean over rows and classes (small-loss: over the rows kept).
A loss that depends on the training epoch (:class:`SmallLossBCE`) has ``set_epoch(epoch)``; the trainer
calls it before each epoch (:func:`set_loss_epoch`).
"""

from __future__ import annotations

import math
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


class SmallLossBCE:
    """BCE on the rows with the smallest loss only: the sample selection of co-teaching (Han et al., 2018)
    with a single network.

    Rows with a wrong label are fitted late (deep networks learn the clean, consistent patterns first), so
    during the early epochs they are among the largest losses; leaving those rows out of the gradient keeps
    the model from memorising the noise. For a multi-label row ``i`` with ``C`` classes the row loss is the
    mean binary cross-entropy over its classes::

        l_i = (1 / C) * sum_c BCE(x_ic, y_ic)

    In epoch ``e`` (0 = the first) the forget rate ramps linearly from 0 to ``forget_rate`` over the first
    ``ramp`` epochs, as in the paper's schedule::

        r(e) = forget_rate * min(1, e / ramp)          (ramp = 0: r(e) = forget_rate from the start)

    and a step over ``N`` rows drops the ``k = floor(r(e) * N)`` rows with the largest ``l_i`` (at most
    ``N - 1``: one row always stays; ties broken by row order) and returns the mean over the kept set
    ``K``, weighted by ``sample_weight`` ``w``::

        loss = sum_{i in K} w_i l_i / sum_{i in K} w_i            (w = 1 without sample weights)

    The ranking uses the unweighted ``l_i``: a row's weight says how much a good row counts, not whether
    its label is believable. With ``forget_rate = 0`` (or in epoch 0) this is :func:`weighted_bce`.
    Selection is per call, so per mini-batch in mini-batch training (as in the paper) and over every
    supervised row in full-batch training.
    """

    def __init__(self, forget_rate: float = 0.2, ramp: int = 10) -> None:
        if not 0 <= forget_rate < 1:
            raise ValueError(f"small-loss forget rate must be in [0, 1), got {forget_rate}")
        if ramp < 0:
            raise ValueError(f"small-loss ramp must be >= 0 epochs, got {ramp}")
        self.forget_rate, self.ramp, self.epoch = float(forget_rate), int(ramp), 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the (0-based) epoch about to be trained; sets :meth:`rate`."""
        self.epoch = int(epoch)

    def rate(self, epoch: int | None = None) -> float:
        """The forget rate ``r(e)`` of ``epoch`` (default: the epoch last set)."""
        e = self.epoch if epoch is None else epoch
        if self.ramp == 0:
            return self.forget_rate
        return self.forget_rate * min(1.0, max(e, 0) / self.ramp)

    def n_drop(self, n: int) -> int:
        """How many of ``n`` rows this epoch leaves out."""
        return min(int(math.floor(self.rate() * n + 1e-9)), max(n - 1, 0))

    def keep(self, logits: Tensor, y: Tensor) -> Tensor:
        """Indices of the rows kept, in row order (no gradient: the selection is not differentiated)."""
        with torch.no_grad():
            row_loss = F.binary_cross_entropy_with_logits(logits, y.to(logits), reduction="none").mean(1)
            n = row_loss.numel()
            k = self.n_drop(n)
            if k == 0:
                return torch.arange(n, device=logits.device)
            # stable sort: among equal losses the earlier row is kept
            order = torch.sort(row_loss, stable=True).indices
            return order[: n - k].sort().values

    def __call__(self, logits: Tensor, y: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        if logits.size(0) == 0:
            return weighted_bce(logits, y, None, sample_weight)
        kept = self.keep(logits, y)
        w = None if sample_weight is None else sample_weight[kept]
        return weighted_bce(logits[kept], y[kept], None, w)


def set_loss_epoch(loss: LossFn, epoch: int) -> None:
    """Tell ``loss`` the (0-based) epoch about to be trained, if it depends on it (``set_epoch``)."""
    set_epoch = getattr(loss, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


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


def make_loss(name: str, pos_weight: Tensor | None = None, q: float = 0.7, forget_rate: float = 0.2,
              forget_ramp: int = 10) -> LossFn:
    """``loss(logits, y, sample_weight=None)`` for ``name`` in ``bce | weighted | gce | small_loss``
    (``small_loss``: a fresh :class:`SmallLossBCE`, stateful: one per training run)."""
    if name == "bce":
        return lambda logits, y, sample_weight=None: weighted_bce(logits, y, None, sample_weight)
    if name == "weighted":
        if pos_weight is None:
            raise ValueError("loss 'weighted' needs pos_weight (pos_weight_from_labels)")
        pw = pos_weight
        return lambda logits, y, sample_weight=None: weighted_bce(logits, y, pw.to(logits), sample_weight)
    if name == "gce":
        return lambda logits, y, sample_weight=None: gce_loss(logits, y, q, sample_weight)
    if name == "small_loss":
        return SmallLossBCE(forget_rate, forget_ramp)
    raise ValueError(f"unknown loss {name!r} (bce | weighted | gce | small_loss)")
