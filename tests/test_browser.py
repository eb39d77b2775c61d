"""The Neo4j Browser served by the local Neo4j: log in, run a path query, see the graph (screenshot)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from browser import browser_graph_screenshot, chromium_available

from moakg.kg.connection import Neo4jConnection
from moakg.kg.local_server import LocalNeo4j

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed")


def test_browser_is_served_and_draws_a_path_query(
    neo4j_server: LocalNeo4j, demo_conn: Neo4jConnection, tmp_path: Path
) -> None:
    http = f"http://127.0.0.1:{neo4j_server.http_port}"
    with urllib.request.urlopen(f"{http}/browser/") as resp:
        assert resp.status == 200 and b"Neo4j Browser" in resp.read()
    expected = demo_conn.query(
        "MATCH p = (c:Compound {name: 'Vemurafenib'})-[:TARGETS]->(g:Gene) "
        "RETURN count(DISTINCT g) AS genes, count(p) AS rels"
    )[0]
    png = tmp_path / "browser.png"
    shown = browser_graph_screenshot(
        http, neo4j_server.bolt_port, neo4j_server.password(),
        "MATCH p = (c:Compound {name: 'Vemurafenib'})-[:TARGETS]->(g:Gene) RETURN p", png,
    )
    nodes = int(re.search(r"(\d+) node", shown).group(1))
    assert nodes == expected["genes"] + 1  # the compound and its target genes
    assert png.stat().st_size > 20_000  # a real rendered page, not a blank one
