"""Whole-graph maintenance used by tests and benchmarks."""

from __future__ import annotations

from moakg.kg.connection import Neo4jConnection


def clear_graph(conn: Neo4jConnection) -> None:
    """Delete every node and relationship but keep the schema.

    Constraints and indexes are not data and stay; the ``(:SchemaVersion)`` node that ``moakg db init``
    wrote is kept too, so the database still counts as initialised (``require_schema`` passes) and the
    next write needs no ``db init``. Deletes in batches of Neo4j's default size
    (``CALL ... IN TRANSACTIONS``), so a large graph never needs one huge transaction.
    """
    with conn.session() as s:  # CALL ... IN TRANSACTIONS needs an auto-commit transaction
        s.run("MATCH (n) WHERE NOT n:SchemaVersion CALL (n) { DETACH DELETE n } IN TRANSACTIONS").consume()
