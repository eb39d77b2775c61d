"""The graph schema: node keys (uniqueness constraints), lookup indexes and the schema version.

Node keys follow ../shared/DESIGN.md. ``Compound.id`` is the InChIKey when a structure is known and a
source-prefixed id otherwise (``lincs:BRD-K...``, ``drugbank:DB00001``), so one key serves both cases;
``Compound.inchikey`` is also unique where present.
"""

from __future__ import annotations

from moakg.kg.connection import Neo4jConnection

SCHEMA_VERSION = 1

#: label -> key property; each gets a uniqueness constraint, which also indexes MERGE lookups.
NODE_KEYS: dict[str, str] = {
    "Compound": "id",
    "Signature": "sig_id",
    "CellLine": "cell_id",
    "Gene": "symbol",
    "GOTerm": "go_id",
    "MoA": "name",
    "IngestRun": "id",
    "ModelRun": "id",
    "Prediction": "id",
    "Explanation": "id",
    "ExplanationPath": "id",
    "SchemaVersion": "name",
}

#: list properties that accumulate across sources and runs instead of being overwritten by the last
#: writer (the writer unions them), e.g. every name a compound has anywhere.
UNION_LIST_PROPS: dict[str, tuple[str, ...]] = {
    "Compound": ("synonyms", "source_ids", "inchikey_aliases", "pert_ids", "drugbank_ids"),
}

#: extra unique properties (nullable: only nodes that have the property are constrained)
EXTRA_UNIQUE: list[tuple[str, str]] = [("Compound", "inchikey")]

#: (label, property) range indexes for lookups that are not node keys
INDEXES: list[tuple[str, str]] = [
    ("Compound", "pert_id"),
    ("Compound", "drugbank_id"),
    ("Compound", "name"),
    ("Compound", "inchikey_block1"),
    ("Gene", "entrez_id"),
    ("Gene", "uniprot"),
    ("Gene", "string_id"),
    ("Signature", "cell_id"),
    ("IngestRun", "source"),
    ("GOTerm", "namespace"),
]


#: relationship type -> (start label, end label) of every relationship the exporter reads
_REL_ENDPOINTS: dict[str, tuple[str, str]] = {
    "HAS_SIGNATURE": ("Compound", "Signature"),
    "IN_CELL": ("Signature", "CellLine"),
    "UPREGULATES": ("Signature", "Gene"),
    "DOWNREGULATES": ("Signature", "Gene"),
    "INTERACTS_WITH": ("Gene", "Gene"),
    "ANNOTATED_WITH": ("Gene", "GOTerm"),
    "IS_A": ("GOTerm", "GOTerm"),
    "PART_OF": ("GOTerm", "GOTerm"),
    "TARGETS": ("Compound", "Gene"),
    "HAS_MOA": ("Compound", "MoA"),
}


def edge_type(rel: str, reverse: bool = False) -> tuple[str, str, str]:
    """The PyG edge type ``(start label, REL, end label)`` of a declared relationship type (or its reverse
    ``(end label, rev_REL, start label)``), e.g. ``edge_type("TARGETS") == ("Compound", "TARGETS", "Gene")``."""
    if rel not in _REL_ENDPOINTS:
        raise KeyError(f"relationship type {rel!r} is not declared in the schema")
    start, end = _REL_ENDPOINTS[rel]
    return (end, f"rev_{rel}", start) if reverse else (start, rel, end)


def _ident(name: str) -> str:
    """Cypher identifiers cannot be parameters; only the schema's own names are interpolated."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def schema_statements() -> list[str]:
    stmts = []
    for label, key in [*NODE_KEYS.items(), *EXTRA_UNIQUE]:
        label, key = _ident(label), _ident(key)
        stmts.append(
            f"CREATE CONSTRAINT {label.lower()}_{key}_unique IF NOT EXISTS "
            f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
        )
    for label, prop in INDEXES:
        label, prop = _ident(label), _ident(prop)
        stmts.append(f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})")
    return stmts


def init_schema(conn: Neo4jConnection) -> dict[str, int]:
    """Create every constraint and index (idempotent), wait for them, and record the schema version."""
    with conn.session() as s:
        for stmt in schema_statements():
            s.run(stmt).consume()
        s.run("CALL db.awaitIndexes(300)").consume()
        s.run(
            "MERGE (v:SchemaVersion {name: 'moakg'}) SET v.version = $version, v.updated = datetime()",
            version=SCHEMA_VERSION,
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
    """Raise a clear error if `moakg db init` has not been run on this database."""
    if schema_summary(conn)["schema_version"] < SCHEMA_VERSION:
        raise RuntimeError(
            f"the database at {conn.settings.uri} has no moakg schema (version {SCHEMA_VERSION}); "
            "run `moakg db init` first"
        )
