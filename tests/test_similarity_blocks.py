"""The block computations of `moakg derive similarity` (no Neo4j): blocks give the all-pairs answer
(Tanimoto against a numpy reference, Spearman against ranks computed here), and several overexpression
signatures of one gene collapse to the strongest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moakg.derive.similarity import (
    best_per_group,
    blocked_topk,
    connectivity_scorer,
    rank_normalise,
    spearman_scorer,
    tanimoto_scorer,
    unordered_pairs,
)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))  # no ties in random normals
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize("block", [1, 7, 64])
def test_blocks_give_the_all_pairs_answer(block: int) -> None:
    rng = np.random.default_rng(1)
    bits = (rng.random((40, 128)) < 0.15).astype(np.uint8)
    inter = bits.astype(float) @ bits.T
    union = bits.sum(1)[:, None] + bits.sum(1)[None, :] - inter
    full = inter / union
    r, c, s = blocked_topk(tanimoto_scorer(bits), 40, 40, 4, 0.1, block, exclude_self=True)
    np.fill_diagonal(full, -1)
    for i in range(40):
        mine = s[r == i]
        want = np.sort(full[i])[::-1][:4]
        assert np.allclose(np.sort(mine)[::-1], want[want >= 0.1], atol=1e-6)
    z = rng.normal(size=(30, 50))
    r, c, s = blocked_topk(spearman_scorer(z), 30, 30, 3, 0.0, block, signed=True, exclude_self=True)
    assert np.allclose(s, [_spearman(z[i], z[j]) for i, j in zip(r, c, strict=True)], atol=1e-5)


def test_connectivity_collapses_signatures_of_one_gene() -> None:
    z = np.array([[1.0, 2.0, -1.0, 0.5, 0.0, 3.0]])
    values = np.array([[1, 2, -1, 0, 0, 0], [-1, -2, 1, 0, 0, 0.1], [0, 0, 0, 0, 0, 1]], dtype=np.float32)
    mask = (values != 0).astype(np.float32)
    raw = connectivity_scorer(z, values, mask, min_genes=1)(0, 1)
    best = best_per_group(connectivity_scorer(z, values, mask, min_genes=1), np.array([0, 0, 1]), 2)(0, 1)
    assert torch.allclose(best[0, 0], raw[0, :2][raw[0, :2].abs().argmax()])
    assert best[0, 1] == pytest.approx(1.0)
    none = connectivity_scorer(z, values, mask, min_genes=5)(0, 1)  # at most 4 genes each
    assert torch.isnan(none).all()


def test_flat_rows_score_nothing_and_pairs_are_kept_once() -> None:
    z = np.vstack([np.arange(5.0), np.ones(5), np.arange(5.0)[::-1]])
    assert np.isnan(rank_normalise(z)[1]).all()
    r, c, s = blocked_topk(spearman_scorer(z), 3, 3, 2, 0.0, signed=True, exclude_self=True)
    assert set(zip(r.tolist(), c.tolist(), strict=True)) == {(0, 2), (2, 0)}  # the flat row never
    a, b, v = unordered_pairs(r, c, s)
    assert a.tolist() == [0] and b.tolist() == [2] and v[0] == pytest.approx(-1.0)
