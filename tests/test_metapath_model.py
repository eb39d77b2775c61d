"""The Rephetio-style metapath baseline (:mod:`moakg.gnn.explain.metapath_model`): DWPC by hand, no label
leakage, the MoA signal found in the relation that carries it, explanation paths that exist in the graph.
Synthetic graphs only (no Neo4j)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from moakg.gnn.explain.metapath_model import (
    C_GRID,
    NAME,
    PRIOR,
    MetapathModel,
    Step,
    metapath_baseline,
    stored_adjacency,
)
from moakg.gnn.metrics import moa_metrics
from moakg.gnn.splits import Split
from moakg.gnn.tasks import MoATask, assert_no_leakage, make_moa_task
from moakg.kg.schema import edge_type

W = 0.4
STRUCT = "Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA"
SIG_POS = "Compound-SIMILAR_SIGNATURE[+]-Compound-HAS_MOA-MoA"
SIG_NEG = "Compound-SIMILAR_SIGNATURE[-]-Compound-HAS_MOA-MoA"
MIMICS = "Compound-MIMICS-Gene-MIMICS-Compound-HAS_MOA-MoA"
TARGETS = "Compound-TARGETS-Gene-TARGETS-Compound-HAS_MOA-MoA"


def put(data: HeteroData, rel: str, src: list[int], dst: list[int], attr: list[float] | None = None) -> None:
    """Relationship ``rel`` and its reverse, laid out as the exporter writes them."""
    ei = torch.tensor([list(src), list(dst)], dtype=torch.long).view(2, -1)
    w = torch.ones(ei.size(1), 1) if attr is None else torch.tensor(attr, dtype=torch.float).view(-1, 1)
    data[edge_type(rel)].edge_index, data[edge_type(rel)].edge_attr = ei, w
    data[edge_type(rel, True)].edge_index, data[edge_type(rel, True)].edge_attr = ei.flip(0), w.clone()


def tiny_task() -> MoATask:
    """Compounds c0..c3, genes g0, g1, classes m0, m1. Structure: c0-c1, c0-c2, c1-c2, c2-c3. MIMICS:
    c0-g0, c1-g0, c2-g1, c0-g1. Labels: c0 m0 (test), c1 m0, c2 m0+m1, c3 m1 (training)."""
    data = HeteroData()
    for t, n in (("Compound", 4), ("Gene", 2), ("MoA", 2)):
        data[t].num_nodes = n
    put(data, "SIMILAR_STRUCTURE", [0, 0, 1, 2], [1, 2, 2, 3])
    put(data, "MIMICS", [0, 1, 2, 0], [0, 0, 1, 1])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    empty = torch.empty(0, dtype=torch.long)
    split = Split("random", 0, torch.tensor([1, 2, 3]), empty, torch.tensor([0]))
    return MoATask(data, y, y.sum(1) > 0, ["m0", "m1"], split, "phenotype", torch.arange(2))


def test_dwpc_equals_the_hand_computation() -> None:
    model = MetapathModel(tiny_task())
    assert model.names == [STRUCT, MIMICS]  # every other default metapath lacks its edge types
    f = model.raw(np.arange(4))  # [compound, class, metapath]
    # Degrees. Structure: c0 2, c1 2, c2 3, c3 1. HAS_MOA (training only): c1 1, c2 2, c3 1; m0 2, m1 2.
    # MIMICS: c0 2, c1 1, c2 1; g0 2, g1 2. A path's weight: prod over its edges of (deg(u) deg(v))^-w.
    struct = {
        (0, 0): (2 * 2) ** -W * (1 * 2) ** -W + (2 * 3) ** -W * (2 * 2) ** -W,  # via c1, via c2
        (0, 1): (2 * 3) ** -W * (2 * 2) ** -W,                                 # via c2
        (1, 0): (2 * 3) ** -W * (2 * 2) ** -W,                                 # via c2 (c0: test)
        (1, 1): (2 * 3) ** -W * (2 * 2) ** -W,                                 # via c2
        (2, 0): (3 * 2) ** -W * (1 * 2) ** -W,                                 # via c1, never itself
        (2, 1): (3 * 1) ** -W * (1 * 2) ** -W,                                 # via c3
        (3, 0): (1 * 3) ** -W * (2 * 2) ** -W,                                 # via c2
        (3, 1): (1 * 3) ** -W * (2 * 2) ** -W,                                 # via c2
    }
    assert struct[(0, 0)] == pytest.approx(0.715764, abs=1e-6)
    assert struct[(2, 1)] == pytest.approx(0.488359, abs=1e-6)
    mimics = {
        (0, 0): (2 * 2) ** -W * (2 * 1) ** -W * (1 * 2) ** -W + (2 * 2) ** -W * (2 * 1) ** -W * (2 * 2) ** -W,
        (0, 1): (2 * 2) ** -W * (2 * 1) ** -W * (2 * 2) ** -W,
    }
    assert mimics[(0, 0)] == pytest.approx(0.579877, abs=1e-6)
    for k, hand in enumerate((struct, mimics)):
        for c in range(4):
            for m in range(2):
                assert f[c, m, k] == pytest.approx(hand.get((c, m), 0.0), abs=1e-12), (k, c, m)
    # c1-g0-c1 and c2-g1-c2 return to the compound itself: c1 and c2 would read their own m0 otherwise
    assert f[1, 0, 1] == 0.0 and f[2, :, 1].tolist() == [0.0, 0.0]
    # path instances: exact PDPs, best first, summing to the DWPC
    model.fit()
    paths = model.path_instances(0, 0, STRUCT, k=10)
    assert [p.node_index for p in paths] == [[0, 1, 0], [0, 2, 0]]
    assert [p.weight for p in paths] == pytest.approx([(4 * 2) ** -W, (6 * 4) ** -W])
    assert paths[0].weights == pytest.approx([4 ** -W, 2 ** -W])
    assert sum(p.weight for p in paths) == pytest.approx(struct[(0, 0)])
    paths = model.path_instances(0, 0, MIMICS, k=10)
    assert [p.node_index for p in paths] == [[0, 0, 1, 0], [0, 1, 2, 0]]
    assert sum(p.weight for p in paths) == pytest.approx(mimics[(0, 0)])
    assert model.path_instances(1, 0, MIMICS) == []


def signal_graph(signal: str, n: int = 160, n_classes: int = 4, n_genes: int = 30, seed: int = 0
                 ) -> tuple[HeteroData, SimpleNamespace]:
    """Compounds whose ``signal`` relation (``'structure'``: SIMILAR_STRUCTURE, ``'signature'``:
    SIMILAR_SIGNATURE with positive scores) joins each to 3 compounds of its own class and 1 random; the other
    similarity, MIMICS, OPPOSES, TARGETS, signatures and INTERACTS_WITH are random. The signature variant
    also has anti-correlated SIMILAR_SIGNATURE edges between classes."""
    rng = np.random.default_rng(seed)
    cls = rng.permutation(np.arange(n) % n_classes)
    data = HeteroData()
    for t, num in (("Compound", n), ("Signature", n), ("Gene", n_genes), ("MoA", n_classes)):
        data[t].num_nodes = num

    def pairs(same: bool | None, k: int = 3) -> tuple[list[int], list[int]]:
        src, dst = [], []
        for i in range(n):
            ok = np.arange(n) != i
            if same is not None:
                ok &= (cls == cls[i]) if same else (cls != cls[i])
            src += [i] * k
            dst += rng.choice(np.flatnonzero(ok), k, replace=False).tolist()
        return src, dst

    def to_genes(n_src: int, k: int) -> tuple[list[int], list[int]]:
        return np.repeat(np.arange(n_src), k).tolist(), rng.integers(0, n_genes, n_src * k).tolist()

    def similar(planted: bool) -> tuple[list[int], list[int]]:  # planted: 3 of 4 neighbours share the class
        (s, d), (s2, d2) = pairs(True, 3) if planted else pairs(None, 3), pairs(None, 1)
        return s + s2, d + d2

    s, d = similar(signal == "structure")
    put(data, "SIMILAR_STRUCTURE", s, d, rng.uniform(0.4, 1.0, len(s)).tolist())
    s, d = similar(signal == "signature")
    score = rng.uniform(0.3, 1.0, len(s))
    if signal == "signature":
        s2, d2 = pairs(False, 1)
        s, d, score = s + s2, d + d2, np.concatenate([score, -rng.uniform(0.3, 1.0, len(s2))])
    put(data, "SIMILAR_SIGNATURE", s, d, score.tolist())
    for rel in ("MIMICS", "OPPOSES", "TARGETS"):
        put(data, rel, *to_genes(n, 2))
    put(data, "HAS_SIGNATURE", list(range(n)), list(range(n)))
    put(data, "UPREGULATES", *to_genes(n, 3))
    a, b = rng.integers(0, n_genes, (2, 2 * n_genes))
    put(data, "INTERACTS_WITH", a[a < b].tolist(), b[a < b].tolist())
    put(data, "HAS_MOA", list(range(n)), cls.tolist())
    maps = SimpleNamespace(keys={"Compound": [f"C{i:04d}" for i in range(n)],
                                 "MoA": [f"moa {c}" for c in range(n_classes)]})
    return data, maps


def _task(signal: str, setting: str = "phenotype", seed: int = 0) -> MoATask:
    data, maps = signal_graph(signal, seed=seed)
    task = make_moa_task(data, maps, split="random", seed=seed, setting=setting)
    assert_no_leakage(task)
    return task


@pytest.mark.parametrize(("signal", "best"), [("structure", STRUCT), ("signature", SIG_POS)])
def test_the_metapath_that_carries_the_signal_wins(signal: str, best: str) -> None:
    task = _task(signal)
    result, model = metapath_baseline(task, seed=0)
    test = task.split.test
    assert result.name == NAME and result.n_eval == test.numel() and torch.equal(result.eval_idx, test)
    assert result.scores.shape == (test.numel(), len(task.classes))
    assert result.params["C"] in C_GRID and result.params["val"] > 0.5
    prior = moa_metrics(task.y[test], task.y[task.split.train].mean(0).expand(test.numel(), -1))
    assert result.metrics["micro_auprc"] > prior["micro_auprc"] + 0.5, (result.metrics, prior)
    assert result.metrics["top1_acc"] > 0.9
    assert TARGETS not in model.names  # phenotype: held-out compounds have no TARGETS
    assert (SIG_NEG in model.names) == (signal == "signature")
    # per prediction: the planted metapath adds most to the logit of the true class
    tops = []
    for c in test.tolist():
        m = int(task.y[c].argmax())
        terms = model.contributions(c, m)
        logit = model.model.intercept_[0] + sum(t.contribution for t in terms)
        assert logit == pytest.approx(float(model.logits(np.array([c]))[0, m]))
        tops.append(next(t.name for t in terms if t.name != PRIOR))
    assert sum(t == best for t in tops) >= 0.9 * len(tops), tops
    coef = dict(zip(model.names, model.model.coef_[0], strict=False))
    assert coef[best] == max(coef.values())


def test_features_never_read_held_out_labels_nor_the_rows_own() -> None:
    task = _task("structure", setting="known_targets")
    base = MetapathModel(task)
    # known_targets: the TARGETS metapaths too; SIMILAR_SIGNATURE[-] and DOWNREGULATES: no such edges here
    assert base.names == [STRUCT, SIG_POS, MIMICS, "Compound-OPPOSES-Gene-OPPOSES-Compound-HAS_MOA-MoA",
                          "Compound-HAS_SIGNATURE-Signature-UPREGULATES-Gene-UPREGULATES-Signature-"
                          "HAS_SIGNATURE-Compound-HAS_MOA-MoA", TARGETS,
                          "Compound-TARGETS-Gene-INTERACTS_WITH-Gene-TARGETS-Compound-HAS_MOA-MoA"]
    rows = base.rows
    f = base.raw(rows)
    gen = torch.Generator().manual_seed(0)
    held = torch.cat([task.split.val, task.split.test])
    y = task.y.clone()
    y[held] = (torch.rand(held.numel(), y.size(1), generator=gen) < 0.5).float()  # any other labels
    other = MetapathModel(dataclasses.replace(task, y=y))
    assert np.array_equal(other.raw(rows), f) and np.array_equal(other.dwpc_features(rows), f)
    # A training compound's own label enters its row only through deg(m), the training size of class m,
    # which scales the whole column m for every row alike: (deg'(m) / deg(m))^-w.
    deg = task.y[task.split.train].sum(0).double().numpy()
    for c in task.split.train[:8].tolist():
        y = task.y.clone()
        y[c] = torch.roll(y[c], 1)
        new_deg = y[task.split.train].sum(0).double().numpy()
        moved = MetapathModel(dataclasses.replace(task, y=y)).raw(np.array([c]))[0]
        expect = f[base._row[c]] * ((new_deg / deg) ** -W)[:, None]
        assert np.allclose(moved, expect, rtol=1e-10, atol=0), c


def test_explanation_paths_are_edges_of_the_graph() -> None:
    task = _task("structure", setting="known_targets", seed=1)
    _, model = metapath_baseline(task, seed=1)
    g = task.graph
    edges = {rel: set(map(tuple, g[edge_type(rel)].edge_index.T.tolist()))
             for rel in ("SIMILAR_STRUCTURE", "SIMILAR_SIGNATURE", "MIMICS", "OPPOSES", "TARGETS",
                         "HAS_SIGNATURE", "UPREGULATES", "INTERACTS_WITH")}
    train = set(task.split.train.tolist())
    keys = {t: [f"{t}:{i}" for i in range(g[t].num_nodes)] for t in g.node_types}
    n_paths, seen = 0, set()
    for c in task.split.test[:10].tolist():
        for m in range(len(task.classes)):
            for name in model.names:
                dwpc = model.raw(np.array([c]))[0, m, model.names.index(name)]
                paths = model.path_instances(c, m, name, k=10_000)
                assert sum(p.weight for p in paths) == pytest.approx(dwpc, rel=1e-9, abs=1e-12)
                for p in paths:
                    seen.add(p.metapath)
                    n_paths += 1
                    assert p.weight == pytest.approx(math.prod(p.weights))
                    assert all(0 < w <= 1 for w in p.weights) and len(p.node_index) == len(p.rel_types) + 1
                    steps = zip(p.node_types, p.node_types[1:], p.node_index, p.node_index[1:],
                                p.rel_types[:-1], p.forward, strict=False)
                    for tu, tv, u, v, rel, fwd in steps:
                        start, end = edge_type(rel)[0], edge_type(rel)[2]
                        assert (tu, tv) == ((start, end) if fwd else (end, start))
                        assert ((u, v) if fwd else (v, u)) in edges[rel], (p, rel, u, v)
                    ref = p.node_index[-2]  # the reference compound: a training compound of class m
                    assert p.rel_types[-1] == "HAS_MOA" and p.forward[-1] and p.node_types[-1] == "MoA"
                    assert ref != c and ref in train and task.y[ref, m] == 1
                    assert p.node_index[-1] == int(task.class_nodes[m])
                    ep = p.to_explanation_path(keys, rank=1)
                    assert ep.metapath == p.metapath.replace("[+]", "").replace("[-]", "")
                    assert ep.node_keys == [keys[t][i] for t, i in ep.nodes] and ep.score == p.weight
    assert n_paths > 100 and seen == set(model.names)  # every kept metapath has instances here
    best = model.explain(int(task.split.test[0]), int(task.y[task.split.test[0]].argmax()), k=3)
    assert best and best[0].metapath == STRUCT


def test_an_empty_signed_edge_type_is_no_error() -> None:
    # a graph whose SIMILAR_SIGNATURE edge type exists but holds no edge (a split can leave it so)
    g = HeteroData()
    g["Compound"].num_nodes = 3
    et = ("Compound", "SIMILAR_SIGNATURE", "Compound")
    g[et].edge_index = torch.zeros(2, 0, dtype=torch.long)
    g[et].edge_attr = torch.zeros(0, 1)
    a = stored_adjacency(g, Step("SIMILAR_SIGNATURE", None, sign=1))
    assert a is not None and a.shape == (3, 3) and a.nnz == 0
