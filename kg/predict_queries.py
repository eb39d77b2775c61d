"""Read-only Cypher for ``moakg predict`` (:mod:`moakg.gnn.predict`): what it reads from the graph before it
adds new compounds. Every value is a query parameter."""

from __future__ import annotations

import json
from typing import Any

from moakg.kg.connection import Neo4jConnection

#: the IngestRun source of compounds added by ``moakg predict`` (not a data source: left out of a run's
#: data version, see :func:`training_runs`)
NEW_COMPOUNDS_SOURCE = "new_compounds"


def completed_run_params(conn: Neo4jConnection, source: str) -> dict[str, Any] | None:
    """The parameters of the newest completed IngestRun of ``source`` (None when there is none)."""
    rows = conn.query("MATCH (r:IngestRun {source: $source}) WHERE r.status = 'completed' "
                      "RETURN r.params AS params ORDER BY r.ended DESC LIMIT 1", source=source)
    if not rows or rows[0]["params"] is None:
        return None
    value = rows[0]["params"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def training_runs(conn: Neo4jConnection) -> list[str]:
    """Ids of the completed IngestRuns that a model's data version counts: every source but the new
    compounds ``moakg predict`` adds, sorted."""
    rows = conn.query("MATCH (r:IngestRun) WHERE r.status = 'completed' AND r.source <> $new "
                      "RETURN r.id AS id ORDER BY id", new=NEW_COMPOUNDS_SOURCE)
    return [r["id"] for r in rows]


def added_by(conn: Neo4jConnection, ids: list[str], ingest_run: str) -> list[str]:
    """Those of the Compounds ``ids`` that IngestRun ``ingest_run`` of ``moakg predict`` wrote and no
    source has written since (stamped with the run, ``sources`` only the new compounds)."""
    rows = conn.query("UNWIND $ids AS k MATCH (c:Compound {id: k}) WHERE c.ingest_run = $run "
                      "AND c.sources = [$new] RETURN c.id AS id ORDER BY id", ids=ids, run=ingest_run,
                      new=NEW_COMPOUNDS_SOURCE)
    return [r["id"] for r in rows]


def compound_labels(conn: Neo4jConnection, ids: list[str]) -> dict[str, dict[str, list[str]]]:
    """``{Compound.id: {"moas": [...], "targets": [...], "has_signature": bool}}`` of the given compounds that
    exist, so that compounds the graph already knows are flagged, not scored as new."""
    rows = conn.query(
        "UNWIND $ids AS k MATCH (c:Compound {id: k}) "
        "RETURN k AS id, [(c)-[:HAS_MOA]->(m:MoA) | m.name] AS moas, "
        "[(c)-[:TARGETS]->(g:Gene) | g.symbol] AS targets, EXISTS { (c)-[:HAS_SIGNATURE]->() } AS sig",
        ids=ids)
    return {r["id"]: {"moas": sorted(r["moas"]), "targets": sorted(r["targets"]), "has_signature": r["sig"]}
            for r in rows}
