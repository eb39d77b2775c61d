"""The main job on the bundled demo data: `moakg ingest all --config demo/sources.toml`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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


def test_ingest_all_demo_then_rerun_changes_nothing(conn: Neo4jConnection, cli_env: Neo4jSettings) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", "all", "--config", str(DEMO)])
    assert first.exit_code == 0, first.output
    counts = _counts(conn)
    # Every source contributed: the plate's 328 compound x dose signatures and one consensus signature
    # per matrix row, each with top-50 up/down genes, and one signature per over-expressed gene.
    matrix = pd.read_csv(DEMO.parent / "data" / "consensi-drugbank.tsv.gz", sep="\t", usecols=[0])
    oe = pd.read_csv(DEMO.parent / "data" / "dysreg-overexpression.tsv.gz", sep="\t")
    kinds = {r["k"]: r["n"] for r in conn.query(
        "MATCH (s:Signature) RETURN coalesce(s.pert_type + '/' + s.kind, 'plate') AS k, count(*) AS n")}
    assert kinds == {"plate": 328, "trt_cp/consensus": len(matrix),
                     "trt_oe/consensus": oe.perturbagen.nunique()}
    assert counts["UPREGULATES"] == (328 + len(matrix)) * 50 + int((oe.direction == "up").sum())
    for label in ("Compound", "Gene", "GOTerm", "MoA", "CellLine"):
        assert counts[label] > 0
    for rel in ("HAS_MOA", "TARGETS", "INTERACTS_WITH", "ANNOTATED_WITH", "IS_A", "HAS_SIGNATURE",
                "PERTURBS"):
        assert counts[rel] > 0
    runs = conn.query("MATCH (r:IngestRun) RETURN r.source AS s, r.status AS st ORDER BY s")
    assert {r["s"] for r in runs} == {"lincs", "repurposing_hub", "drugbank", "l1000_consensus",
                                      "l1000_overexpression", "string", "ppi", "go"}
    assert all(r["st"] == "completed" for r in runs)
    # Plate and consensus compounds joined the Hub by structure: signatures hang off compounds with MoAs.
    joined = conn.query("MATCH (m:MoA)<-[:HAS_MOA]-(c:Compound)-[:HAS_SIGNATURE]->() "
                        "RETURN count(DISTINCT c) AS n")[0]["n"]
    labelled = conn.query("MATCH (c:Compound)-[:HAS_MOA]->() RETURN count(DISTINCT c) AS n")[0]["n"]
    assert joined >= 0.9 * labelled
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


def test_main_job_pipeline_trains_explains_and_points_at_the_cypher(
    demo_conn: Neo4jConnection, cli_env: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    before = {r["id"] for r in demo_conn.query("MATCH (r:ModelRun) RETURN r.id AS id")}
    args = ["pipeline", "--config", str(DEMO), "--epochs", "5", "--method", "saliency"]
    result = CliRunner().invoke(app, args)
    try:
        assert result.exit_code == 0, result.output
        new = [r for r in demo_conn.query("MATCH (r:ModelRun) RETURN r.id AS id") if r["id"] not in before]
        [run] = [r for r in new if "-phenotype-" in r["id"]]
        [expl] = demo_conn.query(
            "MATCH (e:Explanation {run: $run})-[:EXPLAINS]->(c:Compound) "
            "RETURN e.id AS id, c.id AS compound, COUNT { (e)-[:HAS_PATH]->() } AS paths", run=run["id"])
        assert expl["paths"] >= 1
        # The printed next step is a real query that returns the stored paths.
        line = next(ln for ln in result.output.splitlines() if "query run explanation_paths" in ln)
        assert f"-p run={run['id']}" in line and f"-p compound={expl['compound']}" in line
        shown = CliRunner().invoke(app, ["query", "run", "explanation_paths", "-p", f"run={run['id']}",
                                         "-p", f"compound={expl['compound']}", "-p", "top=5", "-f", "json"])
        assert shown.exit_code == 0 and shown.output.count('"rank"') == expl["paths"]
        # the explained prediction's top path leaves the compound's own signature (an analogue, a gene
        # it mimics or opposes, ...), and the printed Browser statement draws that path
        [top] = demo_conn.query("MATCH (:Explanation {id: $id})-[:HAS_PATH]->(p {rank: 1}) "
                                "RETURN p.metapath AS metapath", id=expl["id"])
        assert not top["metapath"].startswith("Compound-HAS_SIGNATURE"), top
        lines = result.output.splitlines()
        browser = lines[next(i for i, ln in enumerate(lines) if "paste this" in ln) + 1].strip()
        with demo_conn.session() as session:
            [drawn] = list(session.run(browser))
        rels = [r.type for r in drawn["p"].relationships]
        assert rels == top["metapath"].split("-")[1::2] and drawn["p"].start_node["id"] == expl["compound"]
        for step in ("1/4 ingest", "2/4 derive", "3/4 train", "4/4 explain", "gnn:sage", "frequency_prior",
                     "tanimoto_knn"):
            assert step in result.output
        # most held-out compounds of the MoA task have an L1000 signature (n_sig of n_test in the table)
        row = next(ln.split() for ln in result.output.splitlines() if ln.startswith("phenotype ")
                   and "gnn:sage" in ln)
        n_test, n_sig = int(row[2]), int(row[3])
        assert n_sig >= 0.8 * n_test and n_test >= 50
        # the signature landscape: one point per signature with a z-vector, written where it says
        picture = tmp_path / "home" / "landscape.png"
        [row] = demo_conn.query("MATCH (s:Signature) WHERE s.z_landmark IS NOT NULL RETURN count(s) AS n")
        n_sig = row["n"]
        assert f"signature landscape: {n_sig} signatures" in result.output and str(picture) in result.output
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        from moakg.kg.explanations import delete_explanations
        from moakg.kg.writeback import delete_model_run

        for r in demo_conn.query("MATCH (r:ModelRun) RETURN r.id AS id"):
            if r["id"] not in before:
                delete_explanations(demo_conn, r["id"])
                delete_model_run(demo_conn, r["id"])
