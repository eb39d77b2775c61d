"""The local Neo4j server, the connection layer and the schema, against the real Neo4j 5.26."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.kg.connection import Neo4jConnection, Neo4jSettings, Neo4jUnavailable
from moakg.kg.local_server import LocalNeo4j, free_port
from moakg.kg.schema import EXTRA_UNIQUE, INDEXES, NODE_KEYS, SCHEMA_VERSION, init_schema, schema_summary


def test_server_is_real_neo4j_526_with_auth(neo4j_server: LocalNeo4j, conn: Neo4jConnection) -> None:
    comp = conn.query("CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition")
    assert comp[0]["name"] == "Neo4j Kernel"
    assert comp[0]["versions"][0].startswith("5.26.")
    assert comp[0]["edition"] == "community"
    assert conn.query("SHOW DATABASES YIELD name WHERE name = 'neo4j' RETURN name") == [{"name": "neo4j"}]
    mode = stat.S_IMODE(os.stat(neo4j_server.password_file).st_mode)
    assert mode == 0o600
    with pytest.raises(Neo4jUnavailable, match="refused the credentials"):
        Neo4jConnection(Neo4jSettings(uri=conn.settings.uri, password="wrong-password"), connect_retries=0)


def test_constraints_and_indexes_exist(conn: Neo4jConnection) -> None:
    rows = conn.query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type RETURN *")
    have = {(r["labelsOrTypes"][0], r["properties"][0]) for r in rows if r["type"] == "UNIQUENESS"}
    assert have >= set(NODE_KEYS.items()) | set(EXTRA_UNIQUE)
    idx = conn.query("SHOW INDEXES YIELD labelsOrTypes, properties, state RETURN *")
    online = {
        (r["labelsOrTypes"][0], r["properties"][0])
        for r in idx
        if r["labelsOrTypes"] and r["state"] == "ONLINE"
    }
    assert online >= set(INDEXES)
    # Idempotent: running init again changes nothing.
    before = schema_summary(conn)
    assert init_schema(conn) == before
    assert before["schema_version"] == SCHEMA_VERSION
    with pytest.raises(Exception, match="(?i)already exists"):
        conn.query("CREATE (:Gene {symbol: 'DUP'}) CREATE (:Gene {symbol: 'DUP'})")


def test_unreachable_uri_gives_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    secret = "s3cret-password-never-shown"
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{port}", password=secret, local=True)
    with caplog.at_level(logging.DEBUG), pytest.raises(Neo4jUnavailable) as err:
        Neo4jConnection(settings, connect_retries=1)
    assert str(err.value) == (
        f"Neo4j at bolt://127.0.0.1:{port} is not reachable; run `moakg neo4j start` or set NEO4J_URI"
    )
    assert secret not in caplog.text and secret not in repr(settings)


def test_cli_reports_unreachable_server_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{port}")
    monkeypatch.setenv("NEO4J_PASSWORD", "hunter2-not-in-output")
    result = CliRunner().invoke(app, ["db", "init"])
    assert result.exit_code == 1
    assert f"Neo4j at bolt://127.0.0.1:{port} is not reachable" in result.output
    assert "Traceback" not in result.output and "hunter2" not in result.output


def test_cli_against_server_from_env(
    cli_env: Neo4jSettings, conn: Neo4jConnection
) -> None:
    runner = CliRunner()
    init = runner.invoke(app, ["db", "init"])
    assert init.exit_code == 0, init.output
    assert f"{len(NODE_KEYS) + len(EXTRA_UNIQUE)} constraints" in init.output
    conn.query("UNWIND range(1, 3) AS i CREATE (:Gene {symbol: 'G' + i})")
    summary = runner.invoke(app, ["db", "summary"])
    assert summary.exit_code == 0
    assert any(line.split()[:3] == ["node", "Gene", "3"] for line in summary.output.splitlines())


def test_second_server_start_stop_status(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second, independent server: start returns with Bolt up, stop is clean and safe twice."""
    monkeypatch.setenv("NEO4J_PASSWORD", "pw-from-env-123")
    server = LocalNeo4j(
        home=tmp_path / "n4j", bolt_port=free_port(), http_port=free_port(), heap="512m", pagecache="64m"
    )
    runner = CliRunner()
    home = ["--home", str(server.home)]
    assert runner.invoke(app, ["neo4j", "status", *home]).exit_code == 3
    st = server.start()
    try:
        status = runner.invoke(app, ["neo4j", "status", *home])
        assert status.exit_code == 0 and f"bolt://127.0.0.1:{server.bolt_port}" in status.output
        with Neo4jConnection(Neo4jSettings(uri=st.bolt_uri, password="pw-from-env-123")) as c:
            c.query("CREATE (:Gene {symbol: 'PERSIST'})")
        assert server.start().pid == st.pid  # already running: no second process
    finally:
        assert server.stop() is True
    assert server.stop() is False
    assert (server.home / "logs" / "neo4j.log").exists()
    # Data persists in the home directory across restarts.
    server.start()
    try:
        with Neo4jConnection(Neo4jSettings(uri=st.bolt_uri, password="pw-from-env-123")) as c:
            assert c.query("MATCH (g:Gene {symbol: 'PERSIST'}) RETURN count(g) AS n") == [{"n": 1}]
    finally:
        server.stop()


def test_short_password_is_refused_before_start(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neo4j itself would exit during start-up and say why only in neo4j.log: moakg says it in one line."""
    monkeypatch.setenv("NEO4J_PASSWORD", "killpw")
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path))
    res = CliRunner().invoke(app, ["neo4j", "start", "--bolt-port", str(free_port()),
                                   "--http-port", str(free_port())])
    assert res.exit_code == 1
    assert "NEO4J_PASSWORD is 6 characters; Neo4j needs at least 8" in res.output
    assert not (tmp_path / "neo4j" / "server.json").exists()  # nothing was started
