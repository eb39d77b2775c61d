"""The exporter's Cypher, generated from the schema: one statement per label or relationship type.

Labels and relationship types cannot be query parameters without losing the key index, so the
exporter needs one statement per label and per relationship type. They are generated here from
:func:`moakg.kg.schema.current_schema` (only declared, identifier-checked names are interpolated; data
always travels as parameters) instead of hand-kept UNION branches, so a relationship declared in
``kg/schema.toml`` is exported with no other edit.

Two families:

- by internal node id (:func:`node_keys_query`, :func:`node_ids_query`, :func:`edge_lists_query`), what
  the export itself reads. Node keys and ids come back as two lists per page; edges as one row per start
  node and source: the start node's internal id, the source and two lists, the end nodes' internal ids
  and the edges' weights (already ``weight * scale``, ``missing`` where the edge has no weight property).
  The driver then decodes lists of numbers instead of one record of key strings per edge (see
  :mod:`moakg.kg.export`).
- by node key (:func:`edges_from_query`, :func:`edges_to_query`), rows ``[src key, dst key, weight,
  source]`` per edge, for the k-hop search from a few seeds; ``weight`` is the declared weight property
  (``null`` when the relationship has none).

Why internal ids: ``id(n)`` is deprecated in Neo4j 5 but still supported (the connection turns the
deprecation notifications off, :mod:`moakg.kg.connection`). Lists of integers decode far faster in the
driver than one record of key strings per edge, about ten times the edges per second end to end
(benchmarks/bench_export.py), and ``elementId(n)`` would be a string again. An id is stable while the
graph is not written, which an export assumes anyway (see :mod:`moakg.kg.export`); ids never leave one
export.

In both, ``$min_weight`` drops edges whose weight property is below it, for relationships that declare
``min_weight`` (``null``: keep all; edges without the property are kept).
"""

from __future__ import annotations

from moakg.kg.schema import GraphSchema, RelType, _ident, current_schema


def node_keys_query(label: str, schema: GraphSchema | None = None) -> str:
    """One page of ``label``'s keys after ``$last`` in key order (keyset paging), at most ``$limit``, as one
    row of two lists: ``keys`` (in key order) and the nodes' internal ``ids``."""
    schema = schema or current_schema()
    key = _ident(schema.key_of(label))
    return (f"MATCH (n:{_ident(label)}) WHERE n.{key} > $last "
            f"WITH n.{key} AS key, id(n) AS id ORDER BY key LIMIT $limit "
            "RETURN collect(key) AS keys, collect(id) AS ids")


def node_ids_query(label: str, schema: GraphSchema | None = None) -> str:
    """The internal ids of the ``label`` nodes whose keys are ``$keys``, as one row of two lists: ``keys``
    (those found) and ``ids``."""
    schema = schema or current_schema()
    key = _ident(schema.key_of(label))
    return (f"UNWIND $keys AS k MATCH (n:{_ident(label)} {{{key}: k}}) "
            "RETURN collect(k) AS keys, collect(id(n)) AS ids")


def _exported(rel: str, schema: GraphSchema) -> RelType:
    r = schema.rel(rel)
    if not r.exported:
        raise KeyError(f"relationship type {rel!r} has role {r.role!r} and is never exported")
    return r


def _min_weight_filter(r: RelType) -> str:
    if not r.min_weight or not r.weight:  # the schema allows no min_weight without a weight
        return ""
    weight = f"r.{_ident(r.weight)}"
    return f" WHERE $min_weight IS NULL OR {weight} IS NULL OR {weight} >= $min_weight"


def edge_lists_query(rel: str, schema: GraphSchema | None = None) -> str:
    """Relationships ``rel`` that start at the nodes whose internal ids are ``$ids``, one row per start node
    and source: ``[src id, source, dst ids, weights]`` (``weights`` only for relationships with a weight).

    ``source`` is ``r.source`` with ``null`` as ``''`` (the exporter has always named both ``''``). A start
    node without such relationships gives no row. Parameters: ``$ids``, ``$min_weight`` (relationships
    that declare ``min_weight``) and ``$scale``, ``$missing`` (relationships with a weight).
    """
    schema = schema or current_schema()
    r = _exported(rel, schema)
    start, end = r.endpoints
    cols = "collect(id(b)) AS dst"
    if r.weight:
        cols += f", collect(coalesce(toFloat(r.{_ident(r.weight)}) * $scale, $missing)) AS w"
    return (
        f"UNWIND $ids AS i MATCH (a:{_ident(start)}) WHERE id(a) = i "
        f"CALL (a) {{ MATCH (a)-[r:{_ident(rel)}]->(b:{_ident(end)}){_min_weight_filter(r)} "
        f"WITH b, r, coalesce(r.source, '') AS source RETURN source, {cols} }} "
        f"RETURN i AS src, source, dst{', w' if r.weight else ''}"
    )


def _edge_query(rel: str, from_start: bool, schema: GraphSchema | None) -> str:
    schema = schema or current_schema()
    r = _exported(rel, schema)
    start, end = r.endpoints
    skey, ekey = _ident(schema.key_of(start)), _ident(schema.key_of(end))
    weight = f"r.{_ident(r.weight)}" if r.weight else "null"
    where = _min_weight_filter(r)
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
