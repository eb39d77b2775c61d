"""Small read-only lookups the training and explanation code needs from the graph.

The Cypher lives here (``kg/``), not in :mod:`moakg.gnn`; every value is a query parameter, and no
identifier is ever formatted from data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moakg.kg.connection import Neo4jConnection


def compound_smiles(conn: Neo4jConnection, keys: Sequence[str]) -> list[str | None]:
    """SMILES aligned with ``keys`` (``Compound.id``), None where the compound or its SMILES is unknown."""
    rows = conn.query("UNWIND $keys AS k MATCH (c:Compound {id: k}) RETURN c.id AS id, c.smiles AS smiles",
                      keys=list(keys))
    by_id = {r["id"]: r["smiles"] for r in rows}
    return [by_id.get(k) for k in keys]


def compound_name(conn: Neo4jConnection, key: str) -> str | None:
    """``Compound.name`` of the compound with id ``key`` (None when it has no name or does not exist)."""
    rows = conn.query("MATCH (c:Compound {id: $id}) RETURN c.name AS name", id=key)
    return rows[0]["name"] if rows else None


def model_run(conn: Neo4jConnection, run_id: str) -> dict[str, Any] | None:
    """Every property of ``(:ModelRun {id: run_id})``, or None when there is no such run."""
    rows = conn.query("MATCH (r:ModelRun {id: $id}) RETURN properties(r) AS p", id=run_id)
    return rows[0]["p"] if rows else None


def model_run_ids(conn: Neo4jConnection, limit: int = 10) -> list[str]:
    """Ids of the first ``limit`` ModelRuns in id order (to suggest when a run id is wrong)."""
    rows = conn.query("MATCH (r:ModelRun) RETURN r.id AS id ORDER BY id LIMIT $limit", limit=int(limit))
    return [r["id"] for r in rows]


def signature_vectors(conn: Neo4jConnection) -> list[dict[str, Any]]:
    """Every signature with a landmark z-vector, in ``sig_id`` order: ``sig_id``, ``z`` (the
    ``z_landmark`` list) and ``moas``, the distinct ``MoA.name`` of its compound(s) (empty when none)."""
    return conn.query(
        "MATCH (s:Signature) WHERE s.z_landmark IS NOT NULL "
        "OPTIONAL MATCH (c:Compound)-[:HAS_SIGNATURE]->(s) "
        "OPTIONAL MATCH (c)-[:HAS_MOA]->(m:MoA) "
        "WITH s, collect(DISTINCT m.name) AS moas "
        "RETURN s.sig_id AS sig_id, s.z_landmark AS z, moas ORDER BY sig_id"
    )
