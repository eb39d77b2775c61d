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
    a = idx.resolve("lincs", "BRD-A", smiles=ASPIRIN, name="aspirin")
    assert (a.id, a.match_level, a.structure_parsed) == (ASPIRIN_KEY, "inchikey", True)
    # Another source, same parent structure as a salt: the same node.
    assert idx.resolve("hub", "aspirin", smiles=ASPIRIN_SALT_CX).id == ASPIRIN_KEY
    # Unparseable structure: the source's own InChIKey is used.
    b = idx.resolve("drugbank", "DB1", smiles="C1CC(", inchikey=f"InChIKey={ASPIRIN_KEY}")
    assert (b.id, b.structure_parsed) == (ASPIRIN_KEY, False)
    # Another stereo form from another source: connectivity match, and the full key is remembered.
    lincs_ala = idx.resolve("lincs", "BRD-ALA", smiles=L_ALANINE, name="alanine")
    d1 = idx.resolve("drugbank", "DB2", smiles=D_ALANINE)
    assert (d1.id, d1.match_level, d1.inchikey) == (lincs_ala.id, "inchikey_connectivity", None)
    d2 = idx.resolve("hub", "d-alanine", smiles=D_ALANINE)
    assert d2.id == lincs_ala.id and d2.match_level == "inchikey_connectivity"
    assert d1.node_props("drugbank")["inchikey_aliases"] == [structure_inchikey(D_ALANINE)]


def test_one_source_keeps_two_stereo_forms_apart_and_never_merges_keys_on_names() -> None:
    idx = CompoundIndex()
    l_ = idx.resolve("hub", "l-ala", smiles=L_ALANINE, name="alanine")
    d_ = idx.resolve("hub", "d-ala", smiles=D_ALANINE, name="alanine")
    assert l_.id != d_.id
    # A different structure with the same name from another source: its own node, not a name match.
    other = idx.resolve("drugbank", "DB9", smiles=ASPIRIN, name="alanine")
    assert other.id == ASPIRIN_KEY and other.match_level == "inchikey"
    # No structure at all: a unique name match from another source is allowed ...
    named = idx.resolve("drugbank", "DB10", name="D-ALA", smiles=None)
    unknown = idx.resolve("drugbank", "DB11", name="never seen")
    assert (unknown.id, unknown.match_level) == ("drugbank:DB11", "none")
    assert named.match_level in {"name", "none"}
    # ... but an ambiguous name ("alanine" is two hub nodes) gives a node of its own.
    amb = idx.resolve("vocab", "X1", name="alanine")
    assert (amb.id, amb.match_level) == ("vocab:X1", "none")


def test_union_lists_accumulate_across_sources_and_graph_index_finds_reruns(conn: Neo4jConnection) -> None:
    idx = CompoundIndex()
    hub = idx.resolve("hub", "l-ala", smiles=L_ALANINE, name="L-alanine")
    run_ingest(conn, "hub", [NodeBatch("Compound", "id", [
        {**hub.node_props("hub"), "name": "L-alanine", "synonyms": ["L-alanine", "ala"]}])], progress=False)
    db_idx = CompoundIndex.from_graph(conn)
    db = db_idx.resolve("drugbank", "DB00160", smiles=D_ALANINE, name="D-alanine")
    assert db.id == hub.id and db.match_level == "inchikey_connectivity"
    row = {**db.node_props("drugbank"), "name": "D-alanine", "synonyms": ["D-alanine", "ala"]}
    run_ingest(conn, "drugbank", [NodeBatch("Compound", "id", [row])], progress=False)
    node = conn.query("MATCH (c:Compound) RETURN c.synonyms AS syn, c.source_ids AS ids, "
                      "c.inchikey_aliases AS aliases, c.match_drugbank AS lvl")
    assert node == [{"syn": ["L-alanine", "ala", "D-alanine"], "ids": ["hub:l-ala", "drugbank:DB00160"],
                     "aliases": [structure_inchikey(D_ALANINE)], "lvl": "inchikey_connectivity"}]
    # A re-run with a fresh index from the graph lands on the same node and changes nothing.
    again = CompoundIndex.from_graph(conn).resolve("drugbank", "DB00160", smiles=D_ALANINE, name="D-alanine")
    assert again.id == hub.id
    rep = run_ingest(conn, "drugbank", [NodeBatch("Compound", "id", [row])], progress=False)
    assert rep.counts.nodes_created == 0
    syn = conn.query("MATCH (c:Compound) RETURN c.synonyms AS syn")[0]["syn"]
    assert syn == ["L-alanine", "ala", "D-alanine"]
