"""Test compounds stratified by their nearest training compound, to read a metric by novelty.

A split's mean metric mixes test compounds that have a close analogue in training (easy: a nearest
neighbour recalls its label) with compounds unlike anything trained on (the question the model is for).
:func:`max_train_similarity` gives each test compound its highest Tanimoto similarity to the training set,
and :func:`strata` bins those values (by default ``'<0.4'``, ``'0.4-0.7'``, ``'>=0.7'``) so metrics can be
reported per bin.

This lives apart from :mod:`moakg.gnn.splits` because it reuses the fingerprint Tanimoto of
:mod:`moakg.gnn.baselines`, which imports the tasks (and so the splits) itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor

from moakg.gnn.baselines import tanimoto

#: the default stratum edges: below 0.4 a compound has no analogue in training, from 0.7 a close one
DEFAULT_EDGES = (0.4, 0.7)


def max_train_similarity(fp_test: Tensor, fp_train: Tensor) -> Tensor:
    """float ``[n_test]``: each test fingerprint's highest Tanimoto similarity to any training fingerprint.

    Args:
        fp_test, fp_train: bit vectors ``[n_test, F]`` and ``[n_train, F]`` (e.g. ``data['Compound'].fp``
            rows of the split's test and train compounds). An all-zero row (no structure) scores 0.

    Raises ``ValueError`` without training rows: the maximum over nothing is undefined, and 0 would claim
    the test compounds are dissimilar to a training set that does not exist.
    """
    if fp_train.size(0) == 0:
        raise ValueError("max_train_similarity needs at least one training fingerprint")
    if fp_test.size(0) == 0:
        return torch.zeros(0)
    return tanimoto(fp_test, fp_train).max(dim=1).values


def _label(x: float) -> str:
    return f"{x:g}"


def strata(values: Tensor, edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """The stratum name of each value: ``'<e0'``, ``'e0-e1'``, ..., ``'>=e_last'`` for ascending ``edges``.

    Bins are closed below and open above (``0.4`` is in ``'0.4-0.7'``, ``0.7`` in ``'>=0.7'``). The edges
    are compared in the dtype of ``values``, so a similarity that is exactly an edge (Tanimoto 2/5 in
    float32) lands in the upper bin rather than below it by rounding.
    """
    if not edges or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"strata edges must be non-empty and strictly ascending, got {list(edges)}")
    values = values.reshape(-1)
    if not values.is_floating_point():
        values = values.float()
    if torch.isnan(values).any():
        raise ValueError("strata got NaN similarities")
    names = ([f"<{_label(edges[0])}"]
             + [f"{_label(a)}-{_label(b)}" for a, b in pairwise(edges)]
             + [f">={_label(edges[-1])}"])
    bins = torch.bucketize(values, torch.tensor(list(edges), dtype=values.dtype), right=True)
    return [names[i] for i in bins.tolist()]
