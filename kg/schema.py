"""The graph schema, declared once in ``kg/schema.toml`` and read here (BioCypher's ``schema_config.yaml``
in spirit): node labels with their keys, unique / indexed / union-list / feature properties; relationship
types with their endpoints, role, reverse name, properties and export weight.

Everything else derives from :func:`current_schema`: the constraints and indexes (:func:`init_schema`),
the writer's keys and union lists, the exporter's node and edge types and their Cypher
(:mod:`moakg.kg.export_queries`), which edge types the GNNs pass messages on
(:meth:`GraphSchema.is_message_edge`), the relationship names of explanation metapaths
(:meth:`GraphSchema.edge_name`) and the docs table (:meth:`GraphSchema.markdown`, ``moakg db schema``).

``current_schema()`` is the packaged ``kg/schema.toml``, or the file ``MOAKG_SCHEMA`` names;
:func:`use_schema` swaps it for a block of code (tests, experiments with an extended schema).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection

DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent / "schema.toml"
ROLES = ("message", "label", "provenance", "result")
#: roles whose relationships the exporter reads (message edges and label edges)
EXPORTED_ROLES = ("message", "label")
ANY_LABEL = "*"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_FIELDS = {"key", "unique", "indexed", "union_lists", "features", "export", "properties", "description"}
_REL_FIELDS = {"from", "to", "role", "reverse", "properties", "weight", "scale", "missing", "min_weight",
               "merge_on", "description"}

EdgeType = tuple[str, str, str]


class SchemaError(UserError):
    """The schema file is invalid; the message names the file and the entry."""


def _ident(name: str) -> str:
    """Cypher identifiers cannot be parameters; only names declared in the schema are interpolated, and
    only after this check."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


@dataclass(frozen=True)
class NodeType:
    """One node label (``[nodes.<label>]``)."""

    label: str
    key: str
    unique: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()
    union_lists: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    export: bool = False
    properties: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class RelType:
    """One relationship type (``[relationships.<name>]``).

    ``start`` / ``end`` are label tuples (``("*",)`` = any exported label, result edges only).
    """

    name: str
    start: tuple[str, ...]
    end: tuple[str, ...]
    role: str
    reverse: str | None = None
    properties: tuple[str, ...] = ()
    weight: str | None = None
    scale: float = 1.0
    missing: float = 1.0
    min_weight: str | None = None
    merge_on: tuple[str, ...] = ()
    description: str = ""

    @property
    def exported(self) -> bool:
        return self.role in EXPORTED_ROLES

    @property
    def endpoints(self) -> tuple[str, str]:
        """``(start label, end label)`` of an exported relationship (one label each side)."""
        return self.start[0], self.end[0]

    def edge_type(self, reverse: bool = False) -> EdgeType:
        """``(start, TYPE, end)``, or ``(end, reverse name, start)``: the PyG edge types of the export."""
        if not self.exported or self.reverse is None:
            raise KeyError(f"relationship type {self.name!r} ({self.role}) is not exported")
        start, end = self.endpoints
        return (end, self.reverse, start) if reverse else (start, self.name, end)


@dataclass(frozen=True)
class GraphSchema:
    """The parsed, validated schema. Use :func:`current_schema` rather than building one."""

    version: int
    nodes: dict[str, NodeType]
    relationships: dict[str, RelType]
    path: Path

    # --- nodes --------------------------------------------------------------------------------------
    @property
    def node_keys(self) -> dict[str, str]:
        return {label: n.key for label, n in self.nodes.items()}

    @property
    def union_lists(self) -> dict[str, tuple[str, ...]]:
        return {label: n.union_lists for label, n in self.nodes.items() if n.union_lists}

    @property
    def export_labels(self) -> tuple[str, ...]:
        """Node types of the exported HeteroData, in declaration order."""
        return tuple(label for label, n in self.nodes.items() if n.export)

    def key_of(self, label: str) -> str:
        if label not in self.nodes:
            raise KeyError(f"node label {label!r} is not declared in {self.path}")
        return self.nodes[label].key

    # --- relationships ------------------------------------------------------------------------------
    @property
    def exported_rels(self) -> dict[str, tuple[str, str]]:
        """Relationship type -> (start label, end label) of every message and label relationship."""
        return {name: r.endpoints for name, r in self.relationships.items() if r.exported}

    def rel(self, name: str) -> RelType:
        if name not in self.relationships:
            raise KeyError(f"relationship type {name!r} is not declared in {self.path}")
        return self.relationships[name]

    def edge_type(self, rel: str, reverse: bool = False) -> EdgeType:
        return self.rel(rel).edge_type(reverse)

    def edge_name(self, name: str) -> tuple[RelType, bool]:
        """The relationship behind an exported edge name: ``("TARGETS") -> (TARGETS, True)``,
        ``("rev_TARGETS") -> (TARGETS, False)`` (False: the message runs against the relationship)."""
        for r in self.relationships.values():
            if r.exported and name == r.name:
                return r, True
            if r.exported and name == r.reverse:
                return r, False
        raise KeyError(f"edge type name {name!r} is neither an exported relationship nor its reverse "
                       f"in {self.path}")

    def is_label_edge(self, edge_type: EdgeType) -> bool:
        """True for label relationships (and their reverses): supervision, never messages."""
        try:
            return self.edge_name(edge_type[1])[0].role == "label"
        except KeyError:
            return False

    def is_message_edge(self, edge_type: EdgeType) -> bool:
        """True for message relationships and their reverses."""
        try:
            return self.edge_name(edge_type[1])[0].role == "message"
        except KeyError:
            return False

    # --- Neo4j DDL ----------------------------------------------------------------------------------
    def constraint_statements(self) -> list[str]:
        out = []
        for label, n in self.nodes.items():
            for prop in (n.key, *n.unique):
                out.append(f"CREATE CONSTRAINT {label.lower()}_{prop}_unique IF NOT EXISTS "
                           f"FOR (n:{_ident(label)}) REQUIRE n.{_ident(prop)} IS UNIQUE")
        return out

    def index_statements(self) -> list[str]:
        return [f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS "
                f"FOR (n:{_ident(label)}) ON (n.{_ident(prop)})"
                for label, n in self.nodes.items() for prop in n.indexed]

    # --- docs ---------------------------------------------------------------------------------------
    def markdown(self) -> str:
        """The node and relationship tables of docs/DESIGN.md (``|`` in descriptions escaped)."""
        lines = ["| node | key | unique / indexed | union lists | features | exported | other properties | "
                 "description |", "|---|---|---|---|---|---|---|---|"]
        for label, n in self.nodes.items():
            uniq = ", ".join([*(f"{p} (unique)" for p in n.unique), *n.indexed])
            lines.append(f"| {label} | `{n.key}` | {uniq} | {', '.join(n.union_lists)} | "
                         f"{', '.join(n.features)} | {'yes' if n.export else ''} | "
                         f"{', '.join(n.properties)} | {_cell(n.description)} |")
        lines += ["", "| relationship | from -> to | role | reverse | properties | export weight | "
                  "description |", "|---|---|---|---|---|---|---|"]
        for name, r in self.relationships.items():
            weight = ""
            if r.weight:
                weight = f"{r.weight}" + (f" x {r.scale:g}" if r.scale != 1 else "")
                weight += f"; min: {r.min_weight}" if r.min_weight else ""
            props = ", ".join(r.properties) + (f" (merged per {', '.join(r.merge_on)})" if r.merge_on else "")
            lines.append(f"| {name} | {' / '.join(r.start)} -> {' / '.join(r.end)} | {r.role} | "
                         f"{r.reverse or ''} | {props} | {weight} | {_cell(r.description)} |")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ------------------------------------------------------------------------------------------ loading


def _strings(where: str, value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{where}: {what} must be a string or a list of strings, not {value!r}")
    return tuple(value)


def _idents(where: str, value: Any, what: str) -> tuple[str, ...]:
    out = _strings(where, value, what)
    bad = [v for v in out if not _IDENT.match(v)]
    if bad:
        raise SchemaError(f"{where}: {what} {bad[0]!r} is not a plain identifier (letters, digits, _)")
    return out


def _check_entry(where: str, name: str, entry: Any, fields: set[str]) -> None:
    """What every [nodes.X] / [relationships.X] entry needs: a plain name, a table, known fields."""
    if not _IDENT.match(name):
        raise SchemaError(f"{where}: {name!r} is not a plain identifier (letters, digits, _)")
    if not isinstance(entry, dict):
        raise SchemaError(f"{where}: expected a table")
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")


def _node(path: Path, label: str, entry: Any) -> NodeType:
    where = f"{path}: [nodes.{label}]"
    _check_entry(where, label, entry, _NODE_FIELDS)
    if "key" not in entry:
        raise SchemaError(f"{where}: needs a key property")
    return NodeType(
        label=label, key=_idents(where, entry["key"], "key")[0],
        unique=_idents(where, entry.get("unique", []), "unique"),
        indexed=_idents(where, entry.get("indexed", []), "indexed"),
        union_lists=_idents(where, entry.get("union_lists", []), "union_lists"),
        features=_strings(where, entry.get("features", []), "features"),
        export=bool(entry.get("export", False)),
        properties=_strings(where, entry.get("properties", []), "properties"),
        description=str(entry.get("description", "")),
    )


def _endpoint(where: str, value: Any, side: str, nodes: dict[str, NodeType], role: str) -> tuple[str, ...]:
    labels = _strings(where, value, side)
    if labels == (ANY_LABEL,):
        if role in EXPORTED_ROLES:
            raise SchemaError(f"{where}: {side} = '*' is only for result and provenance relationships")
        return labels
    unknown = [x for x in labels if x not in nodes]
    if unknown:
        raise SchemaError(f"{where}: {side} = {unknown[0]!r} is not a declared node label "
                          f"(declared: {', '.join(nodes)})")
    if role in EXPORTED_ROLES:
        if len(labels) != 1:
            raise SchemaError(f"{where}: a {role} relationship has exactly one {side} label, "
                              f"not {list(labels)}")
        if not nodes[labels[0]].export:
            raise SchemaError(f"{where}: {side} = {labels[0]!r} is not an exported node label "
                              f"(export = true), so a {role} relationship cannot reach it")
    return labels


def _rel(path: Path, name: str, entry: Any, nodes: dict[str, NodeType]) -> RelType:
    where = f"{path}: [relationships.{name}]"
    _check_entry(where, name, entry, _REL_FIELDS)
    for required in ("from", "to", "role"):
        if required not in entry:
            raise SchemaError(f"{where}: needs {required!r}")
    role = entry["role"]
    if role not in ROLES:
        raise SchemaError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    reverse = entry.get("reverse")
    if role in EXPORTED_ROLES:
        if not reverse:
            raise SchemaError(f"{where}: a {role} relationship needs a reverse name (e.g. rev_{name})")
        _idents(where, reverse, "reverse")
    elif reverse or any(k in entry for k in ("weight", "min_weight")):
        raise SchemaError(f"{where}: reverse / weight / min_weight only apply to exported (message, label) "
                          "relationships")
    weight = _idents(where, entry["weight"], "weight")[0] if "weight" in entry else None
    min_weight = _idents(where, entry["min_weight"], "min_weight")[0] if "min_weight" in entry else None
    if min_weight and not weight:
        raise SchemaError(f"{where}: min_weight needs a weight property to compare")
    try:
        scale, missing = float(entry.get("scale", 1.0)), float(entry.get("missing", 1.0))
    except (TypeError, ValueError):
        raise SchemaError(f"{where}: scale and missing must be numbers") from None
    return RelType(
        name=name, start=_endpoint(where, entry["from"], "from", nodes, role),
        end=_endpoint(where, entry["to"], "to", nodes, role), role=role, reverse=reverse,
        properties=_strings(where, entry.get("properties", []), "properties"), weight=weight, scale=scale,
        missing=missing, min_weight=min_weight,
        merge_on=_idents(where, entry.get("merge_on", []), "merge_on"),
        description=str(entry.get("description", "")),
    )


def parse_schema(doc: dict[str, Any], path: Path) -> GraphSchema:
    """Validate a parsed schema document; every error names the file and the entry."""
    unknown = sorted(set(doc) - {"version", "nodes", "relationships"})
    if unknown:
        raise SchemaError(f"{path}: unknown top-level key(s) {unknown}; "
                          "expected version, nodes, relationships")
    if not isinstance(doc.get("version"), int):
        raise SchemaError(f"{path}: needs an integer version")
    nodes = {label: _node(path, label, e) for label, e in (doc.get("nodes") or {}).items()}
    if not nodes:
        raise SchemaError(f"{path}: declares no [nodes.<Label>]")
    rels = {name: _rel(path, name, e, nodes) for name, e in (doc.get("relationships") or {}).items()}
    seen: dict[str, str] = {}
    for r in rels.values():
        for edge_name in filter(None, (r.name, r.reverse if r.exported else None)):
            if edge_name in seen:
                raise SchemaError(f"{path}: [relationships.{r.name}]: the edge name {edge_name!r} is already "
                                  f"used by [relationships.{seen[edge_name]}]")
            seen[edge_name] = r.name
    return GraphSchema(doc["version"], nodes, rels, path)


def load_schema(path: Path | str = DEFAULT_SCHEMA_PATH) -> GraphSchema:
    """Read and validate a schema file (TOML)."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{path}: no such schema file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{path}: not valid TOML ({exc})") from None
    return parse_schema(doc, path)


@cache
def _load_cached(path: str) -> GraphSchema:
    return load_schema(path)


_override: list[GraphSchema] = []


def current_schema() -> GraphSchema:
    """The schema in force: the innermost :func:`use_schema`, else ``MOAKG_SCHEMA``, else kg/schema.toml."""
    if _override:
        return _override[-1]
    return _load_cached(os.environ.get("MOAKG_SCHEMA") or str(DEFAULT_SCHEMA_PATH))


@contextmanager
def use_schema(schema: GraphSchema) -> Iterator[GraphSchema]:
    """Make ``schema`` the current one inside the block (e.g. a test's extended schema)."""
    _override.append(schema)
    try:
        yield schema
    finally:
        _override.pop()


def edge_type(rel: str, reverse: bool = False) -> EdgeType:
    """The PyG edge type ``(start label, REL, end label)`` of a declared relationship type (or its reverse
    ``(end label, rev_REL, start label)``), e.g. ``("Compound", "TARGETS", "Gene")`` for ``"TARGETS"``."""
    return current_schema().edge_type(rel, reverse)


def is_label_edge(et: EdgeType) -> bool:
    """True for label edges (HAS_MOA and its reverse in the packaged schema): never messages."""
    return current_schema().is_label_edge(et)


# Names the rest of the code reads (the packaged schema; code that must follow use_schema calls
# current_schema() instead).
#: the packaged kg/schema.toml, read at import (never MOAKG_SCHEMA: a broken user file must give a clear
#: error where it is used, not stop `import moakg`)
PACKAGED_SCHEMA = load_schema(DEFAULT_SCHEMA_PATH)
SCHEMA_VERSION = PACKAGED_SCHEMA.version
NODE_KEYS: dict[str, str] = PACKAGED_SCHEMA.node_keys
UNION_LIST_PROPS: dict[str, tuple[str, ...]] = PACKAGED_SCHEMA.union_lists
EXTRA_UNIQUE: list[tuple[str, str]] = [(n.label, p) for n in PACKAGED_SCHEMA.nodes.values() for p in n.unique]
INDEXES: list[tuple[str, str]] = [(n.label, p) for n in PACKAGED_SCHEMA.nodes.values() for p in n.indexed]


# ------------------------------------------------------------------------------------------ database


def schema_statements(schema: GraphSchema | None = None) -> list[str]:
    schema = schema or current_schema()
    return schema.constraint_statements() + schema.index_statements()


def init_schema(conn: Neo4jConnection) -> dict[str, int]:
    """Create every constraint and index (idempotent), wait for them, and record the schema version."""
    schema = current_schema()
    with conn.session() as s:
        for stmt in schema_statements(schema):
            s.run(stmt).consume()
        s.run("CALL db.awaitIndexes(300)").consume()
        s.run(
            "MERGE (v:SchemaVersion {name: 'moakg'}) SET v.version = $version, v.updated = datetime()",
            version=schema.version,
        ).consume()
    return schema_summary(conn)


def schema_summary(conn: Neo4jConnection) -> dict[str, int]:
    rows = conn.query("SHOW CONSTRAINTS YIELD name RETURN count(*) AS constraints")
    idx = conn.query(
        "SHOW INDEXES YIELD name, owningConstraint WHERE owningConstraint IS NULL RETURN count(*) AS n"
    )
    ver = conn.query("MATCH (v:SchemaVersion {name: 'moakg'}) RETURN v.version AS version")
    return {
        "constraints": rows[0]["constraints"],
        "indexes": idx[0]["n"],
        "schema_version": ver[0]["version"] if ver else 0,
    }


def require_schema(conn: Neo4jConnection) -> None:
    """Raise a clear error if `moakg db init` has not been run on this database, or its uniqueness
    constraints are gone (e.g. a bulk load cut short between neo4j-admin import and its schema step:
    every MERGE would then scan its label, and nothing would keep a key unique)."""
    schema = current_schema()
    if schema_summary(conn)["schema_version"] < schema.version:
        raise UserError(
            f"the database at {conn.settings.uri} has no moakg schema (version {schema.version}); "
            "run `moakg db init` first"
        )
    names = {r["name"] for r in conn.query("SHOW CONSTRAINTS YIELD name RETURN name")}
    wanted = [st.split()[2] for st in schema.constraint_statements()]  # CREATE CONSTRAINT <name> ...
    missing = [n for n in wanted if n not in names]
    if missing:
        raise UserError(
            f"the database at {conn.settings.uri} lacks {len(missing)} of moakg's uniqueness constraints "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); run `moakg db init` first"
        )
