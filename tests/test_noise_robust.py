"""Noise-robust MoA training: the small-loss (co-teaching) loss by hand, its epoch ramp and the trainer
telling it the epoch, the label-noise experiment choosing GCE's q and the forget rate on validation only,
and ``noisy_validation`` flipping validation labels but never test labels (no Neo4j needed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from moakg.errors import UserError
from moakg.gnn import losses
from moakg.gnn import run as run_module
from moakg.gnn.config import TrainConfig
from moakg.gnn.losses import SmallLossBCE, make_loss, weighted_bce
from moakg.gnn.metrics import moa_metrics
from moakg.gnn.noise import VAL_SEED_OFFSET, flip_labels, noisy_split_labels
from moakg.gnn.run import _noise_experiment
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.train import train
from tests.test_gnn_tasks import toy_graph

HEAD = "micro_auprc"
CFG = TrainConfig(hidden=8, lr=1e-2, write=False, baselines=False, label_noise=(0.4,),
                  noise_modes=("uniform",), forget_ramp=5, seeds=(1,), settings=("phenotype",))


def _task(seed: int = 1, n: int = 90):
    data, maps = toy_graph(n_compounds=n, signal="fingerprint", seed=1, n_bits=64, z_dim=16)
    return data, make_moa_task(data, maps, split="random", seed=seed)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------------------------ the loss
def test_small_loss_is_bce_without_forgetting() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(7, 4, generator=g), (torch.rand(7, 4, generator=g) < 0.3).float()
    w = torch.rand(7, generator=g) + 0.1
    bce = make_loss("bce")
    assert torch.allclose(make_loss("small_loss", forget_rate=0.0)(logits, y, w), bce(logits, y, w))
    late = SmallLossBCE(0.0, ramp=3)
    late.set_epoch(50)
    assert torch.allclose(late(logits, y), weighted_bce(logits, y))
    # forget rate > 0, but epoch 0 of the ramp forgets nothing
    first = SmallLossBCE(0.4, ramp=10)
    first.set_epoch(0)
    assert torch.allclose(first(logits, y, w), bce(logits, y, w))


def test_small_loss_drops_exactly_the_largest_rows() -> None:
    # row losses (mean BCE over 2 classes): log 2, softplus(-2), softplus(2), softplus(1), softplus(-4)
    logits = torch.tensor([[0.0, 0.0], [2.0, -2.0], [-2.0, 2.0], [1.0, -1.0], [4.0, -4.0]],
                          requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    row = [math.log(2), _softplus(-2), _softplus(2), _softplus(1), _softplus(-4)]
    per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
    assert torch.allclose(per_row, torch.tensor(row))
    loss = SmallLossBCE(0.4, ramp=0)  # floor(0.4 * 5) = 2 rows out: rows 2 and 3, the largest
    assert loss.keep(logits, y).tolist() == [0, 1, 4]
    assert loss(logits, y).item() == pytest.approx((row[0] + row[1] + row[4]) / 3, rel=1e-6)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])  # weights do not move the selection, only the mean
    assert loss(logits, y, w).item() == pytest.approx((row[0] + 2 * row[1] + 5 * row[4]) / 8, rel=1e-6)
    loss(logits, y, w).backward()
    assert logits.grad[[2, 3]].abs().sum() == 0 and logits.grad[[0, 1, 4]].abs().sum() > 0
    assert SmallLossBCE(0.2, ramp=0).keep(logits, y).tolist() == [0, 1, 3, 4]  # one row out: row 2
    assert SmallLossBCE(0.9, ramp=0).keep(logits, y).tolist() == [4]  # the smallest row always stays


def test_forget_rate_ramps_linearly() -> None:
    loss = SmallLossBCE(0.2, ramp=10)
    assert [loss.rate(e) for e in (0, 5, 10, 20)] == pytest.approx([0.0, 0.1, 0.2, 0.2])
    for epoch, dropped in ((0, 0), (5, 10), (10, 20), (30, 20)):
        loss.set_epoch(epoch)
        assert loss.n_drop(100) == dropped
    assert SmallLossBCE(0.2, ramp=0).rate(0) == pytest.approx(0.2)


@pytest.mark.parametrize("mini_batch", [False, True])
def test_the_trainer_tells_the_loss_each_epoch(mini_batch: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = SmallLossBCE.set_epoch

    def record(self: SmallLossBCE, epoch: int) -> None:
        seen.append(epoch)
        real(self, epoch)

    monkeypatch.setattr(losses.SmallLossBCE, "set_epoch", record)
    _, task = _task()
    weights = torch.rand(int(task.graph["Compound"].num_nodes)) + 0.5  # sample weights work too
    cfg = CFG.updated({"loss": "small_loss", "epochs": 3, "patience": 3, "mini_batch": mini_batch,
                       "batch_size": 16, "quality_weights": True, "label_noise": []})
    res = train(task, cfg, "sage", 0, sample_weight=weights)
    assert seen == [0, 1, 2]
    assert all(math.isfinite(v) for v in res.curves["loss"])


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(("values", "message"), [
    ({"forget_rate": 1.0}, "--forget-rate"),
    ({"forget_rate": -0.1}, "--forget-rate"),
    ({"forget_ramp": -1}, "--forget-ramp"),
    ({"noisy_validation": True}, "--noisy-validation"),
    ({"loss": "coteach"}, "small_loss"),
])
def test_new_options_are_validated(values: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(**values).validate()
    TrainConfig(loss="small_loss", forget_rate=0.4, forget_ramp=0, noisy_validation=True,
                label_noise=(0.2,)).validate()


def test_train_command_takes_the_new_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tests.test_train_cli import _Captured, _train_app

    cap = _Captured(monkeypatch)
    args = ["train", "--loss", "small_loss", "--forget-rate", "0.4", "--forget-ramp", "3",
            "--label-noise", "0.2", "--noisy-validation"]
    result = CliRunner().invoke(_train_app(), args)
    assert result.exit_code == 0, result.output
    [cfg] = cap.configs
    assert (cfg.loss, cfg.forget_rate, cfg.forget_ramp, cfg.noisy_validation) == ("small_loss", 0.4, 3, True)
    result = CliRunner().invoke(_train_app(), ["train", "--forget-rate", "1.5"])
    assert result.exit_code == 1 and "--forget-rate is the share of rows left out" in result.output
    import typer.main

    command = typer.main.get_command(_train_app()).commands["train"]  # type: ignore[attr-defined]
    flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    assert {"--forget-rate", "--forget-ramp", "--noisy-validation", "--clean-validation"} <= flags


# ------------------------------------------------------------------------------------------ validation labels
def test_noisy_validation_flips_validation_labels_never_test_labels() -> None:
    _, task = _task()
    s = task.split
    clean_val = noisy_split_labels(task.y, s, 0.4, "uniform", seed=3)
    noisy_val = noisy_split_labels(task.y, s, 0.4, "uniform", seed=3, validation=True)
    assert torch.equal(clean_val, flip_labels(task.y, s.train, 0.4, "uniform", 3))
    assert torch.equal(noisy_val[s.train], clean_val[s.train])  # the same training flips either way
    assert torch.equal(clean_val[s.val], task.y[s.val])
    flipped_val = (noisy_val[s.val] != task.y[s.val]).any(1)
    assert int(flipped_val.sum()) == round(0.4 * s.val.numel())
    same_flip = flip_labels(task.y, s.val, 0.4, "uniform", 3 + VAL_SEED_OFFSET)
    assert torch.equal(noisy_val[s.val], same_flip[s.val])
    for y in (clean_val, noisy_val):
        assert torch.equal(y[s.test], task.y[s.test])


def test_the_trainer_validates_on_the_given_labels_and_tests_on_clean_ones() -> None:
    _, task = _task()
    s = task.split
    y_train_noise = noisy_split_labels(task.y, s, 0.4, "uniform", seed=0)
    y_both = noisy_split_labels(task.y, s, 0.4, "uniform", seed=0, validation=True)
    cfg = CFG.updated({"epochs": 1, "label_noise": []})
    a = train(task, cfg, "sage", 0, y=y_train_noise)
    b = train(task, cfg, "sage", 0, y=y_both)
    assert torch.equal(a.test_scores, b.test_scores)  # the same training: only validation labels differ
    assert a.val_metrics[HEAD] != b.val_metrics[HEAD]
    for r in (a, b):
        assert r.metrics == pytest.approx(moa_metrics(task.y[s.test], r.test_scores), nan_ok=True)


# ------------------------------------------------------------------------------------------ the experiment
def test_under_40_percent_flips_the_robust_losses_keep_up_with_bce() -> None:
    data, task = _task()
    log: list[str] = []
    cfg = CFG.updated({"epochs": 30, "patience": 30})
    (row,) = _noise_experiment(cfg, data, {("phenotype", 1): task}, log.append, q_grid=(0.1, 0.5),
                               forget_grid=(0.2, 0.4))
    assert row["val_labels"] == "clean"
    assert row["gce_q"] in (0.1, 0.5) and row["small_loss_forget"] in (0.2, 0.4)
    bce, gce, small = (float(row[f"{loss}_{HEAD}"]) for loss in ("bce", "gce", "small_loss"))
    # 63 training compounds, 40 % of them mislabelled: every loss is still well above the prior (~0.33)
    assert bce > 0.7, row
    assert gce >= bce - 0.1 and small >= bce - 0.1, row
    assert sum("chosen on validation" in line for line in log) == 2


def test_the_choice_of_q_and_forget_rate_reads_no_test_label(monkeypatch: pytest.MonkeyPatch) -> None:
    data, task = _task()
    s = task.split
    scrambled = task.y.clone()
    order = torch.randperm(s.test.numel(), generator=torch.Generator().manual_seed(0))
    scrambled[s.test] = scrambled[s.test][order]
    scrambled[s.test[:3]] = 1.0 - scrambled[s.test[:3]]
    task2 = type(task)(**{**task.__dict__, "y": scrambled})
    seen: list[torch.Tensor] = []
    real_train = run_module.train

    def spy(t, cfg, kind, seed, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw["y"])
        return real_train(t, cfg, kind, seed, **kw)

    monkeypatch.setattr(run_module, "train", spy)
    cfg = CFG.updated({"epochs": 6, "patience": 6, "noisy_validation": True})
    runs = []
    for t in (task, task2):
        log: list[str] = []
        (row,) = _noise_experiment(cfg, data, {("phenotype", 1): t}, log.append, q_grid=(0.1, 0.5),
                                   forget_grid=(0.2, 0.4))
        runs.append((row, [line for line in log if ": validation" in line]))
        for y in seen:  # validation flipped, test labels exactly the task's
            assert torch.equal(y[s.test], t.y[s.test]) and not torch.equal(y[s.val], t.y[s.val])
        seen.clear()
    (row_a, val_a), (row_b, val_b) = runs
    assert row_a["val_labels"] == "noisy"
    assert len(val_a) == 4 and val_a == val_b  # every candidate's validation score: the same choice
    assert (row_a["gce_q"], row_a["small_loss_forget"]) == (row_b["gce_q"], row_b["small_loss_forget"])
    assert row_a["bce_micro_auprc"] != row_b["bce_micro_auprc"]  # the test labels did change
