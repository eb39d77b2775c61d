"""The main job on the bundled demo data: `moakg ingest all --config demo/sources.toml`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.kg.connection import Neo4jConnection, Neo4jSettings

DEMO = Path(__file__).resolve().parents[1] / "demo" / "sources.toml"


def _counts(conn: Neo4jConnection) -> dict[str, int]:
    rows = conn.query("MATCH (n) WHERE NOT n:IngestRun AND NOT n:SchemaVersion "
                      "RETURN labels(n)[0] AS l, count(*) AS n")
    rels = conn.query("MATCH ()-[r]->() RETURN type(r) AS l, count(*) AS n")
    return {r["l"]: r["n"] for r in rows + rels}


def test_ingest_all_demo_then_rerun_changes_nothing(conn: Neo4jConnection, neo4j_settings: Neo4jSettings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_URI", neo4j_settings.uri)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_settings.password)
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", "all", "--config", str(DEMO)])
    assert first.exit_code == 0, first.output
    counts = _counts(conn)
    # Every source contributed; the plate gives 328 compound x dose signatures with top-50 up/down genes.
    assert counts["Signature"] == 328 and counts["UPREGULATES"] == counts["DOWNREGULATES"] == 328 * 50
    for label in ("Compound", "Gene", "GOTerm", "MoA", "CellLine"):
        assert counts[label] > 0
    for rel in ("HAS_MOA", "TARGETS", "INTERACTS_WITH", "ANNOTATED_WITH", "IS_A", "HAS_SIGNATURE"):
        assert counts[rel] > 0
    runs = conn.query("MATCH (r:IngestRun) RETURN r.source AS s, r.status AS st ORDER BY s")
    assert {r["s"] for r in runs} == {"lincs", "repurposing_hub", "drugbank", "string", "ppi", "go"}
    assert all(r["st"] == "completed" for r in runs)
    # Plate compounds joined the Hub by structure: signatures hang off compounds with MoA labels.
    joined = conn.query("MATCH (m:MoA)<-[:HAS_MOA]-(c:Compound)-[:HAS_SIGNATURE]->() "
                        "RETURN count(DISTINCT c) AS n")[0]["n"]
    assert joined >= 30
    for line in ("ingest runs", "graph"):
        assert line in first.output

    second = runner.invoke(app, ["ingest", "all", "--config", str(DEMO)])
    assert second.exit_code == 0, second.output
    assert _counts(conn) == counts
    assert conn.query("MATCH (r:IngestRun) RETURN count(r) AS n")[0]["n"] == len(runs)


def test_ingest_all_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text('[l1000]\ngct = "x.gct"\n[nonsense]\npath = "y"\n')
    result = CliRunner().invoke(app, ["ingest", "all", "--config", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}, section [nonsense]: unknown source" in result.output
    assert "Traceback" not in result.output
