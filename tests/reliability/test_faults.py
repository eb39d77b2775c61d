"""Crash recovery, the fast subset (issue 13, items 1-2); the long sweep is ``benchmarks/bench_faults.py``.

A tiny synthetic L1000 + STRING set is ingested cleanly once: the reference (node and relationship counts
per label and type, and a checksum of every node's and relationship's key and properties, volatile ones
aside). Then ``moakg ingest all`` of the same set is killed part-way, twice:

* the Neo4j JVM is SIGKILLed after a chosen call into Neo4j: the command must stop with one ``error:``
  line that says what to do, and the interrupted IngestRun stays ``running`` (the crash cannot mark it);
* the client process (a child) is SIGKILLed: the server rolls its open transaction back.

After each, whatever the graph holds, no run may say ``completed`` unless its part is complete, and
running the same ingest again must give exactly the reference graph, every run ``completed`` and
``attempts`` one more than the killed try left. Last, with Neo4j gone, ``moakg query run`` says so in one
line.

These tests kill their server: they start their own (never the session server of conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from moakg.benchmarks.bench_faults import KillPoint, Server, compare, crash, fingerprint, run_states
from moakg.benchmarks.synthetic_scale import ScaleSpec, generate
from moakg.cli import app
from moakg.ingest.commands import adapters_from_config
from moakg.ingest.runner import run_adapters
from moakg.kg import connection
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import init_schema

TINY = {"signatures": 40, "genes": 30, "landmarks": 10, "compounds": 8, "cells": 3, "moas": 3,
        "string_links": 50, "top_k": 5, "seed": 0, "progress": False}
#: the driver's retry time while the server is gone (its default, 30 s, is the long sweep's business)
RETRY_S = 0.5


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """An own Neo4j with the schema, the tiny data set and its clean ingest's fingerprint (the graph
    emptied again), and how many calls into Neo4j that ingest makes."""
    root = tmp_path_factory.mktemp("faults")
    server = Server(root)  # own home, free ports, heap 1g
    server.start()
    try:
        config = root / "data" / "sources.toml"
        generate(ScaleSpec(out=config.parent, **TINY))
        with server.conn() as conn:
            init_schema(conn)
            with KillPoint(None, 0.0, None, None).installed() as counter:
                reports = run_adapters(conn, adapters_from_config(config), progress=False)
            assert [r.status for r in reports] == ["completed", "completed"]
            ref = fingerprint(conn)
            clear_graph(conn)
        # kill points: calls that write a batch (inside a run: it has begun, and it is not done)
        writes = [i for i, (what, _) in enumerate(counter.trace, start=1) if what == "write"]
        yield {"server": server, "config": config, "ref": ref, "calls": counter.calls, "writes": writes,
               "runs": sorted(r.run_id for r in reports)}
    finally:
        server.kill()


@pytest.fixture
def cli_server(faulty: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """`moakg` in this process pointed at the test's own server, the driver retrying for RETRY_S."""
    settings = faulty["server"].settings()
    monkeypatch.setenv("NEO4J_URI", settings.uri)
    monkeypatch.setenv("NEO4J_PASSWORD", settings.password)
    real = connection.GraphDatabase.driver

    class ShortRetry:
        @staticmethod
        def driver(*args: Any, **kw: Any) -> Any:
            return real(*args, **{**kw, "max_transaction_retry_time": RETRY_S})

    monkeypatch.setattr(connection, "GraphDatabase", ShortRetry)
    return faulty


def test_the_reference_is_the_data_sets_graph(faulty: dict) -> None:
    ref = faulty["ref"]
    assert ref.nodes["Signature"] == 40 and ref.nodes["Compound"] == 8 and ref.rels["INTERACTS_WITH"] > 0
    assert set(ref.runs) == set(faulty["runs"]) and ref.duplicates == 0
    assert len(faulty["writes"]) >= 4  # room for kill points inside the ingest


def _after_crash(faulty: dict) -> dict[str, dict]:
    """What a crash left: no duplicates, and no run completed over a part of the graph that is not."""
    server = faulty["server"]
    states = run_states(server, faulty["runs"])
    with server.conn() as conn:
        got = fingerprint(conn)
    assert got.duplicates == 0
    done = [run for run, s in states.items() if s["status"] == "completed"]
    if done:  # only the first source (L1000) can be done by then: all of its signatures are there
        assert len(done) == 1 and done[0].startswith("lincs") and got.nodes["Signature"] == 40, states
    assert any(s["status"] == "running" for s in states.values()), states
    return states


def _recover(faulty: dict, interrupted: dict[str, dict]) -> None:
    """The same ingest again: exactly the reference graph, every run completed, attempts counted."""
    server, ref = faulty["server"], faulty["ref"]
    with server.conn() as conn:
        reports = run_adapters(conn, adapters_from_config(faulty["config"]), progress=False)
        got = fingerprint(conn)
    assert [r.status for r in reports] == ["completed", "completed"]
    assert compare(ref, got) == {"lost": 0, "duplicated": 0, "half_written": 0}
    assert (got.nodes, got.rels, got.checksum) == (ref.nodes, ref.rels, ref.checksum)
    after = run_states(server, faulty["runs"])
    for run in faulty["runs"]:
        before = (interrupted.get(run) or {}).get("attempts") or 0
        assert after[run]["status"] == "completed" and after[run]["attempts"] == before + 1, (run, after)


def test_ingest_recovers_when_neo4j_is_killed(cli_server: dict) -> None:
    faulty = cli_server
    server = faulty["server"]
    with server.conn() as conn:
        clear_graph(conn)
    # in this process: the server is killed as the ingest's middle batch is written
    with KillPoint(faulty["writes"][len(faulty["writes"]) // 2], 0.0, server.pid, None).installed() as kp:
        out = CliRunner().invoke(app, ["ingest", "all", "--config", str(faulty["config"])])
    assert kp.fired and out.exit_code == 1, out.output
    errors = [seg.strip() for ln in out.output.split("\n") for seg in ln.split("\r")
              if seg.strip().startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out.output and "will be retried" not in out.output
    assert errors[0].startswith("error: lost the connection to Neo4j at ") and "unexpected" not in errors[0]
    assert "run the same command again" in errors[0] and "stays 'running'" in errors[0], errors[0]
    server.kill()  # reaps the killed JVM
    server.start()
    _recover(faulty, _after_crash(faulty))


def test_ingest_recovers_when_the_client_is_killed(faulty: dict) -> None:
    server = faulty["server"]
    with server.conn() as conn:
        clear_graph(conn)
    args = ["ingest", "all", "--config", str(faulty["config"])]
    r = crash(server, args, "client", delay=0.0, retry_s=RETRY_S, kill_at=faulty["writes"][1], light=True)
    assert r.killed is not None and r.rc == -9, r.stderr[-2000:]
    assert server.pid is not None  # Neo4j kept running
    _recover(faulty, _after_crash(faulty))


def test_a_command_says_in_one_line_that_neo4j_is_gone(cli_server: dict) -> None:
    cli_server["server"].kill()
    out = CliRunner().invoke(app, ["query", "run", "graph_summary"])
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 1 and len(lines) == 1, out.output
    assert lines[0].startswith("error: Neo4j at") and "not reachable" in lines[0]
