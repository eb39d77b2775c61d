"""DrugBank adapter: XML (real schema, written here), vocabulary CSV, the real derived TSVs, and the
cross-source join with the Repurposing Hub, against the real Neo4j."""

from __future__ import annotations

import csv
import gc
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from moakg.ingest.base import InputFormatError
from moakg.ingest.compounds import CompoundIndex
from moakg.ingest.drugbank import DrugBankAdapter, iter_xml_drugs
from moakg.ingest.repurposing_hub import RepurposingHubAdapter
from moakg.kg.connection import Neo4jConnection

# ----------------------------------------------------------------------------------- XML in DrugBank's schema
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<drugbank xmlns="http://www.drugbank.ca" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.drugbank.ca http://www.drugbank.ca/docs/drugbank.xsd" version="5.1" '
    'exported-on="2020-04-22">\n'
)
TAIL = "</drugbank>\n"


def polypeptide(uniprot: str, gene: str, hgnc: str, name: str) -> str:
    return f"""      <polypeptide id="{uniprot}" source="Swiss-Prot">
        <name>{name}</name>
        <general-function>Serine-type endopeptidase activity</general-function>
        <gene-name>{gene}</gene-name>
        <locus>11p11.2</locus>
        <organism ncbi-taxonomy-id="9606">Humans</organism>
        <external-identifiers>
          <external-identifier><resource>HUGO Gene Nomenclature Committee (HGNC)</resource>
            <identifier>{hgnc}</identifier></external-identifier>
          <external-identifier><resource>UniProtKB</resource><identifier>{uniprot}</identifier></external-identifier>
        </external-identifiers>
        <synonyms><synonym>{gene}-alias</synonym></synonyms>
        <amino-acid-sequence format="FASTA">&gt;pdb|{uniprot}
MAHVRGLQLPGCLALAALCSLVHSQHVFLAPQQARSLLQRVRR</amino-acid-sequence>
      </polypeptide>
"""


def partner(
    tag: str,
    pos: int,
    be: str,
    name: str,
    actions: list[str],
    polys: list[tuple[str, str, str]],
    organism: str = "Humans",
    known: str = "yes",
) -> str:
    acts = "".join(f"<action>{a}</action>" for a in actions)
    body = "".join(polypeptide(u, g, h, name) for u, g, h in polys)
    return (
        f'    <{tag} position="{pos}">\n      <id>{be}</id>\n      <name>{name}</name>\n'
        f"      <organism>{organism}</organism>\n      <actions>{acts}</actions>\n"
        f"      <references><articles><article><pubmed-id>10505536</pubmed-id></article></articles>"
        f"</references>\n      <known-action>{known}</known-action>\n{body}    </{tag}>\n"
    )


def drug(
    dbid: str,
    name: str,
    dtype: str,
    smiles: str | None,
    targets: str = "",
    enzymes: str = "",
    carriers: str = "",
    transporters: str = "",
    extra: str = "",
) -> str:
    calc = ""
    if smiles:
        mol = Chem.MolFromSmiles(smiles)
        calc = (
            "  <calculated-properties>\n"
            "    <property><kind>logP</kind><value>1.2</value><source>ALOGPS</source></property>\n"
            f"    <property><kind>SMILES</kind><value>{smiles}</value><source>ChemAxon</source>"
            "</property>\n"
            f"    <property><kind>InChI</kind><value>{Chem.MolToInchi(mol)}</value>"
            "<source>ChemAxon</source></property>\n"
            f"    <property><kind>InChIKey</kind><value>{Chem.MolToInchiKey(mol)}</value>"
            "<source>ChemAxon</source></property>\n  </calculated-properties>\n"
        )
    return f"""<drug type="{dtype}" created="2005-06-13" updated="2020-02-26">
  <drugbank-id primary="true">{dbid}</drugbank-id>
  <drugbank-id>APRD00{dbid[-3:]}</drugbank-id>
  <name>{name}</name>
  <description>{name} is a drug &amp; more.</description>
  <cas-number>50-78-2</cas-number>
  <unii>R16CO5Y76E</unii>
  <groups><group>approved</group><group>vet_approved</group></groups>
  <synonyms><synonym language="english" coder="">{name} synonym</synonym></synonyms>
  <salts><salt><drugbank-id>DBSALT000{dbid[-3:]}</drugbank-id><name>{name} mesylate</name></salt></salts>
  <atc-codes><atc-code code="B01AC06"><level code="B01AC">Platelet aggregation inhibitors</level></atc-code>
  </atc-codes>
{extra}{calc}  <drug-interactions>
    <drug-interaction><drugbank-id>DB06605</drugbank-id><name>Apixaban</name>
      <description>The risk can be increased.</description></drug-interaction>
  </drug-interactions>
  <pathways><pathway><smpdb-id>SMP0000653</smpdb-id><name>{name} Action Pathway</name>
    <category>drug_action</category>
    <drugs><drug><drugbank-id>DB00171</drugbank-id><name>ATP</name></drug>
      <drug><drugbank-id>{dbid}</drugbank-id><name>{name}</name></drug></drugs>
    <enzymes><uniprot-id>P00519</uniprot-id></enzymes></pathway></pathways>
  <targets>
{targets}  </targets>
  <enzymes>
{enzymes}  </enzymes>
  <carriers>
{carriers}  </carriers>
  <transporters>
{transporters}  </transporters>
</drug>
"""


IMATINIB = "CN1CCN(CC2=CC=C(C=C2)C(=O)NC2=CC(NC3=NC=CC(=N3)C3=CN=CC=C3)=C(C)C=C2)CC1"
ASPIRIN = "CC(=O)OC1=CC=CC=C1C(O)=O"
HEXADECANAL = "CCCCCCCCCCCCCCCC=O"


def sample_drugs() -> list[str]:
    return [
        drug(
            "DB00001",
            "Lepirudin",
            "biotech",
            None,
            targets=partner(
                "target", 1, "BE0000048", "Prothrombin", ["inhibitor"], [("P00734", "F2", "HGNC:3535")]
            ),
        ),
        drug(
            "DB00619",
            "Imatinib",
            "small molecule",
            IMATINIB,
            targets=partner(
                "target",
                1,
                "BE0000536",
                "Tyrosine-protein kinase ABL1",
                ["inhibitor"],
                [("P00519", "ABL1", "HGNC:76")],
            )
            + partner(
                "target",
                2,
                "BE0000325",
                "Mast/stem cell growth factor receptor Kit",
                ["inhibitor"],
                [("P10721", "KIT", "HGNC:6342")],
                known="unknown",
            )
            + partner(
                "target",
                3,
                "BE0004880",
                "Platelet-derived growth factor receptor",
                ["antagonist"],
                [("P16234", "PDGFRA", "HGNC:8803"), ("P09619", "PDGFRB", "HGNC:8804")],
            ),
            enzymes=partner(
                "enzyme",
                1,
                "BE0002638",
                "Cytochrome P450 3A4",
                ["substrate"],
                [("P08684", "CYP3A4", "HGNC:2637")],
                known="no",
            ),
            transporters=partner(
                "transporter",
                1,
                "BE0001032",
                "Multidrug resistance protein 1",
                ["substrate", "inhibitor"],
                [("P08183", "ABCB1", "HGNC:40")],
            ),
            carriers=partner(
                "carrier",
                1,
                "BE0000530",
                "Serum albumin",
                ["binder"],
                [("P02768", "ALB", "HGNC:399")],
                known="unknown",
            ),
        ),
        drug(
            "DB00945",
            "Acetylsalicylic acid",
            "small molecule",
            ASPIRIN,
            targets=partner(
                "target",
                1,
                "BE0000017",
                "Prostaglandin G/H synthase 1",
                ["inhibitor"],
                [("P23219", "PTGS1", "HGNC:9604")],
            )
            + partner(
                "target",
                2,
                "BE0000062",
                "Prostaglandin G/H synthase 2",
                ["inhibitor", "acetylation"],
                [("P35354", "PTGS2", "HGNC:9605")],
            )
            + partner(
                "target",
                3,
                "BE0003578",
                "Dihydrofolate reductase",
                ["inhibitor"],
                [("P0ABQ4", "folA", "")],
                organism="Escherichia coli (strain K12)",
            ),
            enzymes=partner(
                "enzyme",
                1,
                "BE0002363",
                "Cytochrome P450 2C9",
                ["substrate"],
                [("P11712", "CYP2C9", "HGNC:2623")],
                known="no",
            ),
        ),
        drug(
            "DB03381",
            "Hexadecanal",
            "small molecule",
            HEXADECANAL,
            enzymes=partner(
                "enzyme",
                1,
                "BE0002370",
                "Fatty aldehyde dehydrogenase",
                ["substrate"],
                [("P51648", "ALDH3A2", "HGNC:403")],
                known="unknown",
            ),
        ),
    ]


def write_xml(path: Path, drugs: list[str], head: str = HEAD, tail: str = TAIL) -> Path:
    path.write_text(head + "".join(drugs) + tail, encoding="utf-8")
    return path


def key_of(smiles: str | None = None, inchi: str | None = None) -> str:
    """Largest-fragment InChIKey, computed here independently of the adapter."""
    mol = Chem.MolFromSmiles(smiles) if smiles else Chem.MolFromInchi(inchi)
    return Chem.MolToInchiKey(
        rdMolStandardize.Uncharger().uncharge(
            rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        )
    )


def _n(conn: Neo4jConnection, q: str, **kw: object) -> int:
    return conn.query(q, **kw)[0]["n"]


def counts(conn: Neo4jConnection) -> tuple[int, int, int]:
    return (
        _n(conn, "MATCH (c:Compound) RETURN count(c) AS n"),
        _n(conn, "MATCH (g:Gene) RETURN count(g) AS n"),
        _n(conn, "MATCH (:Compound)-[t:TARGETS]->(:Gene) RETURN count(t) AS n"),
    )


def test_xml_targets_only_humans_and_reingest(conn: Neo4jConnection, tmp_path: Path) -> None:
    path = write_xml(tmp_path / "full database.xml", sample_drugs())
    adapter = DrugBankAdapter(xml=path)
    adapter.ingest(conn, progress=False)
    # 4 top-level drugs (the pathway's nested <drug>s and interaction/salt ids are not drugs);
    # targets: F2; ABL1, KIT, PDGFRA+PDGFRB (one complex); PTGS1, PTGS2 (the E. coli target is dropped).
    assert counts(conn) == (4, 7, 7)
    st = adapter.stats
    assert (st["xml_drugs"], st["xml_drugs_without_structure"], st["xml_drugs_without_targets"]) == (4, 1, 1)
    assert (st["partners_other_organism"], st["no_structure"], st["structure_unparseable"]) == (1, 1, 0)
    ids = {
        r["id"]: r
        for r in conn.query(
            "MATCH (c:Compound) RETURN c.id AS id, c.drugbank_id AS db, "
            "c.name AS name, c.groups AS groups, c.smiles AS smiles"
        )
    }
    assert set(ids) == {"drugbank:DB00001", key_of(IMATINIB), key_of(ASPIRIN), key_of(HEXADECANAL)}
    assert ids[key_of(IMATINIB)]["db"] == "DB00619" and ids[key_of(IMATINIB)]["name"] == "Imatinib"
    assert ids[key_of(ASPIRIN)]["groups"] == ["approved", "vet_approved"]
    assert ids[key_of(ASPIRIN)]["smiles"] == Chem.MolToSmiles(Chem.MolFromSmiles(ASPIRIN))
    q = "MATCH (c:Compound) WHERE c.drugbank_id IN ['DB00171', 'DB06605'] RETURN count(c) AS n"
    assert _n(conn, q) == 0
    t = conn.query(
        "MATCH (c:Compound {drugbank_id: 'DB00619'})-[t:TARGETS]->(g:Gene) RETURN g.symbol AS g, "
        "t.actions AS a, t.known_action AS k, t.uniprot AS u, t.target_category AS cat, "
        "t.source AS s, g.uniprot AS gu, g.hgnc_id AS h ORDER BY g"
    )
    assert t == [
        {
            "g": "ABL1",
            "a": ["inhibitor"],
            "k": "yes",
            "u": "P00519",
            "cat": "target",
            "s": "drugbank",
            "gu": "P00519",
            "h": "HGNC:76",
        },
        {
            "g": "KIT",
            "a": ["inhibitor"],
            "k": "unknown",
            "u": "P10721",
            "cat": "target",
            "s": "drugbank",
            "gu": "P10721",
            "h": "HGNC:6342",
        },
        {
            "g": "PDGFRA",
            "a": ["antagonist"],
            "k": "yes",
            "u": "P16234",
            "cat": "target",
            "s": "drugbank",
            "gu": "P16234",
            "h": "HGNC:8803",
        },
        {
            "g": "PDGFRB",
            "a": ["antagonist"],
            "k": "yes",
            "u": "P09619",
            "cat": "target",
            "s": "drugbank",
            "gu": "P09619",
            "h": "HGNC:8804",
        },
    ]
    again = DrugBankAdapter(xml=path).ingest(conn, progress=False)
    assert (again.counts.nodes_created, again.counts.rels_created) == (0, 0)
    assert counts(conn) == (4, 7, 7)


def test_xml_all_categories_and_any_organism(conn: Neo4jConnection, tmp_path: Path) -> None:
    path = write_xml(tmp_path / "drugbank.xml", sample_drugs())
    adapter = DrugBankAdapter(
        xml=path, categories=("target", "enzyme", "carrier", "transporter"), organism=None
    )
    adapter.ingest(conn, progress=False)
    # + CYP3A4, ABCB1, ALB (imatinib), CYP2C9 (aspirin), ALDH3A2 (hexadecanal), FOLA (E. coli).
    assert counts(conn) == (4, 13, 13)
    assert adapter.stats["xml_drugs_without_targets"] == 0
    rows = conn.query(
        "MATCH (:Compound {drugbank_id: 'DB00619'})-[t:TARGETS]->(g:Gene {symbol: 'ABCB1'}) "
        "RETURN t.target_category AS c, t.actions AS a"
    )
    assert rows == [{"c": "transporter", "a": ["inhibitor", "substrate"]}]


VOCABULARY = """DrugBank ID,Accession Numbers,Common name,CAS,UNII,Synonyms,Standard InChI Key
DB00001,BIOD00024 | BTD00024,Lepirudin,138068-37-8,Y43GF64R34,Hirudin variant-1 | Lepirudin recombinant,
DB00006,BIOD00076 | BTD00076 | DB02351 | EXPT03302,Bivalirudin,128270-60-0,TN9BEX005G,Bivalirudina | \
Bivalirudinum,OIRCOABEOLEUMC-GEJPAHFPSA-N
DB00014,BIOD00113 | BTD00113,Goserelin,65807-02-5,0F65R8P09N,Goserelin | Goserelina,\
BLCLNMBMMGCOAS-URPVMXJPSA-N
DB00945,APRD00264 | DB08004,Acetylsalicylic acid,50-78-2,R16CO5Y76E,"2-Acetoxybenzenecarboxylic acid | \
2-Acetoxybenzoic acid | Acetylsalicylate | Aspirin",BSYNRYMUTXBXSQ-UHFFFAOYSA-N
"""


def test_vocabulary_with_xml(conn: Neo4jConnection, tmp_path: Path) -> None:
    vocab = tmp_path / "drugbank vocabulary.csv"
    vocab.write_text(VOCABULARY, encoding="utf-8")
    expected_rows = list(csv.DictReader(vocab.open(encoding="utf-8")))
    adapter = DrugBankAdapter(vocabulary=vocab)
    adapter.ingest(conn, progress=False)
    keyed = [r for r in expected_rows if r["Standard InChI Key"]]
    assert counts(conn)[0] == len(expected_rows)
    assert adapter.stats["inchikey_only"] == len(keyed)
    assert adapter.stats["no_structure"] == len(expected_rows)
    got = {
        r["db"]: r
        for r in conn.query(
            "MATCH (c:Compound) RETURN c.drugbank_id AS db, c.id AS id, c.synonyms AS syn, c.cas AS cas"
        )
    }
    for r in expected_rows:
        key = r["Standard InChI Key"]
        assert got[r["DrugBank ID"]]["id"] == (key or f"drugbank:{r['DrugBank ID']}")
        assert set(r["Synonyms"].split(" | ")) <= set(got[r["DrugBank ID"]]["syn"])
    # With the XML: aspirin's structure gives the same key as the vocabulary's; Lepirudin (no structure)
    # is one drugbank:DB00001 node; 4 vocabulary + 2 XML-only drugs.
    xml = write_xml(tmp_path / "drugbank.xml", sample_drugs())
    DrugBankAdapter(xml=xml, vocabulary=vocab).ingest(conn, progress=False)
    assert counts(conn)[0] == 6
    asp = conn.query("MATCH (c:Compound {drugbank_id: 'DB00945'}) RETURN c.id AS id, c.synonyms AS s")
    assert len(asp) == 1 and asp[0]["id"] == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N" and "Aspirin" in asp[0]["s"]


# ------------------------------------------------------------------------------------------ bad input
def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    broken = "<drug type='small molecule'>\n<name>Broken</nam>\n</drug>\n"
    text = HEAD + "".join(sample_drugs()[:2]) + broken + TAIL
    path = tmp_path / "broken.xml"
    path.write_text(text, encoding="utf-8")
    bad_line = text.split("\n").index("<name>Broken</nam>") + 1
    with pytest.raises(InputFormatError, match=rf"broken\.xml, line {bad_line}: malformed XML"):
        list(DrugBankAdapter(xml=path).batches())


@pytest.mark.parametrize(
    "head",
    [
        HEAD.replace('http://www.drugbank.ca"', 'http://example.org/db"', 1),
        HEAD.replace("<drugbank ", "<drugs "),
    ],
)
def test_wrong_namespace_or_root(tmp_path: Path, head: str) -> None:
    tail = TAIL if "<drugbank " in head else "</drugs>\n"
    path = write_xml(tmp_path / "other.xml", sample_drugs()[:1], head=head, tail=tail)
    with pytest.raises(InputFormatError, match=r"other\.xml, root element: expected <drugbank> in namespace"):
        list(iter_xml_drugs(path))


def test_strict_names_the_drug(tmp_path: Path) -> None:
    path = write_xml(tmp_path / "db.xml", sample_drugs())
    with pytest.raises(InputFormatError, match=r"db\.xml, drug DB00001 \(record 1\): no structure"):
        list(DrugBankAdapter(xml=path, strict=True).batches())
    path = write_xml(tmp_path / "db.xml", sample_drugs()[1:])
    with pytest.raises(InputFormatError, match=r"db\.xml, drug DB03381 \(record 3\): no target records"):
        list(DrugBankAdapter(xml=path, strict=True).batches())


def test_bad_tables_name_file_and_line(shared_data: Path, tmp_path: Path) -> None:
    src = (shared_data / "drugbank/drugbank.tsv").read_text(encoding="utf-8").split("\n")
    drugs = tmp_path / "drugbank.tsv"
    drugs.write_text("\n".join([src[0].replace("inchikey", "key"), *src[1:4]]) + "\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"drugbank\.tsv, line 1: header is missing .*'inchikey'"):
        list(DrugBankAdapter(drugs_tsv=drugs).batches())
    prot_src = (shared_data / "drugbank/proteins.tsv").read_text(encoding="utf-8").split("\n")
    drugs.write_text("\n".join(src[:4]) + "\n", encoding="utf-8")
    ids = {line.split("\t")[0] for line in src[1:4]}
    rows = [p for p in prot_src[1:] if p.split("\t")[0] in ids][:3]
    rows[1] = rows[1].replace("\t", "\tx", 3).replace("\tx", "\t", 2)  # entrez id 'x...'
    prot = tmp_path / "proteins.tsv"
    prot.write_text("\n".join([prot_src[0], *rows]) + "\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"proteins\.tsv, line 3: entrez_gene_id must be an integer"):
        list(DrugBankAdapter(drugs_tsv=drugs, proteins_tsv=prot).batches())
    vocab = tmp_path / "vocabulary.csv"
    vocab.write_text(VOCABULARY.replace("Goserelin,65807-02-5", "Goserelin 65807-02-5"), encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"vocabulary\.csv, line 4: expected 7 fields"):
        list(DrugBankAdapter(vocabulary=vocab).batches())


# --------------------------------------------------------------------------------------------- memory
def _peak_bytes(path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    n = sum(1 for _ in iter_xml_drugs(path, ("target", "enzyme")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n > 0
    return peak


def test_xml_streaming_memory_stays_flat(tmp_path: Path) -> None:
    """Synthetic XML (the sample drugs repeated under new ids): 10x the drugs must not need ~10x memory."""
    template = sample_drugs()[1]
    small, big = tmp_path / "small.xml", tmp_path / "big.xml"
    write_xml(small, [template.replace("DB00619", f"DB9{i:04d}") for i in range(300)])
    write_xml(big, [template.replace("DB00619", f"DB9{i:04d}") for i in range(3000)])
    p_small, p_big = _peak_bytes(small), _peak_bytes(big)
    assert big.stat().st_size > 9 * small.stat().st_size
    assert p_big < 2 * p_small, (p_small, p_big)
    assert p_big < big.stat().st_size / 5  # the parsed tree of the file would be several times its size


# ------------------------------------------------------------------------------ derived TSVs (real)
def _db_tables(shared_data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    drugs = pd.read_csv(shared_data / "drugbank/drugbank.tsv", sep="\t", dtype=str, keep_default_na=False)
    prot = pd.read_csv(shared_data / "drugbank/proteins.tsv", sep="\t", dtype=str, keep_default_na=False)
    return drugs, prot


def write_tsv_subset(shared_data: Path, out: Path, ids: set[str]) -> tuple[Path, Path]:
    drugs, prot = _db_tables(shared_data)
    d, p = out / "drugbank.tsv", out / "proteins.tsv"
    drugs[drugs.drugbank_id.isin(ids)].to_csv(d, sep="\t", index=False)
    prot[prot.drugbank_id.isin(ids)].to_csv(p, sep="\t", index=False)
    return d, p


def _gene_symbols(shared_data: Path) -> dict[str, str]:
    g = pd.read_csv(shared_data / "lincs/geneinfo.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    g = g[(g.pr_gene_symbol != "") & g.pr_gene_id.str.fullmatch(r"\d+")].drop_duplicates("pr_gene_id")
    return dict(zip(g.pr_gene_id, g.pr_gene_symbol.str.upper(), strict=True))


def _expected_id(row: pd.Series) -> str:
    if row.inchi:
        mol = Chem.MolFromInchi(row.inchi)
        if mol is not None:
            return Chem.MolToInchiKey(
                rdMolStandardize.Uncharger().uncharge(
                    rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
                )
            )
    return row.inchikey.removeprefix("InChIKey=") or f"drugbank:{row.drugbank_id}"


def test_tsv_counts_match_input(conn: Neo4jConnection, shared_data: Path, tmp_path: Path) -> None:
    drugs, _ = _db_tables(shared_data)
    ids = set(drugs.drugbank_id.iloc[::25])  # ~310 drugs: small molecules, biotech, shared structures
    d, p = write_tsv_subset(shared_data, tmp_path, ids)
    gene_info = shared_data / "lincs/geneinfo.tsv.gz"
    adapter = DrugBankAdapter(drugs_tsv=d, proteins_tsv=p, gene_info=gene_info)
    adapter.ingest(conn, progress=False)

    sub = pd.read_csv(d, sep="\t", dtype=str, keep_default_na=False)
    prot = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    sub["cid"] = sub.apply(_expected_id, axis=1)
    sym = _gene_symbols(shared_data)
    t = prot[(prot.category == "target") & (prot.organism == "Human")].copy()
    t["symbol"] = t.entrez_gene_id.map(sym)
    t = t.merge(sub[["drugbank_id", "cid"]], on="drugbank_id")
    mapped = t[t.symbol.notna()]
    assert counts(conn) == (
        sub.cid.nunique(),
        mapped.symbol.nunique(),
        len(mapped[["cid", "symbol"]].drop_duplicates()),
    )
    st = adapter.stats
    assert st["unmapped_entrez_rows"] == int(t.symbol.isna().sum())
    assert st["no_structure"] == int((sub.inchi == "").sum())
    assert st["tsv_drug_rows"] == len(sub) and st["compounds"] == sub.cid.nunique()
    per_db = conn.query("MATCH (c:Compound) UNWIND c.drugbank_ids AS db RETURN count(DISTINCT db) AS n")
    assert per_db[0]["n"] == len(sub)
    again = DrugBankAdapter(drugs_tsv=d, proteins_tsv=p, gene_info=gene_info).ingest(conn, progress=False)
    assert (again.counts.nodes_created, again.counts.rels_created) == (0, 0)


# --------------------------------------------------------------------------------------- cross-source
def _hub_tables(shared_data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = []
    for name in ("repurposing_drugs_20200324.txt", "repurposing_samples_20200324.txt"):
        path = shared_data / "repurposing_hub" / name
        lines = path.read_text(encoding="utf-8").split("\n")
        skip = next(i for i, ln in enumerate(lines) if not ln.startswith("!"))
        out.append(pd.read_csv(path, sep="\t", skiprows=skip, dtype=str, keep_default_na=False))
    return out[0], out[1]


def write_hub_subset(shared_data: Path, out: Path, names: set[str]) -> tuple[Path, Path]:
    """The real files' '!' block, header and the verbatim lines of the chosen drugs."""
    paths = []
    for name, col in (("repurposing_drugs_20200324.txt", 0), ("repurposing_samples_20200324.txt", 1)):
        lines = (shared_data / "repurposing_hub" / name).read_text(encoding="utf-8").split("\n")
        first = next(i for i, ln in enumerate(lines) if not ln.startswith("!"))
        keep = lines[: first + 1] + [
            ln
            for ln in lines[first + 1 :]
            if ln.strip() and next(csv.reader([ln.rstrip("\r")], delimiter="\t"))[col] in names
        ]
        (out / name).write_text("\n".join(keep) + "\n", encoding="utf-8")
        paths.append(out / name)
    return paths[0], paths[1]


def test_hub_and_drugbank_join_on_structure_not_name(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path
) -> None:
    hub_drugs, samples = _hub_tables(shared_data)
    db, _ = _db_tables(shared_data)
    db["ik"] = db.inchikey.str.removeprefix("InChIKey=")
    # The join, computed here: Hub drugs with one InChIKey that exactly one DrugBank drug has.
    per_name = samples.groupby("pert_iname").InChIKey.nunique()
    one = samples[samples.pert_iname.isin(per_name[per_name == 1].index)].drop_duplicates("pert_iname")
    one = one[~one.InChIKey.duplicated(keep=False)]
    db_once = db[(db.ik != "") & ~db.ik.duplicated(keep=False)]
    joined = one.merge(db_once, left_on="InChIKey", right_on="ik").sort_values("InChIKey").iloc[:8]
    # Same name, different structure (block 1 differs): must never be merged.
    db["nn"], samples["nn"] = db.name.str.lower(), samples.pert_iname.str.lower()
    clash = samples.merge(db[db.inchi != ""], on="nn").drop_duplicates("pert_iname")
    clash = clash[
        clash.smiles.map(lambda s: key_of(s.split(" |")[0])[:14])
        != clash.inchi.map(lambda i: key_of(inchi=i)[:14])
    ].iloc[:3]
    assert len(joined) == 8 and len(clash) == 3

    hub_d, hub_s = write_hub_subset(shared_data, tmp_path, set(joined.pert_iname) | set(clash.pert_iname))
    RepurposingHubAdapter(hub_d, hub_s).ingest(conn, progress=False)
    n_hub = counts(conn)[0]
    d, p = write_tsv_subset(shared_data, tmp_path, set(joined.drugbank_id) | set(clash.drugbank_id))
    adapter = DrugBankAdapter(
        drugs_tsv=d,
        proteins_tsv=p,
        gene_info=shared_data / "lincs/geneinfo.tsv.gz",
        index=CompoundIndex.from_graph(conn),
    )
    adapter.ingest(conn, progress=False)

    for row in joined.itertuples():
        nodes = conn.query(
            "MATCH (c:Compound) WHERE c.drugbank_id = $db OR c.pert_id = $pert "
            "RETURN c.id AS id, c.sources AS src",
            db=row.drugbank_id,
            pert=row.broad_id[:13],
        )
        assert [{**n, "src": sorted(n["src"])} for n in nodes] == [
            {"id": key_of(row.smiles.split(" |")[0]), "src": ["drugbank", "repurposing_hub"]}]
    for row in clash.itertuples():
        nodes = conn.query(
            "MATCH (c:Compound) WHERE c.drugbank_id = $db OR $name IN c.synonyms "
            "RETURN c.id AS id, c.sources AS src ORDER BY id",
            db=row.drugbank_id,
            name=row.pert_iname,
        )
        assert len(nodes) == 2 and sorted(n["src"][0] for n in nodes) == ["drugbank", "repurposing_hub"]
        assert all(len(n["src"]) == 1 for n in nodes)
    # Only the clashing DrugBank drugs added nodes: the joined ones landed on the Hub's.
    assert counts(conn)[0] == n_hub + len(clash)
    assert adapter.stats["match_levels"] == {"inchikey": len(joined) + len(clash)}


def test_reingest_with_graph_index_keeps_name_matches(
    conn: Neo4jConnection, shared_data: Path, tmp_path: Path
) -> None:
    hub_d, hub_s = write_hub_subset(shared_data, tmp_path, {"7-nitroindazole"})
    RepurposingHubAdapter(hub_d, hub_s).ingest(conn, progress=False)
    d, p = write_tsv_subset(shared_data, tmp_path, {"DB02207"})  # 7-Nitroindazole: no structure in DrugBank
    gene_info = shared_data / "lincs/geneinfo.tsv.gz"
    first = DrugBankAdapter(
        drugs_tsv=d, proteins_tsv=p, gene_info=gene_info, index=CompoundIndex.from_graph(conn)
    )
    first.ingest(conn, progress=False)
    # no structure, no key: a node of its own while ingesting, then one with the Hub's by its name
    assert first.stats["match_levels"] == {"none": 1} and first.stats["compounds_merged"] == 1
    assert counts(conn)[0] == 1
    assert conn.query("MATCH (c:Compound) RETURN c.match_drugbank AS m") == [{"m": "name"}]
    # The re-run finds the node through the source id stored on it (Compound.source_ids).
    second = DrugBankAdapter(
        drugs_tsv=d, proteins_tsv=p, gene_info=gene_info, index=CompoundIndex.from_graph(conn)
    )
    report = second.ingest(conn, progress=False)
    assert counts(conn)[0] == 1
    assert report.counts.nodes_created == 0 and report.counts.rels_created == 0
