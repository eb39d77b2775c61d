"""The Neo4j Browser served by the local Neo4j: log in, run `explanation_paths`, see the paths drawn."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from browser import browser_graph_screenshot, chromium_available

from moakg.kg.connection import Neo4jConnection
from moakg.kg.explanations import browser_query, delete_explanations, write_explanation
from moakg.kg.local_server import LocalNeo4j

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed")

RUN = "browser-test-run"


def test_browser_draws_stored_explanation_paths(
    neo4j_server: LocalNeo4j, demo_conn: Neo4jConnection, tmp_path: Path
) -> None:
    http = f"http://127.0.0.1:{neo4j_server.http_port}"
    with urllib.request.urlopen(f"{http}/browser/") as resp:
        assert resp.status == 200 and b"Neo4j Browser" in resp.read()
    # Two real paths of the demo graph, stored as an explanation the way `moakg explain` stores them
    # (the model side is tested in test_explain.py; this test is about the query and the Browser).
    [row] = demo_conn.query(
        "MATCH (c:Compound {name: 'Vemurafenib'})-[:HAS_SIGNATURE]->(s:Signature)-[:DOWNREGULATES]->(g:Gene) "
        "WITH c, s, g ORDER BY s.sig_id, g.symbol LIMIT 1 "
        "MATCH (c)-[:TARGETS]->(t:Gene) WITH c, s, g, t ORDER BY t.symbol LIMIT 1 "
        "MATCH (c)-[:HAS_MOA]->(m:MoA) RETURN c.id AS c, s.sig_id AS s, g.symbol AS g, t.symbol AS t, "
        "m.name AS m LIMIT 1"
    )
    paths = [
        {"rank": 1, "score": 0.9, "metapath": "Compound-HAS_SIGNATURE-Signature-DOWNREGULATES-Gene",
         "node_types": ["Compound", "Signature", "Gene"], "node_keys": [row["c"], row["s"], row["g"]],
         "rel_types": ["HAS_SIGNATURE", "DOWNREGULATES"], "forward": [True, True], "weights": [1.0, 0.8]},
        {"rank": 2, "score": 0.7, "metapath": "Compound-TARGETS-Gene",
         "node_types": ["Compound", "Gene"], "node_keys": [row["c"], row["t"]],
         "rel_types": ["TARGETS"], "forward": [True], "weights": [0.7]},
    ]
    write_explanation(demo_conn, RUN, row["c"], "moa", row["m"], "test", {"score": 0.9}, paths)
    try:
        stored = demo_conn.query(browser_query(RUN, row["c"], 5))
        assert len(stored) == 2
        png = tmp_path / "explanation_paths.png"
        shown = browser_graph_screenshot(
            http, neo4j_server.bolt_port, neo4j_server.password(), browser_query(RUN, row["c"], 5), png
        )
        # The Browser draws the union of both paths: compound, signature, two genes (one if the
        # downregulated gene is also the target), over the original relationships.
        nodes = int(re.search(r"(\d+) node", shown).group(1))
        assert nodes == len({row["c"], row["s"], row["g"], row["t"]})
        assert png.stat().st_size > 20_000  # a real rendered page, not a blank one
    finally:
        delete_explanations(demo_conn, RUN)


def test_browser_draws_a_path_that_leaves_the_compounds_signature(
    neo4j_server: LocalNeo4j, demo_conn: Neo4jConnection, tmp_path: Path
) -> None:
    # The mechanism path an MoA explanation now ends with: the compound's structural analogue, and the
    # analogue's MoA (the label the model's vote read), drawn from the stored steps over real relationships.
    [row] = demo_conn.query(
        "MATCH (c:Compound {name: 'Vemurafenib'})-[s:SIMILAR_STRUCTURE]-(r:Compound)-[:HAS_MOA]->(m:MoA) "
        "WITH c, r, m, s ORDER BY r.id, m.name LIMIT 1 "
        "RETURN c.id AS c, r.id AS r, m.name AS m, startNode(s) = c AS fwd")
    paths = [{"rank": 1, "score": 0.9, "metapath": "Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA",
              "node_types": ["Compound", "Compound", "MoA"], "node_keys": [row["c"], row["r"], row["m"]],
              "rel_types": ["SIMILAR_STRUCTURE", "HAS_MOA"], "forward": [row["fwd"], True],
              "weights": [0.9, 1.0], "label_steps": 1}]
    write_explanation(demo_conn, RUN, row["c"], "moa", row["m"], "test", {"score": 0.9}, paths)
    try:
        http = f"http://127.0.0.1:{neo4j_server.http_port}"
        png = tmp_path / "analogue_path.png"
        shown = browser_graph_screenshot(
            http, neo4j_server.bolt_port, neo4j_server.password(), browser_query(RUN, row["c"], 1), png
        )
        assert re.search(r"Displaying 3 nodes, 2 relationships", shown), shown
        assert png.stat().st_size > 20_000
    finally:
        delete_explanations(demo_conn, RUN)
