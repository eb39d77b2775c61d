"""Edge masks reach every encoder and the similarity votes (``moakg.gnn.explain.masking``), on a toy graph
(no Neo4j): an all-ones mask is the trained model, every explained edge type gets a gradient (so PyG's
explainers see it), and a zero on a vote edge is that edge removed from the vote."""

from __future__ import annotations

import pytest
import torch

from moakg.gnn.config import TrainConfig
from moakg.gnn.explain.base import ExplainedModel, computation_subgraph, explained_inputs, model_depth
from moakg.gnn.explain.methods import METHODS, make_explainer, mask_gradients
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.train import model_graph, train
from tests.test_gnn_tasks import toy_graph
from tests.test_label_trick import add_similarity_edges

CFG = TrainConfig(hidden=16, epochs=4, patience=4, lr=5e-3, write=False, baselines=False)


@pytest.fixture(scope="module")
def toy_task() -> object:
    data, maps = toy_graph(n_compounds=90, signal="both", seed=2)
    add_similarity_edges(data, k=5)
    return make_moa_task(data, maps, split="scaffold", seed=0)


@pytest.fixture(scope="module", params=["sage", "rgcn", "hgt"])
def trained(request: pytest.FixtureRequest, toy_task: object) -> tuple[object, object, str]:
    torch.manual_seed(0)
    res = train(toy_task, CFG, request.param, 0)
    # Validation may keep the model as it started (epoch 0: the head's weights are zero, so the encoder,
    # and every edge type only it reads, has no say). These tests are about masks reaching every part,
    # so every part must count: a random head.
    torch.nn.init.normal_(res.model.head[-1].weight, std=0.1)
    return res.model.eval(), model_graph(toy_task, CFG), request.param


def _sub_and_target(model: object, graph: object, task: object) -> tuple[object, tuple[str, int]]:
    c = int(task.split.test[0])
    return computation_subgraph(graph, c, model_depth(model)), ("moa", 0)


def test_every_encoder_gets_a_gradient_on_every_explained_edge_type(trained: tuple, toy_task: object
                                                                    ) -> None:
    model, graph, kind = trained
    sub, target = _sub_and_target(model, graph, toy_task)
    wrapped = ExplainedModel(model, sub, target)
    x, ei = explained_inputs(sub)
    with torch.no_grad():
        plain = wrapped(x, ei)[sub.compound, 0]
    out, grads = mask_gradients(model, sub, target)
    assert set(grads) == set(ei)
    assert torch.allclose(out, plain, atol=1e-5), kind  # ones = the trained model
    dead = [et for et, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not dead, (kind, dead)
    # the similarity edges (the votes' input) carry gradient for every encoder
    assert any(et[1].endswith("SIMILAR_STRUCTURE") for et in grads)


def test_a_zero_on_a_vote_edge_removes_it_from_the_vote(trained: tuple, toy_task: object) -> None:
    model, graph, kind = trained
    sub, target = _sub_and_target(model, graph, toy_task)
    et = next(et for et in sub.edge_types if et[1] == "SIMILAR_STRUCTURE")
    x, ei = explained_inputs(sub)
    e = ei[et]
    votes = model.votes
    comp = x["Compound"]
    lo, hi = model.label_cols
    pos = 0
    mask = torch.ones(e.size(1))
    mask[pos] = 0.0
    from moakg.gnn.explain.masking import attached_masks

    full = {**ExplainedModel(model, sub, target).base_edges, **ei}
    with torch.no_grad(), attached_masks(model, {et: mask}, full):
        masked = votes(comp, comp[:, lo:hi], comp[:, hi], full)
    removed = {**full, et: torch.cat([e[:, :pos], e[:, pos + 1:]], 1)}
    with torch.no_grad():
        expected = votes(comp, comp[:, lo:hi], comp[:, hi], removed)
    assert torch.allclose(masked, expected, atol=1e-6), kind
    # and nothing is left attached afterwards
    assert all(v.edge_mask is None for v in votes.votes.values())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_explainers_run_on_every_encoder(trained: tuple, toy_task: object, method: str) -> None:
    model, graph, kind = trained
    c = int(toy_task.split.test[0])
    kw = {"gnnexplainer": {"epochs": 5}, "ig": {"n_steps": 4}}.get(method, {})
    imp, sub = make_explainer(method, **kw).explain_with_subgraph(model, graph, c, ("moa", 0))
    assert set(imp) == set(sub.edge_types)
    assert all((v >= 0).all() for v in imp.values())
    assert sum(float(v.sum()) for v in imp.values()) > 0, (kind, method)
