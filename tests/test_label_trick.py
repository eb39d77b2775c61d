"""The label trick and the similarity votes: a hand-computed vote, no held-out label in any input, and
two synthetic graphs that say what the votes buy (signal only in structure: the GNN matches the kNN;
signal only in signatures: the GNN beats structure kNN)."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import HeteroData

from moakg.gnn.baselines import knn_baselines, pearson, run_baselines, tanimoto
from moakg.gnn.config import TrainConfig
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN, split_known
from moakg.gnn.models import model_inputs
from moakg.gnn.similarity_vote import SimilarityVote
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.train import SHARED_TARGET, model_graph, train, vote_relations
from tests.test_gnn_tasks import toy_graph

CFG = TrainConfig(hidden=32, epochs=80, patience=30, lr=3e-3, write=False, baselines=False)


def add_similarity_edges(data: HeteroData, k: int = 8) -> None:
    """SIMILAR_STRUCTURE (Tanimoto) and SIMILAR_SIGNATURE (Pearson) top-``k`` edges, one per unordered
    pair, with the reverse types: what ``moakg derive similarity`` writes, on a toy graph."""
    c = data["Compound"]
    for rel, sim, ok in (("SIMILAR_STRUCTURE", tanimoto(c.fp, c.fp), c.has_structure),
                         ("SIMILAR_SIGNATURE", pearson(c.z, c.z), c.has_signature)):
        sim = sim.clone()
        sim.fill_diagonal_(-math.inf)
        sim[~ok.bool()] = -math.inf
        sim[:, ~ok.bool()] = -math.inf
        top = sim.topk(k, dim=1)
        rows = torch.arange(sim.size(0)).repeat_interleave(k)
        a, b = rows, top.indices.reshape(-1)
        keep = torch.isfinite(top.values.reshape(-1))
        pairs = torch.stack([torch.minimum(a, b), torch.maximum(a, b)])[:, keep].unique(dim=1)
        data["Compound", rel, "Compound"].edge_index = pairs
        data["Compound", f"rev_{rel}", "Compound"].edge_index = pairs.flip(0)


def test_similarity_vote_matches_a_hand_computation() -> None:
    # node 0 receives from 1 (Tanimoto 1/3, one edge type) and 2 (Tanimoto 1, the reverse type); 3 is
    # unknown and must not count
    fp = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.float)
    y = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=torch.float)
    known = torch.tensor([0.0, 1.0, 1.0, 0.0])
    prior = torch.tensor([0.2, 0.4])
    vote = SimilarityVote("tanimoto", (0, 4), beta=2.0, kappa=0.5)
    out = vote(fp, y, known, prior, [torch.tensor([[1, 3], [0, 0]]), torch.tensor([[2], [0]])])
    w1, w2 = math.exp(2.0 * (1 / 3 - 1)), math.exp(0.0)
    expected = (torch.tensor([w1, w2]) + 0.5 * prior) / (0.5 + w1 + w2)
    assert torch.allclose(out[0], expected, atol=1e-6)
    assert torch.allclose(out[1:], prior.expand(3, 2))  # no known neighbour: the prior


def test_held_out_labels_never_reach_an_input_or_a_prediction() -> None:
    data, maps = toy_graph(n_compounds=120, signal="fingerprint")
    add_similarity_edges(data)
    task = make_moa_task(data, maps, split="scaffold", seed=0)
    g = model_graph(task, CFG)
    held = torch.cat([task.split.val, task.split.test])
    c = g["Compound"]
    assert c[LABEL_KNOWN][held].sum() == 0 and c[LABEL_INPUT][held].abs().sum() == 0
    assert torch.equal(c[LABEL_INPUT][task.split.train], task.y[task.split.train])
    # the epoch split: known and supervised partition the training compounds
    known, sup = split_known(task.split.train, 0.5, torch.Generator().manual_seed(0))
    assert sorted(torch.cat([known, sup]).tolist()) == sorted(task.split.train.tolist())
    assert sup.numel() >= 1 and not set(known.tolist()) & set(sup.tolist())
    res = train(task, CFG.updated({"epochs": 5}), "sage", 0)
    # scrambling every held-out label changes nothing the trained model reads
    scrambled = task.y.clone()
    scrambled[held] = 1.0 - scrambled[held]
    task2 = type(task)(**{**task.__dict__, "y": scrambled})
    m = res.model.eval()
    with torch.no_grad():
        a = m(*model_inputs(model_graph(task, CFG)))[task.split.test]
        b = m(*model_inputs(model_graph(task2, CFG)))[task.split.test]
    assert torch.equal(a, b)


def _gnn_and_knn(signal: str) -> tuple[float, float, float]:
    data, maps = toy_graph(n_compounds=180, signal=signal, seed=1)
    add_similarity_edges(data)
    task = make_moa_task(data, maps, split="scaffold", seed=0)
    assert set(vote_relations(model_graph(task, CFG))) == {"SIMILAR_STRUCTURE", "SIMILAR_SIGNATURE"}
    knn = {b.name: b.metrics["micro_auprc"] for b in knn_baselines(task)}
    gnn = train(task, CFG, "sage", 0).metrics["micro_auprc"]
    return gnn, knn["tanimoto_knn"], knn["signature_knn"]


@pytest.mark.parametrize("signal", ["fingerprint", "signature"])
def test_votes_make_the_gnn_at_least_the_nearest_neighbour(signal: str) -> None:
    gnn, structure_knn, signature_knn = _gnn_and_knn(signal)
    if signal == "fingerprint":  # only structure carries the class: the GNN matches the kNN
        assert structure_knn > 0.8 and gnn >= structure_knn - 0.05, (gnn, structure_knn)
    else:  # only signatures do: structure kNN is at chance, the GNN reads the signatures
        assert structure_knn < 0.5 and gnn > structure_knn + 0.3, (gnn, structure_knn, signature_knn)


def test_rewired_held_out_labels_reach_no_feature_edge_label_input_or_baseline() -> None:
    """Rewire every HAS_MOA edge of the test compounds in the graph itself to another MoA and rebuild the
    task: the class set, the split, every feature, every message edge (similarity edges included), the
    label input and every baseline's test scores must be what they were. (Validation labels may move
    choices, as the GNN's epoch: that is what they are for.)"""
    from moakg.gnn.baselines import run_baselines
    from moakg.gnn.models import message_edge_types

    data, maps = toy_graph(n_compounds=120, signal="fingerprint")
    add_similarity_edges(data)
    task = make_moa_task(data, maps, split="scaffold", seed=0)
    held = task.split.test
    et = ("Compound", "HAS_MOA", "MoA")
    rewired = data.clone()
    ei = rewired[et].edge_index.clone()
    # each held-out label moves to the next kept class, so no compound leaves the task
    kept = task.class_nodes
    on_held = torch.isin(ei[0], held) & torch.isin(ei[1], kept)
    pos = (ei[1, on_held].unsqueeze(1) == kept).float().argmax(1)
    ei[1, on_held] = kept[(pos + 1) % kept.numel()]
    rewired[et].edge_index = ei
    rev = ("MoA", "rev_HAS_MOA", "Compound")
    if rev in rewired.edge_types:
        rewired[rev].edge_index = ei.flip(0)
    task2 = make_moa_task(rewired, maps, split="scaffold", seed=0)

    assert task2.classes == task.classes
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(task.split, part), getattr(task2.split, part))
    assert not torch.equal(task.y[held], task2.y[held])  # the rewiring did change held-out labels
    g1, g2 = model_graph(task, CFG), model_graph(task2, CFG)
    for t in g1.node_types:
        for key in ("x", LABEL_INPUT, LABEL_KNOWN):
            if key in g1[t]:
                assert torch.equal(g1[t][key], g2[t][key]), (t, key)
    assert message_edge_types(g1) == message_edge_types(g2)
    for e in message_edge_types(g1):
        assert torch.equal(g1[e].edge_index, g2[e].edge_index), e
    base1 = {b.name: b for b in run_baselines(task, seed=0, epochs=20)}
    base2 = {b.name: b for b in run_baselines(task2, seed=0, epochs=20)}
    assert base1.keys() == base2.keys() and "tanimoto_knn" in base1
    for name, b in base1.items():
        assert torch.equal(b.eval_idx, base2[name].eval_idx), name
        assert torch.allclose(b.scores, base2[name].scores), name
    # the GNN, whose votes start at a grid point chosen on validation, predicts the same test scores
    r1 = train(task, CFG.updated({"epochs": 3}), "sage", 0)
    r2 = train(task2, CFG.updated({"epochs": 3}), "sage", 0)
    assert r1.best_epoch == r2.best_epoch
    assert "SIMILAR_STRUCTURE" in r1.vote_start and r1.vote_start == r2.vote_start
    assert torch.allclose(r1.test_scores, r2.test_scores)


def test_known_targets_adds_the_shared_target_vote_and_the_gnn_reads_target_sets() -> None:
    """The class is a function of the target set and structure is noise: in 'known_targets' the model
    gets the SHARED_TARGET vote (compounds sharing targets, Compound-TARGETS-Gene-TARGETS-Compound) and
    matches the target-Jaccard kNN, far above structure kNN; in 'phenotype' (no test targets) it has no
    such vote."""
    data, maps = toy_graph(n_compounds=180, signal="targets", seed=1)
    add_similarity_edges(data)
    phen = make_moa_task(data, maps, split="scaffold", seed=0, setting="phenotype")
    assert SHARED_TARGET not in vote_relations(model_graph(phen, CFG), phen.setting)
    task = make_moa_task(data, maps, split="scaffold", seed=0, setting="known_targets")
    assert SHARED_TARGET in vote_relations(model_graph(task, CFG), task.setting)
    base = {b.name: b.metrics["micro_auprc"] for b in run_baselines(task, seed=0, epochs=20)}
    res = train(task, CFG, "sage", 0)
    gnn = res.metrics["micro_auprc"]
    assert base["target_jaccard_knn"] > base["tanimoto_knn"] + 0.3, base
    assert gnn >= base["target_jaccard_knn"] - 0.05 and gnn > base["tanimoto_knn"] + 0.3, (gnn, base)
    assert res.vote_start[SHARED_TARGET][0] > 0  # validation opened the shared-target gate
