"""The schema file (kg/schema.toml): it loads, it validates with errors naming the entry, the demo graph
holds nothing it does not declare, and the docs table is generated from it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from moakg.gnn.models import MoAClassifier, build_encoder, message_edge_types, model_inputs
from moakg.ingest.base import InputFormatError, SourceAdapter, open_text
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export import ExportSpec, export_heterodata
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
from moakg.kg.writer import Batch, NodeBatch, RelBatch, run_ingest

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md"
#: the README's worked example: scaffold analogs: compounds sharing a Murcko scaffold
SCAFFOLD_ANALOG = """
[relationships.SCAFFOLD_ANALOG]
from = "Compound"
to = "Compound"
role = "message"
reverse = "rev_SCAFFOLD_ANALOG"
properties = ["tanimoto"]
weight = "tanimoto"
description = "the two compounds share a Murcko scaffold; tanimoto: their Morgan-fingerprint similarity"
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
    extended = load_schema(_write(tmp_path, SCAFFOLD_ANALOG))
    assert "SCAFFOLD_ANALOG" not in current_schema().relationships
    with use_schema(extended):
        assert edge_type("SCAFFOLD_ANALOG") == ("Compound", "SCAFFOLD_ANALOG", "Compound")
    assert "SCAFFOLD_ANALOG" not in current_schema().relationships


def test_design_doc_holds_the_generated_schema_tables() -> None:
    """docs/DESIGN.md's tables are `moakg db schema --markdown`: regenerate them when the schema changes."""
    assert current_schema().markdown() in DESIGN.read_text("utf-8")


def test_db_schema_command_prints_the_schema_in_force(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from moakg.cli import app

    res = CliRunner().invoke(app, ["db", "schema", "--markdown"])
    assert res.exit_code == 0 and res.output == current_schema().markdown()
    # MOAKG_SCHEMA points the command line at an extended schema file
    monkeypatch.setenv("MOAKG_SCHEMA", str(_write(tmp_path, SCAFFOLD_ANALOG)))
    res = CliRunner().invoke(app, ["db", "schema"])
    assert res.exit_code == 0 and "SCAFFOLD_ANALOG" in res.output and "rev_SCAFFOLD_ANALOG" in res.output
    broken = tmp_path / "broken.toml"
    broken.write_text(DEFAULT_SCHEMA_PATH.read_text("utf-8").replace('from = "Gene"', 'from = "Gen"', 1))
    monkeypatch.setenv("MOAKG_SCHEMA", str(broken))
    res = CliRunner().invoke(app, ["db", "schema"])
    assert res.exit_code == 1 and "'Gen' is not a declared node label" in res.output
    assert "Traceback" not in res.output
    # the same from a fresh process: a broken schema file must not break `import moakg`
    proc = subprocess.run([sys.executable, "-m", "moakg.cli", "db", "schema"], capture_output=True, text=True,
                          env={**os.environ, "MOAKG_SCHEMA": str(broken)}, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {broken}: [relationships.")
    assert "Traceback" not in proc.stderr


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


class ScaffoldAnalogAdapter(SourceAdapter):
    """The README's worked example of an ingester for a new relationship: a TSV of compound pairs and
    their Tanimoto similarity -> ``(:Compound)-[:SCAFFOLD_ANALOG {tanimoto}]->(:Compound)``."""

    source = "scaffold_analogs"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def files(self) -> list[Path]:
        return [self.path]

    def batches(self) -> Iterator[Batch]:
        rows = []
        with open_text(self.path) as f:
            for line_no, line in enumerate(f, start=1):
                a, b, tanimoto = line.rstrip("\n").split("\t")
                try:
                    rows.append({"start": a, "end": b, "tanimoto": float(tanimoto)})
                except ValueError:
                    raise InputFormatError(self.path, line_no, f"{tanimoto!r} is not a number") from None
        self.count("pairs", len(rows))
        yield RelBatch("SCAFFOLD_ANALOG", ("Compound", "id"), ("Compound", "id"), rows)


def test_a_new_relationship_is_one_schema_entry_plus_its_ingester(conn: Neo4jConnection,
                                                                   tmp_path: Path) -> None:
    """Declared in a schema file and written by its adapter, SCAFFOLD_ANALOG is exported (both ways,
    weighted) and the GNN passes messages on it, with no other edit."""
    compounds = [{"id": f"toy:{name}", "name": name, "smiles": smi}
                 for name, smi in (("aspirin", "CC(=O)Oc1ccccc1C(=O)O"), ("salicylate", "OC(=O)c1ccccc1O"),
                                   ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"))]
    run_ingest(conn, "toy_compounds", [NodeBatch("Compound", "id", compounds)], progress=False)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("toy:aspirin\ttoy:salicylate\t0.42\n", encoding="utf-8")
    with use_schema(load_schema(_write(tmp_path, SCAFFOLD_ANALOG))):
        report = ScaffoldAnalogAdapter(pairs).ingest(conn, progress=False)
        assert report.counts.rels_created == 1
        data, maps = export_heterodata(conn, ExportSpec(labels=("Compound",)), cache=False, progress=False)
        et, rev = edge_type("SCAFFOLD_ANALOG"), edge_type("SCAFFOLD_ANALOG", reverse=True)
        a, b, c = (maps.index["Compound"][f"toy:{n}"] for n in ("aspirin", "salicylate", "caffeine"))
        assert data[et].edge_index.tolist() == [[a], [b]] and data[rev].edge_index.tolist() == [[b], [a]]
        assert data[et].edge_attr.flatten().tolist() == pytest.approx([0.42])  # the declared weight
        assert et in message_edge_types(data) and rev in message_edge_types(data)
        torch.manual_seed(0)
        model = MoAClassifier(build_encoder(data, "sage", hidden=16, layers=1, dropout=0.0), 3).eval()
        x_dict, edge_index_dict = model_inputs(data)
        assert et in edge_index_dict
        with torch.no_grad():
            with_edge = model(x_dict, edge_index_dict)
            # the same edge types, without the one aspirin-salicylate relationship
            empty = torch.zeros(2, 0, dtype=torch.long)
            without = model(x_dict, {**edge_index_dict, et: empty, rev: empty})
    # the message reaches aspirin and salicylate, not caffeine, which has no such edge
    assert not torch.allclose(with_edge[a], without[a]) and not torch.allclose(with_edge[b], without[b])
    assert torch.allclose(with_edge[c], without[c])


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (RelBatch("SCAFFOLD_ANALOG", ("Compound", "id"), ("Compound", "id"), [{"start": "a", "end": "b"}]),
         r"'SCAFFOLD_ANALOG' is not declared in .*schema.toml; add a \[relationships.SCAFFOLD_ANALOG\]"),
        (RelBatch("TARGETS", ("Gene", "symbol"), ("Compound", "id"), [{"start": "EGFR", "end": "C1"}]),
         r"TARGETS starts at Gene here, but .*schema.toml declares start = Compound"),
        (RelBatch("TARGETS", ("Compound", "name"), ("Gene", "symbol"), [{"start": "x", "end": "EGFR"}]),
         r"Compound nodes are found by their key 'id', not 'name'"),
        (RelBatch("IS_A", ("GOTerm", "go_id"), ("GOTerm", "go_id"), [{"start": "a", "end": "b"}],
                  per_source=True), r"IS_A is merged on \[\] in .*, not \['source'\]"),
        (NodeBatch("Drug", "id", [{"id": "x"}]), r"node label 'Drug' is not declared in .*schema.toml"),
    ],
)
def test_the_writer_refuses_what_the_schema_does_not_declare(conn: Neo4jConnection, batch: Batch,
                                                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_ingest(conn, "undeclared", [batch], progress=False)
    # nothing but the failed run was written
    assert conn.query("MATCH (n) WHERE NOT n:SchemaVersion RETURN labels(n) AS l, n.status AS s") == [
        {"l": ["IngestRun"], "s": "failed"}]


def test_merge_keys_come_from_the_schema(conn: Neo4jConnection) -> None:
    """TARGETS is declared `merge_on = ["source"]`: an adapter that does not say so still keeps one edge
    per source."""
    nodes = [NodeBatch("Compound", "id", [{"id": "C1"}]), NodeBatch("Gene", "symbol", [{"symbol": "EGFR"}])]
    for source in ("src_a", "src_b"):
        run_ingest(conn, source, [*nodes, RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"),
                                                   [{"start": "C1", "end": "EGFR"}])], progress=False)
    rows = conn.query("MATCH (:Compound)-[t:TARGETS]->(:Gene) RETURN t.source AS s ORDER BY s")
    assert [r["s"] for r in rows] == ["src_a", "src_b"]
