"""GO adapter against the real Neo4j: graph counts equal counts computed independently from the files."""

from __future__ import annotations

import gzip
import io
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from moakg.ingest.base import InputFormatError, open_text
from moakg.ingest.go import GAF_COLUMNS, GOAdapter, from_config
from moakg.kg.connection import Neo4jConnection

SLIM = "goslim_generic.obo"
GAF = "GO.goa_human_2019.01.29.gz"


def _stanzas(path: Path) -> list[dict[str, list[str]]]:
    """A deliberately naive OBO reader (independent of obonet): [Term] stanzas as tag -> values."""
    with open_text(path) as f:
        blocks = f.read().split("\n\n")
    out = []
    for block in blocks:
        lines = block.strip().splitlines()
        if not lines or lines[0] != "[Term]":
            continue
        d: dict[str, list[str]] = defaultdict(list)
        for line in lines[1:]:
            tag, _, value = line.partition(": ")
            d[tag].append(value.split(" ! ")[0].strip())
        out.append(d)
    return out


Pairs = set[tuple[str, str]]


def _expected_ontology(path: Path) -> tuple[set[str], Pairs, Pairs, dict[str, str]]:
    stanzas = _stanzas(path)
    live = {s["id"][0] for s in stanzas if s.get("is_obsolete") != ["true"]}
    is_a = {(s["id"][0], p) for s in stanzas for p in s.get("is_a", []) if s["id"][0] in live and p in live}
    part_of = {
        (s["id"][0], r.split()[1]) for s in stanzas for r in s.get("relationship", [])
        if r.split()[0] == "part_of" and s["id"][0] in live and r.split()[1] in live
    }
    alt = {a: s["id"][0] for s in stanzas if s["id"][0] in live for a in s.get("alt_id", [])}
    return live, is_a, part_of, alt


def _read_gaf(path: Path) -> pd.DataFrame:
    with open_text(path) as f:
        data = "".join(line for line in f if not line.startswith("!"))
    return pd.read_csv(
        io.StringIO(data), sep="\t", header=None, names=GAF_COLUMNS, dtype=str, keep_default_na=False
    )


def _kept_rows(gaf: pd.DataFrame) -> pd.DataFrame:
    """Human, not NOT."""
    df = gaf[gaf["Taxon"].str.split("|").str[0] == "taxon:9606"]
    return df[~df["Qualifier"].str.split("|").apply(lambda q: "NOT" in q)]


def _expected_annotations(
    gaf: pd.DataFrame, live: set[str], alt: dict[str, str]
) -> dict[tuple[str, str], list[str]]:
    df = _kept_rows(gaf)
    df = df.assign(term=df["GO_ID"].map(lambda t: t if t in live else alt.get(t, t)),
                   sym=df["DB_Object_Symbol"].str.upper())
    df = df[df["term"].isin(live)]
    return {k: sorted(set(v)) for k, v in df.groupby(["sym", "term"])["Evidence"]}


def _graph(conn: Neo4jConnection) -> dict[str, int]:
    q = {
        "terms": "MATCH (t:GOTerm) RETURN count(t) AS n",
        "is_a": "MATCH (:GOTerm)-[r:IS_A]->(:GOTerm) RETURN count(r) AS n",
        "part_of": "MATCH (:GOTerm)-[r:PART_OF]->(:GOTerm) RETURN count(r) AS n",
        "genes": "MATCH (g:Gene) RETURN count(g) AS n",
        "annotated": "MATCH (:Gene)-[r:ANNOTATED_WITH]->(:GOTerm) RETURN count(r) AS n",
    }
    return {k: conn.query(v)[0]["n"] for k, v in q.items()}


@pytest.fixture
def slim_gaf(shared_data: Path, tmp_path: Path) -> Path:
    """The real GAF's header, its first 3,000 annotations and the slim-term ones among the first 30,000."""
    slim_ids = {i for s in _stanzas(shared_data / "go" / SLIM) for i in s["id"] + s.get("alt_id", [])}
    out = []
    n_data = 0
    with gzip.open(shared_data / "go" / GAF, "rt") as f:
        for line in f:
            if line.startswith("!"):
                out.append(line)
            else:
                n_data += 1
                if n_data > 30_000:
                    break
                if n_data <= 3000 or line.split("\t")[4] in slim_ids:
                    out.append(line)
    path = tmp_path / "goa_human_subset.gaf.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(out)
    return path


def test_goslim_and_gaf_subset_counts_and_rerun(
    conn: Neo4jConnection, shared_data: Path, slim_gaf: Path
) -> None:
    obo = shared_data / "go" / SLIM
    live, is_a, part_of, alt = _expected_ontology(obo)
    gaf = _read_gaf(slim_gaf)
    expected = _expected_annotations(gaf, live, alt)
    assert len(live) == 149 and len(expected) > 1000

    adapter = GOAdapter(obo, gaf=slim_gaf)
    report = adapter.ingest(conn, progress=False)
    genes = {s for s, _ in expected}
    assert _graph(conn) == {"terms": len(live), "is_a": len(is_a), "part_of": len(part_of),
                            "genes": len(genes), "annotated": len(expected)}
    rows = conn.query("MATCH (g:Gene)-[r:ANNOTATED_WITH]->(t:GOTerm) RETURN g.symbol AS s, t.go_id AS t, "
                      "r.evidence AS e")
    assert {(r["s"], r["t"]): r["e"] for r in rows} == expected
    got_is_a = conn.query("MATCH (a:GOTerm)-[:IS_A]->(b:GOTerm) RETURN a.go_id AS a, b.go_id AS b")
    assert {(r["a"], r["b"]) for r in got_is_a} == is_a

    st = adapter.stats
    assert st["annotations_read"] == len(gaf)
    assert st["not_qualified"] == int(gaf["Qualifier"].str.contains(r"\bNOT\b").sum())
    known = gaf["GO_ID"].isin(live) | gaf["GO_ID"].isin(alt)
    assert st["unknown_term"] == int((~known & ~gaf["Qualifier"].str.contains("NOT")).sum()) > 0
    kept = _kept_rows(gaf)
    assert st["alt_id_mapped"] == int((~kept["GO_ID"].isin(live) & kept["GO_ID"].isin(alt)).sum())
    assert st["gaf_version"] == "2.1"
    assert st["other_relationships_skipped"] == {"has_part": 5, "occurs_in": 3, "regulates": 1}
    # uniprot from DB_Object_ID (all rows here are UniProtKB)
    tp = conn.query("MATCH (g:Gene) WHERE g.uniprot IS NULL RETURN count(g) AS n")[0]["n"]
    assert tp == 0
    term = conn.query("MATCH (t:GOTerm {go_id: 'GO:0005634'}) RETURN t.name AS n, t.namespace AS ns, "
                      "t.is_obsolete AS o, t.definition AS d")
    assert term == [{"n": "nucleus", "ns": "cellular_component", "o": False, "d": term[0]["d"]}]
    assert term[0]["d"].startswith("A membrane-bounded organelle") and not term[0]["d"].endswith("]")

    before = _graph(conn)
    again = GOAdapter(obo, gaf=slim_gaf).ingest(conn, progress=False)
    assert (again.counts.nodes_created, again.counts.rels_created) == (0, 0)
    assert again.counts.rels_matched == report.counts.rels_created
    assert _graph(conn) == before


@pytest.mark.slow
def test_full_2019_ontology_counts(conn: Neo4jConnection, shared_data: Path) -> None:
    obo = shared_data / "go" / "GeneOntology_2019.01.29.obo.gz"
    live, is_a, part_of, _ = _expected_ontology(obo)
    adapter = GOAdapter(obo)
    adapter.ingest(conn, progress=False)
    g = _graph(conn)
    assert (g["terms"], g["is_a"], g["part_of"]) == (len(live), len(is_a), len(part_of))
    assert adapter.stats["obsolete_terms_skipped"] == len(_stanzas(obo)) - len(live) > 1000
    ns = conn.query("MATCH (t:GOTerm) RETURN t.namespace AS ns, count(*) AS n ORDER BY ns")
    assert [r["ns"] for r in ns] == ["biological_process", "cellular_component", "molecular_function"]


# Handwritten OBO 1.2 and GAF 2.2 in the real layouts, for the options and the edge cases.
OBO = """format-version: 1.2
data-version: releases/2024-01-17
ontology: go

[Term]
id: GO:0008150
name: biological_process
namespace: biological_process
alt_id: GO:0000004
def: "A biological process is the execution of a genetically-encoded biological module." [GOC:pdt]

[Term]
id: GO:0009987
name: cellular process
namespace: biological_process
is_a: GO:0008150 ! biological_process

[Term]
id: GO:0005634
name: nucleus
namespace: cellular_component
relationship: part_of GO:0005622 ! intracellular anatomical structure

[Term]
id: GO:0005622
name: intracellular anatomical structure
namespace: cellular_component

[Term]
id: GO:0000005
name: obsolete ribosomal chaperone activity
namespace: molecular_function
is_obsolete: true
replaced_by: GO:0009987

[Typedef]
id: part_of
name: part of
xref: BFO:0000050
is_transitive: true
"""


def _gaf_line(symbol: str, go_id: str, qualifier: str = "enables", evidence: str = "IDA",
              taxon: str = "taxon:9606", acc: str = "P04637") -> str:
    cols = ["UniProtKB", acc, symbol, qualifier, go_id, "PMID:1", evidence, "", "P", "name", "", "protein",
            taxon, "20240101", "UniProt", "", ""]
    return "\t".join(cols) + "\n"


GAF_22 = "!gaf-version: 2.2\n!generated-by: GOC\n" + "".join([
    _gaf_line("TP53", "GO:0009987"),
    _gaf_line("TP53", "GO:0009987", evidence="IEA"),
    _gaf_line("TP53", "GO:0009987", evidence="IDA"),
    _gaf_line("TP53", "GO:0005634", qualifier="located_in", taxon="taxon:9606|taxon:11676"),
    _gaf_line("TP53", "GO:0005634", qualifier="NOT|located_in"),
    _gaf_line("Mdm2", "GO:0000004", evidence="IMP", acc="Q00987"),  # alt_id of GO:0008150
    _gaf_line("MDM2", "GO:0000005", acc="Q00987"),  # obsolete
    _gaf_line("MDM2", "GO:9999999", acc="Q00987"),  # not in the ontology
    _gaf_line("Trp53", "GO:0009987", taxon="taxon:10090", acc="P02340"),
])


def test_handwritten_obo_and_gaf22_options(conn: Neo4jConnection, tmp_path: Path) -> None:
    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    gaf = tmp_path / "goa_human.gaf.gz"
    with gzip.open(gaf, "wt") as f:
        f.write(GAF_22)
    adapter = GOAdapter(obo, gaf=gaf)
    adapter.ingest(conn, progress=False)
    assert _graph(conn) == {"terms": 4, "is_a": 1, "part_of": 1, "genes": 2, "annotated": 3}
    rows = conn.query("MATCH (g:Gene)-[r:ANNOTATED_WITH]->(t:GOTerm) RETURN g.symbol AS s, g.uniprot AS u, "
                      "t.go_id AS t, r.evidence AS e, r.qualifiers AS q ORDER BY s, t")
    assert rows == [
        {"s": "MDM2", "u": "Q00987", "t": "GO:0008150", "e": ["IMP"], "q": ["enables"]},
        {"s": "TP53", "u": "P04637", "t": "GO:0005634", "e": ["IDA"], "q": ["located_in"]},
        {"s": "TP53", "u": "P04637", "t": "GO:0009987", "e": ["IDA", "IEA"], "q": ["enables"]},
    ]
    st = adapter.stats
    counted = ("not_qualified", "other_taxon", "obsolete_term", "unknown_term", "alt_id_mapped")
    assert [st[k] for k in counted] == [1, 1, 1, 1, 1]
    assert st["gaf_version"] == "2.2" and st["annotation_pairs"] == 3


def test_obsolete_evidence_and_taxon_options(conn: Neo4jConnection, tmp_path: Path) -> None:
    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    gaf = tmp_path / "goa.gaf"
    gaf.write_text(GAF_22)
    adapter = from_config({"obo": "go.obo", "gaf": "goa.gaf", "include_obsolete": True, "taxon": 10090,
                           "evidence_exclude": ["iea"]}, tmp_path)
    assert adapter.params() == {"include_obsolete": True, "taxon": 10090, "evidence_exclude": ["IEA"],
                                "known_genes": None}
    adapter.ingest(conn, progress=False)
    obsolete = conn.query("MATCH (t:GOTerm {is_obsolete: true}) RETURN t.go_id AS id")
    assert obsolete == [{"id": "GO:0000005"}]
    rows = conn.query("MATCH (g:Gene)-[r:ANNOTATED_WITH]->(t) RETURN g.symbol AS s, t.go_id AS t")
    assert rows == [{"s": "TRP53", "t": "GO:0009987"}]
    assert adapter.stats["other_taxon"] == 8
    ex = GOAdapter(obo, gaf=gaf, evidence_exclude=["IEA"])
    list(ex.batches())
    assert ex.stats["evidence_excluded"] == 1


# ------------------------------------------------------------------------------------------ bad input
def _obo_with(block: str) -> str:
    return OBO.replace("[Typedef]", block + "\n[Typedef]")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_obo_with("[Term]\nname: nameless\nnamespace: biological_process\n"), "without an 'id:'"),
        (_obo_with("[Term]\nid: GO:0000006\nthis line has no tag\n"), "expected 'tag: value'"),
        (_obo_with("[Term]\nid: GO:0000006\nrelationship: part_of\n"), "relationship: <type> <term id>"),
        (_obo_with("[Trem]\nid: GO:0000006\n"), "unknown stanza type"),
        (_obo_with("[Term]\nid: GO:0009987\nname: again\n"), "duplicate term id"),
    ],
    ids=["no-id", "malformed-line", "relationship", "stanza-type", "duplicate-id"],
)
def test_broken_obo_names_file_and_line(
    conn: Neo4jConnection, tmp_path: Path, text: str, needle: str
) -> None:
    obo = tmp_path / "broken.obo.gz"
    with gzip.open(obo, "wt") as f:
        f.write(text)
    bad_line = OBO.count("\n", 0, OBO.index("[Typedef]")) + 1  # the inserted [Term] line
    offending = {"no-id": 0, "malformed-line": 2, "relationship": 2, "stanza-type": 0, "duplicate-id": 0}
    with pytest.raises(InputFormatError, match=needle) as err:
        GOAdapter(obo).ingest(conn, progress=False)
    assert err.value.path == obo
    kind = next(k for k, n in [("no-id", "without"), ("malformed-line", "tag: value"),
                               ("relationship", "relationship:"), ("stanza-type", "stanza type"),
                               ("duplicate-id", "duplicate")] if n in needle)
    assert err.value.where == bad_line + offending[kind]
    assert f"broken.obo.gz, line {err.value.where}:" in str(err.value)
    assert _graph(conn)["terms"] == 0  # validated before the first batch


def test_bad_gaf_names_file_and_line(conn: Neo4jConnection, tmp_path: Path) -> None:
    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    short = GAF_22 + "\t".join(["UniProtKB", "P38398", "BRCA1", "", "GO:0009987", "PMID:1", "IDA"]) + "\n"
    gaf = tmp_path / "short.gaf"
    gaf.write_text(short)
    with pytest.raises(InputFormatError, match="expected 17 tab-separated GAF columns, got 7") as err:
        GOAdapter(obo, gaf=gaf).ingest(conn, progress=False)
    assert (err.value.path, err.value.where) == (gaf, GAF_22.count("\n") + 1)
    gaf.write_text(GAF_22.replace("GO:0005634", "0005634", 1))
    with pytest.raises(InputFormatError, match="GO_ID") as err:
        GOAdapter(obo, gaf=gaf).ingest(conn, progress=False)
    assert err.value.where == 6
    gaf.write_text(GAF_22.replace("taxon:10090", "mouse"))
    with pytest.raises(InputFormatError, match="Taxon") as err:
        GOAdapter(obo, gaf=gaf).ingest(conn, progress=False)
    assert err.value.where == GAF_22.count("\n")
    assert _graph(conn) == {"terms": 0, "is_a": 0, "part_of": 0, "genes": 0, "annotated": 0}


def test_gaf_without_version_header_warns(conn: Neo4jConnection, tmp_path: Path) -> None:
    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    gaf = tmp_path / "noheader.gaf"
    gaf.write_text("".join(GAF_22.splitlines(keepends=True)[2:]))
    adapter = GOAdapter(obo, gaf=gaf)
    with pytest.warns(UserWarning, match="gaf-version"):
        adapter.ingest(conn, progress=False)
    assert adapter.stats["gaf_version_missing"] == 1 and _graph(conn)["annotated"] == 3
