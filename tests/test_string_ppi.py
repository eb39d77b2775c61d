"""STRING and symbol-pair PPI adapters against the real Neo4j: graph counts equal counts from the input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, check_source_name
from moakg.ingest.string_ppi import (
    DEFAULT_ALIAS_SOURCES,
    StringAdapter,
    SymbolPairAdapter,
    from_config,
)
from moakg.kg.connection import Neo4jConnection, Neo4jSettings

# STRING v11 protein.info layout (tab-separated). ENSP...0006 has no gene name (STRING then repeats the
# protein id as preferred_name); ...0005 is a second isoform of TP53; ...0099 is not in the file at all.
INFO = (
    "protein_external_id\tpreferred_name\tprotein_size\tannotation\n"
    "9606.ENSP00000000001\tTP53\t393\tCellular tumor antigen p53;\n"
    "9606.ENSP00000000002\tMDM2\t491\tE3 ubiquitin-protein ligase Mdm2;\n"
    "9606.ENSP00000000003\tEGFR\t1210\tEpidermal growth factor receptor;\n"
    "9606.ENSP00000000004\tGrb2\t217\tGrowth factor receptor-bound protein 2;\n"
    "9606.ENSP00000000005\tTP53\t341\tCellular tumor antigen p53 isoform;\n"
    "9606.ENSP00000000006\tENSP00000000006\t120\tannotation not available\n"
    "9606.ENSP00000000007\tCDKN1A\t164\tCyclin-dependent kinase inhibitor 1;\n"
)
# protein.links: every pair in both directions, as STRING writes it.
LINKS = """protein1 protein2 combined_score
9606.ENSP00000000001 9606.ENSP00000000002 999
9606.ENSP00000000002 9606.ENSP00000000001 999
9606.ENSP00000000003 9606.ENSP00000000004 950
9606.ENSP00000000004 9606.ENSP00000000003 950
9606.ENSP00000000001 9606.ENSP00000000003 400
9606.ENSP00000000003 9606.ENSP00000000001 400
9606.ENSP00000000001 9606.ENSP00000000005 900
9606.ENSP00000000005 9606.ENSP00000000001 900
9606.ENSP00000000005 9606.ENSP00000000002 720
9606.ENSP00000000002 9606.ENSP00000000005 720
9606.ENSP00000000006 9606.ENSP00000000002 800
9606.ENSP00000000002 9606.ENSP00000000006 800
9606.ENSP00000000099 9606.ENSP00000000007 910
9606.ENSP00000000007 9606.ENSP00000000099 910
9606.ENSP00000000007 9606.ENSP00000000001 700
9606.ENSP00000000001 9606.ENSP00000000007 700
9606.ENSP00000000004 9606.ENSP00000000002 699
9606.ENSP00000000002 9606.ENSP00000000004 699
"""


def _write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _expected_pairs(
    links: pd.DataFrame, symbol: dict[str, str], min_score: int
) -> dict[tuple[str, str], int]:
    """Independent of the adapter: threshold, map, drop unmapped and self pairs, max per unordered pair."""
    df = links[links["combined_score"] >= min_score].copy()
    df["s1"], df["s2"] = df["protein1"].map(symbol), df["protein2"].map(symbol)
    df = df.dropna(subset=["s1", "s2"])
    df = df[df["s1"] != df["s2"]]
    df["a"] = df[["s1", "s2"]].min(axis=1)
    df["b"] = df[["s1", "s2"]].max(axis=1)
    return {(a, b): int(s) for (a, b), s in df.groupby(["a", "b"])["combined_score"].max().items()}


def _graph_pairs(conn: Neo4jConnection, source: str) -> dict[tuple[str, str], int | None]:
    rows = conn.query(
        "MATCH (a:Gene)-[r:INTERACTS_WITH {source: $s}]->(b:Gene) RETURN a.symbol AS a, b.symbol AS b, "
        "r.combined_score AS score", s=source,
    )
    return {(r["a"], r["b"]): r["score"] for r in rows}


def _counts(conn: Neo4jConnection) -> tuple[int, int]:
    n = conn.query("MATCH (g:Gene) RETURN count(g) AS n")[0]["n"]
    r = conn.query("MATCH ()-[r:INTERACTS_WITH]->() RETURN count(r) AS n")[0]["n"]
    return n, r


def test_string_links_with_info_exact_counts_and_rerun(conn: Neo4jConnection, tmp_path: Path) -> None:
    info = _write(tmp_path / "9606.protein.info.v11.0.txt.gz", INFO, gz=True)
    links = _write(tmp_path / "9606.protein.links.v11.0.txt", LINKS)
    info_df = pd.read_csv(info, sep="\t")
    symbol = {
        pid: name.upper()
        for pid, name in zip(info_df["protein_external_id"], info_df["preferred_name"], strict=True)
        if not name.startswith("ENSP")
    }
    links_df = pd.read_csv(links, sep=" ")
    expected = _expected_pairs(links_df, symbol, 700)
    assert expected == {("MDM2", "TP53"): 999, ("EGFR", "GRB2"): 950, ("CDKN1A", "TP53"): 700}

    adapter = StringAdapter(links, info=info)
    report = adapter.ingest(conn, progress=False)
    assert _graph_pairs(conn, "string") == expected
    genes = {r["s"]: r["id"] for r in conn.query("MATCH (g:Gene) RETURN g.symbol AS s, g.string_id AS id")}
    assert set(genes) == {s for pair in expected for s in pair}
    assert genes["TP53"] == "9606.ENSP00000000001"  # two isoforms: the smallest id is kept
    st = adapter.stats
    assert st["links_read"] == len(links_df)
    assert st["links_below_threshold"] == int((links_df["combined_score"] < 700).sum())
    assert st["links_unmapped"] == 4 and st["proteins_unmapped"] == 2  # ...0006 (no name) and ...0099
    assert st["self_links"] == 2  # TP53 isoform 1 <-> isoform 2, both directions
    # reverse directions (3 pairs) plus the TP53 isoform-2 links that land on MDM2-TP53 (2)
    assert st["duplicate_pairs"] == 5 and st["score_conflicts"] == 1  # 720 vs 999 on MDM2-TP53
    assert st["pairs_written"] == report.counts.rels_created == 3
    assert st["symbols_with_several_string_ids"] == 1

    before = _counts(conn)
    again = StringAdapter(links, info=info).ingest(conn, progress=False)
    assert (again.counts.nodes_created, again.counts.rels_created) == (0, 0)
    assert _counts(conn) == before
    runs = conn.query("MATCH (r:IngestRun {source: 'string'}) RETURN r.status AS s, r.attempts AS a")
    assert runs == [{"s": "completed", "a": 2}]


def test_string_threshold_is_configurable(conn: Neo4jConnection, tmp_path: Path) -> None:
    info = _write(tmp_path / "protein.info.txt", INFO)
    links = _write(tmp_path / "protein.links.txt", LINKS)
    adapter = StringAdapter(links, info=info, min_score=400)
    adapter.ingest(conn, progress=False)
    pairs = _graph_pairs(conn, "string")
    assert len(pairs) == 5 and pairs[("EGFR", "TP53")] == 400 and pairs[("GRB2", "MDM2")] == 699
    assert adapter.params()["min_score"] == 400


def test_string_real_detailed_links_with_aliases(
    conn: Neo4jConnection, shared_data: Path
) -> None:
    links = shared_data / "string" / "9606.protein.links.detailed.v11.0.random10k.txt"
    aliases = shared_data / "string" / "9606.protein.aliases.v11.0.random10k.txt"
    # Independent mapping: among aliases whose sources include a preferred symbol source, take the best
    # ranked source, then the alphabetically first symbol.
    al = pd.read_csv(aliases, sep="\t", dtype=str)
    al["src"] = al["type"].str.split(" ")
    al = al.explode("src")
    rank = {s: i for i, s in enumerate(DEFAULT_ALIAS_SOURCES)}
    al = al[al["src"].isin(rank)]
    al = al.assign(rank=al["src"].map(rank), sym=al["other"].str.upper())
    al = al.sort_values(["string", "rank", "sym"]).drop_duplicates("string")
    symbol = dict(zip(al["string"], al["sym"], strict=True))
    df = pd.read_csv(links, sep=" ")
    expected = _expected_pairs(df, symbol, 700)
    above = df[df["combined_score"] >= 700]
    ends = pd.concat([above["protein1"], above["protein2"]])

    adapter = StringAdapter(links, aliases=aliases)
    adapter.ingest(conn, progress=False)
    st = adapter.stats
    assert st["links_read"] == 10_000
    assert st["links_below_threshold"] == int((df["combined_score"] < 700).sum())
    mapped = above["protein1"].isin(symbol) & above["protein2"].isin(symbol)
    assert st["links_unmapped"] == int((~mapped).sum()) > 4000
    assert st["proteins_unmapped"] == int((~ends.drop_duplicates().isin(symbol)).sum())
    assert _graph_pairs(conn, "string") == expected and len(expected) >= 1
    # detailed file: the channel scores travel with the edge
    rows = conn.query("MATCH ()-[r:INTERACTS_WITH]->() RETURN r.experimental AS e, r.textmining AS t, "
                      "r.database AS d, r.coexpression AS c")
    assert rows and all(isinstance(v, int) for r in rows for v in r.values())


def test_symbol_pair_table_counts_and_per_source_edges(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path
) -> None:
    with gzip.open(shared_data / "ppi" / "protein-interactions.txt.gz", "rt") as f:
        lines = [next(f) for _ in range(3001)]
    # the first data line once more, with the two proteins swapped: the same unordered pair
    c = lines[1].rstrip("\n").split("\t")
    lines.append("\t".join([c[2], c[3], c[0], c[1], "12345", c[5], "MI:0096(pull down)"]) + "\n")
    path = _write(tmp_path / "protein-interactions.txt.gz", "".join(lines), gz=True)
    df = pd.read_csv(path, sep="\t", dtype=str)
    ends = zip(df["source_symbol"].str.upper(), df["target_symbol"].str.upper(), strict=True)
    pairs = {frozenset(pair) for pair in ends}

    adapter = SymbolPairAdapter(path)
    adapter.ingest(conn, progress=False)
    assert adapter.stats["rows_read"] == len(df) == 3001
    assert adapter.stats["pairs_written"] == len(pairs) == 3000
    assert adapter.stats["duplicate_pairs"] == 1
    n_genes = len(set(df["source_symbol"].str.upper()) | set(df["target_symbol"].str.upper()))
    assert _counts(conn) == (n_genes, len(pairs))
    a, b = sorted((c[1], c[3]))
    row = conn.query(
        "MATCH (:Gene {symbol: $a})-[r:INTERACTS_WITH {source: 'ppi'}]->(:Gene {symbol: $b}) "
        "RETURN r.n_records AS n, r.method AS m, r.n_pubmed AS p", a=a, b=b,
    )
    assert row == [{"n": 2, "m": sorted({c[6], "MI:0096(pull down)"}), "p": 2}]

    # STRING on the same pair keeps its own edge (per_source)
    ida, idb = "9606.ENSP00000000011", "9606.ENSP00000000012"
    info = _write(tmp_path / "info.txt", f"#string_protein_id\tpreferred_name\tprotein_size\tannotation\n"
                  f"{ida}\t{a}\t100\tx\n{idb}\t{b}\t100\ty\n")
    links = _write(tmp_path / "links.txt", f"protein1 protein2 combined_score\n{ida} {idb} 880\n")
    StringAdapter(links, info=info).ingest(conn, progress=False)
    both = conn.query(
        "MATCH (:Gene {symbol: $a})-[r:INTERACTS_WITH]->(:Gene {symbol: $b}) RETURN r.source AS s ORDER BY s",
        a=a, b=b,
    )
    assert both == [{"s": "ppi"}, {"s": "string"}]
    assert _counts(conn) == (n_genes, len(pairs) + 1)


def test_symbol_pair_custom_columns_and_source(conn: Neo4jConnection, tmp_path: Path) -> None:
    _write(tmp_path / "pairs.tsv", "gene_a\tgene_b\tmethod\nEGFR\tGRB2\tx\nGRB2\tEGFR\ty\nTP53\ttp53\tz\n")
    adapter = from_config({"path": "pairs.tsv", "source": "mylab", "symbol_columns": ["gene_a", "gene_b"],
                           "list_columns": ["method"]}, tmp_path)
    assert isinstance(adapter, SymbolPairAdapter)
    adapter.ingest(conn, progress=False)
    rows = conn.query("MATCH (a)-[r:INTERACTS_WITH {source: 'mylab'}]->(b) "
                      "RETURN a.symbol AS a, b.symbol AS b, r.method AS m, r.n_records AS n")
    assert rows == [{"a": "EGFR", "b": "GRB2", "m": ["x", "y"], "n": 2}]
    assert adapter.stats["self_links"] == 1


@pytest.mark.parametrize("name", ["HI-II-14", "HuRI.v2", "BioGRID_4.4.229", "ppi", "_x", "2024"])
def test_dataset_names_are_source_names(name: str) -> None:
    assert check_source_name(name) == name


@pytest.mark.parametrize("name", [
    "", "../x", "a/b", "a b", "x'y", 'x"y', "x`y", "x}y", "-x", ".", "..", ".hidden", "über", "x" * 65,
    "a\nb", "ab\n",
])
def test_unsafe_source_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError, match="source name"):
        SymbolPairAdapter(tmp_path / "pairs.tsv", source=name)


def test_dataset_named_sources_are_stamped_and_run_ids_start_with_them(
    conn: Neo4jConnection, cli_env: Neo4jSettings, tmp_path: Path
) -> None:
    path = _write(tmp_path / "HI-II-14.tsv", "source_symbol\ttarget_symbol\nEGFR\tGRB2\nTP53\tMDM2\n")
    result = CliRunner().invoke(app, ["ingest", "ppi", str(path), "--source", "HI-II-14"])
    assert result.exit_code == 0, result.output
    SymbolPairAdapter(path, source="HuRI.v2").ingest(conn, progress=False)
    rows = conn.query("MATCH (a)-[r:INTERACTS_WITH]->(b) RETURN r.source AS s, r.ingest_run AS run, "
                      "a.symbol + '-' + b.symbol AS pair ORDER BY s, pair")
    assert [(r["s"], r["pair"]) for r in rows] == [("HI-II-14", "EGFR-GRB2"), ("HI-II-14", "MDM2-TP53"),
                                                    ("HuRI.v2", "EGFR-GRB2"), ("HuRI.v2", "MDM2-TP53")]
    runs = {r["s"]: r["run"] for r in rows}
    assert runs["HI-II-14"].startswith("HI-II-14-") and runs["HuRI.v2"].startswith("HuRI.v2-")
    genes = conn.query("MATCH (g:Gene {symbol: 'EGFR'}) RETURN g.sources AS s")[0]["s"]
    assert sorted(genes) == ["HI-II-14", "HuRI.v2"]
    refused = CliRunner().invoke(app, ["ingest", "ppi", str(path), "--source", "../x"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.stderr.startswith("error: source name '../x': use 1-64 ASCII letters")


def test_from_config_builds_string_adapter(tmp_path: Path) -> None:
    a = from_config({"links": "l.txt", "info": "i.txt", "min_score": 900}, tmp_path)
    assert isinstance(a, StringAdapter) and a.min_score == 900 and a.info == tmp_path / "i.txt"
    with pytest.raises(ValueError, match="protein.info"):
        StringAdapter(tmp_path / "l.txt")


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("links_text", "line", "needle"),
    [
        ("protein1\tprotein2\tscore\n9606.A 9606.B 900\n", 1, "protein1 protein2 combined_score"),
        ("protein1 protein2 combined_score\n9606.ENSP00000000001 9606.ENSP00000000002 high\n", 2, "integer"),
        (LINKS + "9606.ENSP00000000001 9606.ENSP00000000002\n", LINKS.count("\n") + 1, "expected 3"),
        (
            "protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining "
            "combined_score\n9606.ENSP00000000001 9606.ENSP00000000002 0 0 0 49 812 0 49\n", 2, "expected 10",
        ),
    ],
    ids=["header", "score", "fields", "detailed-fields"],
)
def test_bad_links_name_file_and_line(
    conn: Neo4jConnection, tmp_path: Path, links_text: str, line: int, needle: str
) -> None:
    info = _write(tmp_path / "info.txt", INFO)
    links = _write(tmp_path / "bad.links.txt", links_text)
    with pytest.raises(InputFormatError, match=needle) as err:
        StringAdapter(links, info=info).ingest(conn, progress=False)
    assert err.value.path == links and err.value.where == line
    assert f"bad.links.txt, line {line}:" in str(err.value)
    assert _counts(conn) == (0, 0)  # validated before the first batch: nothing written


def test_bad_mapping_files_name_file_and_line(conn: Neo4jConnection, tmp_path: Path) -> None:
    links = _write(tmp_path / "links.txt", LINKS)
    info = _write(tmp_path / "info.txt", "id\tname\n9606.ENSP00000000001\tTP53\n")
    with pytest.raises(InputFormatError, match="preferred_name") as err:
        StringAdapter(links, info=info).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (info, 1)
    info = _write(tmp_path / "info2.txt", INFO + "9606.ENSP00000000008\tKRAS\n")
    with pytest.raises(InputFormatError, match="expected 4") as err:
        StringAdapter(links, info=info).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (info, INFO.count("\n") + 1)
    aliases = _write(tmp_path / "aliases.txt", "## string_protein_id ## alias ## source ##\n"
                     "9606.ENSP00000000001\tTP53\tBioMart_HUGO Ensembl_HGNC\n"
                     "9606.ENSP00000000002 MDM2 BioMart_HUGO\n")
    with pytest.raises(InputFormatError, match="expected 3") as err:
        StringAdapter(links, aliases=aliases).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (aliases, 3)
    aliases = _write(tmp_path / "aliases2.txt", "9606.ENSP00000000001\tTP53\tBioMart_HUGO\n")
    with pytest.raises(InputFormatError, match="header") as err:
        StringAdapter(links, aliases=aliases).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (aliases, 1)
    assert _counts(conn) == (0, 0)


def test_bad_symbol_pair_table_names_file_and_line(conn: Neo4jConnection, tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.tsv", "source_symbol\ttarget_symbol\tmethod\nEGFR\tGRB2\tx\nTP53\tMDM2\n")
    with pytest.raises(InputFormatError, match="expected 3 tab-separated fields") as err:
        SymbolPairAdapter(path).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (path, 3)
    with pytest.raises(InputFormatError, match="gene_a") as err:
        SymbolPairAdapter(path, symbol_columns=["gene_a", "gene_b"]).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (path, 1)
    assert _counts(conn) == (0, 0)
