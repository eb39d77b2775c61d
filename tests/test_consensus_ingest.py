"""Consensus-signature matrices and gene over-expression signatures against real Neo4j, on the real
dhimmel/lincs files in ../shared/data/l1000_consensus: graph counts equal counts computed here with
pandas from the files, re-ingest changes nothing, bad input fails naming file/line/column and writes
nothing, and z_landmark follows the landmark genes (also those a real L1000 plate wrote first)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from moakg.errors import UserError
from moakg.ingest.base import InputFormatError
from moakg.ingest.commands import adapters_from_config
from moakg.ingest.consensus_matrix import ConsensusMatrixAdapter
from moakg.ingest.drugbank import DrugBankAdapter
from moakg.ingest.l1000 import L1000Adapter
from moakg.ingest.l1000_io import write_gctx
from moakg.ingest.overexpression import OverexpressionAdapter
from moakg.ingest.runner import run_adapters
from moakg.kg.connection import Neo4jConnection

K = 50


def _files(shared: Path) -> dict[str, Path]:
    d = shared / "l1000_consensus"
    return {"matrix": d / "consensi-drugbank.tsv.gz", "genes": d / "genes.tsv",
            "oe": d / "dysreg-overexpression.tsv", "geneinfo": shared / "lincs" / "geneinfo.tsv.gz",
            "drugbank": shared / "drugbank" / "drugbank.tsv"}


def _matrix(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", index_col=0)


def _count(conn: Neo4jConnection, pattern: str, **params: object) -> int:
    return conn.query(f"MATCH {pattern} RETURN count(*) AS n", **params)[0]["n"]


def _snapshot(conn: Neo4jConnection) -> dict[str, int]:
    """Every label and relationship type with its count, IngestRuns left out."""
    nodes = conn.query("MATCH (n) WHERE NOT n:IngestRun UNWIND labels(n) AS l RETURN l, count(*) AS n")
    rels = conn.query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n")
    props = conn.query("MATCH (s:Signature) RETURN count(s.z_landmark) AS z, count(s.kind) AS k")[0]
    return {**{r["l"]: r["n"] for r in nodes}, **{r["t"]: r["n"] for r in rels},
            "z_landmark": props["z"], "kind": props["k"]}


def _drugbank_subset(files: dict[str, Path], tmp: Path, n: int) -> tuple[Path, set[str]]:
    """The first ``n`` consensus drugs' rows of the real drugbank.tsv (plus every non-consensus drug)."""
    ids = _matrix(files["matrix"]).index[:n]
    db = pd.read_csv(files["drugbank"], sep="\t", dtype=str, keep_default_na=False)
    cons = set(_matrix(files["matrix"]).index)
    sub = db[db["drugbank_id"].isin(ids) | ~db["drugbank_id"].isin(cons)].head(400 + n)
    sub = pd.concat([db[db["drugbank_id"].isin(ids)], sub]).drop_duplicates("drugbank_id")
    path = tmp / "drugbank_subset.tsv"
    sub.to_csv(path, sep="\t", index=False)
    return path, set(sub["drugbank_id"])


# ------------------------------------------------------------------------------------ consensus matrix
def test_consensus_counts_match_the_files_and_reingest_changes_nothing(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path
) -> None:
    f = _files(shared_data)
    db_path, db_ids = _drugbank_subset(f, tmp_path, 600)
    run_adapters(conn, [DrugBankAdapter(drugs_tsv=db_path)], progress=False)

    m = _matrix(f["matrix"])
    genes = pd.read_csv(f["genes"], sep="\t", dtype={"entrez_gene_id": str})
    sym = dict(zip(genes["entrez_gene_id"], genes["symbol"].str.upper(), strict=True))
    matched = m[m.index.isin(db_ids)]
    n_up = int(np.minimum(K, (matched > 0).sum(axis=1)).sum())
    n_down = int(np.minimum(K, (matched < 0).sum(axis=1)).sum())

    adapter = ConsensusMatrixAdapter(f["matrix"], gene_info=f["genes"], create_compounds=False)
    [report] = run_adapters(conn, [adapter], progress=False)
    assert report.status == "completed" and report.counts.rels_missing_endpoint == 0
    assert _count(conn, "(s:Signature {kind: 'consensus', level: 5, pert_type: 'trt_cp'})") == len(matched)
    assert _count(conn, "(:Compound)-[:HAS_SIGNATURE]->(:Signature {kind: 'consensus'})") == len(matched)
    # each signature hangs off the compound DrugBank keyed with that very id
    assert _count(conn, "(c:Compound)-[:HAS_SIGNATURE]->(s:Signature) WHERE s.pert_id IN c.drugbank_ids") \
        == len(matched)
    assert _count(conn, "(:Signature)-[:UPREGULATES]->(:Gene)") == n_up
    assert _count(conn, "(:Signature)-[:DOWNREGULATES]->(:Gene)") == n_down
    assert _count(conn, "(s:Signature) WHERE s.cell_id IS NOT NULL OR s.dose IS NOT NULL") == 0
    assert adapter.stats["perturbagens_unmatched"] == len(m) - len(matched)
    assert adapter.stats["compounds_created"] == 0 and adapter.stats["unknown_genes"] == 0
    assert _count(conn, "(c:Compound) WHERE c.id STARTS WITH 'drugbank:DB' AND "
                  "NOT 'drugbank' IN c.sources") == 0  # nothing created

    # the top genes of one drug, with z and rank, equal the file's
    drug = matched.index[0]
    row = matched.loc[drug].rename(index=sym)
    top = row.sort_values(ascending=False, kind="stable")
    got = conn.query("MATCH (s:Signature {sig_id: $sid})-[r:UPREGULATES]->(g:Gene) "
                     "RETURN g.symbol AS g, r.z AS z, r.rank AS rank ORDER BY rank", sid=f"consensus:{drug}")
    assert [r["rank"] for r in got] == list(range(1, len(got) + 1))
    assert {r["g"] for r in got} == set(top.index[: len(got)]) or np.isclose(
        top.iloc[len(got) - 1], top.iloc[len(got)])  # a tie at the cut may pick either gene
    for r in got:
        assert r["z"] == pytest.approx(row[r["g"]], abs=1e-6)

    # z_landmark: the landmark genes (genes.tsv 'measured') sorted by symbol
    landmarks = sorted(genes.loc[genes["status"] == "measured", "symbol"].str.upper())
    graph_lm = [r["s"] for r in
                conn.query("MATCH (g:Gene {is_landmark: true}) RETURN g.symbol AS s ORDER BY s")]
    assert graph_lm == landmarks
    [z] = conn.query("MATCH (s:Signature {sig_id: $sid}) RETURN s.z_landmark AS z", sid=f"consensus:{drug}")
    np.testing.assert_allclose(z["z"], row.reindex(landmarks).to_numpy(), atol=1e-4)

    before = _snapshot(conn)
    again_adapter = ConsensusMatrixAdapter(f["matrix"], gene_info=f["genes"], create_compounds=False)
    [again] = run_adapters(conn, [again_adapter], progress=False)
    assert again.run_id == report.run_id
    assert again.counts.nodes_created == 0 and again.counts.rels_created == 0
    assert _snapshot(conn) == before


def test_consensus_on_a_plate_graph_uses_its_genes_and_creates_compounds(
    conn: Neo4jConnection, shared_data: Path
) -> None:
    """After a real L1000 plate: Entrez ids map to the plate's Gene nodes (its symbols, e.g. CHP for
    Entrez 11261, where genes.tsv says CHP1), no landmark is added, z_landmark follows the plate's order;
    --create-compounds keys the drugs as DrugBank would (drugbank:<id>)."""
    f = _files(shared_data)
    plate = L1000Adapter(gct=shared_data / "l1000" / "test_l1000.gct", gene_info=f["geneinfo"], top_k=K)
    run_adapters(conn, [plate], progress=False)
    lm = conn.query("MATCH (g:Gene {is_landmark: true}) RETURN g.symbol AS s, g.entrez_id AS e ORDER BY s")
    assert len(lm) == 978
    genes_before = _count(conn, "(:Gene)")

    m = _matrix(f["matrix"])
    adapter = ConsensusMatrixAdapter(f["matrix"], create_compounds=True)  # no gene table: the graph's
    [report] = run_adapters(conn, [adapter], progress=False)
    assert report.counts.rels_missing_endpoint == 0
    assert adapter.stats["genes_from_graph"] == 978 and adapter.stats["compounds_created"] == len(m)
    assert _count(conn, "(:Gene)") == genes_before and _count(conn, "(:Gene {is_landmark: true})") == 978
    assert _count(conn, "(c:Compound) WHERE c.id STARTS WITH 'drugbank:DB'") == len(m)
    assert _count(conn, "(c:Compound {id: 'drugbank:' + c.drugbank_id})-[:HAS_SIGNATURE]->"
                  "(s:Signature {kind: 'consensus'}) WHERE s.pert_id = c.drugbank_id") == len(m)
    assert _count(conn, "(:Gene {symbol: 'CHP'})<-[:UPREGULATES|DOWNREGULATES]-"
                  "(:Signature {kind: 'consensus'})") > 0
    assert _count(conn, "(:Gene {symbol: 'CHP1'})") == 0
    drug = m.index[5]
    [z] = conn.query("MATCH (s:Signature {sig_id: $sid}) RETURN s.z_landmark AS z", sid=f"consensus:{drug}")
    want = m.loc[drug].reindex([str(r["e"]) for r in lm]).to_numpy()
    np.testing.assert_allclose(z["z"], want, atol=1e-4)
    # plate and consensus signatures share the z_landmark layout: what the exporter reads
    plate_len = conn.query("MATCH (s:Signature) WHERE s.kind IS NULL RETURN size(s.z_landmark) AS n LIMIT 1")
    assert plate_len[0]["n"] == len(z["z"]) == 978

    before = _snapshot(conn)
    [again] = run_adapters(conn, [ConsensusMatrixAdapter(f["matrix"], create_compounds=True)], progress=False)
    assert again.counts.nodes_created == 0 and again.counts.rels_created == 0 and _snapshot(conn) == before


def test_gctx_and_csv_inputs_give_the_same_signatures(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path
) -> None:
    f = _files(shared_data)
    m = _matrix(f["matrix"]).iloc[:20]
    gctx = write_gctx(tmp_path / "consensus.gctx", m.to_numpy(np.float32),
                      pd.DataFrame(index=pd.Index(m.columns.astype(str))),
                      pd.DataFrame({"pert_id": list(m.index)}, index=[f"sig{i}" for i in range(len(m))]))
    csv_path = tmp_path / "consensus.csv"
    m.to_csv(csv_path)  # comma-separated, first column 'perturbagen'
    runs = []
    for path in (gctx, csv_path):
        a = ConsensusMatrixAdapter(path, gene_info=f["genes"], create_compounds=True)
        runs.append(run_adapters(conn, [a], progress=False)[0])
        assert a.stats["signatures"] == 20 and a.stats["id_type"] == "drugbank"
        if path == gctx:
            first = _snapshot(conn)
    assert runs[1].counts.nodes_created == 0 and runs[1].counts.rels_created == 0
    assert _snapshot(conn) == first


BAD_CASES = ["non_numeric", "duplicate_row", "duplicate_column", "no_id_column", "truncated_gzip"]


def _bad_matrix(case: str, src: Path, tmp: Path) -> tuple[Path, int | None, str]:
    """A copy of the real matrix's first rows broken one way: (path, line, expected message)."""
    with gzip.open(src, "rt") as fh:
        lines = [next(fh) for _ in range(30)]
    header = lines[0].rstrip("\n").split("\t")
    if case == "non_numeric":
        cells = lines[7].rstrip("\n").split("\t")
        cells[12] = "high"
        lines[7] = "\t".join(cells) + "\n"
        return _write(tmp, lines), 8, f"column 13 ('{header[12]}'): non-numeric value 'high'"
    if case == "duplicate_row":
        lines[20] = lines[3]
        return _write(tmp, lines), 21, f"duplicate row '{lines[3].split(chr(9))[0]}' (first on line 4)"
    if case == "duplicate_column":
        header[40] = header[7]
        lines[0] = "\t".join(header) + "\n"
        return _write(tmp, lines), 1, f"column 41: duplicate column '{header[7]}' (also column 8)"
    if case == "no_id_column":
        header[0] = "drug_name_here"
        lines[0] = "\t".join(header) + "\n"
        return _write(tmp, lines), 1, "no identifier column"
    path = tmp / "cut.tsv.gz"  # truncated gzip: the real file cut in the middle
    data = src.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, None, "truncated or corrupt gzip"


def _write(tmp: Path, lines: list[str]) -> Path:
    path = tmp / "bad.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(lines)
    return path


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_matrix_names_file_line_column_and_writes_nothing(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path, case: str
) -> None:
    f = _files(shared_data)
    run_adapters(conn, [ConsensusMatrixAdapter(f["matrix"], gene_info=f["genes"], create_compounds=True)],
                 progress=False)
    before = _snapshot(conn)
    path, line, message = _bad_matrix(case, f["matrix"], tmp_path)
    adapter = ConsensusMatrixAdapter(path, gene_info=f["genes"], create_compounds=True)
    with pytest.raises(InputFormatError) as err:
        run_adapters(conn, [adapter], progress=False)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)
    if line is not None:
        assert err.value.where == line
    assert _snapshot(conn) == before
    assert _count(conn, "(r:IngestRun {source: 'l1000_consensus', status: 'failed'})") == 1


def test_config_section_and_cli(conn: Neo4jConnection, shared_data: Path, tmp_path: Path,
                                cli_env: object) -> None:
    from moakg.cli import app

    f = _files(shared_data)
    cfg = tmp_path / "sources.toml"
    cfg.write_text(f'[l1000_consensus]\nmatrix = "{f["matrix"]}"\ngene_info = "{f["genes"]}"\n'
                   'create_compounds = true\ntop_k = 10\n\n'
                   f'[overexpression]\ntable = "{f["oe"]}"\n'
                   f'gene_info = ["{f["genes"]}", "{f["geneinfo"]}"]\n')
    adapters = adapters_from_config(cfg)
    assert [a.source for a in adapters] == ["l1000_consensus", "l1000_overexpression"]
    assert adapters[0].top_k == 10 and adapters[0].create_compounds
    res = CliRunner().invoke(app, ["ingest", "l1000-consensus", str(f["matrix"]), "--gene-info",
                                   str(f["genes"]), "--id-type", "drugbank", "--top-k", "10",
                                   "--skip-unmatched"])
    assert res.exit_code == 0, res.output
    assert "perturbagens_unmatched: 936" in res.output and "unknown_genes: 0" in res.output
    assert _count(conn, "(:Signature)") == 0
    res = CliRunner().invoke(app, ["ingest", "l1000-consensus", str(f["genes"])])
    assert res.exit_code == 1 and "no identifier column" in res.output and str(f["genes"]) in res.output


# ------------------------------------------------------------------------------------ over-expression
def _oe_expected(f: dict[str, Path]) -> dict[str, object]:
    """What the table says, mapped with pandas: Entrez -> symbol from genes.tsv, then LINCS geneinfo,
    then the table's own symbol column."""
    oe = pd.read_csv(f["oe"], sep="\t")
    g1 = pd.read_csv(f["genes"], sep="\t", dtype=str)
    g2 = pd.read_csv(f["geneinfo"], sep="\t", dtype=str)
    g2 = g2[g2["pr_gene_id"].str.isdigit()]
    sym: dict[int, str] = {}
    for ids, syms in ((g1["entrez_gene_id"], g1["symbol"]), (g2["pr_gene_id"], g2["pr_gene_symbol"]),
                      (oe["entrez_gene_id"].astype(str), oe["symbol"])):
        for e, s in zip(ids.astype(int), syms.str.upper(), strict=True):
            sym.setdefault(e, s)
    oe["gene"] = oe["entrez_gene_id"].map(sym)
    oe = oe.dropna(subset=["gene"])
    # two Entrez ids with one symbol in one signature: the stronger |z| is kept
    oe = oe.assign(a=oe["z_score"].abs()).sort_values("a", ascending=False)
    oe = oe.drop_duplicates(["perturbagen", "gene"])
    perts = pd.read_csv(f["oe"], sep="\t")["perturbagen"].unique()
    return {"signatures": len(perts), "perturbs": int(sum(p in sym for p in perts)),
            "up": int((oe["direction"] == "up").sum()), "down": int((oe["direction"] == "down").sum()),
            "frame": oe, "sym": sym}


def test_overexpression_counts_match_the_file_and_reingest_changes_nothing(
    conn: Neo4jConnection, shared_data: Path
) -> None:
    f = _files(shared_data)
    want = _oe_expected(f)
    adapter = OverexpressionAdapter(f["oe"], gene_info=[f["genes"], f["geneinfo"]])
    [report] = run_adapters(conn, [adapter], progress=False)
    assert report.counts.rels_missing_endpoint == 0
    assert _count(conn, "(:Signature {pert_type: 'trt_oe', kind: 'consensus'})") == want["signatures"]
    assert _count(conn, "(:Signature {pert_type: 'trt_oe'})-[:PERTURBS]->(:Gene)") == want["perturbs"]
    assert _count(conn, "(:Signature {pert_type: 'trt_oe'})-[:UPREGULATES]->(:Gene)") == want["up"]
    assert _count(conn, "(:Signature {pert_type: 'trt_oe'})-[:DOWNREGULATES]->(:Gene)") == want["down"]
    assert adapter.stats["perturbagens_unmapped"] == want["signatures"] - want["perturbs"]
    # the perturbed gene and one edge's z and rank, against the file
    oe: pd.DataFrame = want["frame"]  # type: ignore[assignment]
    p = int(oe["perturbagen"].iloc[100])
    [g] = conn.query("MATCH (:Signature {sig_id: $s})-[:PERTURBS]->(g:Gene) RETURN g.symbol AS g",
                     s=f"trt_oe:{p}")
    assert g["g"] == want["sym"][p]  # type: ignore[index]
    ups = oe[(oe["perturbagen"] == p) & (oe["direction"] == "up")].sort_values("a", ascending=False)
    got = conn.query("MATCH (:Signature {sig_id: $s})-[r:UPREGULATES]->(g:Gene) "
                     "RETURN g.symbol AS g, r.z AS z, r.rank AS rank ORDER BY rank", s=f"trt_oe:{p}")
    assert [r["g"] for r in got][:1] == ups["gene"].tolist()[:1] and len(got) == len(ups)
    assert got[0]["z"] == pytest.approx(ups["z_score"].iloc[0]) and got[0]["rank"] == 1

    before = _snapshot(conn)
    [again] = run_adapters(conn, [OverexpressionAdapter(f["oe"], gene_info=[f["genes"], f["geneinfo"]])],
                           progress=False)
    assert again.counts.nodes_created == 0 and again.counts.rels_created == 0 and _snapshot(conn) == before


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (lambda ls: ls.__setitem__(5, ls[5].replace("\tdown\t", "\tsideways\t")
                                   .replace("\tup\t", "\tsideways\t")),
         6, "column 6 ('direction'): expected up or down"),
        (lambda ls: ls.__setitem__(9, "\t".join(ls[9].split("\t")[:2] + ["big"] + ls[9].split("\t")[3:])),
         10, "column 3 ('z_score'): non-numeric value 'big'"),
        (lambda ls: ls.__setitem__(12, ls[3]), 13, "duplicate row for perturbagen"),
        (lambda ls: ls.__setitem__(0, ls[0].replace("z_score", "zscore")), 1, "missing required column"),
    ],
    ids=["direction", "z", "duplicate", "header"],
)
def test_bad_overexpression_table_writes_nothing(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path, edit: object, line: int, message: str
) -> None:
    f = _files(shared_data)
    before = _snapshot(conn)
    lines = f["oe"].read_text().splitlines(keepends=True)[:40]
    edit(lines)  # type: ignore[operator]
    path = tmp_path / "bad-oe.tsv"
    path.write_text("".join(lines))
    with pytest.raises(InputFormatError) as err:
        run_adapters(conn, [OverexpressionAdapter(path, gene_info=f["genes"])], progress=False)
    assert str(path) in str(err.value) and message in str(err.value) and err.value.where == line
    assert _snapshot(conn) == before

    cut = tmp_path / "cut-oe.tsv.gz"
    data = gzip.compress(f["oe"].read_bytes())
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFormatError, match="truncated or corrupt gzip") as err:
        run_adapters(conn, [OverexpressionAdapter(cut)], progress=False)
    assert str(cut) in str(err.value) and _snapshot(conn) == before


def test_pert_id_and_inchikey_matrices_match_hub_compounds(conn: Neo4jConnection, shared_data: Path,
                                                            tmp_path: Path) -> None:
    """Perturbagens given as LINCS pert_ids match the Hub compound whose samples carry them (the Hub's
    pert_ids are a node property, not a CompoundIndex record); InChIKeys match by key or alias. The z
    values are real consensus rows relabelled with these ids (the pairing is synthetic)."""
    from moakg.ingest.repurposing_hub import RepurposingHubAdapter

    demo = Path(__file__).resolve().parents[1] / "demo" / "data"
    run_adapters(conn, [RepurposingHubAdapter(demo / "repurposing_drugs.txt",
                                              samples=demo / "repurposing_samples.txt")], progress=False)
    with open(demo / "repurposing_samples.txt", encoding="utf-8") as fh:  # '!' lines are comments
        text = "".join(ln for ln in fh if not ln.startswith("!"))
    samples = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    samples = samples.assign(pert_id=samples["broad_id"].str[:13])
    # pert_ids of exactly one Hub drug name: each is one compound
    names = samples.groupby("pert_id")["pert_iname"].nunique()
    unique_ids = sorted(names[names == 1].index)[:25]
    z = _matrix(_files(shared_data)["matrix"]).iloc[: len(unique_ids)]
    by_pert = z.set_axis(pd.Index(unique_ids, name="pert_id"))
    path = tmp_path / "by_pert_id.tsv"
    by_pert.to_csv(path, sep="\t")
    a = ConsensusMatrixAdapter(path, gene_info=_files(shared_data)["genes"], create_compounds=False)
    run_adapters(conn, [a], progress=False)
    assert a.stats["id_type"] == "pert_id" and a.stats["perturbagens_matched"] == len(unique_ids)
    assert a.stats["perturbagens_matched_by_property"] == len(unique_ids)
    assert _count(conn, "(c:Compound)-[:HAS_SIGNATURE]->(s:Signature {kind: 'consensus'}) "
                  "WHERE s.pert_id IN c.pert_ids") == len(unique_ids)

    keys = sorted({k for k in samples["InChIKey"] if len(k) == 27})[:25]
    by_key = z.iloc[: len(keys)].set_axis(pd.Index(keys, name="inchikey"))
    path = tmp_path / "by_inchikey.tsv"
    by_key.to_csv(path, sep="\t")
    b = ConsensusMatrixAdapter(path, gene_info=_files(shared_data)["genes"], create_compounds=False)
    run_adapters(conn, [b], progress=False)
    assert b.stats["id_type"] == "inchikey"
    assert b.stats["perturbagens_matched"] + b.stats["perturbagens_unmatched"] == len(keys)
    assert b.stats["perturbagens_matched"] >= 0.8 * len(keys)
    # each matched key is the compound's key, one of its aliases, or its connectivity block
    assert _count(conn, "(c:Compound)-[:HAS_SIGNATURE]->(s:Signature {pert_id_type: 'inchikey'}) "
                  "WHERE c.id = s.pert_id OR s.pert_id IN coalesce(c.inchikey_aliases, []) "
                  "OR c.inchikey_block1 = split(s.pert_id, '-')[0]") == b.stats["perturbagens_matched"]


def test_config_sections_name_unknown_and_missing_keys(tmp_path: Path) -> None:
    from moakg.ingest import consensus_matrix, overexpression

    with pytest.raises(UserError, match=r"^\[l1000_consensus\] needs `matrix`$"):
        consensus_matrix.from_config({"gene_info": "genes.tsv"}, tmp_path)
    with pytest.raises(UserError, match=r"^\[overexpression\] unknown keys: \['tabel'\]$"):
        overexpression.from_config({"tabel": "x.tsv"}, tmp_path)
    for name in ("x.tsv", "a.tsv", "b.tsv"):
        (tmp_path / name).write_text("perturbagen\tentrez_gene_id\tz_score\tdirection\n", encoding="utf-8")
    adapter = overexpression.from_config({"table": "x.tsv", "gene_info": ["a.tsv", "b.tsv"]}, tmp_path)
    assert adapter.gene_info == [tmp_path / "a.tsv", tmp_path / "b.tsv"]
