"""Path explanations against the bundled demo graph in a real Neo4j: a small GNN is trained with the real
task builders and experiment driver (few epochs, small hidden size), then explained with every method.

Checks: importances (shape, sign, every computation-subgraph edge type), the subgraph predicts what the
full graph predicts, paths exist in Neo4j with the recorded types and directions, ranks and metapaths,
fidelity identities, idempotent write-back, the ``explanation_paths`` query, and the CLI end to end.
Everything this module writes (ModelRuns, predictions, explanations) is deleted at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import typer
from conftest import ensure_demo_graph
from torch_geometric.data import HeteroData
from typer.testing import CliRunner

from moakg.gnn.config import TrainConfig
from moakg.gnn.explain.base import computation_subgraph, model_depth, predict
from moakg.gnn.explain.cli import add_cli
from moakg.gnn.explain.loading import LoadedRun, load_run
from moakg.gnn.explain.methods import METHODS, make_explainer
from moakg.gnn.explain.metrics import characterization, explanation_mask, fidelity, sparsity
from moakg.gnn.explain.paths import explain_paths
from moakg.gnn.explain.pipeline import explain_prediction, write_result
from moakg.gnn.models import model_inputs
from moakg.gnn.run import run_experiment
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.explanations import delete_explanations, explanation_counts
from moakg.kg.export import IdMaps, export_heterodata
from moakg.kg.queries import load_query
from moakg.kg.schema import NODE_KEYS
from moakg.kg.writeback import delete_model_run

FAST = {"gnnexplainer": {"epochs": 10}, "ig": {"n_steps": 5}, "saliency": {}}


@pytest.fixture(scope="module")
def demo(_session_conn: Neo4jConnection) -> Neo4jConnection:
    """The demo graph for the module (as conftest's ``demo_conn``, but module-scoped so one model serves
    every test)."""
    return ensure_demo_graph(_session_conn)


@pytest.fixture(scope="module")
def exported(demo: Neo4jConnection) -> tuple[HeteroData, IdMaps]:
    return export_heterodata(demo, cache=False, progress=False)


def _train(conn: Neo4jConnection, exported: tuple[HeteroData, IdMaps], tmp: Path, task: str) -> LoadedRun:
    data, maps = exported
    cfg = TrainConfig(task=task, models=("sage",), split="random", settings=("phenotype",), seeds=(0,),
                      epochs=3, patience=3, hidden=16, baselines=False, out=tmp, top_k=3)
    res = run_experiment(conn, cfg, data, maps, log=lambda _m: None)
    return load_run(conn, res.run_ids[("phenotype", "sage")], data=data, maps=maps)


@pytest.fixture(scope="module")
def moa_run(demo: Neo4jConnection, exported: tuple[HeteroData, IdMaps],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedRun]:
    run = _train(demo, exported, tmp_path_factory.mktemp("runs"), "moa")
    yield run
    delete_explanations(demo, run.run_id)
    delete_model_run(demo, run.run_id)


@pytest.fixture(scope="module")
def target_run(demo: Neo4jConnection, exported: tuple[HeteroData, IdMaps],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedRun]:
    run = _train(demo, exported, tmp_path_factory.mktemp("runs"), "target")
    yield run
    delete_explanations(demo, run.run_id)
    delete_model_run(demo, run.run_id)


def test_load_run_rebuilds_the_config_it_was_trained_with(demo: Neo4jConnection,
                                                          exported: tuple[HeteroData, IdMaps],
                                                          tmp_path: Path) -> None:
    data, maps = exported
    # Off-default shape and optimisation values: load_run must take them from the run, not the defaults.
    cfg = TrainConfig(task="moa", models=("sage",), split="random", settings=("phenotype",), seeds=(1,),
                      epochs=2, hidden=8, layers=1, dropout=0.1, lr=0.02, baselines=False, out=tmp_path,
                      top_k=1)
    res = run_experiment(demo, cfg, data, maps, log=lambda _m: None)
    run_id = res.run_ids[("phenotype", "sage")]
    try:
        run = load_run(demo, run_id, data=data, maps=maps)
        assert run.config == cfg and run.model_kind == "sage" and run.seed == 1
        assert model_depth(run.model) == 1 and run.model.encoder.hidden == 8
        trained = res.results[("phenotype", "sage", 1)].model.eval()
        with torch.no_grad():
            inputs = model_inputs(run.graph)
            assert torch.equal(run.model(*inputs), trained(*inputs))
    finally:
        delete_model_run(demo, run_id)


def _test_compounds_with_signatures(run: LoadedRun, n: int = 2) -> list[int]:
    ei = run.graph["Compound", "HAS_SIGNATURE", "Signature"].edge_index
    out = [c for c in run.task.split.test.tolist() if bool((ei[0] == c).any())]
    assert out, "the demo's test split should hold compounds with signatures"
    return out[:n]


def _top_moa(run: LoadedRun, c: int) -> tuple[str, int]:
    with torch.no_grad():
        return ("moa", int(run.model(*model_inputs(run.graph))[c].argmax()))


# ------------------------------------------------------------------------------------------- explainers
def test_subgraph_predicts_like_the_full_graph(moa_run: LoadedRun) -> None:
    c = _test_compounds_with_signatures(moa_run)[0]
    target = _top_moa(moa_run, c)
    sub = computation_subgraph(moa_run.graph, c, model_depth(moa_run.model))
    with torch.no_grad():
        full = float(torch.sigmoid(moa_run.model(*model_inputs(moa_run.graph))[c, target[1]]))
    assert predict(moa_run.model, sub, target) == pytest.approx(full, abs=1e-5)
    assert sub.num_edges() < sum(moa_run.graph[et].edge_index.size(1) for et in moa_run.graph.edge_types) / 50


@pytest.mark.parametrize("method", sorted(METHODS))
def test_explainers_return_reproducible_importances_per_edge_type(moa_run: LoadedRun, method: str) -> None:
    c = _test_compounds_with_signatures(moa_run)[0]
    target = _top_moa(moa_run, c)
    imp, sub = make_explainer(method, **FAST[method]).explain_with_subgraph(moa_run.model, moa_run.graph, c,
                                                                           target)
    assert set(imp) == set(sub.edge_types) and sub.edge_types
    for et, v in imp.items():
        assert v.shape == (sub.graph[et].edge_index.size(1),) and bool(torch.isfinite(v).all())
    assert any(float(v.max()) > 0 for v in imp.values())
    # The same question gets the same answer (GNNExplainer's random start is seeded; masks left behind by
    # one call must not leak into the next).
    again = make_explainer(method, **FAST[method]).explain(moa_run.model, moa_run.graph, c, target)
    assert all(torch.allclose(imp[et], again[et], atol=1e-6) for et in imp)


def test_target_explainer_covers_the_gene_side(target_run: LoadedRun) -> None:
    c = int(target_run.task.split.test[0])
    res = explain_prediction(target_run, target_run.maps.keys["Compound"][c], method="saliency", k=3)
    assert res.kind == "target" and res.target[0] == "target"
    assert res.sub.gene >= 0  # the predicted gene's neighbourhood is in the computation subgraph
    for p in res.paths.to_target:
        assert (p.node_types[-1], p.node_keys[-1]) == ("Gene", res.prediction)
    # What is shown and stored: the paths to the predicted gene when any reaches it, else paths ending
    # anywhere (never nothing while the compound has edges).
    shown = [r["path"] for r in res.rows()]
    ends_at_gene = [(p.node_types[-1], p.node_keys[-1]) == ("Gene", res.prediction) for p in res.paths.best]
    assert res.paths.best and len(shown) == len(res.paths.best)
    assert all(ends_at_gene) if res.paths.to_target else not any(ends_at_gene)


# ------------------------------------------------------------------------------------------- paths
def _assert_paths_exist(conn: Neo4jConnection, paths: list) -> None:
    for p in paths:
        for i, (rel, fwd) in enumerate(zip(p.rel_types, p.forward, strict=True)):
            la, lb = p.node_types[i], p.node_types[i + 1]
            a = f"(a:{la} {{{NODE_KEYS[la]}: $a}})"
            b = f"(b:{lb} {{{NODE_KEYS[lb]}: $b}})"
            arrow = f"-[r:{rel}]->" if fwd else f"<-[r:{rel}]-"
            n = conn.query(f"MATCH {a}{arrow}{b} RETURN count(r) AS n",
                           a=p.node_keys[i], b=p.node_keys[i + 1])
            assert n[0]["n"] >= 1, f"step {i + 1} of {p.metapath} {p.node_keys} is not in the graph"


def test_paths_exist_in_neo4j_sorted_and_typed(demo: Neo4jConnection, moa_run: LoadedRun) -> None:
    for c in _test_compounds_with_signatures(moa_run):
        target = _top_moa(moa_run, c)
        imp, sub = make_explainer("saliency").explain_with_subgraph(moa_run.model, moa_run.graph, c, target)
        pe = explain_paths(sub, imp, target, k=5, max_length=3, keys=moa_run.maps.keys)
        paths = pe.best
        assert 1 <= len(paths) <= 5
        assert [p.rank for p in paths] == list(range(1, len(paths) + 1))
        assert all(a.score >= b.score for a, b in zip(paths, paths[1:], strict=False))
        for p in paths:
            assert p.node_types[0] == "Compound" and p.node_keys[0] == moa_run.maps.keys["Compound"][c]
            assert 1 <= p.length <= 3 and len(set(p.nodes)) == len(p.nodes)  # simple paths
            parts = p.metapath.split("-")
            assert parts[0::2] == p.node_types and parts[1::2] == p.rel_types
            assert all(0 < w <= 1 for w in p.weights)
            assert p.score == pytest.approx(math.exp(sum(map(math.log, p.weights)) / len(p.weights)))
        _assert_paths_exist(demo, paths)


def test_k_best_search_matches_brute_force(moa_run: LoadedRun) -> None:
    from itertools import islice

    from moakg.gnn.explain.paths import build_weighted_graph, top_k_paths

    c = _test_compounds_with_signatures(moa_run)[0]
    target = _top_moa(moa_run, c)
    imp, sub = make_explainer("saliency").explain_with_subgraph(moa_run.model, moa_run.graph, c, target)
    wg = build_weighted_graph(sub, imp)
    start = ("Compound", sub.global_id("Compound", sub.compound))
    best = top_k_paths(wg, start, k=5, max_length=2)

    def walk(nodes: list, ws: list) -> Iterator[float]:  # every simple path of length 1..2
        for (nbr, _, _), (w, _) in wg.adj[nodes[-1]].items():
            if nbr not in nodes:
                yield math.exp((sum(map(math.log, ws)) + math.log(w)) / (len(ws) + 1))
                if len(nodes) < 2:
                    yield from walk([*nodes, nbr], [*ws, w])

    brute = sorted(walk([start], []), reverse=True)
    assert [p.score for p in best] == pytest.approx(list(islice(brute, 5)))


# ------------------------------------------------------------------------------------------- fidelity
def test_fidelity_identities(moa_run: LoadedRun) -> None:
    c = _test_compounds_with_signatures(moa_run)[0]
    target = _top_moa(moa_run, c)
    sub = computation_subgraph(moa_run.graph, c, model_depth(moa_run.model))
    everything = {et: torch.ones(sub.graph[et].edge_index.size(1), dtype=torch.bool) for et in sub.edge_types}
    nothing = {et: ~m for et, m in everything.items()}
    fp_all, fm_all = fidelity(moa_run.model, sub, target, everything)
    fp_none, fm_none = fidelity(moa_run.model, sub, target, nothing)
    assert fm_all == 0.0 and fp_none == 0.0  # keeping the whole graph / removing nothing changes nothing
    assert fp_all == pytest.approx(fm_none)  # both are the prediction without any edge
    assert fp_all > 0  # the signatures do move this compound's prediction
    assert sparsity(sub, everything) == 0.0 and sparsity(sub, nothing) == 1.0
    assert characterization(0.0, 0.2) == 0.0 and characterization(0.5, 1.0) == 0.0
    assert characterization(0.6, 0.2) == pytest.approx(1 / (0.5 / 0.6 + 0.5 / 0.8))
    res = explain_prediction(moa_run, moa_run.maps.keys["Compound"][c], method="saliency", k=5)
    f = res.fidelity
    # The reported numbers are those of the paths' own edges: recomputed from the paths, they agree.
    mask = explanation_mask(res.sub, res.paths.best)
    n_edges = sum(int(m.sum()) for m in mask.values())
    assert f.n_edges == n_edges and 0 < n_edges < res.sub.num_edges()
    assert (f.fidelity_plus, f.fidelity_minus) == pytest.approx(fidelity(moa_run.model, res.sub, res.target,
                                                                         mask))
    assert f.sparsity == pytest.approx(1 - n_edges / res.sub.num_edges())
    assert f.characterization == pytest.approx(characterization(f.fidelity_plus, f.fidelity_minus))


# ------------------------------------------------------------------------------------------- write-back
def test_write_back_is_idempotent_and_the_query_draws_real_paths(demo: Neo4jConnection,
                                                                 moa_run: LoadedRun) -> None:
    c = _test_compounds_with_signatures(moa_run)[0]
    key = moa_run.maps.keys["Compound"][c]
    res = explain_prediction(moa_run, key, method="gnnexplainer", k=4, method_kwargs=FAST["gnnexplainer"])
    before = explanation_counts(demo)
    eid = write_result(demo, res)
    once = explanation_counts(demo)
    assert once["explanations"] == before["explanations"] + 1
    assert once["paths"] == before["paths"] + len(res.paths.best)
    assert write_result(demo, res) == eid
    assert explanation_counts(demo) == once  # same counts after the second write
    res2 = explain_prediction(moa_run, key, method="gnnexplainer", k=2, method_kwargs=FAST["gnnexplainer"])
    write_result(demo, res2)  # fewer paths: the old ones are gone, not kept beside the new
    assert demo.query("MATCH (:Explanation {id: $id})-[:HAS_PATH]->(p) RETURN count(p) AS n",
                      id=eid)[0]["n"] == len(res2.paths.best)
    write_result(demo, res)
    stored = demo.query(
        "MATCH (e:Explanation {id: $id})-[:HAS_PATH]->(p:ExplanationPath)-[s:STEP]->(n) "
        "WITH p, s, n ORDER BY s.order RETURN p.rank AS rank, collect(elementId(n)) AS nodes ORDER BY rank",
        id=eid)
    rows = demo.query(load_query("explanation_paths").text, run=moa_run.run_id, compound=key, top=10)
    rows = [r for r in rows if r["method"] == "gnnexplainer"]
    assert [r["rank"] for r in rows] == [s["rank"] for s in stored] == [p.rank for p in res.paths.best]
    with demo.session() as s:  # real Path objects, to compare nodes and relationship types
        recs = list(s.run(load_query("explanation_paths").text, run=moa_run.run_id, compound=key, top=10))
    recs = [r for r in recs if r["method"] == "gnnexplainer"]
    for rec, st, p in zip(recs, stored, res.paths.best, strict=True):
        path = rec["path"]
        assert [n.element_id for n in path.nodes] == st["nodes"]
        assert [r.type for r in path.relationships] == p.rel_types
        assert "STEP" not in {r.type for r in path.relationships}
        for i, r in enumerate(path.relationships):  # recorded directions hold
            assert (r.start_node.element_id == path.nodes[i].element_id) == p.forward[i]
    all_rows = demo.query(load_query("explanation_paths").text, run="", compound="", top=1)
    assert {r["rank"] for r in all_rows} == {1}


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def explain_cli(cli_env: Neo4jSettings) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def version() -> None:  # a second command so Typer keeps `explain` as a subcommand
        typer.echo("moakg")

    add_cli(app)
    return app


def test_cli_explain_and_evaluate(explain_cli: typer.Typer, demo: Neo4jConnection, moa_run: LoadedRun,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI exports the graph itself: point its cache at a fresh folder (not the user's MOAKG_HOME).
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    c = _test_compounds_with_signatures(moa_run)[0]
    key = moa_run.maps.keys["Compound"][c]
    png = tmp_path / "paths.png"
    out = runner.invoke(explain_cli, ["explain", "--run", moa_run.run_id, "--compound", key,
                                  "--method", "saliency", "--top-k", "3", "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert re.search(r"fidelity\+ -?[0-9.]+ +fidelity- -?[0-9.]+", out.output)
    # paths leave the compound along its signature, MIMICS / OPPOSES or similarity edges
    assert re.search(r"Compound-(HAS_SIGNATURE|MIMICS|OPPOSES|SIMILAR_\w+)-", out.output)
    assert png.stat().st_size > 10_000
    n = demo.query("MATCH (e:Explanation {run: $run, compound: $c, method: 'saliency'}) RETURN count(e) AS n",
                   run=moa_run.run_id, c=key)[0]["n"]
    assert n == 1
    args = ["explain", "--run", moa_run.run_id, "--compound", key, "--target", "EGFR"]
    bad = runner.invoke(explain_cli, args)
    assert bad.exit_code == 1 and "--moa" in bad.output
    ev = runner.invoke(explain_cli, ["explain", "evaluate", "--run", moa_run.run_id, "--method", "saliency",
                                 "--method", "gnnexplainer", "--epochs", "5", "--top-k", "3"])
    assert ev.exit_code == 0, ev.output
    lines = ev.output.strip().splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["method", "n_explained"])
    fid = {ln.split()[0]: ln.split() for ln in lines[head + 2 : head + 4]}
    assert set(fid) == {"saliency", "gnnexplainer"}
    n_test = len(_test_compounds_with_signatures(moa_run, 10**6))  # every held-out compound with a signature
    for cols in fid.values():
        assert int(cols[1]) + int(cols[2]) == n_test and int(cols[1]) >= 1
    check_head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["method", "check"])
    assert {"random_metapath", "p_metapath", "degree_matched", "p_degree"} <= set(lines[check_head].split())
    checks = {(ln.split()[0], ln.split()[1]) for ln in lines[check_head + 2 :]}
    assert {("saliency", "consistency"), ("gnnexplainer", "consistency")} <= checks


def test_cli_explain_all_test_stores_every_held_out_compound_once(
        explain_cli: typer.Typer, demo: Neo4jConnection, moa_run: LoadedRun, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    args = ["explain", "--run", moa_run.run_id, "--all-test", "--method", "saliency", "--top-k", "3"]
    count = ("MATCH (e:Explanation {run: $run, method: 'saliency'})-[:EXPLAINS]->(c:Compound) "
             "RETURN count(DISTINCT c) AS compounds, count(e) AS n")
    out = runner.invoke(explain_cli, args)
    assert out.exit_code == 0, out.output
    m = re.search(r"(\d+) of (\d+) held-out compounds with a signature explained", out.output)
    n_test = len(_test_compounds_with_signatures(moa_run, 10**6))
    assert m and int(m.group(2)) == n_test and int(m.group(1)) >= 1
    first = demo.query(count, run=moa_run.run_id)[0]
    # one explanation per explained compound (the single-compound CLI test may have stored one already)
    assert first["compounds"] == first["n"] >= int(m.group(1))
    again = runner.invoke(explain_cli, args)
    assert again.exit_code == 0, again.output
    assert demo.query(count, run=moa_run.run_id)[0] == first  # idempotent
    bad = runner.invoke(explain_cli, [*args, "--compound", "X"])
    assert bad.exit_code == 1 and "--all-test" in bad.output
