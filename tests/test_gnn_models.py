"""GNN encoders, heads, the neighbour sampler and the training loop on small HeteroData graphs of the
export's shape (no Neo4j needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.metrics import moa_metrics
from moakg.gnn.models import (
    ENCODERS,
    KINDS,
    MoAClassifier,
    SAGEEncoder,
    TargetLinkPredictor,
    build_encoder,
    feature_dims,
    graph_metadata,
    message_edge_types,
    model_inputs,
    node_counts,
    strip_label_edges,
)
from moakg.gnn.sampling import sample_subgraph
from moakg.gnn.tasks import make_moa_task, make_target_task
from moakg.gnn.train import model_graph, train

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
    x, edges = model_inputs(d)
    enc = build_encoder(d, kind, hidden=16, layers=2, dropout=0.1)
    assert isinstance(enc, ENCODERS[kind]) and enc.kind == kind
    h = enc(x, edges)
    assert {t: tuple(v.shape) for t, v in h.items()} == {t: (d[t].num_nodes, 16) for t in d.node_types}
    assert MoAClassifier(enc, 4)(x, edges).shape == (60, 4)
    link = TargetLinkPredictor(build_encoder(d, kind, hidden=16), n_genes=30)
    emb = link(x, edges)
    assert link.score_all(emb, torch.arange(7)).shape == (7, 30)
    assert link.score(emb, torch.tensor([0, 1]), torch.tensor([2, 3])).shape == (2,)


def test_model_inputs_ids_for_featureless_types_and_no_label_edges() -> None:
    d = toy_graph()
    x, edges = model_inputs(d)
    assert torch.equal(x["Compound"], d["Compound"].x)
    assert x["Gene"].dtype == torch.long and torch.equal(x["Gene"].view(-1), torch.arange(30))
    assert list(edges) == message_edge_types(d) and ("Compound", "HAS_MOA", "MoA") not in edges
    sub, _ = sample_subgraph(d, {"Compound": torch.tensor([1, 2])}, (2,), torch.Generator().manual_seed(0))
    assert torch.equal(model_inputs(sub)[0]["Gene"].view(-1), sub["Gene"].n_id)  # global ids, not 0..n-1


@pytest.mark.parametrize("kind", KINDS)
def test_sampled_full_neighbourhood_embeds_like_the_full_graph(kind: str) -> None:
    # Embedding tables are indexed by global id: a sample holding every 2-hop neighbour of the seeds
    # gives the seeds exactly their full-graph embeddings.
    d = strip_label_edges(toy_graph())
    enc = build_encoder(d, kind, hidden=8, layers=2).eval()
    seeds = torch.tensor([0, 5, 9])
    sub, local = sample_subgraph(d, {"Compound": seeds}, (10_000, 10_000), torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = enc(*model_inputs(d))["Compound"][seeds]
        sampled = enc(*model_inputs(sub))["Compound"][local["Compound"]]
    if kind == "sage":  # mean aggregation over exactly the same in-edges
        assert torch.allclose(full, sampled, atol=1e-5)
    else:  # RGCN/HGT see the same neighbours too; only summation order differs
        assert torch.allclose(full, sampled, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_reset_parameters_reinitialises_every_weight(kind: str) -> None:
    d = toy_graph()
    model = MoAClassifier(build_encoder(d, kind, hidden=8), 4)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    model.reset_parameters()
    stuck = [name for name, p in model.named_parameters() if bool((p == 7.0).all())]
    assert not stuck, stuck
    torch.manual_seed(0)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    model.reset_parameters()
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())  # seeded: reproducible
    link = TargetLinkPredictor(build_encoder(d, kind, hidden=8), n_genes=30)
    with torch.no_grad():
        link.rel.fill_(3.0)
        link.gene_bias.weight.fill_(3.0)
    link.reset_parameters()
    assert bool((link.rel == 1).all()) and bool((link.gene_bias.weight == 0).all())


def small_hetero() -> HeteroData:
    """Compounds, signatures and genes where every edge type reaches a compound within two layers."""
    g = torch.Generator().manual_seed(1)
    d = HeteroData()
    d["Compound"].x = torch.randn(6, 5, generator=g)
    d["Signature"].x = torch.randn(8, 4, generator=g)
    d["Gene"].num_nodes = 7
    rels = {("Compound", "HAS_SIGNATURE", "Signature"): torch.stack([torch.arange(8) % 6, torch.arange(8)]),
            ("Signature", "UPREGULATES", "Gene"): torch.stack([torch.arange(8), torch.arange(8) % 7]),
            ("Compound", "TARGETS", "Gene"): torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])}
    for (s, r, t), ei in rels.items():
        d[s, r, t].edge_index = ei
        d[t, f"rev_{r}", s].edge_index = ei.flip(0)
    return d


@pytest.mark.parametrize("kind", KINDS)
def test_pyg_explainer_wraps_each_model_directly(kind: str) -> None:
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import GNNExplainer

    d = small_hetero()
    model = MoAClassifier(build_encoder(d, kind, hidden=8), 3).eval()
    x, edges = model_inputs(d)
    config = dict(mode="regression", task_level="node", return_type="raw")
    torch.manual_seed(0)
    if kind == "sage":  # one SAGEConv per edge type: PyG masks each edge type
        explainer = Explainer(model, GNNExplainer(epochs=5), explanation_type="model",
                              edge_mask_type="object", node_mask_type=None, model_config=config)
        expl = explainer(x, edges, index=0)
        for et, ei in edges.items():
            assert expl[et].edge_mask.shape == (ei.size(1),)
        assert any(bool((expl[et].edge_mask > 0).any()) for et in edges)
    # Any kind: feature attributions on the featured types; Gene, left out of x_dict, reads its whole
    # embedding table (ids 0..N-1).
    featured = {t: v for t, v in x.items() if t in feature_dims(d)}
    explainer = Explainer(model, GNNExplainer(epochs=5), explanation_type="model", edge_mask_type=None,
                          node_mask_type="attributes", model_config=config)
    expl = explainer(featured, edges, index=0)
    for t, v in featured.items():
        assert expl[t].node_mask.shape == v.shape
    assert bool((expl["Compound"].node_mask[0] > 0).any())
    with torch.no_grad():
        assert torch.allclose(model(featured, edges), model(x, edges))


def test_label_edges_never_message() -> None:
    d = toy_graph()
    node_types, edge_types = graph_metadata(d)
    assert ("Compound", "HAS_MOA", "MoA") in d.edge_types
    assert not any("HAS_MOA" in et[1] for et in edge_types)
    assert len(message_edge_types(d)) == len(d.edge_types) - 2
    for cls in ENCODERS.values():
        with pytest.raises(ValueError, match="label edges"):
            cls((node_types, list(d.edge_types)), node_counts(d), feature_dims(d))
    # The output for a compound does not change when HAS_MOA edges are handed to the encoder anyway:
    # labels are not inputs.
    enc = SAGEEncoder(graph_metadata(d), node_counts(d), feature_dims(d), hidden=8).eval()
    x, edges = model_inputs(d)
    before = enc(x, edges)["Compound"]
    label = {et: d[et].edge_index for et in d.edge_types if "HAS_MOA" in et[1]}
    assert torch.allclose(before, enc(x, {**edges, **label})["Compound"])
    assert strip_label_edges(d).edge_types == message_edge_types(d)


def test_declared_but_empty_edge_types_do_not_change_the_model() -> None:
    """A relationship type the export has but the graph holds no edge of (e.g. SIMILAR_STRUCTURE before
    `moakg derive`) leaves every encoder exactly as on the graph without it."""
    d, with_empty = toy_graph(), toy_graph()
    for rel in ("SIMILAR_STRUCTURE", "rev_SIMILAR_STRUCTURE"):
        if ("Compound", rel, "Compound") in d.edge_types:
            del d["Compound", rel, "Compound"]
        with_empty["Compound", rel, "Compound"].edge_index = torch.zeros(2, 0, dtype=torch.long)
    assert ("Compound", "SIMILAR_STRUCTURE", "Compound") in with_empty.edge_types
    assert graph_metadata(with_empty) == graph_metadata(d)
    for kind in ENCODERS:
        outs = []
        for g in (d, with_empty):
            torch.manual_seed(0)
            enc = build_encoder(g, kind, hidden=8, layers=2, dropout=0.0).eval()
            with torch.no_grad():
                outs.append(enc(*model_inputs(g))["Compound"])
        assert torch.equal(outs[0], outs[1]), kind


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
    cfg = TrainConfig(epochs=4, lr=5e-3, mini_batch=mini_batch, batch_size=16, num_neighbors=(5, 3),
                      hidden=16)
    r = train(task, cfg, kind=kind)
    assert r.mode == ("mini-batch" if mini_batch else "full-batch") and r.kind == kind and r.seed == 0
    assert r.test_scores.shape == (task.split.test.numel(), 4)
    assert len(r.curves["loss"]) == r.epochs_run and 0 <= r.best_epoch <= r.epochs_run
    # The result is the best validation epoch, restored, the start (epoch 0) included: its validation
    # metric is the best of the curve (evaluation samples the same neighbourhoods every pass, so this
    # holds in mini-batch too) ...
    curve = [r.start_val, *r.curves["val"]]
    assert curve[r.best_epoch] == max(curve)
    assert r.val_metrics["micro_auprc"] == pytest.approx(max(curve))
    # ... and the test metrics are those of the returned scores.
    assert r.metrics == pytest.approx(moa_metrics(task.y[task.split.test], r.test_scores), nan_ok=True)
    if not mini_batch:  # the scores are the returned model's probabilities
        r.model.eval()
        with torch.no_grad():
            logits = r.model(*model_inputs(model_graph(task, cfg)))[task.split.test]
        assert torch.allclose(r.test_scores, torch.sigmoid(logits), atol=1e-6)


@pytest.mark.parametrize("mini_batch", [False, True])
def test_train_targets_full_and_mini_batch(mini_batch: bool) -> None:
    d = toy_graph()
    task = make_target_task(d, toy_maps(d), setting="phenotype")
    cfg = TrainConfig(epochs=3, lr=5e-3, mini_batch=mini_batch, batch_size=32, num_neighbors=(5, 3),
                      hidden=16)
    r = train(task, cfg, kind="sage")
    assert r.test_scores.shape == (task.split.test.numel(), 30)
    assert {"mrr", "hits@10", "auroc", "auprc"} <= set(r.metrics)
    assert r.val_metrics["mrr"] == pytest.approx(max(r.start_val, *r.curves["val"]))  # epoch 0 included


@pytest.mark.parametrize("setting", ["phenotype", "known_targets"])
def test_target_supervision_matches_what_held_out_compounds_lack(setting: str) -> None:
    """Phenotype: each epoch's supervised pairs are every target of a share of the training compounds
    (held-out compounds come with no target at all); known_targets: a share of the pairs."""
    from moakg.gnn.train_target import TargetTrainer

    d = toy_graph()
    task = make_target_task(d, toy_maps(d), setting=setting)
    cfg = TrainConfig(hidden=8, supervision_frac=0.3)
    trainer = SimpleNamespace(pos=task.pos, cfg=cfg, gen=torch.Generator().manual_seed(0), setting=setting)
    sup = TargetTrainer._supervised_pairs(trainer)  # type: ignore[arg-type]
    train = task.pos["train"]
    chosen = sup[0].unique()
    every_pair_of_chosen = train[:, torch.isin(train[0], chosen)]
    if setting == "phenotype":
        assert sup.size(1) == every_pair_of_chosen.size(1)  # no chosen compound keeps a target
        assert chosen.numel() == round(0.3 * train[0].unique().numel())
    else:
        assert sup.size(1) == round(0.3 * train.size(1))
        assert sup.size(1) < every_pair_of_chosen.size(1)  # chosen compounds keep other targets


def test_mini_batch_training_is_reproducible_per_seed() -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2, setting="known_targets")
    cfg = TrainConfig(epochs=2, mini_batch=True, batch_size=16, num_neighbors=(3, 2), hidden=8)
    a, b, c = train(task, cfg, seed=3), train(task, cfg, seed=3), train(task, cfg, seed=4)
    assert torch.equal(a.test_scores, b.test_scores)
    assert not torch.equal(a.test_scores, c.test_scores)


def test_training_is_reproducible_and_learns() -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2, setting="known_targets")
    cfg = TrainConfig(epochs=30, lr=1e-2, patience=30, hidden=16)
    a = train(task, cfg, kind="sage")
    b = train(task, cfg, kind="sage")
    assert torch.allclose(a.test_scores, b.test_scores)
    assert a.curves["loss"][-1] < a.curves["loss"][0]
    # labels follow the targets here, so a model reading TARGETS beats chance (4 classes: 0.25)
    assert a.metrics["micro_auprc"] > 0.4


def test_label_noise_override_keeps_eval_clean() -> None:
    d = toy_graph()
    task = make_moa_task(d, toy_maps(d), min_per_class=2)
    noisy = task.y.clone()
    noisy[task.split.train] = noisy[task.split.train].roll(1, dims=1)  # every training label wrong
    r = train(task, TrainConfig(epochs=2, loss="gce", hidden=8), y=noisy)
    assert r.val_metrics["n"] == task.split.val.numel()
    assert r.metrics == pytest.approx(moa_metrics(task.y[task.split.test], r.test_scores), nan_ok=True)


@pytest.mark.parametrize("task", ["moa", "target"])
def test_graph_without_labels_is_a_user_error(task: str) -> None:
    from moakg.errors import UserError
    from moakg.gnn.run import make_task

    d = toy_graph()
    for rel in ("HAS_MOA", "TARGETS"):
        for et in [et for et in d.edge_types if et[1].removeprefix("rev_") == rel]:
            d[et].edge_index = torch.zeros(2, 0, dtype=torch.long)
    with pytest.raises(UserError, match="no labelled compounds"):
        make_task(TrainConfig(task=task, split="random"), d, toy_maps(d), "phenotype", 0, None)
