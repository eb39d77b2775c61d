"""The batched writer and ingest runs, against the real Neo4j."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import NodeBatch, RelBatch, run_ingest


def _genes(n: int) -> NodeBatch:
    return NodeBatch("Gene", "symbol", [{"symbol": f"G{i}", "entrez_id": i, "note": None} for i in range(n)])


def _links(n: int) -> RelBatch:
    rows = [{"start": f"G{i}", "end": f"G{(i + 1) % n}", "combined_score": 900 + i % 10} for i in range(n)]
    return RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rows)


def _graph_counts(conn: Neo4jConnection) -> tuple[int, int]:
    n = conn.query("MATCH (g:Gene) RETURN count(g) AS n")[0]["n"]
    r = conn.query("MATCH ()-[r:INTERACTS_WITH]->() RETURN count(r) AS n")[0]["n"]
    return n, r


def test_writing_twice_gives_same_counts(conn: Neo4jConnection) -> None:
    first = run_ingest(conn, "test", [_genes(250), _links(250)], batch_size=64, progress=False)
    assert (first.counts.nodes_created, first.counts.rels_created) == (250, 250)
    assert _graph_counts(conn) == (250, 250)
    second = run_ingest(conn, "test", [_genes(250), _links(250)], batch_size=64, progress=False)
    assert (second.counts.nodes_created, second.counts.rels_created) == (0, 0)
    assert (second.counts.nodes_matched, second.counts.rels_matched) == (250, 250)
    assert _graph_counts(conn) == (250, 250)
    # Same source, files and params: the same IngestRun, now on its second attempt.
    run = conn.query("MATCH (r:IngestRun) RETURN r.id AS id, r.status AS status, r.attempts AS attempts")
    assert run == [{"id": first.run_id, "status": "completed", "attempts": 2}]


def test_every_write_is_stamped_with_source_and_run(conn: Neo4jConnection) -> None:
    rep = run_ingest(conn, "stamp_test", [_genes(5), _links(5)], progress=False)
    rows = conn.query(
        "MATCH (a:Gene)-[r]->(b:Gene) RETURN DISTINCT a.source AS ns, a.ingest_run AS nr, a.sources AS srcs, "
        "r.source AS rs, r.ingest_run AS rr"
    )
    assert rows == [
        {"ns": "stamp_test", "nr": rep.run_id, "srcs": ["stamp_test"], "rs": "stamp_test", "rr": rep.run_id}
    ]
    # None values are not written (so they can never erase another source's value).
    assert conn.query("MATCH (g:Gene) WHERE g.note IS NOT NULL RETURN count(g) AS n")[0]["n"] == 0


def test_failed_batch_marks_run_failed_and_rerun_completes(conn: Neo4jConnection) -> None:
    good = [{"symbol": f"G{i}"} for i in range(100)]
    # Neo4j rejects a map as a property value: the third batch fails inside the database.
    bad = [*good[:60], {"symbol": "BAD", "nested": {"a": 1}}, *good[60:]]
    with pytest.raises(Exception, match="(?i)property"):
        run_ingest(conn, "fail_test", [NodeBatch("Gene", "symbol", bad)], batch_size=30, progress=False)
    run = conn.query("MATCH (r:IngestRun {source: 'fail_test'}) RETURN r.status AS s, r.error AS e")
    assert run[0]["s"] == "failed" and "property" in run[0]["e"].lower()
    written = conn.query("MATCH (g:Gene) RETURN count(g) AS n")[0]["n"]
    assert written == 60  # the first two batches of 30 landed before the failure
    rep = run_ingest(conn, "fail_test", [NodeBatch("Gene", "symbol", good)], batch_size=30, progress=False)
    assert rep.status == "completed"
    assert conn.query("MATCH (g:Gene) RETURN count(g) AS n")[0]["n"] == 100
    # Same source, files and params: the failed run itself is completed, on its second attempt.
    runs = conn.query("MATCH (r:IngestRun {source: 'fail_test'}) RETURN r.status AS s, r.attempts AS a, "
                      "r.error AS e")
    assert runs == [{"s": "completed", "a": 2, "e": None}]


def test_failure_in_adapter_marks_run_failed(conn: Neo4jConnection) -> None:
    def batches():
        yield _genes(10)
        raise ValueError("genes.tsv, line 11: expected 2 columns")

    with pytest.raises(ValueError, match="line 11"):
        run_ingest(conn, "adapter_fail", batches(), progress=False)
    run = conn.query("MATCH (r:IngestRun {source: 'adapter_fail'}) RETURN r.status AS s, r.error AS e")
    assert run == [{"s": "failed", "e": "ValueError: genes.tsv, line 11: expected 2 columns"}]
    rerun = run_ingest(conn, "adapter_fail", [_genes(10)], progress=False)
    after = conn.query("MATCH (r:IngestRun {source: 'adapter_fail'}) RETURN r.status AS s, r.attempts AS a")
    assert rerun.status == "completed" and after == [{"s": "completed", "a": 2}]


def test_relationships_to_missing_nodes_are_reported(conn: Neo4jConnection) -> None:
    rows = [
        {"start": "G0", "end": "G1", "combined_score": 900},
        {"start": "G0", "end": "NOPE", "combined_score": 800},
        {"start": "GHOST", "end": "G2", "combined_score": 700},
    ]
    rep = run_ingest(
        conn,
        "missing_test",
        [_genes(3), RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rows)],
        progress=False,
    )
    assert rep.counts.rels_created == 1
    assert rep.counts.rels_missing_endpoint == 2
    ex = {(m["start"], m["end"], m["missing_start"], m["missing_end"]) for m in rep.counts.missing_examples}
    assert ex == {("G0", "NOPE", False, True), ("GHOST", "G2", True, False)}
    stored = conn.query("MATCH (r:IngestRun {source: 'missing_test'}) RETURN r.rels_missing_endpoint AS m")
    assert stored == [{"m": 2}]


def test_per_source_relationships_stay_separate(conn: Neo4jConnection) -> None:
    nodes = [NodeBatch("Compound", "id", [{"id": "C1"}]), NodeBatch("Gene", "symbol", [{"symbol": "EGFR"}])]

    def targets(actions: list[str]) -> RelBatch:
        return RelBatch(
            "TARGETS",
            ("Compound", "id"),
            ("Gene", "symbol"),
            [{"start": "C1", "end": "EGFR", "actions": actions}],
            per_source=True,
        )

    run_ingest(conn, "src_a", [*nodes, targets(["inhibitor"])], progress=False)
    run_ingest(conn, "src_b", [*nodes, targets(["antagonist"])], progress=False)
    rows = conn.query(
        "MATCH (:Compound)-[t:TARGETS]->(:Gene) RETURN t.source AS s, t.actions AS a ORDER BY s"
    )
    assert rows == [{"s": "src_a", "a": ["inhibitor"]}, {"s": "src_b", "a": ["antagonist"]}]
    srcs = conn.query("MATCH (c:Compound {id: 'C1'}) RETURN c.sources AS s")[0]["s"]
    assert srcs == ["src_a", "src_b"]


def _wait_until_blocked(conn: Neo4jConnection, timeout: float = 30.0) -> None:
    """Return once a writer transaction waits for a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.query("SHOW TRANSACTIONS YIELD status, currentQuery WHERE status STARTS WITH 'Blocked' "
                      "AND currentQuery CONTAINS 'UNWIND $rows' RETURN count(*) AS n")[0]["n"]:
            return
        time.sleep(0.05)
    raise TimeoutError("the writer never waited for the lock")


def test_transient_errors_are_retried(conn: Neo4jConnection, caplog: pytest.LogCaptureFixture) -> None:
    """A real transient error, a deadlock: the writer's batch locks G0 and waits for G1, which another
    transaction holds; that one then asks for G0. Neo4j aborts the side holding fewer locks, the writer
    (Neo.TransientError.Transaction.DeadlockDetected); the driver retries the batch, which lands once the
    other transaction is gone."""
    run_ingest(conn, "retry_test", [_genes(3), NodeBatch("CellLine", "cell_id", [{"cell_id": f"L{i}"}
                                                                                for i in range(50)])],
               progress=False)
    session = conn.driver.session(database=conn.database)
    holder = session.begin_transaction()
    # the holder takes many locks (so it is not the one Neo4j aborts), G1 among them
    holder.run("MATCH (n) WHERE n:CellLine OR n.symbol = 'G1' SET n.locked = true").consume()
    closed_cycle: list[bool] = []

    def close_the_cycle() -> None:
        try:
            _wait_until_blocked(conn)
            holder.run("MATCH (g:Gene {symbol: 'G0'}) SET g.locked = true").consume()  # waits for the writer
            closed_cycle.append(True)
        finally:
            holder.rollback()

    helper = threading.Thread(target=close_the_cycle)
    helper.start()
    try:
        with caplog.at_level(logging.WARNING, logger="neo4j"):
            rep = run_ingest(conn, "retry_test", [_genes(3)], progress=False)
    finally:
        helper.join()
        session.close()
    assert closed_cycle == [True]  # the holder got G0: the writer's first attempt was aborted
    retries = [r.getMessage() for r in caplog.records if "will be retried" in r.getMessage()]
    assert retries and "DeadlockDetected" in retries[0]
    assert rep.status == "completed" and (rep.counts.nodes_created, rep.counts.nodes_matched) == (0, 3)
    assert conn.query("MATCH (n) WHERE n.locked RETURN count(n) AS n") == [{"n": 0}]
    run = conn.query("MATCH (r:IngestRun {source: 'retry_test'}) RETURN r.status AS s, r.attempts AS a")
    assert run == [{"s": "completed", "a": 2}]  # the retry happened inside one attempt of the run
