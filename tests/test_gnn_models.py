"""GNN encoders, heads, the neighbour sampler and the training loop on small HeteroData graphs of the
export's shape (no Neo4j needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch_geometric.data import HeteroData

from moakg.gnn.models import (
    KINDS,
    HeteroEncoder,
    MoAClassifier,
    TargetLinkPredictor,
    build_encoder,
    graph_metadata,
    message_edge_types,
)
from moakg.gnn.tasks import make_moa_task, make_target_task
from moakg.gnn.train import ModelConfig, TrainConfig, sample_subgraph, strip_label_edges, train

RELS = [
    ("Compound", "HAS_SIGNATURE", "Signature"),
    ("Signature", "IN_CELL", "CellLine"),
    ("Signature", "UPREGULATES", "Gene"),
    ("Signature", "DOWNREGULATES", "Gene"),
    ("Gene", "INTERACTS_WITH", "Gene"),
    ("Gene", "ANNOTATED_WITH", "GOTerm"),
    ("GOTerm", "IS_A", "GOTerm"),
    ("GOTerm", "PART_OF", "GOTerm"),
    ("Compound", "TARGETS", "Gene"),
    ("Compound", "HAS_MOA", "MoA"),
]


def toy_graph(n_comp: int = 60, n_sig: int = 80, n_gene: int = 30, n_go: int = 20, n_moa: int = 4,
              n_cell: int = 3, seed: int = 0) -> HeteroData:
    """A random graph with the exporter's node types, features and (reverse) edge types.

    MoA labels follow the compounds' targets (compound i targets genes of block i % n_moa), so a model
    that reads TARGETS can learn them.
    """
    g = torch.Generator().manual_seed(seed)
    d = HeteroData()
    sizes = {"Compound": n_comp, "Signature": n_sig, "CellLine": n_cell, "Gene": n_gene, "GOTerm": n_go,
             "MoA": n_moa}
    for t, n in sizes.items():
        d[t].num_nodes = n
        d[t].node_id = torch.arange(n)
    fp = (torch.rand(n_comp, 2048, generator=g) < 0.05).float()
    z = torch.randn(n_comp, 978, generator=g)
    d["Compound"].fp, d["Compound"].z, d["Compound"].x = fp, z, torch.cat([fp, z], 1)
    d["Compound"].has_structure = torch.ones(n_comp, dtype=torch.bool)
    d["Compound"].has_signature = torch.ones(n_comp, dtype=torch.bool)
    d["Signature"].x = torch.randn(n_sig, 978, generator=g)

    def rnd(n_a: int, n_b: int, e: int) -> torch.Tensor:
        a, b = torch.randint(0, n_a, (e,), generator=g), torch.randint(0, n_b, (e,), generator=g)
        return torch.stack([a, b])

    comp = torch.arange(n_comp)
    block = n_gene // n_moa
    two = comp.repeat(2)
    targets = torch.stack([two, (two % n_moa) * block + torch.randint(0, block, (2 * n_comp,), generator=g)])
    edges = {
        RELS[0]: torch.stack([torch.arange(n_sig) % n_comp, torch.arange(n_sig)]),
        RELS[1]: torch.stack([torch.arange(n_sig), torch.arange(n_sig) % n_cell]),
        RELS[2]: rnd(n_sig, n_gene, 200), RELS[3]: rnd(n_sig, n_gene, 200), RELS[4]: rnd(n_gene, n_gene, 60),
        RELS[5]: rnd(n_gene, n_go, 80), RELS[6]: rnd(n_go, n_go, 20), RELS[7]: rnd(n_go, n_go, 10),
        RELS[8]: targets.unique(dim=1), RELS[9]: torch.stack([comp, comp % n_moa]),
    }
    for (s, r, t), ei in edges.items():
        d[s, r, t].edge_index = ei
        d[t, f"rev_{r}", s].edge_index = ei.flip(0)
    return d


def toy_maps(d: HeteroData) -> SimpleNamespace:
    keys = {t: [f"{t}:{i}" for i in range(d[t].num_nodes)] for t in d.node_types}
    return SimpleNamespace(keys=keys, index={t: {k: i for i, k in enumerate(v)} for t, v in keys.items()})


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_and_heads_shapes(kind: str) -> None:
    d = toy_graph()
    enc = build_encoder(d, kind, hidden=16, layers=2, dropout=0.1)
    h = enc(d)
    assert {t: tuple(v.shape) for t, v in h.items()} == {t: (d[t].num_nodes, 16) for t in d.node_types}
    assert MoAClassifier(enc, 4)(d).shape == (60, 4)
    link = TargetLinkPredictor(build_encoder(d, kind, hidden=16), n_genes=30)
    emb = link(d)
    assert link.score_all(emb, torch.arange(7)).shape == (7, 30)
    assert link.score(emb, torch.tensor([0, 1]), torch.tensor([2, 3])).shape == (2,)


def test_label_edges_never_message() -> None:
    d = toy_graph()
    node_types, edge_types = graph_metadata(d)
    assert ("Compound", "HAS_MOA", "MoA") in d.edge_types
    assert not any("HAS_MOA" in et[1] for et in edge_types)
    assert len(message_edge_types(d)) == len(d.edge_types) - 2
    with pytest.raises(ValueError, match="label edges"):
        HeteroEncoder((node_types, list(d.edge_types)), {t: d[t].num_nodes for t in node_types},
                      {"Compound": 3026, "Signature": 978})
    # The output for a compound does not change when its HAS_MOA edges change: labels are not inputs.
    enc = build_encoder(d, "sage", hidden=8).eval()
    before = enc(d)["Compound"]
    d2 = d.clone()
    d2["Compound", "HAS_MOA", "MoA"].edge_index = torch.zeros(2, 0, dtype=torch.long)
    d2["MoA", "rev_HAS_MOA", "Compound"].edge_index = torch.zeros(2, 0, dtype=torch.long)
    assert torch.allclose(before, enc(d2)["Compound"])
    assert strip_label_edges(d).edge_types == message_edge_types(d)


def test_sampler_keeps_seeds_and_caps_fanout() -> None:
    d = toy_graph()
    seeds = torch.tensor([3, 7, 11])
    sub, local = sample_subgraph(d, {"Compound": seeds}, (2, 2), torch.Generator().manual_seed(0))
    assert torch.equal(sub["Compound"].n_id[local["Compound"]], seeds)
    assert sub["Compound"].x.shape == (sub["Compound"].num_nodes, 3026)
    # 1-hop: at most 2 sampled in-edges per seed and edge type; deterministic with the seed
    sub1, _ = sample_subgraph(d, {"Compound": seeds}, (2,), torch.Generator().manual_seed(0))
    assert sub1["Signature"].num_nodes <= 2 * 3
    again, _ = sample_subgraph(d, {"Compound": seeds}, (2, 2), torch.Generator().manual_seed(0))
    assert all(torch.equal(sub[t].n_id, again[t].n_id) for t in d.node_types)
    assert sub["MoA"].num_nodes == 0  # reached only through label edges, which are never sampled


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mini_batch", [False, True])
def test_train_moa_full_and_mini_batch(kind: str, mini_batch: bool) -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2, setting="known_targets")
    cfg = TrainConfig(epochs=4, lr=5e-3, mini_batch=mini_batch, batch_size=16, num_neighbors=(5, 3))
    r = train(task, ModelConfig(kind=kind, hidden=16), cfg)
    assert r.mode == ("mini-batch" if mini_batch else "full-batch")
    assert r.test_scores.shape == (task.split.test.numel(), 4)
    assert ((r.test_scores >= 0) & (r.test_scores <= 1)).all()
    assert len(r.curves["loss"]) == r.epochs_run and 1 <= r.best_epoch <= r.epochs_run
    assert 0 <= r.metrics["micro_auprc"] <= 1


@pytest.mark.parametrize("mini_batch", [False, True])
def test_train_targets_full_and_mini_batch(mini_batch: bool) -> None:
    d = toy_graph()
    task = make_target_task(d, toy_maps(d), setting="phenotype")
    cfg = TrainConfig(epochs=3, lr=5e-3, mini_batch=mini_batch, batch_size=32, num_neighbors=(5, 3))
    r = train(task, ModelConfig(kind="sage", hidden=16), cfg)
    assert r.test_scores.shape == (task.split.test.numel(), 30)
    assert {"mrr", "hits@10", "auroc", "auprc"} <= set(r.metrics)


def test_training_is_reproducible_and_learns() -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2, setting="known_targets")
    cfg = TrainConfig(epochs=30, lr=1e-2, patience=30)
    a = train(task, ModelConfig(kind="sage", hidden=16), cfg)
    b = train(task, ModelConfig(kind="sage", hidden=16), cfg)
    assert torch.allclose(a.test_scores, b.test_scores)
    assert a.curves["loss"][-1] < a.curves["loss"][0]
    # labels follow the targets here, so a model reading TARGETS beats chance (4 classes: 0.25)
    assert a.metrics["micro_auprc"] > 0.4


def test_label_noise_override_keeps_eval_clean() -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2)
    noisy = task.y.clone()
    noisy[task.split.train] = noisy[task.split.train].roll(1, dims=1)  # every training label wrong
    r = train(task, ModelConfig(hidden=8), TrainConfig(epochs=2, loss="gce"), y=noisy)
    assert r.val_metrics["n"] == task.split.val.numel()
