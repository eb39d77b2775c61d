"""Merging nodes of one label into one: relationships moved, properties replaced, the others deleted.

Used by compound identity resolution (:mod:`moakg.ingest.identity`), which decides *what* is one
compound; this module only knows *how* to make two nodes one in Neo4j without APOC (which the local
server and a stock Docker image lack). The Cypher is generated from the schema: for every relationship
type that can start or end at the label, one statement moves the absorbed nodes' relationships of that
type to the kept node (``MERGE`` on the type's ``merge_on`` properties, as the writer does, so two
copies of one fact become one), dropping those that would become self-loops. Everything runs in one
transaction: a failure leaves the graph as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neo4j import ManagedTransaction

from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import RelType, _ident, current_schema


@dataclass(frozen=True)
class NodeMerge:
    """Make ``keep`` and ``absorb`` one node: ``keep`` (by key) survives with ``props`` (all of them,
    the key included: this is how a node is re-keyed), ``absorb`` are deleted after their relationships
    moved to it. ``absorb`` may be empty (a re-key or a property update)."""

    keep: str
    props: Mapping[str, Any]
    absorb: Sequence[str] = field(default_factory=tuple)


def _touches(rel: RelType, label: str) -> tuple[bool, bool]:
    return (label in rel.start or "*" in rel.start), (label in rel.end or "*" in rel.end)


def move_queries(label: str) -> list[str]:
    """One statement per (relationship type, direction) that can touch ``label``: moves every
    relationship of an absorbed node (``$pairs``: ``{old, keep}``) to the kept node."""
    schema = current_schema()
    lab, key = _ident(label), _ident(schema.key_of(label))
    out = []
    for rel in schema.relationships.values():
        t = _ident(rel.name)
        merge = ", ".join(f"{_ident(p)}: props.{_ident(p)}" for p in rel.merge_on)
        merge_props = f" {{{merge}}}" if merge else ""
        out_dir, in_dir = _touches(rel, label)
        for outgoing, applies in ((True, out_dir), (False, in_dir)):
            if not applies:
                continue
            pattern = "(o)-[r:{t}]->(x)" if outgoing else "(x)-[r:{t}]->(o)"
            new = f"(k)-[n:{t}{merge_props}]->(x)" if outgoing else f"(x)-[n:{t}{merge_props}]->(k)"
            # A relationship between two nodes that become one (or already one with the kept node) goes.
            out.append(
                f"UNWIND $pairs AS p MATCH (o:{lab} {{{key}: p.old}}) MATCH (k:{lab} {{{key}: p.keep}}) "
                f"MATCH {pattern.format(t=t)} WITH p, k, o, r, x, properties(r) AS props "
                f"FOREACH (_ IN CASE WHEN x = k OR x = o OR x.{key} IN p.absorbed THEN [] ELSE [1] END | "
                f"MERGE {new} SET n += props) "
                "DELETE r RETURN count(*) AS n"
            )
    return out


def merge_nodes(conn: Neo4jConnection, label: str, merges: Sequence[NodeMerge]) -> dict[str, int]:
    """Apply ``merges`` in one transaction; returns ``{nodes_absorbed, rels_moved, nodes_updated}``."""
    if not merges:
        return {"nodes_absorbed": 0, "rels_moved": 0, "nodes_updated": 0}
    schema = current_schema()
    lab, key = _ident(label), _ident(schema.key_of(label))
    pairs = [{"old": old, "keep": m.keep, "absorbed": list(m.absorb)} for m in merges for old in m.absorb]
    updates = [{"keep": m.keep, "props": dict(m.props)} for m in merges]
    moves = move_queries(label)

    def work(tx: ManagedTransaction) -> dict[str, int]:
        moved = 0
        if pairs:
            for q in moves:
                moved += int(tx.run(q, pairs=pairs).single()["n"])
            tx.run(f"UNWIND $old AS id MATCH (o:{lab} {{{key}: id}}) DETACH DELETE o",
                   old=[p["old"] for p in pairs]).consume()
        tx.run(f"UNWIND $updates AS u MATCH (k:{lab} {{{key}: u.keep}}) SET k = u.props",
               updates=updates).consume()
        return {"nodes_absorbed": len(pairs), "rels_moved": moved, "nodes_updated": len(updates)}

    return conn.write(work)
