"""Model and explanation write-back through the one writer (kg/writer.py), against the real Neo4j.

Idempotency (same counts after a second write), replace semantics (stale results never survive), run
provenance (stamps, ModelRun status) and failures part-way (the run is marked failed, a re-run completes
it with exact counts; an explanation is all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from moakg.kg.connection import Neo4jConnection
from moakg.kg.explanations import explanation_counts, explanation_id, write_explanation
from moakg.kg.writeback import (
    delete_model_run,
    prediction_counts,
    write_model_run,
    write_predictions,
)
from moakg.kg.writer import (
    Batch,
    MissingEndpointError,
    NodeBatch,
    Provenance,
    RelBatch,
    run_ingest,
    write_run,
)

N_COMPOUNDS, N_MOAS = 40, 5


@pytest.fixture
def small(conn: Neo4jConnection) -> Neo4jConnection:
    """Compounds C0..C39, MoAs m0..m4, genes G0..G2 and C0's signature S0, ingested as usual."""
    run_ingest(conn, "toy", [
        NodeBatch("Compound", "id", [{"id": f"C{i}"} for i in range(N_COMPOUNDS)]),
        NodeBatch("MoA", "name", [{"name": f"m{j}"} for j in range(N_MOAS)]),
        NodeBatch("Gene", "symbol", [{"symbol": f"G{j}"} for j in range(3)]),
        NodeBatch("Signature", "sig_id", [{"sig_id": "S0"}]),
        RelBatch("HAS_SIGNATURE", ("Compound", "id"), ("Signature", "sig_id"),
                 [{"start": "C0", "end": "S0"}]),
        RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"),
                 [{"start": "S0", "end": "G0", "z": 3.0}]),
        RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"), [{"start": "C0", "end": "G1"}],
                 per_source=True),
    ], progress=False)
    return conn


def _rows(k: int, n: int = N_COMPOUNDS) -> list[dict[str, Any]]:
    return [{"start": f"C{i}", "end": f"m{(i + r) % N_MOAS}", "score": 1.0 / (r + 1), "rank": r + 1}
            for i in range(n) for r in range(k)]


def _totals(conn: Neo4jConnection) -> tuple[int, int]:
    row = conn.query("CALL () { MATCH (n) RETURN count(n) AS nodes } "
                     "CALL () { MATCH ()-[r]->() RETURN count(r) AS rels } RETURN nodes, rels")[0]
    return row["nodes"], row["rels"]


def _run(conn: Neo4jConnection, run_id: str) -> dict[str, Any]:
    [row] = conn.query("MATCH (r:ModelRun {id: $id}) RETURN r.status AS status, r.attempts AS attempts, "
                       "r.error AS error, r.note AS note, r.ended IS NOT NULL AS ended", id=run_id)
    return row


# ------------------------------------------------------------------------------------ predictions


def test_predictions_are_stamped_idempotent_and_replaced(small: Neo4jConnection) -> None:
    write_model_run(small, "run-a", {"note": "first", "metrics": {"auc": 0.5}})
    assert write_predictions(small, "run-a", "PREDICTED_MOA", _rows(3)) == {
        "deleted": 0, "written": 3 * N_COMPOUNDS, "missing": 0}
    assert _run(small, "run-a") == {"status": "completed", "attempts": 1, "error": None, "note": "first",
                                    "ended": True}
    # every prediction carries its run (and nothing an ingest would stamp)
    stamps = small.query("MATCH (:Compound)-[p:PREDICTED_MOA]->(:MoA) "
                         "RETURN DISTINCT p.run AS run, p.source AS source, p.ingest_run AS ingest")
    assert stamps == [{"run": "run-a", "source": None, "ingest": None}]
    once = _totals(small)

    write_model_run(small, "run-a", {"note": "second"})
    assert write_predictions(small, "run-a", "PREDICTED_MOA", _rows(3)) == {
        "deleted": 3 * N_COMPOUNDS, "written": 3 * N_COMPOUNDS, "missing": 0}
    assert _totals(small) == once  # a second write changes no counts
    assert _run(small, "run-a")["attempts"] == 2 and _run(small, "run-a")["note"] == "second"

    # another run's predictions are its own: replacing run-a's leaves them alone
    write_model_run(small, "run-b", {})
    write_predictions(small, "run-b", "PREDICTED_MOA", _rows(2, n=5))
    # a smaller top-k replaces: no rank-2 or rank-3 prediction of run-a survives
    assert write_predictions(small, "run-a", "PREDICTED_MOA", _rows(1))["deleted"] == 3 * N_COMPOUNDS
    ranks = small.query("MATCH ()-[p:PREDICTED_MOA]->() RETURN p.run AS run, max(p.rank) AS top, "
                        "count(p) AS n ORDER BY run")
    assert ranks == [{"run": "run-a", "top": 1, "n": N_COMPOUNDS}, {"run": "run-b", "top": 2, "n": 10}]
    assert prediction_counts(small, "run-a") == {"PREDICTED_MOA": N_COMPOUNDS, "PREDICTED_TARGET": 0}

    assert delete_model_run(small, "run-a") == N_COMPOUNDS
    assert small.query("MATCH (r:ModelRun) RETURN r.id AS id") == [{"id": "run-b"}]
    assert prediction_counts(small, "run-b")["PREDICTED_MOA"] == 10


def test_predictions_to_missing_nodes_are_counted_not_written(small: Neo4jConnection) -> None:
    write_model_run(small, "run-m", {})
    rows = [*_rows(1, n=3), {"start": "C0", "end": "no such moa", "score": 0.1, "rank": 2},
            {"start": "ghost", "end": "m0", "score": 0.1, "rank": 1}]
    assert write_predictions(small, "run-m", "PREDICTED_MOA", rows) == {"deleted": 0, "written": 3,
                                                                         "missing": 2}
    assert prediction_counts(small, "run-m")["PREDICTED_MOA"] == 3
    assert _run(small, "run-m")["status"] == "completed"


def test_failed_prediction_write_marks_run_failed_and_rerun_completes(small: Neo4jConnection) -> None:
    write_model_run(small, "run-f", {})
    good = _rows(2)  # 80 rows
    # Neo4j refuses a map as a property value: the third batch of 30 fails inside the database.
    bad = [*good[:65], {**good[65], "score": {"not": "a number"}}, *good[66:]]
    with pytest.raises(Exception, match="(?i)property"):
        write_predictions(small, "run-f", "PREDICTED_MOA", bad, batch_size=30)
    run = _run(small, "run-f")
    assert run["status"] == "failed" and "property" in run["error"].lower() and run["ended"]
    assert prediction_counts(small, "run-f")["PREDICTED_MOA"] == 60  # the first two batches landed

    assert write_predictions(small, "run-f", "PREDICTED_MOA", good, batch_size=30) == {
        "deleted": 60, "written": 80, "missing": 0}
    assert _run(small, "run-f")["status"] == "completed" and _run(small, "run-f")["error"] is None
    assert prediction_counts(small, "run-f")["PREDICTED_MOA"] == 80


def test_failure_in_the_batch_iterator_marks_model_run_failed(small: Neo4jConnection) -> None:
    prov = Provenance.model("run-it")
    batch = RelBatch("PREDICTED_MOA", ("Compound", "id"), ("MoA", "name"), _rows(1), merge_on=("run",))

    def batches() -> Iterator[Batch]:
        yield batch
        raise RuntimeError("scores.pt is truncated")

    with pytest.raises(RuntimeError, match="truncated"):
        write_run(small, prov, batches(), {"note": "x"})
    run = _run(small, "run-it")
    assert (run["status"], run["attempts"]) == ("failed", 1)
    assert run["error"] == "RuntimeError: scores.pt is truncated"
    counts = write_run(small, prov, [batch], {"note": "x"})
    assert (counts.rels_created, counts.rels_matched) == (0, N_COMPOUNDS)  # merged on run: no duplicates
    assert _run(small, "run-it")["status"] == "completed" and _run(small, "run-it")["attempts"] == 2
    assert prediction_counts(small, "run-it")["PREDICTED_MOA"] == N_COMPOUNDS


# ----------------------------------------------------------------------------------- explanations


def _paths(n: int) -> list[dict[str, Any]]:
    """Up to three real paths of the toy graph from C0."""
    paths = [
        {"rank": 1, "score": 0.9, "metapath": "Compound-HAS_SIGNATURE-Signature-UPREGULATES-Gene",
         "node_types": ["Compound", "Signature", "Gene"], "node_keys": ["C0", "S0", "G0"],
         "rel_types": ["HAS_SIGNATURE", "UPREGULATES"], "forward": [True, True], "weights": [1.0, 0.8]},
        {"rank": 2, "score": 0.7, "metapath": "Compound-TARGETS-Gene", "node_types": ["Compound", "Gene"],
         "node_keys": ["C0", "G1"], "rel_types": ["TARGETS"], "forward": [True], "weights": [0.7]},
        {"rank": 3, "score": 0.5, "metapath": "Compound-HAS_SIGNATURE-Signature",
         "node_types": ["Compound", "Signature"], "node_keys": ["C0", "S0"], "rel_types": ["HAS_SIGNATURE"],
         "forward": [True], "weights": [0.5]},
    ]
    return paths[:n]


def _explain(conn: Neo4jConnection, paths: list[dict[str, Any]], compound: str = "C0",
             moa: str = "m0") -> str:
    return write_explanation(conn, "run-x", compound, "moa", moa, "saliency",
                             {"score": 0.8, "fidelity_plus": 0.4}, paths)


def _stored_paths(conn: Neo4jConnection, eid: str) -> list[dict[str, Any]]:
    return conn.query(
        "MATCH (:Explanation {id: $id})-[:HAS_PATH]->(p:ExplanationPath)-[s:STEP]->(n) "
        "WITH p, s, n ORDER BY s.order "
        "RETURN p.rank AS rank, collect(coalesce(n.id, n.sig_id, n.symbol)) AS nodes ORDER BY rank", id=eid)


def test_explanation_write_back_is_idempotent_stamped_and_replaces(small: Neo4jConnection) -> None:
    before = explanation_counts(small)
    eid = _explain(small, _paths(3))
    assert eid == explanation_id("run-x", "C0", "moa", "m0", "saliency")
    once = explanation_counts(small)
    # 1 explanation, 3 paths, 3 + 2 + 2 steps, EXPLAINS + FOR + 3 HAS_PATH
    assert once == {"explanations": 1, "paths": 3, "steps": 7, "links": 5}
    assert before == {"explanations": 0, "paths": 0, "steps": 0, "links": 0}
    assert _stored_paths(small, eid) == [{"rank": 1, "nodes": ["C0", "S0", "G0"]},
                                         {"rank": 2, "nodes": ["C0", "G1"]},
                                         {"rank": 3, "nodes": ["C0", "S0"]}]
    # every node and relationship of the explanation layer carries its ModelRun
    unstamped = small.query(
        "MATCH (e:Explanation)-[r]->(x) OPTIONAL MATCH (x:ExplanationPath)-[s:STEP]->() "
        "WITH [e, r, x, s] AS things UNWIND things AS t WITH t WHERE t IS NOT NULL AND "
        "(t.run IS NULL OR t.run <> 'run-x') AND NOT t:Compound AND NOT t:MoA RETURN count(t) AS n")
    assert unstamped == [{"n": 0}]
    assert small.query("MATCH (e:Explanation) RETURN e.run AS run, e.compound AS c, e.score AS s, "
                       "e.created IS NOT NULL AS created") == [{"run": "run-x", "c": "C0", "s": 0.8,
                                                               "created": True}]

    assert _explain(small, _paths(3)) == eid
    assert explanation_counts(small) == once  # a second write changes no counts
    _explain(small, _paths(1))  # fewer paths: the old ones are gone, not kept beside the new
    assert explanation_counts(small) == {"explanations": 1, "paths": 1, "steps": 3, "links": 3}
    assert _stored_paths(small, eid) == [{"rank": 1, "nodes": ["C0", "S0", "G0"]}]


def test_failed_explanation_write_changes_nothing_and_rerun_completes(small: Neo4jConnection) -> None:
    eid = _explain(small, _paths(2))
    good = explanation_counts(small)
    totals = _totals(small)
    broken = _paths(3)
    broken[2]["node_keys"] = ["C0", "S404"]  # a path node that is not in the graph
    with pytest.raises(MissingEndpointError, match="Signature 'S404' is not in the graph"):
        _explain(small, broken)
    # one transaction: the old paths were not deleted and nothing new was written
    assert _totals(small) == totals and explanation_counts(small) == good
    assert [p["rank"] for p in _stored_paths(small, eid)] == [1, 2]

    with pytest.raises(ValueError, match="Compound 'C404' is not in the graph"):
        _explain(small, _paths(1), compound="C404")
    with pytest.raises(ValueError, match="MoA 'no such moa' is not in the graph"):
        _explain(small, _paths(1), moa="no such moa")
    assert _totals(small) == totals

    _explain(small, _paths(3))
    assert explanation_counts(small) == {"explanations": 1, "paths": 3, "steps": 7, "links": 5}
