"""The exporter's Cypher, generated from the schema: one statement per label or relationship type.

Labels and relationship types cannot be query parameters without losing the key index, so the
exporter needs one statement per label and per relationship type. They are generated here from
:func:`moakg.kg.schema.current_schema` (only declared, identifier-checked names are interpolated; data
always travels as parameters) instead of hand-kept UNION branches, so a relationship declared in
``kg/schema.toml`` is exported with no other edit.

Every edge statement returns rows ``[src key, dst key, weight, source]``; ``weight`` is the declared
weight property (``null`` when the relationship has none) and ``$min_weight`` drops edges whose weight
property is below it, for relationships that declare ``min_weight`` (``null``: keep all; edges without
the property are kept).
"""

from __future__ import annotations

from moakg.kg.schema import GraphSchema, _ident, current_schema


def node_keys_query(label: str, schema: GraphSchema | None = None) -> str:
    """One page of ``label``'s keys after ``$last`` in key order (keyset paging), at most ``$limit``."""
    schema = schema or current_schema()
    key = _ident(schema.key_of(label))
    return (f"MATCH (n:{_ident(label)}) WHERE n.{key} > $last "
            f"RETURN n.{key} AS key ORDER BY key LIMIT $limit")


def _edge_query(rel: str, from_start: bool, schema: GraphSchema | None) -> str:
    schema = schema or current_schema()
    r = schema.rel(rel)
    if not r.exported:
        raise KeyError(f"relationship type {rel!r} has role {r.role!r} and is never exported")
    start, end = r.endpoints
    skey, ekey = _ident(schema.key_of(start)), _ident(schema.key_of(end))
    weight = f"r.{_ident(r.weight)}" if r.weight else "null"
    where = ""
    if r.min_weight:
        where = f" WHERE $min_weight IS NULL OR {weight} IS NULL OR {weight} >= $min_weight"
    if from_start:  # edges leaving the given start nodes
        match = f"MATCH (:{_ident(start)} {{{skey}: k}})-[r:{_ident(rel)}]->(b:{_ident(end)})"
        ret = f"RETURN k AS src, b.{ekey} AS dst"
    else:  # edges arriving at the given end nodes
        match = f"MATCH (a:{_ident(start)})-[r:{_ident(rel)}]->(:{_ident(end)} {{{ekey}: k}})"
        ret = f"RETURN a.{skey} AS src, k AS dst"
    return f"UNWIND $keys AS k {match}{where} {ret}, {weight} AS weight, r.source AS source"


def edges_from_query(rel: str, schema: GraphSchema | None = None) -> str:
    """Relationships ``rel`` that start at the nodes whose keys are ``$keys``."""
    return _edge_query(rel, True, schema)


def edges_to_query(rel: str, schema: GraphSchema | None = None) -> str:
    """Relationships ``rel`` that end at the nodes whose keys are ``$keys``."""
    return _edge_query(rel, False, schema)
