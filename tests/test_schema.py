"""The schema file (kg/schema.toml): it loads, it validates with errors naming the entry, the demo graph
holds nothing it does not declare, and the docs table is generated from it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from moakg.kg.connection import Neo4jConnection
from moakg.kg.export_queries import edges_from_query, edges_to_query, node_keys_query
from moakg.kg.schema import (
    DEFAULT_SCHEMA_PATH,
    SchemaError,
    current_schema,
    edge_type,
    load_schema,
    parse_schema,
    schema_statements,
    use_schema,
)

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md"
#: the README's worked example: a structural-similarity relationship between compounds
SIMILAR_STRUCTURE = """
[relationships.SIMILAR_STRUCTURE]
from = "Compound"
to = "Compound"
role = "message"
reverse = "rev_SIMILAR_STRUCTURE"
properties = ["tanimoto"]
weight = "tanimoto"
description = "Morgan-fingerprint Tanimoto similarity above a threshold"
"""


def _doc() -> dict:
    return tomllib.loads(DEFAULT_SCHEMA_PATH.read_text("utf-8"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.toml"
    path.write_text(DEFAULT_SCHEMA_PATH.read_text("utf-8") + "\n" + text, encoding="utf-8")
    return path


def test_packaged_schema_loads_with_the_graph_it_describes() -> None:
    s = load_schema()
    assert s.export_labels == ("Compound", "Signature", "CellLine", "Gene", "GOTerm", "MoA")
    assert s.edge_type("TARGETS") == ("Compound", "TARGETS", "Gene")
    assert s.edge_type("TARGETS", reverse=True) == ("Gene", "rev_TARGETS", "Compound")
    # HAS_MOA is supervision: never a message edge, in either direction; TARGETS is one
    assert s.is_label_edge(("Compound", "HAS_MOA", "MoA"))
    assert s.is_label_edge(("MoA", "rev_HAS_MOA", "Compound"))
    assert not s.is_message_edge(("MoA", "rev_HAS_MOA", "Compound"))
    assert s.is_message_edge(("Gene", "rev_TARGETS", "Compound"))
    # result edges are never exported
    assert "PREDICTED_MOA" not in s.exported_rels and "STEP" not in s.exported_rels
    assert s.edge_name("rev_INTERACTS_WITH")[0].name == "INTERACTS_WITH"
    with pytest.raises(KeyError, match="PREDICTED_MOA"):
        s.edge_type("PREDICTED_MOA")


def test_constraints_and_indexes_come_from_the_schema() -> None:
    stmts = schema_statements(load_schema())
    assert any("FOR (n:Compound) REQUIRE n.inchikey IS UNIQUE" in x for x in stmts)
    assert any("FOR (n:Gene) ON (n.entrez_id)" in x for x in stmts)
    n_nodes = len(_doc()["nodes"])
    n_unique = sum(len(n.get("unique", [])) for n in _doc()["nodes"].values())
    n_indexed = sum(len(n.get("indexed", [])) for n in _doc()["nodes"].values())
    assert len(stmts) == n_nodes + n_unique + n_indexed


def test_export_cypher_is_generated_per_type() -> None:
    q = edges_from_query("INTERACTS_WITH")
    assert "MATCH (:Gene {symbol: k})-[r:INTERACTS_WITH]->(b:Gene)" in q
    assert "r.combined_score >= $min_weight" in q  # the declared min_weight filter
    assert "$min_weight" not in edges_from_query("TARGETS")  # no weight declared: no filter
    assert "(:Signature {sig_id: k})" in edges_to_query("HAS_SIGNATURE")
    assert node_keys_query("GOTerm").startswith("MATCH (n:GOTerm) WHERE n.go_id > $last")
    with pytest.raises(KeyError, match="never exported"):
        edges_from_query("EXPLAINS")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[relationships.SIMILAR]\nfrom = "Compund"\nto = "Compound"\nrole = "message"\nreverse = "rev_S"\n',
         r"\[relationships.SIMILAR\]: from = 'Compund' is not a declared node label"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "message"\n',
         r"\[relationships.SIMILAR\]: a message relationship needs a reverse name"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "edge"\nreverse = "rev_S"\n',
         r"\[relationships.SIMILAR\]: role 'edge' is not one of"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "message"\n'
         'reverse = "rev_TARGETS"\n', r"'rev_TARGETS' is already used by \[relationships.TARGETS\]"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "IngestRun"\nrole = "message"\n'
         'reverse = "rev_S"\n', r"'IngestRun' is not an exported node label"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "message"\nreverse = "rev_S"\n'
         'min_weight = "min_tanimoto"\n', r"min_weight needs a weight property"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "message"\nreverse = "rev S"\n',
         r"reverse 'rev S' is not a plain identifier"),
        ('[relationships.SIMILAR]\nfrom = "Compound"\nto = "Compound"\nrole = "message"\nreverse = "rev_S"\n'
         'colour = "red"\n', r"\[relationships.SIMILAR\]: unknown field\(s\) \['colour'\]"),
        ('[nodes.Drug]\nexport = true\n', r"\[nodes.Drug\]: needs a key property"),
    ],
)
def test_invalid_entries_are_refused_naming_file_and_entry(tmp_path: Path, extra: str, message: str) -> None:
    path = _write(tmp_path, extra)
    with pytest.raises(SchemaError, match=message) as info:
        load_schema(path)
    assert str(path) in str(info.value)


def test_missing_or_broken_schema_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no such schema file"):
        load_schema(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[nodes.Compound\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid TOML"):
        load_schema(bad)
    with pytest.raises(SchemaError, match="needs an integer version"):
        parse_schema({"nodes": {}}, bad)


def test_use_schema_swaps_the_current_schema(tmp_path: Path) -> None:
    extended = load_schema(_write(tmp_path, SIMILAR_STRUCTURE))
    assert "SIMILAR_STRUCTURE" not in current_schema().relationships
    with use_schema(extended):
        assert edge_type("SIMILAR_STRUCTURE") == ("Compound", "SIMILAR_STRUCTURE", "Compound")
    assert "SIMILAR_STRUCTURE" not in current_schema().relationships


def test_design_doc_holds_the_generated_schema_tables() -> None:
    """docs/DESIGN.md's tables are `moakg db schema --markdown`: regenerate them when the schema changes."""
    assert current_schema().markdown() in DESIGN.read_text("utf-8")


def test_every_label_and_relationship_of_the_demo_graph_is_declared(demo_conn: Neo4jConnection) -> None:
    schema = current_schema()
    labels = {r["label"] for r in demo_conn.query("CALL db.labels() YIELD label RETURN label")}
    assert labels and labels <= set(schema.nodes), labels - set(schema.nodes)
    rows = demo_conn.query(
        "MATCH (a)-[r]->(b) RETURN DISTINCT type(r) AS rel, labels(a) AS start, labels(b) AS end")
    assert {r["rel"] for r in rows} >= {"HAS_SIGNATURE", "TARGETS", "HAS_MOA", "INTERACTS_WITH", "IS_A"}
    for r in rows:
        decl = schema.rel(r["rel"])  # KeyError names an undeclared type
        assert set(r["start"]) & set(decl.start), (r, decl.start)
        assert decl.end == ("*",) or set(r["end"]) & set(decl.end), (r, decl.end)
