"""The named Cypher queries, run on the demo graph, checked against facts computed from the input files."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.queries import QUERY_DIR, list_queries, load_query, parse_query_file, run_query

DATA = Path(__file__).resolve().parents[1] / "demo" / "data"


def run(conn: Neo4jConnection, name: str, **params: object) -> list[dict]:
    return conn.query(load_query(name).text, **params)


def hub_drugs() -> pd.DataFrame:
    with open(DATA / "repurposing_drugs.txt", encoding="utf-8") as f:
        text = "".join(ln for ln in f if not ln.startswith("!"))
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def test_every_query_file_has_a_header_and_runs_in_the_browser_form() -> None:
    queries = list_queries()
    names = {q.name for q in queries}
    assert {
        "compound_profile",
        "compounds_by_moa",
        "shared_targets",
        "similar_by_signature",
        "go_terms_via_targets",
        "provenance",
        "graph_summary",
        "ingest_runs",
    } <= names
    for q in queries:
        assert q.description, q.path
        # Browser form: parameters are only ever used as $name, each declared in the header.
        used = {tok[1:].split()[0].rstrip(",)]}.") for tok in q.text.split() if tok.startswith("$")}
        assert used <= {p.name for p in q.params} | {"rows", "last", "n", "keys"}, (q.name, used)
    assert len(list(QUERY_DIR.glob("*.cypher"))) == len(queries)


def test_compound_profile_matches_the_input_files(demo_conn: Neo4jConnection) -> None:
    [row] = run(demo_conn, "compound_profile", compound="vemurafenib", top=5)
    drugs = hub_drugs()
    hub = drugs[drugs.pert_iname == "vemurafenib"].iloc[0]
    prot = pd.read_csv(DATA / "drugbank_proteins.tsv", sep="\t", dtype=str)
    genes = pd.read_csv(DATA / "geneinfo.tsv.gz", sep="\t", dtype=str)
    entrez = dict(zip(genes.pr_gene_id, genes.pr_gene_symbol, strict=False))
    db_targets = {
        entrez[e] for e in prot[(prot.drugbank_id == "DB08881") & (prot.category == "target")].entrez_gene_id
    }
    assert set(row["targets"]) == set(hub.target.split("|")) | db_targets
    assert row["moas"] == [m.lower() for m in hub.moa.split("|")]
    assert set(row["sources"]) == {"lincs", "repurposing_hub", "drugbank"}
    # One signature per dose of BRD-K56343971 on the plate (read from the GCT's column metadata).
    with gzip.open(DATA / "LJP005_A375_24H.gct.gz", "rt") as f:
        f.readline()
        _, _, n_rmeta, n_cmeta = map(int, f.readline().split())
        f.readline()
        meta = {
            p[0]: p[n_rmeta + 1 :] for p in (f.readline().rstrip("\n").split("\t") for _ in range(n_cmeta))
        }
    doses = {d for pid, d in zip(meta["pert_id"], meta["pert_dose"], strict=True) if pid == "BRD-K56343971"}
    assert row["n_signatures"] == len(doses) == 6
    assert len(row["top_up"]) == len(row["top_down"]) == 5 and not set(row["top_up"]) & set(row["top_down"])
    # The same compound is found by its LINCS id and its DrugBank id.
    assert run(demo_conn, "compound_profile", compound="BRD-K56343971", top=5)[0]["id"] == row["id"]
    assert run(demo_conn, "compound_profile", compound="DB08881", top=5)[0]["id"] == row["id"]


def test_compounds_by_moa_covers_every_hub_drug_with_that_moa(demo_conn: Neo4jConnection) -> None:
    rows = run(demo_conn, "compounds_by_moa", moa="EGFR Inhibitor")
    drugs = hub_drugs()
    expected = {
        n for n, m in zip(drugs.pert_iname, drugs.moa, strict=True) if "EGFR inhibitor" in m.split("|")
    }
    ids = [r["id"] for r in rows]
    syn = demo_conn.query(
        "MATCH (c:Compound) WHERE c.id IN $ids UNWIND c.synonyms AS s RETURN collect(s) AS s", ids=ids
    )[0]["s"]
    assert expected <= set(syn)
    assert len(ids) == len(set(ids)) and all("repurposing_hub" in r["sources"] for r in rows)
    with_sigs = {r["name"].lower() for r in rows if r["n_signatures"] > 0}
    assert {"erlotinib", "neratinib"} <= with_sigs


def test_shared_targets_and_go_terms_agree_with_the_files(demo_conn: Neo4jConnection) -> None:
    drugs = hub_drugs().set_index("pert_iname")
    rows = run(demo_conn, "shared_targets", compound="vemurafenib", top=50)
    mine = {"BRAF", "RAF1"}  # from test_compound_profile: Hub BRAF|RAF1, DrugBank BRAF
    for r in rows:
        name = r["other"]
        sources = demo_conn.query("MATCH (c:Compound {id: $id}) RETURN c.sources AS s", id=r["other_id"])
        if name in drugs.index and sources[0]["s"] == ["repurposing_hub"]:
            assert set(r["shared"]) == mine & set(drugs.loc[name, "target"].split("|"))
    assert rows and rows[0]["n_shared"] == 2

    gaf = pd.read_csv(
        DATA / "goa_human_2019-01-29_demo.gaf.gz", sep="\t", comment="!", header=None, dtype=str
    )
    gaf = gaf[(gaf[2].isin(mine)) & (gaf[8] == "P") & ~gaf[3].fillna("").str.contains("NOT")]
    per_term = gaf.groupby(4)[2].nunique()
    got = run(
        demo_conn, "go_terms_via_targets", compound="vemurafenib", namespace="biological_process", top=10000
    )
    assert {r["go_id"]: r["n_targets"] for r in got} == per_term.to_dict()


def test_similar_by_signature_equals_a_numpy_computation(demo_conn: Neo4jConnection) -> None:
    rows = run(demo_conn, "similar_by_signature", compound="vemurafenib", top=3)
    assert len(rows) == 3
    sigs = demo_conn.query("MATCH (c:Compound)-[:HAS_SIGNATURE]->(s) RETURN c.id AS c, s.z_landmark AS z")
    n_genes = demo_conn.query("MATCH (g:Gene {is_landmark: true}) RETURN count(g) AS n")[0]["n"]
    k = 50

    def tops(z: list[float]) -> tuple[set[int], set[int]]:
        order = np.argsort(-np.asarray(z), kind="stable")
        zz = np.asarray(z)
        return ({int(i) for i in order[:k] if zz[i] > 0}, {int(i) for i in order[::-1][:k] if zz[i] < 0})

    by_c: dict[str, list[tuple[set[int], set[int]]]] = {}
    for s in sigs:
        assert len(s["z"]) == n_genes
        by_c.setdefault(s["c"], []).append(tops(s["z"]))
    me = run(demo_conn, "compound_profile", compound="vemurafenib", top=1)[0]["id"]

    def score(other: str) -> float | None:
        """Best (same - opposite) / query genes over signature pairs sharing a gene; None: no such pair."""
        pairs = [
            (len(u & u2) + len(d & d2) - len(u & d2) - len(d & u2)) / (len(u) + len(d))
            for u, d in by_c[me] for u2, d2 in by_c[other] if (u | d) & (u2 | d2)
        ]
        return max(pairs) if pairs else None

    expected = {o: s for o in by_c if o != me and (s := score(o)) is not None}
    assert [r["score"] for r in rows] == pytest.approx(sorted(expected.values(), reverse=True)[:3], abs=1e-3)
    for r in rows:
        assert r["score"] == pytest.approx(expected[r["other_id"]], abs=1e-3)


def test_provenance_names_completed_runs_and_the_right_sources(demo_conn: Neo4jConnection) -> None:
    rows = run(demo_conn, "provenance", compound="vemurafenib")
    assert {r["fact"] for r in rows} >= {"node", "HAS_SIGNATURE", "TARGETS", "HAS_MOA"}
    assert all(r["status"] == "completed" for r in rows)
    # every fact read from files names them; derived similarity is computed from the graph, no file
    assert all(r["files"] for r in rows if r["sources"] != ["derive_similarity"])
    assert {r["fact"] for r in rows if not r["files"]} <= {"SIMILAR_STRUCTURE", "SIMILAR_SIGNATURE",
                                                            "MIMICS", "OPPOSES"}
    targets = {(r["what"], r["sources"][0]) for r in rows if r["fact"] == "TARGETS"}
    assert targets == {("BRAF", "repurposing_hub"), ("RAF1", "repurposing_hub"), ("BRAF", "drugbank")}
    hub_files = {r["run_id"]: r["files"] for r in rows if r["fact"] == "HAS_MOA"}
    assert all(any("repurposing_drugs" in f for f in files) for files in hub_files.values())


def test_query_cli_formats(
    demo_conn: Neo4jConnection, cli_env: Neo4jSettings
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["query", "list"])
    assert listed.exit_code == 0 and "compound_profile" in listed.output
    as_csv = runner.invoke(app, ["query", "run", "compounds_by_moa", "-p", "moa=raf inhibitor", "-f", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    table = pd.read_csv(io.StringIO(as_csv.output))
    assert len(table) == len(run(demo_conn, "compounds_by_moa", moa="raf inhibitor"))
    missing = runner.invoke(app, ["query", "run", "compound_profile", "-p", "top=3"])
    assert missing.exit_code == 1
    assert missing.stderr == ("error: query compound_profile needs --param for: compound "
                              "(no default in compound_profile.cypher)\n")
    typo = runner.invoke(app, ["query", "run", "compound_profile", "-p", "compound=x", "-p", "tpo=3"])
    assert typo.exit_code == 1
    assert typo.stderr == ("error: query compound_profile has no parameter 'tpo' "
                           "(its parameters: compound, top)\n")
    bad = runner.invoke(app, ["query", "run", "compound_profile", "-p", "compound=x", "-p", "top=many"])
    assert bad.exit_code == 1 and bad.stderr == "error: --param top expects int, got 'many'\n"
    unknown = runner.invoke(app, ["query", "run", "nope"])
    assert unknown.exit_code == 1 and "no query named 'nope'" in unknown.output


def test_query_parameters_default_to_the_values_in_the_header(
    demo_conn: Neo4jConnection, cli_env: Neo4jSettings
) -> None:
    top = load_query("compound_profile").param("top")
    assert top.type == "int" and top.default == 10  # `// param: top int =10 ...`
    [row] = run_query(demo_conn, "compound_profile", compound="vemurafenib")
    assert len(row["top_up"]) == len(row["top_down"]) == 10
    assert row == run(demo_conn, "compound_profile", compound="vemurafenib", top=10)[0]
    [five] = run_query(demo_conn, "compound_profile", compound="vemurafenib", top=5)
    assert five["top_up"] == row["top_up"][:5]  # a value given wins over the default
    args = ["query", "run", "compound_profile", "-p", "compound=vemurafenib", "-f", "json"]
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)[0]["top_up"] == row["top_up"]
    with pytest.raises(UserError, match="query compound_profile needs a value for compound"):
        run_query(demo_conn, "compound_profile", top=3)
    with pytest.raises(UserError, match="query shared_targets has no parameter 'k'"):
        run_query(demo_conn, "shared_targets", compound="vemurafenib", k=3)
    with pytest.raises(UserError, match="no query named 'nope'"):
        run_query(demo_conn, "nope")


def test_query_header_default_syntax(tmp_path: Path) -> None:
    path = tmp_path / "q.cypher"
    path.write_text(
        "// name: q\n"
        "// description: every kind of default\n"
        "// param: who string a name, no default\n"
        "// param: top int =5 how many\n"
        "// param: cut float =0.25\n"
        "// param: run string ='' '' = every run\n"
        "// param: label string =any\n"
        "// param: ids list =a,b some ids\n"
        "// param: score float =null null keeps all\n"
        "// param: strict bool =false whether to\n"
        "RETURN $who, $top, $cut, $run, $label, $ids, $score, $strict\n"
    )
    q = parse_query_file(path)
    defaults = {p.name: p.default for p in q.params if p.has_default}
    assert defaults == {"top": 5, "cut": 0.25, "run": "", "label": "any", "ids": ["a", "b"], "score": None,
                        "strict": False}
    assert [p.description for p in q.params] == ["a name, no default", "how many", "", "'' = every run", "",
                                                 "some ids", "null keeps all", "whether to"]
    assert q.bind({"who": "x", "top": 7}) == {**defaults, "who": "x", "top": 7}
    assert q.missing({}) == ["who"]
    signatures = [p.signature() for p in q.params]
    assert signatures[:4] == ["who:string", "top:int=5", "cut:float=0.25", "run:string=''"]
    with pytest.raises(UserError, match="query q needs a value for who"):
        q.bind({"top": 1})
    path.write_text("// name: q\n// param: top int =five how many\nRETURN $top\n")
    with pytest.raises(UserError, match=r"q.cypher: default 'five' of parameter top is not a int"):
        parse_query_file(path)
    path.write_text("// name: q\n// param: top integer how many\nRETURN $top\n")
    with pytest.raises(UserError, match="parameter top has type 'integer'"):
        parse_query_file(path)
