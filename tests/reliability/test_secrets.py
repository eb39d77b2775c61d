"""The Neo4j password stays in its 0600 file, and the local server is reachable from this machine only.

A small end-to-end job (an ingest, a 2-epoch ``moakg train``, queries, ``moakg neo4j status``, a wrong
password, an unreachable server and an unexpected error) runs with ``MOAKG_HOME`` in a fresh folder;
then every file under it and under the server's home (logs, runs, checkpoints, the export cache, the
error log, Neo4j's own logs and store), every line the job printed, every log record, the run nodes'
properties and the server's command line are searched for the password (and for the wrong one tried).
The server's listening sockets are read from /proc: Bolt and HTTP on 127.0.0.1 only. That the password
file is 0600 and that Bolt refuses a wrong password is tests/test_neo4j_local.py's.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_concurrency import family_drugs, hub_files  # the same small Hub files
from typer.testing import CliRunner

from moakg.cli import app
from moakg.kg.connection import Neo4jConnection, Neo4jSettings, Neo4jUnavailable
from moakg.kg.local_server import LocalNeo4j, free_port


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                yield Path(dirpath) / name


def _holds(path: Path, secrets: list[bytes]) -> bool:
    """Whether the file holds one of ``secrets`` (read in blocks, overlapping by a secret's length)."""
    tail = b""
    keep = max(len(s) for s in secrets)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            data = tail + block
            if any(s in data for s in secrets):
                return True
            tail = data[-keep:]
    return False


def test_the_password_appears_nowhere_but_its_file(
    neo4j_server: LocalNeo4j, conn: Neo4jConnection, cli_env: Neo4jSettings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    password = neo4j_server.password()
    wrong = "Wr0ng-" + password[::-1] + "-canary"
    assert len(password) >= 16 and password == cli_env.password  # distinctive: 18 random bytes
    home = tmp_path / "home"
    monkeypatch.setenv("MOAKG_HOME", str(home))
    printed: list[str] = []

    def moakg(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args))
        printed.append(result.output)
        assert result.exit_code == code, (args, result.output)
        return result.output

    # the job: ingest, train, query, status
    drugs, samples = hub_files(tmp_path / "hub", family_drugs())
    moakg("ingest", "repurposing-hub", str(drugs), "--samples", str(samples))
    out = moakg("train", "--task", "moa", "--model", "sage", "--split", "random", "--setting", "phenotype",
                "--seeds", "0", "--epochs", "2", "--hidden", "8", "--top-k", "2", "--min-per-class", "3",
                "--no-baselines")
    assert "Next: moakg query run top_predictions" in out
    moakg("query", "run", "model_runs", "-f", "json")
    moakg("query", "run", "ingest_runs")
    moakg("db", "summary")
    status = moakg("neo4j", "status", "--home", str(neo4j_server.home))
    assert str(neo4j_server.password_file) in status  # where it is, never what it is

    # and what goes wrong: an unexpected error (logged with its traceback), the same with --debug, a wrong
    # password, an unreachable server
    bad_limit = ["query", "run", "compound_profile", "-p", "compound=fam0-drug0", "-p", "top=-1"]
    moakg(*bad_limit, code=1)
    moakg("--debug", *bad_limit, code=1)
    [log] = (home / "logs").glob("error-*.log")
    assert "Traceback" in log.read_text()
    errors = []
    with monkeypatch.context() as m:
        m.setenv("NEO4J_PASSWORD", wrong)
        errors.append(moakg("db", "summary", code=1))
        with pytest.raises(Neo4jUnavailable) as refused:
            Neo4jConnection(Neo4jSettings(uri=cli_env.uri, password=wrong), connect_retries=0)
        m.setenv("NEO4J_URI", f"bolt://127.0.0.1:{free_port()}")
        m.setenv("NEO4J_PASSWORD", password)
        errors.append(moakg("db", "summary", code=1))
        with pytest.raises(Neo4jUnavailable) as unreachable:
            Neo4jConnection(Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}", password=password),
                            connect_retries=0)
    assert "refused the credentials" in errors[0] and "not reachable" in errors[1]
    for exc in (refused.value, unreachable.value):
        printed += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
    printed += [repr(cli_env), repr(conn.settings), str(conn.settings)]

    # what the run nodes hold
    runs = conn.query("MATCH (r) WHERE r:IngestRun OR r:ModelRun RETURN labels(r)[0] AS l, "
                      "properties(r) AS p")
    assert {r["l"] for r in runs} == {"IngestRun", "ModelRun"}
    printed.append(json.dumps(runs, default=str))

    # the search
    captured = capfd.readouterr()
    printed += [captured.out, captured.err, caplog.text]
    secrets = [password.encode(), wrong.encode()]
    text = "\n".join(printed).encode()
    assert not any(s in text for s in secrets), "the password was printed, logged or stored on a run"
    files = [p for p in _files(home, neo4j_server.home) if p != neo4j_server.password_file and p.is_file()]
    names = {p.relative_to(home).as_posix() for p in files if p.is_relative_to(home)}
    assert any(n.startswith("runs/") and n.endswith("/seed0.pt") for n in names)  # the job wrote them all
    assert any(n.startswith("runs/") and n.endswith("/metrics.json") for n in names)
    assert any(n.startswith("cache/export/") for n in names)
    assert any(n.startswith("logs/error-") for n in names)
    assert {"launcher.log", "neo4j.log", "debug.log"} <= {p.name for p in files}
    leaking = [str(p) for p in files if _holds(p, secrets)]
    assert leaking == []
    assert _holds(neo4j_server.password_file, secrets)  # the search finds it where it is
    cmdline = Path(f"/proc/{neo4j_server.state().pid}/cmdline")  # readable by every user of the machine
    if cmdline.exists():
        assert not any(s in cmdline.read_bytes() for s in secrets)


# ------------------------------------------------------------------------------------------ exposure

_LISTEN = "0A"
_LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _sockets(pid: int) -> list[tuple[str, str, int, str]]:
    """(table, local address in hex, port, state) of every socket the process holds (its /proc/<pid>/fd
    inodes matched in its network namespace's /proc/<pid>/net tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                address, port = fields[1].split(":")
                out.append((table, address, int(port, 16), fields[3]))
    return out


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux /proc")
def test_server_listens_on_loopback_only_and_http_wants_auth(neo4j_server: LocalNeo4j) -> None:
    st = neo4j_server.state()
    assert st is not None
    sockets = _sockets(st.pid)
    listening = sorted((port, address) for table, address, port, state in sockets
                       if table.startswith("tcp") and state == _LISTEN)
    assert {port for port, _ in listening} == {st.bolt_port, st.http_port}, listening
    assert all(address in _LOOPBACK for _, address in listening), listening  # never 0.0.0.0 or ::
    bound_udp = [s for s in sockets if s[0].startswith("udp") and s[1] not in _LOOPBACK and s[2] != 0]
    assert bound_udp == []
    # the HTTP API, like Bolt (tests/test_neo4j_local.py), refuses a request without credentials
    body = {"statements": [{"statement": "MATCH (n) DETACH DELETE n"}]}
    request = urllib.request.Request(f"{st.http_url}/db/neo4j/tx/commit", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
