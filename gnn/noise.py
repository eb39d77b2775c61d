"""Synthetic label noise for robustness experiments: uniform and target-structured MoA flips.

Structured noise mimics real annotation errors: a compound is mislabelled with an MoA that acts on
the same targets as its true one (e.g. "EGFR inhibitor" for "ERBB2 inhibitor"), which is harder to
detect than a uniformly random wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class FlipReport:
    """What :func:`flip_labels_report` changed: row ``rows[i]`` had class ``old[i]`` replaced by ``new[i]``.

    ``n_fallback`` counts structured flips that had no target-sharing candidate and were made uniform.
    """

    rows: Tensor
    old: Tensor
    new: Tensor
    n_fallback: int = 0


def target_sharing(y: Tensor, targets: Tensor, n_genes: int, rows: Tensor | None = None) -> Tensor:
    """bool ``[C, C]``: MoA ``a`` and ``b`` share a target (diagonal false).

    A class's target set is the union of the TARGETS of the compounds labelled with it.

    Args:
        y: multi-hot ``[n_compounds, C]``.
        targets: long ``[2, E]`` (compound, gene) TARGETS pairs.
        rows: restrict to these compounds (pass the training compounds, so held-out labels are unused).
    """
    t = torch.zeros(y.size(0), n_genes)
    t[targets[0], targets[1]] = 1.0
    yy = y if rows is None else y[rows]
    tt = t if rows is None else t[rows]
    class_genes = (yy.float().T @ tt) > 0  # [C, G]
    share = (class_genes.float() @ class_genes.float().T) > 0
    share.fill_diagonal_(False)
    return share


def flip_labels_report(y: Tensor, train_idx: Tensor, p: float, mode: str = "uniform", seed: int = 0,
                       shares_target: Tensor | None = None) -> tuple[Tensor, FlipReport]:
    """Flip one label in exactly ``round(p * len(train_idx))`` training rows; other rows are untouched.

    In a flipped row one true class (chosen at random) is replaced by a class the row does not have:
    ``'uniform'``: any such class; ``'structured'``: one that shares a target with the replaced class
    (``shares_target`` ``[C, C]``). Structured flips prefer rows that have such a candidate; only if
    there are too few, the rest are uniform (counted in ``n_fallback``). Rows without a label cannot
    be flipped and are never chosen.

    Returns:
        the noisy copy of ``y`` ``[N, C]`` and a :class:`FlipReport`.
    """
    if mode not in ("uniform", "structured"):
        raise ValueError(f"unknown noise mode {mode!r} (uniform | structured)")
    if not 0 <= p <= 1:
        raise ValueError(f"noise rate must be in [0, 1], got {p}")
    if mode == "structured" and shares_target is None:
        raise ValueError("structured noise needs shares_target (noise.target_sharing)")
    rng = np.random.default_rng(seed)
    n_flip = int(round(p * train_idx.numel()))
    y_noisy = y.clone()
    n_classes = y.size(1)
    has = (y[train_idx] > 0.5).any(1)
    candidates = train_idx[has]
    if n_flip > candidates.numel():
        raise ValueError(f"cannot flip {n_flip} rows: only {candidates.numel()} training rows have a label")

    def structured_options(row: int) -> list[tuple[int, list[int]]]:
        true = set((y[row] > 0.5).nonzero().view(-1).tolist())
        return [(c, [d for d in shares_target[c].nonzero().view(-1).tolist() if d not in true])
                for c in sorted(true)]

    order = candidates[torch.from_numpy(rng.permutation(candidates.numel()))].tolist()
    if mode == "structured":
        eligible = {r for r in order if any(opts for _, opts in structured_options(r))}
        order = [r for r in order if r in eligible] + [r for r in order if r not in eligible]
    rows, old, new, fallback = [], [], [], 0
    for row in order[:n_flip]:
        true = (y[row] > 0.5).nonzero().view(-1).tolist()
        opts = [(c, o) for c, o in structured_options(row) if o] if mode == "structured" else []
        if opts:
            c, choices = opts[rng.integers(len(opts))]
        else:
            fallback += mode == "structured"
            c = true[rng.integers(len(true))]
            choices = [d for d in range(n_classes) if d not in set(true)]
            if not choices:
                raise ValueError(f"row {row} has every class; nothing to flip to")
        d = choices[rng.integers(len(choices))]
        y_noisy[row, c], y_noisy[row, d] = 0.0, 1.0
        rows.append(row)
        old.append(c)
        new.append(d)
    as_t = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return y_noisy, FlipReport(as_t(rows), as_t(old), as_t(new), int(fallback))


def flip_labels(y: Tensor, train_idx: Tensor, p: float, mode: str = "uniform", seed: int = 0,
                shares_target: Tensor | None = None) -> Tensor:
    """Noisy copy of ``y`` ``[N, C]``; see :func:`flip_labels_report` (which also says what was flipped)."""
    return flip_labels_report(y, train_idx, p, mode, seed, shares_target)[0]


#: seed offset of the validation flips (``noisy_validation``): other rows, other draws than training's
VAL_SEED_OFFSET = 7919


def noisy_split_labels(y: Tensor, split: object, p: float, mode: str = "uniform", seed: int = 0,
                       shares_target: Tensor | None = None, validation: bool = False) -> Tensor:
    """``y`` with the training rows of ``split`` flipped at rate ``p`` (:func:`flip_labels`), and with
    ``validation`` its validation rows too (same function, rate and kind, seed ``seed +``
    :data:`VAL_SEED_OFFSET`). Test rows are never touched: test metrics are on clean labels."""
    y_noisy = flip_labels(y, split.train, p, mode, seed, shares_target)  # type: ignore[attr-defined]
    if validation:
        y_noisy = flip_labels(y_noisy, split.val, p, mode, seed + VAL_SEED_OFFSET,  # type: ignore[attr-defined]
                              shares_target)
    return y_noisy
