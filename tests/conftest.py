"""Test fixtures: one real Neo4j 5.26 server per test session, on free ports, in a temporary home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.local_server import LocalNeo4j, free_port
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import init_schema

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    """A real local Neo4j for the whole test session (started and stopped here)."""
    home = tmp_path_factory.mktemp("neo4j-home")
    server = LocalNeo4j(home=home, bolt_port=free_port(), http_port=free_port(), heap="1g", pagecache="256m")
    saved = os.environ.pop("NEO4J_PASSWORD", None)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if saved is not None:
            os.environ["NEO4J_PASSWORD"] = saved


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_server: LocalNeo4j) -> Neo4jSettings:
    return Neo4jSettings(
        uri=f"bolt://127.0.0.1:{neo4j_server.bolt_port}",
        user="neo4j",
        password=neo4j_server.password(),
        local=True,
    )


@pytest.fixture
def cli_env(neo4j_settings: Neo4jSettings, monkeypatch: pytest.MonkeyPatch) -> Neo4jSettings:
    """Point the `moakg` command line (NEO4J_URI, NEO4J_PASSWORD) at the test server."""
    monkeypatch.setenv("NEO4J_URI", neo4j_settings.uri)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_settings.password)
    return neo4j_settings


@pytest.fixture(scope="session")
def _session_conn(neo4j_settings: Neo4jSettings) -> Iterator[Neo4jConnection]:
    with Neo4jConnection(neo4j_settings) as c:
        init_schema(c)
        yield c


@pytest.fixture
def conn(_session_conn: Neo4jConnection) -> Neo4jConnection:
    """A connection to an empty graph (schema in place): every test starts from nothing."""
    clear_graph(_session_conn)
    return _session_conn


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data subsets not found at {SHARED_DATA}")
    return SHARED_DATA


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "sources.toml"


def ensure_demo_graph(conn: Neo4jConnection, first_load: bool = False) -> Neo4jConnection:
    """Make the graph hold exactly what the main job builds from the bundled demo data: every source
    ingested and the similarity derived (after a wipe), unless exactly those completed runs are already
    there. Module-scoped fixtures call it too. With ``first_load`` also rebuilt when a run was written more
    than once: its stored counts are then a re-run's (matched, not created)."""
    from moakg.derive.run import SOURCE as DERIVE_SOURCE
    from moakg.derive.run import derive_similarity
    from moakg.ingest.commands import adapters_from_config
    from moakg.ingest.runner import run_adapters

    adapters = adapters_from_config(DEMO_CONFIG)
    runs = conn.query("MATCH (r:IngestRun) RETURN r.source AS s, r.status AS st, r.attempts AS n")
    want = {a.source for a in adapters} | {DERIVE_SOURCE}
    stale = ({r["s"] for r in runs} != want or any(r["st"] != "completed" for r in runs)
             or len(runs) != len(want) or (first_load and any(r["n"] != 1 for r in runs)))
    if stale:
        clear_graph(conn)
        run_adapters(conn, adapters, progress=False)
        derive_similarity(conn, progress=False)
    return conn


@pytest.fixture
def demo_conn(_session_conn: Neo4jConnection) -> Neo4jConnection:
    """A connection to a graph holding exactly the bundled demo data (ingested when not already there).

    Tests using it must not write to the graph beyond what they clean up themselves.
    """
    return ensure_demo_graph(_session_conn)


#: fixtures that hand a test the demo graph (conftest's, and the modules' own module-scoped ones)
DEMO_FIXTURES = {"demo_conn", "demo", "removed"}
#: demo-graph modules that must come last: they change the graph and clear it when they finish
DEMO_LAST = ("test_predict.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that read the demo graph as one block at the end, after every test that clears the
    graph: ``ensure_demo_graph`` then ingests the demo once (the main-job test's own ingest first) instead
    of once per module that follows a clearing test. The order is otherwise kept; ``DEMO_LAST`` modules,
    which clear the graph when done, close the block."""

    def rank(item: pytest.Item) -> int:
        if not DEMO_FIXTURES & set(getattr(item, "fixturenames", ())):
            return 0
        if item.nodeid.split("::")[0].endswith(DEMO_LAST):
            return 3
        return 1 if "test_main_job_pipeline" in item.nodeid else 2

    items.sort(key=rank)  # stable: the collection order within each group
