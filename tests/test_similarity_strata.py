"""Test compounds by their nearest training compound (moakg.gnn.similarity_strata), against hand values."""

from __future__ import annotations

import pytest
import torch

from moakg.gnn.similarity_strata import max_train_similarity, strata

TRAIN = torch.tensor([[1, 1, 1, 0, 0, 0],
                      [0, 0, 1, 1, 0, 0],
                      [1, 0, 0, 0, 0, 1]], dtype=torch.float)


def test_max_train_similarity_hand_values() -> None:
    test = torch.tensor([[1, 1, 0, 0, 0, 0],   # train 0: 2 shared / 3 set = 2/3; train 2: 1/3; train 1: 0
                         [0, 0, 1, 1, 1, 1],   # train 1: 2 / 4 = 0.5; trains 0 and 2: 1 / 6
                         [0, 0, 0, 0, 0, 0],   # no structure: 0 against everything
                         [1, 1, 1, 0, 0, 0],   # train 0 itself: 1
                         [1, 1, 0, 1, 1, 0]],  # train 0: 2 / 5 = 0.4; trains 1 and 2: 1 / 5
                        dtype=torch.float)
    got = max_train_similarity(test, TRAIN)
    assert torch.allclose(got, torch.tensor([2 / 3, 0.5, 0.0, 1.0, 0.4]))
    # counts are bits: a fingerprint with values > 1 is the same bit vector
    assert torch.allclose(max_train_similarity(3 * test, TRAIN), got)
    assert max_train_similarity(test[:0], TRAIN).shape == (0,)
    with pytest.raises(ValueError, match="at least one training"):
        max_train_similarity(test, TRAIN[:0])


def test_strata_of_hand_computed_similarities() -> None:
    test = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                         [1, 1, 0, 1, 1, 0]], dtype=torch.float)
    # 2/3, 0.5, 0, 1, 0.4 (exactly the lower edge: closed below)
    assert strata(max_train_similarity(test, TRAIN)) == ["0.4-0.7", "0.4-0.7", "<0.4", ">=0.7", "0.4-0.7"]
    # a Tanimoto of exactly 7/10 in float32 is the upper bin, not below it by rounding
    a = torch.tensor([[1.0] * 7 + [0.0] * 3])
    sev = max_train_similarity(a, torch.ones(1, 10))
    assert sev.dtype == torch.float32 and strata(sev) == [">=0.7"]
    assert strata(torch.tensor([0.39999, 0.69999, 0.7], dtype=torch.float64)) == ["<0.4", "0.4-0.7", ">=0.7"]


def test_strata_other_edges_and_bad_input() -> None:
    values = torch.tensor([0.1, 0.3, 0.5, 0.9])
    assert strata(values, edges=(0.3,)) == ["<0.3", ">=0.3", ">=0.3", ">=0.3"]
    assert strata(values, edges=(0.2, 0.5, 0.8)) == ["<0.2", "0.2-0.5", "0.5-0.8", ">=0.8"]
    assert strata(torch.tensor([])) == []
    for bad in ((), (0.7, 0.4), (0.4, 0.4)):
        with pytest.raises(ValueError, match="ascending"):
            strata(values, edges=bad)
    with pytest.raises(ValueError, match="NaN"):
        strata(torch.tensor([0.5, float("nan")]))
