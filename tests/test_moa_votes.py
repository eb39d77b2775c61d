"""The MoA-mediated target vote (Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA-HAS_MOA-Compound-TARGETS-
Gene): no held-out compound's MoA reaches an input, a baseline or a prediction, and on a graph where
most compounds bring an MoA but no target, the vote through the MoA layer is what ranks the targets."""

from __future__ import annotations

import torch

from moakg.gnn.baselines import run_baselines
from moakg.gnn.config import TrainConfig
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN
from moakg.gnn.tasks import assert_no_leakage, make_target_task
from moakg.gnn.train import MOA_MEDIATED, model_graph, train
from tests.test_gnn_tasks import toy_graph
from tests.test_label_trick import add_similarity_edges

CFG = TrainConfig(task="target", hidden=16, epochs=3, patience=30, lr=3e-3, write=False, baselines=False)
HAS_MOA, REV_HAS_MOA = ("Compound", "HAS_MOA", "MoA"), ("MoA", "rev_HAS_MOA", "Compound")


def test_held_out_moas_reach_no_input_baseline_or_prediction() -> None:
    """Rewire every HAS_MOA edge of the validation and test compounds in the graph itself and rebuild the
    target task: the MoA input, every feature, every baseline's test scores (the stacked MoA kNN among
    them) and the GNN's test scores must be what they were."""
    data, maps = toy_graph(n_compounds=120, signal="fingerprint", seed=3)
    add_similarity_edges(data)
    task = make_target_task(data, maps, split="scaffold", seed=0, setting="phenotype")
    held = torch.cat([task.split.val, task.split.test])
    assert task.moa is not None and task.moa[held].sum() == 0 and task.moa.sum() > 0
    rewired = data.clone()
    ei = rewired[HAS_MOA].edge_index.clone()
    on_held = torch.isin(ei[0], held)
    ei[1, on_held] = (ei[1, on_held] + 1) % int(data["MoA"].num_nodes)
    rewired[HAS_MOA].edge_index = ei
    rewired[REV_HAS_MOA].edge_index = ei.flip(0)
    task2 = make_target_task(rewired, maps, split="scaffold", seed=0, setting="phenotype")
    assert torch.equal(task.moa, task2.moa)
    g1, g2 = model_graph(task, CFG), model_graph(task2, CFG)
    assert LABEL_INPUT in g1["Compound"]
    for key in ("x", LABEL_INPUT, LABEL_KNOWN):
        assert torch.equal(g1["Compound"][key], g2["Compound"][key]), key
    base1 = {b.name: b for b in run_baselines(task, seed=0, epochs=10)}
    base2 = {b.name: b for b in run_baselines(task2, seed=0, epochs=10)}
    assert "tanimoto_moa_knn" in base1
    for name, b in base1.items():
        assert torch.allclose(b.scores, base2[name].scores), name
    r1, r2 = train(task, CFG, "sage", 0), train(task2, CFG, "sage", 0)
    assert MOA_MEDIATED in r1.vote_start and r1.vote_start == r2.vote_start
    assert torch.allclose(r1.test_scores, r2.test_scores)


def test_leakage_check_catches_a_held_out_moa_input() -> None:
    data, maps = toy_graph(n_compounds=90, seed=4)
    task = make_target_task(data, maps, split="random", seed=0, setting="phenotype")
    assert_no_leakage(task)
    task.moa[task.split.test[0], 0] = 1.0
    try:
        assert_no_leakage(task)
    except AssertionError as exc:
        assert "MoA input" in str(exc)
    else:
        raise AssertionError("a held-out compound's MoA input went unnoticed")


def test_no_moa_votes_option_builds_the_model_without_the_moa_input() -> None:
    data, maps = toy_graph(n_compounds=90, seed=5)
    add_similarity_edges(data)
    task = make_target_task(data, maps, split="random", seed=0, setting="phenotype")
    off = CFG.updated({"moa_votes": False})
    assert LABEL_INPUT not in model_graph(task, off)["Compound"]
    assert MOA_MEDIATED not in train(task, off, "sage", 0).vote_start
