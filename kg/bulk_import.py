"""``moakg ingest all --bulk``: the first load of an empty database through ``neo4j-admin database import``.

The transactional writer MERGEs about 16,000 rows a second; the import tool writes the store files
directly, an order of magnitude faster, but only into an empty (overwritten) database of a stopped
server. The bulk path writes the same nodes, relationships, properties and provenance as the
transactional one, by running the same adapters through the same writer:

1. **refuse** a database that holds anything but the schema version node (incremental loads keep the
   transactional writer);
2. **stage**: every adapter of the sources.toml runs as ``moakg ingest all`` runs it, inside
   :func:`moakg.kg.writer.spooling`. Nodes, and relationships that touch a Compound, are written to the
   graph: compound identity resolution (:mod:`moakg.ingest.identity`) reads them and merges compound
   nodes there, moving their relationships. Every other relationship type (Signature-Gene, Gene-Gene,
   Gene-GOTerm, GOTerm-GOTerm, Signature-CellLine: the millions) goes to CSV files through a
   :class:`~moakg.kg.bulk_files.RelSpool`, with the writer's stamps, merge semantics and counts. The
   IngestRuns end ``staged``;
3. **dump** the staged graph (every node and relationship, by label and type) to CSV files, the runs
   as ``completed``; then mark the live runs ``failed`` ("bulk import pending"), so that a load stopped
   from here on is never mistaken for a complete one (a transactional ``moakg ingest all`` completes it);
4. **import**: stop the local server, ``neo4j-admin database import full --overwrite-destination``
   (the import tool is in the Maven artifacts the local server is built from), start it;
5. **schema and check**: create the constraints and indexes, and compare the node and relationship
   counts per label and type with what was written to the files.

Nodes are found by their key in the import files (one id space per label: ``:ID(Gene)`` holds the
``symbol``), so the spooled relationships name their ends as the writer's rows do.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.ingest.base import SourceAdapter
from moakg.kg.bulk_files import ARRAY_DELIMITER_OPTION, CsvParts, RelSpool
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.local_server import LocalNeo4j, LocalNeo4jError
from moakg.kg.schema import GraphSchema, _ident, current_schema, init_schema
from moakg.kg.writer import DEFAULT_BATCH_SIZE, IngestReport, spooling

#: labels whose nodes a graph step merges (compound identity resolution): their relationships must be
#: in the graph when it runs, so they are never spooled
MERGED_LABELS = ("Compound",)
PENDING = "bulk import pending: neo4j-admin has not loaded this run's files yet"


def spooled_types(schema: GraphSchema | None = None) -> list[str]:
    """The relationship types a bulk load writes to files: data relationships not touching merged labels."""
    schema = schema or current_schema()
    return [r.name for r in schema.relationships.values()
            if r.role in ("message", "label") and "*" not in (*r.start, *r.end)
            and not set(MERGED_LABELS) & {*r.start, *r.end}]


@dataclass
class BulkResult:
    reports: list[IngestReport]
    nodes: dict[str, int]
    relationships: dict[str, int]
    files: Path
    seconds: dict[str, float] = field(default_factory=dict)


def graph_counts(conn: Neo4jConnection) -> tuple[dict[str, int], dict[str, int]]:
    """Nodes per label and relationships per type, from the count store (constant time)."""
    schema = current_schema()
    nodes = {label: conn.query(f"MATCH (n:{_ident(label)}) RETURN count(n) AS n")[0]["n"]
             for label in schema.nodes}
    rels = {t: conn.query(f"MATCH ()-[r:{_ident(t)}]->() RETURN count(r) AS n")[0]["n"]
            for t in schema.relationships}
    return {k: v for k, v in nodes.items() if v}, {k: v for k, v in rels.items() if v}


def check_empty(conn: Neo4jConnection) -> None:
    n = conn.query("MATCH (n) WHERE NOT n:SchemaVersion RETURN count(n) AS n")[0]["n"]
    if n:
        raise UserError(
            f"--bulk loads an empty database only, and {conn.settings.uri} holds {n:,} nodes. Load into it "
            "with `moakg ingest all` (without --bulk: the transactional writer adds to a graph), or empty "
            "it first with `moakg db clear --yes`."
        )


def _endpoints(schema: GraphSchema, labels: tuple[str, ...]) -> list[str]:
    """The labels a relationship end may have (``*``: any label)."""
    return list(schema.nodes) if labels == ("*",) else list(labels)


def _rel_dump_query(schema: GraphSchema, rel: str, start: str, end: str) -> str:
    """Every ``rel`` relationship from a ``start`` to an ``end`` node: end keys and properties."""
    return (f"MATCH (a:{_ident(start)})-[r:{_ident(rel)}]->(b:{_ident(end)}) "
            f"RETURN a.{_ident(schema.key_of(start))} AS s, b.{_ident(schema.key_of(end))} AS e, "
            "properties(r) AS props")


def dump_graph(conn: Neo4jConnection, folder: Path, progress: bool = True) -> tuple[
        dict[str, list[tuple[Path, Path]]], dict[tuple[str, str, str], list[tuple[Path, Path]]],
        dict[str, int], dict[str, int]]:
    """Every node (by label) and relationship (by type and end labels) of the graph as import files.

    Staged IngestRuns are written ``completed`` with ``bulk = true``. Raises if the graph holds a node
    or relationship the schema does not declare (it would be lost)."""
    schema = current_schema()
    node_files, rel_files = {}, {}
    n_nodes: dict[str, int] = {}
    n_rels: dict[str, int] = {}
    with tqdm(desc="dump staged graph", unit="rows", disable=not progress, leave=False) as bar:
        for label, decl in schema.nodes.items():
            parts = CsvParts(folder, f"node-{label}", [f":ID({label})"])
            key = _ident(decl.key)
            with conn.session() as s:
                for rec in s.run(f"MATCH (n:{_ident(label)}) RETURN n.{key} AS key, properties(n) AS props"):
                    props = dict(rec["props"])
                    if label == "IngestRun" and props.get("status") == "staged":
                        props.update(status="completed", bulk=True)
                    parts.write((rec["key"],), props)
                    bar.update()
            if parts.rows:
                node_files[label] = parts.close()
                n_nodes[label] = parts.rows
            else:
                parts.close()
        for rel in schema.relationships.values():
            for start in _endpoints(schema, rel.start):
                for end in _endpoints(schema, rel.end):
                    parts = CsvParts(folder, f"graph-{rel.name}-{start}-{end}", [f":START_ID({start})",
                                                                                  f":END_ID({end})"])
                    q = _rel_dump_query(schema, rel.name, start, end)
                    with conn.session() as s:
                        for rec in s.run(q):
                            parts.write((rec["s"], rec["e"]), rec["props"])
                            bar.update()
                    if parts.rows:
                        rel_files[(rel.name, start, end)] = parts.close()
                        n_rels[rel.name] = n_rels.get(rel.name, 0) + parts.rows
                    else:
                        parts.close()
    total_n = conn.query("MATCH (n) RETURN count(n) AS n")[0]["n"]
    total_r = conn.query("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
    if total_n != sum(n_nodes.values()) or total_r != sum(n_rels.values()):
        raise UserError(f"the staged graph holds {total_n} nodes / {total_r} relationships but "
                        f"{sum(n_nodes.values())} / {sum(n_rels.values())} have a label / type and ends "
                        f"declared in {schema.path}; nothing was imported")
    return node_files, rel_files, n_nodes, n_rels


def import_arguments(
    node_files: dict[str, list[tuple[Path, Path]]],
    rel_files: dict[tuple[str, str, str], list[tuple[Path, Path]]], report: Path,
) -> list[str]:
    """``neo4j-admin database import full`` arguments for the files (one group per header)."""
    args = ["database", "import", "full", "neo4j", "--overwrite-destination=true", "--multiline-fields=true",
            f"--array-delimiter={ARRAY_DELIMITER_OPTION}", f"--report-file={report}"]
    for label, parts in node_files.items():
        args += [f"--nodes={label}={h},{d}" for h, d in parts]
    for (rel_type, _, _), parts in rel_files.items():
        args += [f"--relationships={rel_type}={h},{d}" for h, d in parts]
    return args


def bulk_ingest(
    settings: Neo4jSettings, adapters: list[SourceAdapter], *, server: LocalNeo4j | None,
    folder: Path, batch_size: int = DEFAULT_BATCH_SIZE, keep_files: bool = False, progress: bool = True,
    echo: Callable[[str], Any] = print,
) -> BulkResult:
    """Load ``adapters`` into the empty database of ``settings`` through neo4j-admin import.

    ``server`` is the local server the database lives in (it is stopped and started). Without one
    (another server) the import files are written to ``folder`` and the command to run there is raised
    in the error message. ``folder`` must not exist or be empty; it is removed after a successful load
    unless ``keep_files``.
    """
    from moakg.ingest.runner import run_adapters

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder}: the bulk files folder must be empty or not exist")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with Neo4jConnection(settings) as conn:
        init_schema(conn)  # constraints first: the staging MERGEs look nodes up by key
        check_empty(conn)
        folder.mkdir(parents=True, exist_ok=True)
        spool = RelSpool(folder, spooled_types())
        with spooling(spool):
            reports = run_adapters(conn, adapters, batch_size, progress)
        spooled = spool.close()
        seconds["stage"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        node_files, rel_files, n_nodes, n_rels = dump_graph(conn, folder, progress)
        for group, parts in spooled.items():
            rel_files[group] = parts
            n_rels[group[0]] = n_rels.get(group[0], 0) + spool.files[group].rows
        conn.query("MATCH (r:IngestRun) WHERE r.status = 'staged' SET r.status = 'failed', r.error = $e",
                   e=PENDING)
        seconds["dump"] = time.perf_counter() - t1
    report = folder / "import.report"
    args = import_arguments(node_files, rel_files, report)
    if server is None:
        raise UserError(
            f"the import files are in {folder}; --bulk runs neo4j-admin only for the local server. On the "
            f"server of {settings.uri}, stop the database and run: neo4j-admin {' '.join(args)}; "
            "then start it and run `moakg db init`."
        )
    t2 = time.perf_counter()
    echo(f"importing {sum(n_nodes.values()):,} nodes and {sum(n_rels.values()):,} relationships "
         "with neo4j-admin (the server restarts)")
    server.stop()
    try:
        server.admin(args, log=folder / "neo4j-admin.log")
    except BaseException as exc:
        # --overwrite-destination replaced the staged database as the import began, and an import cut
        # short leaves files the server cannot start ("transaction logs are missing"): removed, so that
        # it starts with an empty database (nothing of the load is lost: the import files stay).
        if server.state() is None:
            server.remove_database("neo4j")
            if isinstance(exc, LocalNeo4jError):
                raise LocalNeo4jError(f"{exc} -- the database is empty again: run `moakg ingest all --bulk` "
                                      f"again (the import files are kept in {folder})") from exc
        raise
    finally:
        server.start()
    seconds["import"] = time.perf_counter() - t2
    with Neo4jConnection(settings) as conn:
        init_schema(conn)
        nodes, rels = graph_counts(conn)
    if nodes != n_nodes or rels != n_rels:
        raise UserError(f"after the import the graph holds {nodes} nodes and {rels} relationships, the "
                        f"files {n_nodes} and {n_rels}; see {report} (files kept in {folder})")
    seconds["total"] = time.perf_counter() - t0
    if not keep_files:
        shutil.rmtree(folder, ignore_errors=True)
    return BulkResult(reports, nodes, rels, folder, seconds)
