"""Baselines and label noise (moakg.gnn.baselines, moakg.gnn.noise) on small synthetic graphs."""

from __future__ import annotations

import dataclasses
import math
import re
from functools import partial

import pytest
import torch
from test_gnn_tasks import toy_graph

from moakg.gnn.baselines import (
    KNN_DEFAULT,
    KNN_KS,
    KNN_SHRINKS,
    SETTING_BASELINES,
    TARGET_BASELINES,
    BaselineResult,
    compound_targets,
    frequency_prior,
    gene_degree,
    knn_baselines,
    knn_scores,
    pearson,
    run_baselines,
    tanimoto,
    tanimoto_knn,
    target_baselines,
    tune_knn,
)
from moakg.gnn.metrics import moa_metrics, target_metrics
from moakg.gnn.noise import flip_labels, flip_labels_report, target_sharing
from moakg.gnn.tasks import (
    MoATask,
    drop_incident,
    make_moa_task,
    make_signature_task,
    make_target_task,
    target_relations,
)

KNN_NAMES = ("tanimoto_knn", "signature_knn", "fused_knn")
TARGET_NAMES = ("target_jaccard_knn", "target_logreg")


def _by_name(results: list[BaselineResult]) -> dict[str, BaselineResult]:
    return {r.name: r for r in results}


def test_tanimoto_hand_values() -> None:
    a = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float)
    b = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float)
    assert torch.allclose(tanimoto(a, b), torch.tensor([[1 / 3, 1.0], [0.0, 0.0]]))
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    knn = tanimoto_knn(a[:1], b, y, k=2)  # weights 1/3 and 1: (1/3 * [1, 0] + [0, 1]) / (4/3)
    assert torch.allclose(knn, torch.tensor([[0.25, 0.75]]), atol=1e-5)


def test_pearson_and_knn_scores_hand_values() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    b = torch.tensor([[2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    r = pearson(a, b)
    assert torch.allclose(r[0], torch.tensor([1.0, -1.0, 0.5]), atol=1e-6)
    assert torch.equal(r[1], torch.zeros(3))  # a constant profile has no correlation
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    prior = torch.tensor([0.5, 0.5])
    # a negative correlation is ranked but weighs only the floor; shrink 0.1 blends in the prior
    s = knn_scores(r[:1], y, k=2, prior=prior, shrink=0.1)
    w1, w3 = 1.0 + 1e-6, 0.5 + 1e-6
    mean = (w1 * y[0] + w3 * y[2]) / (w1 + w3)
    assert torch.allclose(s[0], 0.9 * mean + 0.1 * prior, atol=1e-6)
    # k=3, class 1: the anti-correlated b[1] (weight 1e-6) and b[2] (0.5 + 1e-6) carry it, b[0] does not
    expected = (0.5 + 2e-6) / (1.5 + 3e-6)
    assert knn_scores(r[:1], y, k=3)[0, 1].item() == pytest.approx(expected, abs=1e-7)
    # nan pairs (an input missing on one side) are never neighbours; a row with none gets the prior
    sim = torch.tensor([[math.nan, 0.2, math.nan], [math.nan] * 3])
    s = knn_scores(sim, y, k=3, prior=prior, shrink=0.3)
    assert torch.allclose(s, torch.stack([0.7 * y[1] + 0.3 * prior, prior]), atol=1e-6)
    # nothing to tune on: the defaults, with an undefined validation score
    choice = tune_knn(torch.zeros(0, 3), y, prior, lambda sc: 1.0)
    assert (choice.k, choice.shrink) == KNN_DEFAULT and not choice.tuned


def test_fingerprint_baselines_beat_the_prior_when_labels_follow_fingerprints() -> None:
    data, maps = toy_graph(n_compounds=180, signal="fingerprint")
    task = make_moa_task(data, maps, split="scaffold", seed=0)
    res = _by_name(run_baselines(task, seed=0, epochs=150))
    prior = res["frequency_prior"].metrics
    for name in ("tanimoto_knn", "fp_mlp"):
        m = res[name].metrics
        assert m["micro_auprc"] > prior["micro_auprc"] + 0.3, (name, m, prior)
        assert m["top1_acc"] > 0.8 and m["auroc"] > 0.9, (name, m)
        assert res[name].n_eval == task.split.test.numel()
    assert prior["auroc"] == pytest.approx(0.5)  # constant scores: every pair tied
    # signature models see noise here; they score the GNN's test rows, the prior standing in for
    # compounds without a signature
    n_without = int((~data["Compound"].has_signature[task.split.test].bool()).sum())
    assert n_without > 0 and res["sig_mlp"].n_eval == task.split.test.numel()
    assert res["sig_mlp"].note == f"{n_without} test rows without a signature use the prior"
    assert res["sig_mlp"].metrics["micro_auprc"] < res["fp_mlp"].metrics["micro_auprc"] - 0.2
    # nearest neighbours: structure finds the classes, signatures do not; fusing keeps structure's lead
    knn = {name: res[name].metrics["micro_auprc"] for name in KNN_NAMES}
    assert knn["tanimoto_knn"] > knn["signature_knn"] + 0.3, knn
    assert knn["fused_knn"] > knn["signature_knn"] + 0.3, knn


def test_shuffled_drug_ablation_loses_to_the_signature_model() -> None:
    data, maps = toy_graph(n_compounds=180, signal="signature")
    task = make_moa_task(data, maps, split="random", seed=1)
    res = _by_name(run_baselines(task, seed=1, epochs=150))
    sig, shuf = res["sig_mlp"].metrics, res["shuffled_sig_mlp"].metrics
    assert sig["micro_auprc"] > shuf["micro_auprc"] + 0.3, (sig, shuf)
    assert sig["top1_acc"] > 0.8 and res["sig_logreg"].metrics["top1_acc"] > 0.8
    assert res["sig_mlp"].n_eval == res["shuffled_sig_mlp"].n_eval  # the same rows
    assert shuf["micro_auprc"] < res["frequency_prior"].metrics["micro_auprc"] + 0.15
    # nearest neighbours: signatures find the classes, fingerprints (noise here) do not
    knn = {name: res[name].metrics["micro_auprc"] for name in (*KNN_NAMES, "frequency_prior")}
    assert knn["signature_knn"] > knn["tanimoto_knn"] + 0.3, knn
    assert knn["signature_knn"] > knn["frequency_prior"] + 0.3, knn
    assert knn["fused_knn"] > knn["tanimoto_knn"] + 0.3, knn
    assert res["signature_knn"].metrics["top1_acc"] > 0.8
    assert all(res[name].n_eval == task.split.test.numel() for name in KNN_NAMES)  # the GNN's test rows


def test_knn_choice_and_scores_reproduce_from_validation_and_every_test_row_is_scored() -> None:
    data, maps = toy_graph(n_compounds=180, signal="signature")
    task = make_moa_task(data, maps, split="random", seed=1)
    res = _by_name(knn_baselines(task))
    assert set(res) == set(KNN_NAMES)
    g, s = task.graph["Compound"], task.split
    has_sig = g.has_signature.bool()
    prior = frequency_prior(task.y[s.train], 1)[0]
    for r in res.values():
        k, shrink = int(r.params["k"]), r.params["shrink"]
        assert k in KNN_KS and 1 <= k <= 20 and shrink in KNN_SHRINKS
        assert re.match(rf"k={k}, shrink={shrink:g} \(val micro_auprc {r.params['val']:.3f}\); ", r.note)
        assert torch.equal(r.eval_idx, s.test)
    # Redo signature_knn by hand: neighbours are the training compounds with a signature, rows without
    # one get the prior; the recorded validation score is moa_metrics' micro AUPRC of the chosen setting.
    r = res["signature_knn"]
    k, shrink = int(r.params["k"]), r.params["shrink"]
    tr = s.train[has_sig[s.train]]

    def by_hand(rows: torch.Tensor) -> torch.Tensor:
        out = knn_scores(pearson(g.z[rows], g.z[tr]), task.y[tr], k, prior, shrink)
        out[~has_sig[rows]] = prior
        return out

    assert math.isclose(moa_metrics(task.y[s.val], by_hand(s.val))["micro_auprc"], r.params["val"],
                        rel_tol=1e-9)
    assert torch.allclose(r.scores, by_hand(s.test), atol=1e-6)
    n_without = int((~has_sig[s.test]).sum())
    assert n_without > 0 and r.note.endswith(f"; {n_without} test rows without a signature use the prior")
    assert torch.allclose(r.scores[~has_sig[s.test]], prior.expand(n_without, -1))


def scrambled_labels(task: MoATask, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
    """``task.y`` with the labels of ``rows`` permuted among them."""
    y = task.y.clone()
    y[rows] = y[rows][torch.randperm(rows.numel(), generator=gen)]
    return y


def test_knn_tuning_never_reads_test_labels() -> None:
    """Scrambling the test labels leaves every choice and every score as it was (only the test metric
    moves); scrambling the validation labels does move the validation score the choice is made on."""
    data, maps = toy_graph(n_compounds=180, signal="both")
    task = make_moa_task(data, maps, split="random", seed=0)
    s = task.split
    gen = torch.Generator().manual_seed(0)
    scrambled = partial(scrambled_labels, task, gen)

    base = _by_name(knn_baselines(task))
    other = _by_name(knn_baselines(dataclasses.replace(task, y=scrambled(s.test))))
    moved_val = _by_name(knn_baselines(dataclasses.replace(task, y=scrambled(s.val))))
    for name in KNN_NAMES:
        assert base[name].params == other[name].params, name
        assert torch.equal(base[name].scores, other[name].scores), name
        assert base[name].metrics["micro_auprc"] > other[name].metrics["micro_auprc"] + 0.2, name
        assert moved_val[name].params["val"] < base[name].params["val"] - 0.2, name
    # the target task: replacing the held-out test pairs by random genes changes nothing but the metric
    data, maps = toy_graph(n_compounds=150, signal="fingerprint")
    ttask = make_target_task(data, maps, split="random", seed=0)
    test = ttask.pos["test"]
    fake = torch.stack([test[0], torch.randint(0, ttask.n_genes, (test.size(1),), generator=gen)])
    ks = range(1, 11)  # half the grid: the target metric ranks all genes, 60 x 3 of them would be slow
    tbase = _by_name(knn_baselines(ttask, ks=ks))
    tother = _by_name(knn_baselines(dataclasses.replace(ttask, pos={**ttask.pos, "test": fake}), ks=ks))
    for name in KNN_NAMES:
        assert tbase[name].params == tother[name].params, name
        assert torch.equal(tbase[name].scores, tother[name].scores), name
        assert tbase[name].note.startswith(f"k={int(tbase[name].params['k'])}, shrink="), name
        assert " (val mrr " in tbase[name].note
    assert tbase["tanimoto_knn"].metrics["mrr"] > tother["tanimoto_knn"].metrics["mrr"] + 0.2


def test_signature_task_baselines_on_unseen_cell_lines() -> None:
    data, maps = toy_graph(n_compounds=150, signal="signature", n_cells=5)
    task = make_signature_task(data, maps, split="cell_line", seed=0)
    res = _by_name(run_baselines(task, seed=0, epochs=100))
    assert set(res) == {"frequency_prior", "sig_logreg", "sig_mlp", "shuffled_sig_mlp"}
    assert res["sig_mlp"].metrics["top1_acc"] > 0.8
    assert res["sig_mlp"].n_eval == task.split.test.numel()


def test_target_baselines_degree_ranks_high_degree_genes_first() -> None:
    data, maps = toy_graph(n_compounds=150, signal="fingerprint")
    task = make_target_task(data, maps, split="random", seed=0)
    deg = gene_degree(task.graph)
    n = task.graph["Gene"].num_nodes
    expected = torch.zeros(n)
    for et in task.graph.edge_types:
        if et[0] == "Gene":  # every relation has a reverse, so counting sources counts each edge once
            expected += torch.bincount(task.graph[et].edge_index[0], minlength=n).float()
    assert torch.equal(deg, expected)
    assert deg[n - 1] > deg[32:n - 1].max()  # the INTERACTS_WITH hub among the genes off signatures/targets
    res = _by_name(run_baselines(task, seed=0, epochs=100))
    top = res["degree"].scores[0].argsort(descending=True)
    assert torch.equal(deg[top], deg.sort(descending=True).values)
    assert {"frequency_prior", "degree", "tanimoto_knn", "fp_mlp"} <= set(res)
    # fingerprints carry the class and the class fixes the target genes
    assert res["tanimoto_knn"].metrics["mrr"] > res["frequency_prior"].metrics["mrr"] + 0.1
    assert res["tanimoto_knn"].metrics["hits@10"] >= res["degree"].metrics["hits@10"]
    # Each baseline is scored on exactly the held-out pairs of the compounds it could score.
    test_pairs = task.pos["test"]
    for r in res.values():
        assert r.metrics["n_compounds"] == r.n_eval, r.name
        assert r.metrics["n_pairs"] == int(torch.isin(test_pairs[0], r.eval_idx).sum()), r.name
    assert res["degree"].metrics["n_pairs"] == test_pairs.size(1)  # degree scores every test compound



def test_target_baselines_see_known_targets_only_in_that_setting() -> None:
    """The toy's MoA is a function of the target set (class c targets genes 3c..3c+2) while structure
    and signatures are noise: the target baselines find the classes in 'known_targets', and exist only
    there (in 'phenotype' held-out compounds have no targets; the target task predicts them)."""
    data, maps = toy_graph(n_compounds=150, signal="targets")
    task = make_moa_task(data, maps, split="random", seed=0, setting="known_targets")
    known = compound_targets(task.graph).T.tolist()
    pairs = {(c, g) for c, g in data["Compound", "TARGETS", "Gene"].edge_index.T.tolist()}
    assert len(known) == len(pairs) and {(c, g) for c, g in known} == pairs  # duplicates count once
    res = _by_name(run_baselines(task, seed=0))
    prior = res["frequency_prior"].metrics["micro_auprc"]
    for name in TARGET_NAMES:
        m = res[name].metrics
        assert m["micro_auprc"] > prior + 0.4, (name, m, prior)
        assert m["micro_auprc"] > res["tanimoto_knn"].metrics["micro_auprc"] + 0.3, (name, m)
        assert torch.equal(res[name].eval_idx, task.split.test), name  # every test row, as the GNN's
    assert res["target_jaccard_knn"].metrics["top1_acc"] > 0.9
    k, shrink = int(res["target_jaccard_knn"].params["k"]), res["target_jaccard_knn"].params["shrink"]
    assert k in KNN_KS and shrink in KNN_SHRINKS
    assert res["target_jaccard_knn"].note.endswith("; 0 test rows without a target use the prior")
    phen = make_moa_task(data, maps, split="random", seed=0, setting="phenotype")
    assert not set(TARGET_NAMES) & set(_by_name(run_baselines(phen, seed=0, epochs=20)))
    assert target_baselines(make_target_task(data, maps, split="random", seed=0, setting="phenotype")) == []
    # Test compounds without a target (here: edges removed) get the training prior, counted in the note.
    gone = task.split.test[:4]
    mask = torch.zeros(data["Compound"].num_nodes, dtype=torch.bool)
    mask[gone] = True
    graph = task.graph.clone()
    drop_incident(graph, "Compound", "Gene", nodes_a=mask, relations=target_relations())
    cut = _by_name(target_baselines(dataclasses.replace(task, graph=graph), epochs=20))
    p = frequency_prior(task.y[task.split.train], 1)[0]
    for name, lack in zip(TARGET_NAMES, ("a target", "any of them"), strict=True):
        assert cut[name].note.endswith(f"{gone.numel()} test rows without {lack} use the prior"), name
        assert torch.allclose(cut[name].scores[:4], p.expand(4, -1)), name


def test_target_task_target_jaccard_knn_finds_the_hidden_targets_of_the_kept_ones() -> None:
    """Class ``c`` targets genes ``3c..3c+2`` and structure is noise: in the target task's
    'known_targets' setting a test compound keeps some of its three targets, and the compounds sharing
    them vote for the hidden ones, far above structure kNN; kept targets are filtered from its ranking.
    No ``target_logreg`` there (its input would be its label)."""
    data, maps = toy_graph(n_compounds=150, signal="targets")
    task = make_target_task(data, maps, split="random", seed=0, setting="known_targets")
    res = _by_name(run_baselines(task, seed=0, epochs=20))
    assert "target_logreg" not in res
    assert torch.equal(res["target_jaccard_knn"].eval_idx, task.split.test)
    # Compounds with one target keep none (at least one is always hidden) and get the prior; on those
    # that kept one, the hidden target is one of the class's two other genes (or the shared gene 30).
    kept = torch.isin(task.split.test, compound_targets(task.graph)[0])
    assert 5 <= int(kept.sum()) < task.split.test.numel()
    rows, hidden = task.split.test[kept], task.pos["test"]
    hidden = hidden[:, torch.isin(hidden[0], rows)]

    def mrr(name: str) -> float:
        return target_metrics(res[name].scores[kept], hidden, compounds=rows, known=task.pos["train"])["mrr"]

    jac, tani = mrr("target_jaccard_knn"), mrr("tanimoto_knn")
    assert jac > 0.55 and jac > tani + 0.25, (jac, tani)


def test_target_baselines_never_read_test_labels() -> None:
    """Scrambling the test compounds' MoA labels changes no choice and no score of the target baselines
    (the feature columns and the epoch come from training targets and validation labels); scrambling
    the validation labels moves the validation score the kNN choice is made on."""
    data, maps = toy_graph(n_compounds=150, signal="targets")
    task = make_moa_task(data, maps, split="random", seed=0, setting="known_targets")
    s = task.split
    gen = torch.Generator().manual_seed(0)
    scrambled = partial(scrambled_labels, task, gen)

    base = _by_name(target_baselines(task))
    other = _by_name(target_baselines(dataclasses.replace(task, y=scrambled(s.test))))
    moved_val = _by_name(target_baselines(dataclasses.replace(task, y=scrambled(s.val))))
    assert set(base) == set(TARGET_NAMES)
    for name in TARGET_NAMES:
        assert base[name].params == other[name].params, name
        assert base[name].note == other[name].note, name
        assert torch.equal(base[name].scores, other[name].scores), name
        assert base[name].metrics["micro_auprc"] > other[name].metrics["micro_auprc"] + 0.2, name
    assert moved_val["target_jaccard_knn"].params["val"] < base["target_jaccard_knn"].params["val"] - 0.2


# ------------------------------------------------------------------------------------------ noise
def _labels(n: int = 100, c: int = 5, seed: int = 0) -> torch.Tensor:
    y = torch.zeros(n, c)
    y[torch.arange(n), torch.arange(n) % c] = 1
    y[::10, (torch.arange(0, n, 10) + 1) % c] = 1  # some multi-label rows
    return y


def test_flip_labels_uniform_exact_count_train_rows_only() -> None:
    y = _labels()
    train, rest = torch.arange(0, 70), torch.arange(70, 100)
    for p in (0.0, 0.2, 0.4):
        noisy, rep = flip_labels_report(y, train, p, "uniform", seed=3)
        changed = (noisy != y).any(1)
        assert int(changed.sum()) == round(p * 70) == rep.rows.numel()
        assert not changed[rest].any()
        assert torch.equal(noisy.sum(1), y.sum(1))  # one label moved, none added or lost
        assert (y[rep.rows, rep.old] == 1).all() and (y[rep.rows, rep.new] == 0).all()
    assert torch.equal(flip_labels(y, train, 0.3, seed=1), flip_labels(y, train, 0.3, seed=1))
    assert not torch.equal(flip_labels(y, train, 0.3, seed=1), flip_labels(y, train, 0.3, seed=2))


def test_flip_labels_structured_goes_to_target_sharing_moas() -> None:
    # classes 0-1-2 share targets pairwise along a chain, 3 and 4 share with nobody
    share = torch.zeros(5, 5, dtype=torch.bool)
    share[0, 1] = share[1, 0] = share[1, 2] = share[2, 1] = True
    y = torch.zeros(60, 5)
    y[torch.arange(60), torch.arange(60) % 3] = 1  # only classes 0..2 present
    train = torch.arange(40)
    noisy, rep = flip_labels_report(y, train, 0.5, "structured", seed=0, shares_target=share)
    assert rep.rows.numel() == 20 and rep.n_fallback == 0
    assert share[rep.old, rep.new].all()
    assert not (noisy[40:] != y[40:]).any()
    # where too few rows have a sharing class, the rest fall back to uniform (and are counted)
    y2 = torch.zeros(10, 5)
    y2[:, 3] = 1
    y2[:2, 3], y2[:2, 0] = 0, 1
    _, rep2 = flip_labels_report(y2, torch.arange(10), 0.5, "structured", seed=0, shares_target=share)
    assert rep2.rows.numel() == 5 and rep2.n_fallback == 3
    assert set(rep2.rows[:2].tolist()) == {0, 1} and share[rep2.old[:2], rep2.new[:2]].all()
    with pytest.raises(ValueError, match="shares_target"):
        flip_labels(y, train, 0.1, "structured")


def test_target_sharing_from_targets_edges() -> None:
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.float)
    targets = torch.tensor([[0, 1, 2, 3], [5, 5, 7, 8]])  # compounds 0 and 1 both hit gene 5
    share = target_sharing(y, targets, n_genes=10)
    assert share.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    # only training rows count: without compound 1, class 1 has no targets
    assert not target_sharing(y, targets, 10, rows=torch.tensor([0, 2, 3])).any()


def test_both_settings_share_the_setting_free_baselines() -> None:
    """With --setting both, an MoA seed's baselines that read no targets are trained once and reused in
    the known_targets setting (same split, same labels); the target-aware ones are its own."""
    from moakg.gnn.config import TrainConfig
    from moakg.gnn.run import run_experiment

    data, maps = toy_graph(n_compounds=100, signal="both")
    cfg = TrainConfig(task="moa", models=("sage",), split="random", seeds=(0,), epochs=2, hidden=8,
                      baseline_epochs=5, write=False)
    res = run_experiment(None, cfg, data, maps, log=lambda _m: None, n_boot=20)
    pheno = {name for (setting, name, _seed) in res.baselines if setting == "phenotype"}
    known = {name for (setting, name, _seed) in res.baselines if setting == "known_targets"}
    assert known == pheno | set(TARGET_BASELINES) and not pheno & set(TARGET_BASELINES)
    for name in pheno:
        a, b = res.baselines[("phenotype", name, 0)], res.baselines[("known_targets", name, 0)]
        if name in SETTING_BASELINES:  # the metapath model reads TARGETS metapaths in known_targets
            assert a["scores"] is not b["scores"], name
        else:
            assert a["scores"] is b["scores"], name  # the same object: trained once


def test_stacked_mlp_knn_is_chosen_on_validation_only_and_keeps_both_views() -> None:
    """The MLP + Tanimoto kNN stack (the GNN's starting point outside the graph): scrambled test labels
    move no score, scrambled validation labels move the choice; where fingerprints carry the class it
    is as good as the better of its two parts within noise, far above the prior."""
    data, maps = toy_graph(n_compounds=180, signal="both")
    task = make_moa_task(data, maps, split="random", seed=0)
    res = _by_name(run_baselines(task, seed=0, epochs=100))
    stack = res["fp_sig_mlp_knn"]
    assert stack.n_eval == task.split.test.numel()
    assert re.fullmatch(r"kNN k=\d+, shrink=[\d.]+, weight [\d.]+ \(validation\)", stack.note), stack.note
    parts = max(res["fp_sig_mlp"].metrics["micro_auprc"], res["tanimoto_knn"].metrics["micro_auprc"])
    assert stack.metrics["micro_auprc"] >= parts - 0.05, (stack.metrics, parts)
    assert stack.metrics["micro_auprc"] > res["frequency_prior"].metrics["micro_auprc"] + 0.3
    gen = torch.Generator().manual_seed(0)
    other = _by_name(run_baselines(dataclasses.replace(task, y=scrambled_labels(task, gen, task.split.test)),
                                   seed=0, epochs=100))["fp_sig_mlp_knn"]
    assert torch.equal(other.scores, stack.scores) and other.note == stack.note
