"""What the explanation metrics claim, checked on small graphs without Neo4j: fidelity equals a hand
computation on a vote-only model; an explainer finds a planted mechanism path; the explained compound's
own label is never a step; the random baselines keep the metapath (or the degrees) they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.explain.base import computation_subgraph
from moakg.gnn.explain.methods import make_explainer
from moakg.gnn.explain.metrics import (
    _bin,
    compare_to_random,
    degree_matched_path,
    fidelity,
    node_degrees,
    random_metapath_path,
)
from moakg.gnn.explain.paths import MoAEvidence, build_weighted_graph, explain_paths, top_k_paths
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN, attach_label_input
from moakg.gnn.models import MoAClassifier, SAGEEncoder, graph_metadata
from moakg.gnn.similarity_vote import LabelVotes
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.train import model_graph, train
from tests.test_gnn_tasks import toy_graph

SIM = ("Compound", "SIMILAR_STRUCTURE", "Compound")
REV = ("Compound", "rev_SIMILAR_STRUCTURE", "Compound")


# ------------------------------------------------------------------------------------- fidelity by hand
def test_fidelity_of_a_vote_only_model_matches_a_hand_computation() -> None:
    # c0 (unknown label) is similar to c1 (Tanimoto 1/3, MoA 0) and c2 (Tanimoto 1, MoA 1); c3 is alone
    fp = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.float)
    y = torch.tensor([[0, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.float)
    g = HeteroData()
    g["Compound"].x, g["Compound"].num_nodes = fp, 4
    attach_label_input(g, "Compound", y, torch.tensor([1, 2]))
    g[SIM].edge_index = torch.tensor([[0, 0], [1, 2]])  # one edge per unordered pair, as derived
    g[REV].edge_index = torch.tensor([[1, 2], [0, 0]])
    enc = SAGEEncoder(graph_metadata(g), {"Compound": 4}, {"Compound": 4 + 3}, hidden=4, layers=1)
    votes = LabelVotes({"SIMILAR_STRUCTURE": ("tanimoto", (0, 4), [SIM, REV], 1.0)}, 2)
    model = MoAClassifier(enc, 2, votes=votes, label_cols=(4, 6)).eval()
    with torch.no_grad():
        model.head[-1].bias.zero_()  # the head's weight starts at 0 with votes: logits = the vote offset
        votes.prior.copy_(torch.tensor([0.2, 0.4]))
    sub = computation_subgraph(g, 0, depth=1)
    keep_c1 = {et: torch.zeros(sub.graph[et].edge_index.size(1), dtype=torch.bool) for et in sub.edge_types}
    src = sub.graph["Compound"].n_id[sub.graph[REV].edge_index[0]]
    keep_c1[REV] = src == 1  # S = the message c1 -> c0
    fid_plus, fid_minus = fidelity(model, sub, ("moa", 0), keep_c1)

    beta, kappa, p0 = 2.0, 0.5, 0.2
    w1, w2 = math.exp(beta * (1 / 3 - 1)), math.exp(beta * (1.0 - 1))

    def prob(num: float, den: float) -> float:  # sigmoid(logit(v) - logit(p0)), v the shrunk vote
        v = (num + kappa * p0) / (kappa + den)
        return 1 / (1 + math.exp(-(math.log(v / (1 - v)) - math.log(p0 / (1 - p0)))))

    p_all, p_without, p_only = prob(w1, w1 + w2), prob(0.0, w2), prob(w1, w1)
    assert fid_plus == pytest.approx(p_all - p_without, abs=1e-5)
    assert fid_minus == pytest.approx(p_all - p_only, abs=1e-5)
    assert fid_plus > 0 and fid_minus < 0  # c1 is the evidence for MoA 0; c2 argues against it


# ------------------------------------------------------------------------------------- planted path
@pytest.fixture(scope="module")
def planted() -> tuple:
    """A toy graph whose fingerprints and signatures are noise: a compound's MoA is readable only along
    ONE planted SIMILAR_STRUCTURE edge to a training compound of the same MoA (same fingerprint), beside
    three SIMILAR_SIGNATURE edges to random compounds."""
    data, maps = toy_graph(n_compounds=160, signal="none", seed=3)
    task = make_moa_task(data, maps, split="scaffold", seed=0)
    rng = np.random.default_rng(0)
    cls = task.y.argmax(1)
    train_set = task.split.train.tolist()
    by_class = {int(c): [i for i in train_set if int(cls[i]) == c and task.y[i].sum() > 0]
                for c in cls.unique()}
    labelled = task.labelled.nonzero().view(-1).tolist()
    partner, pairs = {}, set()
    fp = task.graph["Compound"].fp
    for i in labelled:
        cands = [j for j in by_class[int(cls[i])] if j != i]
        j = int(rng.choice(cands))
        partner[i] = j
        pairs.add((min(i, j), max(i, j)))
        if i not in train_set:
            fp[i] = fp[j]  # the planted neighbour is a perfect structural analogue
    x = task.graph["Compound"].x
    x[:, : fp.size(1)] = fp
    pairs_t = torch.tensor(sorted(pairs)).t()
    task.graph[SIM].edge_index, task.graph[REV].edge_index = pairs_t, pairs_t.flip(0)
    noise = torch.tensor([(i, int(j)) for i in labelled for j in rng.choice(labelled, 3) if j != i]).t()
    sig = ("Compound", "SIMILAR_SIGNATURE", "Compound")
    task.graph[sig].edge_index = noise
    task.graph[("Compound", "rev_SIMILAR_SIGNATURE", "Compound")].edge_index = noise.flip(0)
    # No own-feature branch: a test compound carries its partner's fingerprint, which an MLP of the
    # compound's own features reads without any edge; here the planted edge must be the only route.
    cfg = TrainConfig(hidden=16, epochs=30, patience=10, lr=5e-3, write=False, baselines=False, feature_mlp=0)
    torch.manual_seed(0)
    res = train(task, cfg, "sage", 0)
    return task, res.model.eval(), model_graph(task, cfg), partner


# GNNExplainer is not among them: its mask pushes every edge to a same-MoA compound towards 1 (the
# planted one and the noise signature edges that happen to land on one alike), so its top path is the
# planted one for about 1 test compound in 10 here (measured; the README reports it).
@pytest.mark.parametrize("method", ["saliency", "ig"])
def test_the_explainer_ranks_the_planted_path_first(planted: tuple, method: str) -> None:
    task, model, graph, partner = planted
    train_set = set(task.split.train.tolist())
    test = [c for c in task.split.test.tolist() if partner[c] in train_set]
    known = graph["Compound"][LABEL_KNOWN] > 0
    kw = {"n_steps": 20} if method == "ig" else {}
    first = []
    for c in test:
        m = int(task.y[c].argmax())  # the true (planted) MoA
        refs = frozenset((known & (graph["Compound"][LABEL_INPUT][:, m] > 0)).nonzero().view(-1).tolist())
        imp, sub = make_explainer(method, **kw).explain_with_subgraph(model, graph, c, ("moa", m))
        pe = explain_paths(sub, imp, ("moa", m), k=3, moa=MoAEvidence(("MoA", m), refs, f"moa {m}"))
        top = pe.best[0]
        first.append(top.end == ("Compound", partner[c]))
        assert top.metapath.endswith("HAS_MOA-MoA") or top.end != ("Compound", partner[c])
    assert len(test) >= 10
    assert np.mean(first) >= 0.7, (method, np.mean(first), len(test))


def test_the_explained_compounds_own_label_is_never_a_step(planted: tuple) -> None:
    task, model, graph, partner = planted
    known = graph["Compound"][LABEL_KNOWN] > 0
    for c in task.split.train.tolist()[:15]:  # training compounds: their own label IS a model input
        m = int(task.y[c].argmax())
        refs = frozenset((known & (graph["Compound"][LABEL_INPUT][:, m] > 0)).nonzero().view(-1).tolist())
        assert c in refs
        imp, sub = make_explainer("saliency").explain_with_subgraph(model, graph, c, ("moa", m))
        for p in explain_paths(sub, imp, ("moa", m), k=5, moa=MoAEvidence(("MoA", m), refs)).best:
            assert p.nodes.count(("Compound", c)) == 1  # starts there, never comes back
            for i, rel in enumerate(p.rel_types):
                if rel == "HAS_MOA":
                    assert p.nodes[i] != ("Compound", c)


# ------------------------------------------------------------------------------------- random baselines
def test_random_paths_keep_the_metapath_and_degree_matched_paths_the_degrees(planted: tuple) -> None:
    task, model, graph, _ = planted
    rng = np.random.default_rng(1)
    degree = node_degrees(graph)
    checked_metapath = checked_degree = 0
    for c in task.split.test.tolist()[:8]:
        sub = computation_subgraph(graph, c, 2)
        wg = build_weighted_graph(sub)
        start = ("Compound", c)
        for path in top_k_paths(wg, start, k=20, max_length=2):
            for _ in range(5):
                r = random_metapath_path(wg, path, rng)
                if r is None:
                    continue
                assert [n[0] for n in r] == path.node_types and len(set(r)) == len(r)
                for i, (rel, fwd) in enumerate(zip(path.rel_types, path.forward, strict=True)):
                    assert (r[i + 1], rel, fwd) in wg.adj[r[i]]  # the same relationship, same direction
                checked_metapath += 1
                d = degree_matched_path(wg, path, degree, rng)
                assert d is not None and len(d) == len(path.nodes) and len(set(d)) == len(d)
                for i in range(1, len(d)):
                    assert any(nbr == d[i] for (nbr, _, _) in wg.adj[d[i - 1]])
                    want = _bin(int(degree[path.node_types[i]][path.node_index[i]]))
                    bins = {_bin(int(degree[n[0]][n[1]])) for (n, _, _) in wg.adj[d[i - 1]]
                            if n not in d[:i]}
                    if want in bins:  # a neighbour in the path node's degree bin exists: one is drawn
                        assert _bin(int(degree[d[i][0]][d[i][1]])) == want
                        checked_degree += 1
    assert checked_metapath >= 20 and checked_degree >= 20


def test_compare_to_random_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(60) * 0.3
    better = compare_to_random(base + 0.2, base)
    assert better["p"] < 0.01 and better["ci_low"] > 0.15
    null = compare_to_random(base + rng.normal(0, 0.05, 60), base)
    assert null["p"] > 0.01 and null["ci_low"] < 0 < null["ci_high"]
