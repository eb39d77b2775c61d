"""The explanation queries (``explanations_recovering_targets``, ``metapaths_for_moa``) and the Browser
favourites of all three, on an explanation stored the way ``moakg explain`` stores one, over real paths of
the demo graph: one through a known target, one to a structural analogue that carries the MoA."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ensure_demo_graph

from moakg.kg.browser_favorites import EXPLANATION_QUERIES, favorite_script, inline_query, write_favorites
from moakg.kg.connection import Neo4jConnection
from moakg.kg.explanations import delete_explanations, write_explanation
from moakg.kg.queries import load_query, run_query

RUN = "explanation-queries-test-run"


@pytest.fixture(scope="module")
def demo(_session_conn: Neo4jConnection) -> Neo4jConnection:
    return ensure_demo_graph(_session_conn)


@pytest.fixture(scope="module")
def stored(demo: Neo4jConnection) -> Iterator[dict]:
    demo_conn = demo
    [row] = demo_conn.query(
        "MATCH (c:Compound)-[s:SIMILAR_STRUCTURE]-(r:Compound)-[:HAS_MOA]->(m:MoA) "
        "WHERE (c)-[:HAS_MOA]->(m) AND EXISTS { (c)-[:TARGETS]->(:Gene) } "
        "WITH c, r, m, s ORDER BY c.id, r.id, m.name LIMIT 1 "
        "MATCH (c)-[:TARGETS]->(t:Gene) WITH c, r, m, s, t ORDER BY t.symbol LIMIT 1 "
        "RETURN c.id AS c, r.id AS r, m.name AS m, t.symbol AS t, startNode(s) = c AS fwd")
    paths = [
        {"rank": 1, "score": 0.9, "metapath": "Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA",
         "node_types": ["Compound", "Compound", "MoA"], "node_keys": [row["c"], row["r"], row["m"]],
         "rel_types": ["SIMILAR_STRUCTURE", "HAS_MOA"], "forward": [row["fwd"], True], "weights": [1.0, 1.0]},
        {"rank": 2, "score": 0.5, "metapath": "Compound-TARGETS-Gene",
         "node_types": ["Compound", "Gene"], "node_keys": [row["c"], row["t"]],
         "rel_types": ["TARGETS"], "forward": [True], "weights": [0.5]},
    ]
    write_explanation(demo_conn, RUN, row["c"], "moa", row["m"], "saliency", {"score": 0.8}, paths)
    yield row
    delete_explanations(demo_conn, RUN)


def test_recovering_targets_finds_the_path_through_the_known_target(demo: Neo4jConnection,
                                                                    stored: dict) -> None:
    rows = run_query(demo, "explanations_recovering_targets", run=RUN)
    assert len(rows) == 1
    r = rows[0]
    assert (r["compound"], r["first_rank"], r["metapath"]) == (stored["c"], 2, "Compound-TARGETS-Gene")
    assert r["targets_on_path"] == [stored["t"]] and r["paths_through_targets"] == 1


def test_metapaths_for_moa_counts_the_stored_metapaths(demo: Neo4jConnection, stored: dict) -> None:
    rows = run_query(demo, "metapaths_for_moa", moa=stored["m"], run=RUN)
    assert {r["metapath"]: r["explanations"] for r in rows} == {
        "Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA": 1, "Compound-TARGETS-Gene": 1}
    assert run_query(demo, "metapaths_for_moa", moa="no such moa", run=RUN) == []


def test_the_analogue_path_is_a_real_graph_path(demo: Neo4jConnection, stored: dict) -> None:
    # the stored path leaves the compound's own signature: to an analogue, then that analogue's HAS_MOA
    rows = run_query(demo, "explanation_paths", run=RUN, compound=stored["c"], top=1)
    assert len(rows) == 1 and rows[0]["metapath"] == "Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA"
    text = inline_query("explanation_paths", {"run": RUN, "compound": stored["c"], "top": 1})
    with demo.session() as s:
        rec = s.run(text).single()
    path = rec["path"]
    assert [r.type for r in path.relationships] == ["SIMILAR_STRUCTURE", "HAS_MOA"]
    assert path.nodes[1]["id"] == stored["r"] and path.nodes[2]["name"] == stored["m"]


def _script_params(script: str) -> dict:
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(r"^:param (\w+) => (.+);$", script, re.M)}


def test_favourites_run_as_the_named_queries(demo: Neo4jConnection, stored: dict, tmp_path: Path
                                             ) -> None:
    values = {"run": RUN, "moa": stored["m"]}
    out = write_favorites(tmp_path / "fav.zip", values=values)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(f"{n}.cypher" for n in EXPLANATION_QUERIES)
        scripts = {n: zf.read(f"{n}.cypher").decode() for n in EXPLANATION_QUERIES}
    for name, script in scripts.items():
        q = load_query(name)
        assert script == favorite_script(name, values) and script.startswith(f"// moakg {name}:")
        params = _script_params(script)
        assert set(params) == {p.name for p in q.params}  # every parameter, editable in place
        body = script.split("\n", 1 + len(params))[-1].rstrip().rstrip(";")
        expected = run_query(demo, name, **params)
        assert demo.query(body, **params) == expected  # the favourite's body is the named query
        assert demo.query(inline_query(name, params)) == expected  # and with the values written in
        assert expected, name  # each returns the stored explanation
