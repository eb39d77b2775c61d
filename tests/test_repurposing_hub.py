"""Repurposing Hub adapter on subsets of the real drugs/samples files, against the real Neo4j."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from moakg.ingest.base import InputFormatError
from moakg.ingest.repurposing_hub import RepurposingHubAdapter
from moakg.kg.connection import Neo4jConnection

DRUGS = "repurposing_hub/repurposing_drugs_20200324.txt"
SAMPLES = "repurposing_hub/repurposing_samples_20200324.txt"


def _raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _table(path: Path) -> pd.DataFrame:
    """The expected reading, done independently: pandas, skipping the leading '!' block by count."""
    n_comments = next(i for i, line in enumerate(_raw_lines(path)) if not line.startswith("!"))
    return pd.read_csv(path, sep="\t", skiprows=n_comments, dtype=str, keep_default_na=False)


def write_hub_subset(shared_data: Path, out_dir: Path, names: set[str]) -> tuple[Path, Path]:
    """The real files' comment block, header and the lines (verbatim) of the drugs in ``names``."""
    paths = []
    for rel, name_col in ((DRUGS, 0), (SAMPLES, 1)):
        lines = _raw_lines(shared_data / rel)
        keep = []
        header_seen = False
        for line in lines:
            if line.startswith("!") or not header_seen:
                header_seen = header_seen or not line.startswith("!")
                keep.append(line)
                continue
            if line.strip() and next(csv.reader([line.rstrip("\r")], delimiter="\t"))[name_col] in names:
                keep.append(line)
        out = out_dir / Path(rel).name
        out.write_bytes(("\n".join(keep) + "\n").encode("utf-8"))
        paths.append(out)
    return paths[0], paths[1]


def _rdkit_key(smiles: str) -> str:
    """Largest-fragment InChIKey, computed here independently (lenient CXSMILES parsing)."""
    ps = Chem.SmilesParserParams()
    ps.strictCXSMILES = False  # ChemAxon 'THB:' extensions in some Hub SMILES
    mol = Chem.MolFromSmiles(smiles, ps)
    assert mol is not None, smiles
    return Chem.MolToInchiKey(
        rdMolStandardize.Uncharger().uncharge(
            rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        )
    )


def pick_names(shared_data: Path, every: int = 40) -> set[str]:
    """Every n-th drug, every drug whose Hub InChIKey another name shares, and some awkward ones."""
    drugs, samples = _table(shared_data / DRUGS), _table(shared_data / SAMPLES)
    names = set(drugs.pert_iname.iloc[::every])
    per_key = samples.groupby("InChIKey").pert_iname.nunique()
    names |= set(samples[samples.InChIKey.isin(per_key[per_key > 1].index)].pert_iname)
    names |= set(samples[samples.smiles.str.contains("THB:", regex=False)].pert_iname.iloc[:5])
    names |= set(drugs[drugs.pert_iname.str.contains(",") | drugs.moa.str.contains(",")].pert_iname.iloc[:5])
    names |= {"amitriptyline", "cyclosporin-A", "VLX600", "usniacin-(+)"}  # non-ASCII MoA; mixed structures
    return names


def expected(drugs_path: Path, samples_path: Path) -> dict[str, object]:
    drugs, samples = _table(drugs_path), _table(samples_path)
    samples = samples.assign(key=samples.smiles.map(_rdkit_key)).sort_values("broad_id")
    # The samples' majority structure per drug (ties: the first broad_id).
    key = samples.groupby("pert_iname", sort=False).key.agg(lambda k: Counter(k).most_common(1)[0][0])
    drugs = drugs.assign(cid=drugs.pert_iname.map(key))
    moa = drugs.assign(m=drugs.moa.str.split("|")).explode("m")
    moa["m"] = moa.m.str.strip().str.lower().str.split().str.join(" ")
    moa = moa[moa.m.str.len() > 0]
    tgt = drugs.assign(t=drugs.target.str.split("|")).explode("t")
    tgt["t"] = tgt.t.str.strip().str.upper()
    tgt = tgt[tgt.t.str.len() > 0]
    per_cid = drugs.groupby("cid").pert_iname.nunique()
    return {
        "drugs": len(drugs),
        "compounds": drugs.cid.nunique(),
        "shared_names": int(per_cid[per_cid > 1].sum()),
        "moas": moa.m.nunique(),
        "has_moa": len(moa[["cid", "m"]].drop_duplicates()),
        "genes": tgt.t.nunique(),
        "targets": len(tgt[["cid", "t"]].drop_duplicates()),
        "pert_ids": samples.broad_id.str[:13].nunique(),
        "key": key,
    }


def _count(conn: Neo4jConnection, q: str) -> int:
    return conn.query(q)[0]["n"]


def graph_counts(conn: Neo4jConnection) -> dict[str, int]:
    return {
        "compounds": _count(conn, "MATCH (c:Compound) RETURN count(c) AS n"),
        "moas": _count(conn, "MATCH (m:MoA) RETURN count(m) AS n"),
        "genes": _count(conn, "MATCH (g:Gene) RETURN count(g) AS n"),
        "has_moa": _count(conn, "MATCH (:Compound)-[r:HAS_MOA]->(:MoA) RETURN count(r) AS n"),
        "targets": _count(conn, "MATCH (:Compound)-[r:TARGETS]->(:Gene) RETURN count(r) AS n"),
        "pert_ids": _count(conn, "MATCH (c:Compound) UNWIND c.pert_ids AS p RETURN count(DISTINCT p) AS n"),
    }


@pytest.fixture
def hub_files(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    return write_hub_subset(shared_data, tmp_path, pick_names(shared_data))


def test_counts_match_input_and_reingest_changes_nothing(conn: Neo4jConnection, hub_files) -> None:
    drugs_path, samples_path = hub_files
    exp = expected(drugs_path, samples_path)
    adapter = RepurposingHubAdapter(drugs_path, samples_path)
    report = adapter.ingest(conn, progress=False)
    got = graph_counts(conn)
    assert got == {k: exp[k] for k in got}
    assert exp["shared_names"] > 20  # the subset really exercises structure identity
    st = adapter.stats
    assert st["drugs"] == exp["drugs"] and st["compounds"] == exp["compounds"]
    assert st["shared_inchikey_names"] == exp["shared_names"]
    assert st["encoding_drugs"] == "utf-8" and st["structure_unparseable"] == 0 and st["no_structure"] == 0
    # Samples whose CXSMILES carry ChemAxon 'THB:' blocks parse too (structure_unparseable == 0 above).
    assert "THB:" in samples_path.read_text(encoding="utf-8")
    assert report.counts.nodes_created == got["compounds"] + got["moas"] + got["genes"]
    # Every compound is keyed by the structure computed here, independently.
    ids = {r["id"] for r in conn.query("MATCH (c:Compound) RETURN c.id AS id")}
    assert ids == set(exp["key"])

    again = RepurposingHubAdapter(drugs_path, samples_path).ingest(conn, progress=False)
    assert (again.counts.nodes_created, again.counts.rels_created) == (0, 0)
    assert graph_counts(conn) == got


def test_compound_properties(conn: Neo4jConnection, hub_files) -> None:
    drugs_path, samples_path = hub_files
    RepurposingHubAdapter(drugs_path, samples_path).ingest(conn, progress=False)
    # rolipram and (S)-(+)-rolipram: one structure, one node, both names.
    row = conn.query(
        "MATCH (c:Compound) WHERE 'rolipram' IN c.synonyms RETURN c.synonyms AS syn, c.sources AS src, "
        "c.id AS id, c.match_repurposing_hub AS lvl"
    )
    assert row == [
        {
            "syn": ["(S)-(+)-rolipram", "rolipram"],
            "src": ["repurposing_hub"],
            "id": "HJORMJIFDVBMOB-GFCCVEGCSA-N",
            "lvl": "inchikey",
        }
    ]
    # Several samples: all LINCS pert_ids, pert_id the first.
    samples = _table(samples_path)
    want = sorted(set(samples[samples.pert_iname == "cyclosporin-A"].broad_id.str[:13]))
    c = conn.query(
        "MATCH (c:Compound) WHERE 'cyclosporin-A' IN c.synonyms "
        "RETURN c.pert_ids AS ids, c.pert_id AS id, c.clinical_phase AS phase"
    )[0]
    assert c == {"ids": want, "id": want[0], "phase": "Launched"}
    # MoA nodes: normalised key, original display name (UTF-8 en dash survives).
    moa = conn.query(
        "MATCH (c:Compound)-[:HAS_MOA]->(m:MoA) WHERE 'amitriptyline' IN c.synonyms "
        "AND m.name CONTAINS 'serotonin' AND m.name CONTAINS 'norepinephrine reuptake' "
        "RETURN m.name AS name, m.display_name AS dn"
    )
    assert moa == [
        {
            "name": "serotonin–norepinephrine reuptake inhibitor (snri)",
            "dn": "serotonin–norepinephrine reuptake inhibitor (SNRI)",
        }
    ]
    tg = conn.query(
        "MATCH (c:Compound)-[t:TARGETS]->(g:Gene {symbol: 'PDE4D'}) "
        "WHERE 'rolipram' IN c.synonyms RETURN t.source AS s"
    )
    assert tg == [{"s": "repurposing_hub"}]


HEADER = "pert_iname\tclinical_phase\tmoa\ttarget\tdisease_area\tindication"
COMMENTS = '!Source\t"The Drug Repurposing Hub, Broad Institute"\t\t\t\t\n!File_date\t3/24/2020\t\t\t\t\n'


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path


def test_latin1_fallback_bang_inside_line_and_duplicates(conn: Neo4jConnection, tmp_path: Path) -> None:
    rows = [
        "drug-a\tPhase 2\tKrüppel-like factor inhibitor|HDAC  Inhibitor\tklf5|hdac1\toncology\tcancer!",
        "drug-a\tPhase 2\tKrüppel-like factor inhibitor|HDAC  Inhibitor\tklf5|hdac1\toncology\tcancer!",
        "drug-b\tLaunched\thdac inhibitor\tHDAC1\t\t",
    ]
    path = _write(tmp_path / "drugs.txt", COMMENTS + HEADER + "\n" + "\n".join(rows) + "\n", "latin-1")
    adapter = RepurposingHubAdapter(path)
    adapter.ingest(conn, progress=False)
    st = adapter.stats
    assert st["encoding_drugs"] == "latin-1"
    assert (st["drug_rows"], st["duplicate_drug_rows"], st["drugs"], st["no_structure"]) == (3, 1, 2, 2)
    moas = conn.query("MATCH (m:MoA) RETURN m.name AS n, m.display_name AS d ORDER BY n")
    assert moas == [
        {"n": "hdac inhibitor", "d": "HDAC Inhibitor"},
        {"n": "krüppel-like factor inhibitor", "d": "Krüppel-like factor inhibitor"},
    ]
    a = conn.query("MATCH (c:Compound {name: 'drug-a'}) RETURN c.indication AS i, c.id AS id")[0]
    assert a == {"i": ["cancer!"], "id": "repurposing_hub:drug-a"}  # '!' inside a line is data
    q = "MATCH (:Compound)-[r:HAS_MOA]->(:MoA {name: 'hdac inhibitor'}) RETURN count(r) AS n"
    assert _count(conn, q) == 2
    genes = [r["s"] for r in conn.query("MATCH (g:Gene) RETURN g.symbol AS s ORDER BY s")]
    assert genes == ["HDAC1", "KLF5"]


def test_missing_column_names_file_and_header_line(tmp_path: Path) -> None:
    text = COMMENTS + HEADER.replace("\tmoa", "\tmechanism") + "\nx\t\t\t\t\t\n"
    path = _write(tmp_path / "drugs.txt", text)
    with pytest.raises(InputFormatError, match=r"drugs\.txt, line 3: header is missing .*'moa'"):
        list(RepurposingHubAdapter(path).batches())


def test_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    rows = "a\tPhase 1\tx inhibitor\tEGFR\t\t\nb\tPhase 1\ty inhibitor\tEGFR\n"
    path = _write(tmp_path / "drugs.txt", COMMENTS + HEADER + "\n" + rows)
    with pytest.raises(InputFormatError, match=r"drugs\.txt, line 5: expected 6 tab-separated fields.*got 4"):
        list(RepurposingHubAdapter(path).batches())


def test_bad_sample_names_file_and_line(shared_data: Path, tmp_path: Path) -> None:
    drugs_path, samples_path = write_hub_subset(shared_data, tmp_path, {"rolipram"})
    lines = samples_path.read_text(encoding="utf-8").split("\n")
    bad_line = len(lines) - 1  # the last data line (1-based), before the final newline
    lines[bad_line - 1] = "\t".join(lines[bad_line - 1].split("\t")[:5])
    samples_path.write_text("\n".join(lines), encoding="utf-8")
    where = rf"repurposing_samples_20200324\.txt, line {bad_line}: expected 12"
    with pytest.raises(InputFormatError, match=where):
        list(RepurposingHubAdapter(drugs_path, samples_path).batches())
