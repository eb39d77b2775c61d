"""Compound identity by structure (RDKit InChIKey) and its fallbacks."""

from __future__ import annotations

from moakg.ingest.compounds import CompoundIndex, normalise_inchikey, structure_inchikey
from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import NodeBatch, run_ingest

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ASPIRIN_KEY = "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
# The same parent as a sodium salt with a CXSMILES block RDKit does not know (ChemAxon THB:).
ASPIRIN_SALT_CX = "CC(=O)Oc1ccccc1C(=O)[O-].[Na+] |THB:1:2:3.4|"
L_ALANINE, D_ALANINE = "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"


def test_structure_key_ignores_salts_and_unknown_cxsmiles_blocks() -> None:
    assert structure_inchikey(ASPIRIN) == ASPIRIN_KEY
    assert structure_inchikey(ASPIRIN_SALT_CX) == ASPIRIN_KEY
    assert structure_inchikey(inchi="InChI=1S/C9H8O4/c1-6(10)13-8-5-3-2-4-7(8)9(11)12/h2-5H,1H3,(H,11,12)") \
        == ASPIRIN_KEY
    assert structure_inchikey("not a smiles") is None
    assert normalise_inchikey(f"InChIKey={ASPIRIN_KEY}") == ASPIRIN_KEY
    assert normalise_inchikey("BSYNRYMUTXBXSQ") is None


def test_resolution_levels() -> None:
    idx = CompoundIndex()
    a = idx.resolve("lincs", "BRD-A", smiles=ASPIRIN)
    assert (a.id, a.match_level, a.structure_parsed) == (ASPIRIN_KEY, "inchikey", True)
    # Another source, same parent structure as a salt: the same node.
    assert idx.resolve("hub", "aspirin", smiles=ASPIRIN_SALT_CX).id == ASPIRIN_KEY
    # Unparseable structure: the source's own InChIKey is used.
    b = idx.resolve("drugbank", "DB1", smiles="C1CC(", inchikey=f"InChIKey={ASPIRIN_KEY}")
    assert (b.id, b.structure_parsed) == (ASPIRIN_KEY, False)
    # Another stereo form: a node of its own here (moakg.ingest.identity links the two after the ingest);
    # which source gave which key is recorded for it.
    lincs_ala = idx.resolve("lincs", "BRD-ALA", smiles=L_ALANINE)
    d1 = idx.resolve("drugbank", "DB2", smiles=D_ALANINE)
    assert d1.id == structure_inchikey(D_ALANINE) != lincs_ala.id and d1.match_level == "inchikey"
    assert d1.node_props("drugbank")["source_keys"] == [f"drugbank|{d1.id}"]
    # No key at all: the source record is the key.
    none = idx.resolve("drugbank", "DB11")
    assert (none.id, none.match_level) == ("drugbank:DB11", "none")
    assert none.node_props("drugbank")["source_keys"] is None


def test_a_record_lands_on_the_node_its_source_id_reached_before(conn: Neo4jConnection) -> None:
    """A node another source created from an id alone (a consensus row's DrugBank id) receives the
    record with that id, and a re-run with a fresh index from the graph lands on the same nodes."""
    run_ingest(conn, "l1000_consensus", [NodeBatch("Compound", "id", [
        {"id": "drugbank:DB00160", "source_ids": ["drugbank:DB00160"], "drugbank_id": "DB00160"}])],
        progress=False)
    idx = CompoundIndex.from_graph(conn)
    db = idx.resolve("drugbank", "DB00160", smiles=D_ALANINE)
    assert (db.id, db.match_level) == ("drugbank:DB00160", "none")  # the node keyed by its own record
    assert db.node_props("drugbank")["inchikey_aliases"] == [structure_inchikey(D_ALANINE)]
    row = {**db.node_props("drugbank"), "name": "D-alanine", "synonyms": ["D-alanine", "ala"]}
    run_ingest(conn, "drugbank", [NodeBatch("Compound", "id", [row])], progress=False)
    again = CompoundIndex.from_graph(conn).resolve("drugbank", "DB00160", smiles=D_ALANINE)
    assert again.id == "drugbank:DB00160"
    rep = run_ingest(conn, "drugbank", [NodeBatch("Compound", "id", [row])], progress=False)
    assert rep.counts.nodes_created == 0
    node = conn.query("MATCH (c:Compound) RETURN c.synonyms AS syn, c.source_ids AS ids, c.sources AS src")
    assert node == [{"syn": ["D-alanine", "ala"], "ids": ["drugbank:DB00160"],
                     "src": ["l1000_consensus", "drugbank"]}]
