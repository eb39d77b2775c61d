"""Compound identity that does not depend on ingest order (moakg.ingest.identity), against Neo4j."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moakg.ingest.base import SourceAdapter
from moakg.ingest.compounds import CompoundIndex, structure_inchikey
from moakg.ingest.identity import plan
from moakg.ingest.l1000 import L1000Adapter
from moakg.ingest.l1000_io import write_gctx
from moakg.ingest.repurposing_hub import RepurposingHubAdapter
from moakg.ingest.runner import run_adapters
from moakg.kg.connection import Neo4jConnection
from moakg.kg.maintenance import clear_graph
from moakg.kg.writer import Batch, NodeBatch, RelBatch

DEMO = Path(__file__).resolve().parents[1] / "demo" / "data"
L_ALANINE, D_ALANINE = "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
IBUPROFEN, S_IBUPROFEN = "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"
THEOPHYLLINE = "Cn1c(=O)c2[nH]cnc2n(C)c1=O"


class RecordAdapter(SourceAdapter):
    """Compound records of one source, placed with CompoundIndex as every compound source places them,
    each with TARGETS edges (to see relationships survive merges)."""

    writes_compounds = True
    source = "records"

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__()
        self.records, self.index = records, CompoundIndex()

    def files(self) -> list[Path]:
        return []

    def batches(self) -> Iterator[Batch]:
        rows, genes, targets = [], set(), []
        for rec in self.records:
            ref_source = rec.get("ref_source", self.source)
            ident = self.index.resolve(ref_source, rec["rid"], smiles=rec.get("smiles"))
            rows.append({**ident.node_props(self.source), **ident.smiles_props(rec.get("smiles")),
                         "name": rec.get("name"),
                         "synonyms": [rec["name"]] if rec.get("name") else None,
                         "pert_ids": rec.get("pert_ids"), "drugbank_id": rec.get("drugbank_id")})
            for g in rec.get("targets", []):
                genes.add(g)
                targets.append({"start": ident.id, "end": g})
        yield NodeBatch("Compound", "id", rows)
        yield NodeBatch("Gene", "symbol", [{"symbol": g} for g in sorted(genes)])
        yield RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"), targets)


def adapter(source: str, records: list[dict[str, Any]]) -> RecordAdapter:
    cls = type(f"{source}_adapter", (RecordAdapter,), {"source": source})
    return cls(records)


SOURCES = {
    # two stereo forms of alanine in one source: two compounds; its racemic ibuprofen has one key
    "repurposing_hub": [
        {"rid": "l-ala", "name": "L-alanine", "smiles": L_ALANINE, "targets": ["GA"]},
        {"rid": "d-ala", "name": "D-alanine", "smiles": D_ALANINE},
        {"rid": "aspirin", "name": "aspirin", "smiles": ASPIRIN, "pert_ids": ["BRD-K00000001"]},
        {"rid": "ibuprofen", "name": "ibuprofen", "smiles": IBUPROFEN, "targets": ["PTGS1"]},
        {"rid": "caffeine", "name": "caffeine", "smiles": CAFFEINE},
    ],
    "drugbank": [
        {"rid": "DB1", "name": "D-Alanine", "smiles": D_ALANINE, "targets": ["GB"], "drugbank_id": "DB1"},
        {"rid": "DB3", "name": "dexibuprofen", "smiles": S_IBUPROFEN, "targets": ["PTGS2"],
         "drugbank_id": "DB3"},
        {"rid": "DB4", "name": "theophylline", "smiles": THEOPHYLLINE, "drugbank_id": "DB4"},
    ],
    # without structures: linked by pert_id (to the Hub's aspirin) and by name (caffeine)
    "lincs": [
        {"rid": "BRD-K00000001", "name": "BRD-K00000001", "targets": ["GC"]},
        {"rid": "BRD-U00000002", "name": "Caffeine", "targets": ["ADORA1"]},
    ],
    # a consensus matrix's way: a compound known only by its DrugBank id, re-keyed once DrugBank's
    # structure arrives, keeping its relationships
    "l1000_consensus": [
        {"rid": "DB4", "ref_source": "drugbank", "drugbank_id": "DB4", "targets": ["ADORA2A"]},
    ],
}


def snapshot(conn: Neo4jConnection) -> list[tuple]:
    rows = conn.query(
        "MATCH (c:Compound) OPTIONAL MATCH (c)-[:TARGETS]->(g:Gene) "
        "RETURN c.id AS id, c.inchikey AS key, c.sources AS sources, c.inchikey_aliases AS aliases, "
        "collect(g.symbol) AS targets, c.smiles AS smiles ORDER BY id")
    return [(r["id"], r["key"], sorted(r["sources"]), sorted(r["aliases"] or []), sorted(r["targets"]),
             r["smiles"]) for r in rows]


def ingest_in_order(conn: Neo4jConnection, order: tuple[str, ...], sources: dict) -> list[tuple]:
    clear_graph(conn)
    run_adapters(conn, [adapter(s, sources[s]) for s in order], progress=False)
    return snapshot(conn)


def test_every_order_of_four_sources_gives_the_same_compounds(conn: Neo4jConnection) -> None:
    key = structure_inchikey
    lo, hi = sorted([key(IBUPROFEN), key(S_IBUPROFEN)])
    # the merged ibuprofen shows the structure of the key it is keyed by, whichever source wrote last
    lo_smiles = IBUPROFEN if key(IBUPROFEN) == lo else S_IBUPROFEN
    want = sorted([
        (key(L_ALANINE), key(L_ALANINE), ["repurposing_hub"], [], ["GA"], L_ALANINE),
        (key(D_ALANINE), key(D_ALANINE), ["drugbank", "repurposing_hub"], [], ["GB"], D_ALANINE),
        (key(ASPIRIN), key(ASPIRIN), ["lincs", "repurposing_hub"], [], ["GC"], ASPIRIN),
        (lo, lo, ["drugbank", "repurposing_hub"], [hi], ["PTGS1", "PTGS2"], lo_smiles),
        (key(CAFFEINE), key(CAFFEINE), ["lincs", "repurposing_hub"], [], ["ADORA1"], CAFFEINE),
        (key(THEOPHYLLINE), key(THEOPHYLLINE), ["drugbank", "l1000_consensus"], [], ["ADORA2A"],
         THEOPHYLLINE),
    ])
    for order in itertools.permutations(SOURCES):
        assert ingest_in_order(conn, order, SOURCES) == want, order


def test_plan_is_empty_when_every_compound_is_resolved(conn: Neo4jConnection) -> None:
    ingest_in_order(conn, tuple(SOURCES), SOURCES)
    nodes = [r["props"] for r in conn.query("MATCH (c:Compound) RETURN properties(c) AS props")]
    assert plan(nodes) == []
    before = snapshot(conn)
    run_adapters(conn, [adapter(s, SOURCES[s]) for s in SOURCES], progress=False)  # a re-run
    assert snapshot(conn) == before
    # a source re-run alone, after the others: the last writer's SMILES does not stick
    run_adapters(conn, [adapter("drugbank", SOURCES["drugbank"])], progress=False)
    assert snapshot(conn) == before


def _three_drug_gctx(path: Path) -> Path:
    """A level-5 GCTX in the real layout with embedded CLUE column metadata and no pert_info: the
    three drugs of the issue (atorvastatin under two pert_ids) in four cell lines. The z-scores are
    synthetic (random); the identifiers are real LINCS pert_ids and landmark genes."""
    genes = pd.read_csv(DEMO / "geneinfo.tsv.gz", sep="\t", dtype=str)
    genes = genes[genes.is_lm == "True"].head(40)
    rows = pd.DataFrame({"pr_gene_symbol": genes.pr_gene_symbol.tolist(), "is_lm": 1},
                        index=genes.pr_gene_id.tolist())
    perts = [("BRD-K56343971", "vemurafenib"), ("BRD-K69726342", "atorvastatin"),
             ("BRD-U88459701", "atorvastatin"), ("BRD-K01826548", "venlafaxine")]
    cells = ["A375", "A549", "MCF7", "PC3"]
    cols = pd.DataFrame(
        [{"pert_id": p, "pert_iname": n, "pert_type": "trt_cp", "cell_id": c, "pert_idose": "10 uM",
          "pert_itime": "24 h"} for p, n in perts for c in cells],
        index=[f"CPC006_{c}_24H:{p}-001-01-1:10" for p, _ in perts for c in cells])
    z = np.random.default_rng(0).normal(size=(len(cols), len(rows))).astype(np.float32)
    return write_gctx(path, z, rows, cols)


def test_a_gctx_and_the_hub_in_either_order(conn: Neo4jConnection, tmp_path: Path) -> None:
    """The issue's case: GCTX first left every drug twice (a `lincs:` node with the signatures, the
    Hub's InChIKey node with the MoA); atorvastatin's second pert_id stayed apart in either order."""
    gctx = _three_drug_gctx(tmp_path / "three_drugs.gctx")
    hub = (DEMO / "repurposing_drugs.txt", DEMO / "repurposing_samples.txt")
    results = []
    for order in (("gctx", "hub"), ("hub", "gctx")):
        clear_graph(conn)
        make = {"gctx": lambda: L1000Adapter(gctx=gctx, top_k=5),
                "hub": lambda: RepurposingHubAdapter(*hub)}
        run_adapters(conn, [make[s]() for s in order], progress=False)
        rows = conn.query(
            "MATCH (c:Compound)-[:HAS_SIGNATURE]->(s:Signature) OPTIONAL MATCH (c)-[:HAS_MOA]->(m:MoA) "
            "RETURN c.id AS id, c.name AS name, count(DISTINCT s) AS sigs, collect(DISTINCT m.name) AS moas "
            "ORDER BY name")
        counts = conn.query("MATCH (n) WHERE NOT n:IngestRun RETURN labels(n)[0] AS l, count(*) AS n "
                            "ORDER BY l")
        rels = conn.query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n ORDER BY t")
        rows = [{**r, "moas": sorted(r["moas"])} for r in rows]
        results.append((rows, counts, rels))
        by_name = {r["name"]: r for r in rows}
        assert set(by_name) == {"atorvastatin", "vemurafenib", "venlafaxine"}, order
        assert by_name["atorvastatin"]["sigs"] == 8 and by_name["vemurafenib"]["sigs"] == 4
        assert by_name["vemurafenib"]["moas"] == ["raf inhibitor"]
        assert all(not r["id"].startswith("lincs:") for r in rows)
    assert results[0] == results[1]
