"""The one batched, idempotent graph writer: ingests, model write-back and explanation write-back.

Callers describe what to write as :class:`NodeBatch`, :class:`RelBatch`, :class:`Delete` and
:class:`GraphStep` objects and
who writes it as a :class:`Provenance` (the run node: ``IngestRun`` for ingests, ``ModelRun`` for
training and explanations). :class:`BatchWriter` sends the rows with ``UNWIND $rows ... MERGE`` in
batches of ``batch_size``; every node and relationship it writes is stamped with the run's id (and, for
ingests, with ``source``; nodes also accumulate every source that wrote them in ``sources``).

Two ways to run a write:

- :func:`write_run` (and :func:`run_ingest` on top of it): one transaction per batch, each retried on
  transient errors by the driver's managed transactions (:meth:`Neo4jConnection.write`), inside the run
  node's lifecycle ``running`` -> ``completed`` | ``failed``. A failure part-way leaves the run marked
  ``failed`` with the error; writing the same run again completes it (ids are deterministic, writes are
  MERGEs, and :class:`Delete` items remove a run's earlier results first, so a re-run changes no counts).
  A crash cannot write that mark (Neo4j killed, or the writing process): the run then stays ``running``
  until the re-run completes it, and ``attempts`` counts every try that reached the server.
  Two writes of the same run at once take turns (:func:`run_lock`): the second waits for the first.
- :func:`write_atomic`: every batch in one transaction, retried as a whole; for small writes that must
  never be seen half-done (one explanation and its paths).

Rows are plain dicts. Node rows hold all properties including the key; relationship rows hold ``start``
and ``end`` (the key values of the end nodes) plus the relationship's properties. ``None`` (and NaN)
values are dropped rather than written, so one source never erases a property another source set; so
are an ingest's empty lists (no value, as ``None``; neo4j-admin import, the bulk path, cannot carry one).

All Cypher text is generated here; labels, types and property names come from the schema or the calling
code (never from data) and are interpolated only after :func:`moakg.kg.schema._ident`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from neo4j import ManagedTransaction
from tqdm.auto import tqdm

from moakg.kg.connection import Neo4jConnection, Neo4jUnavailable
from moakg.kg.schema import RelType, _ident, current_schema

if TYPE_CHECKING:
    from moakg.kg.bulk_files import RelSpool

DEFAULT_BATCH_SIZE = 5000
MAX_MISSING_EXAMPLES = 20
T = TypeVar("T")
log = logging.getLogger(__name__)
#: the bulk load's spool while :func:`spooling` is active (a context variable rather than a parameter:
#: every adapter's ``ingest`` would otherwise have to pass it down to the writer)
_SPOOL: ContextVar[RelSpool | None] = ContextVar("moakg_rel_spool", default=None)


@contextmanager
def spooling(spool: RelSpool) -> Iterator[RelSpool]:
    """Inside: ingests write the spool's relationship types to its files, not to the graph, and end
    their IngestRuns ``staged`` (loaded once neo4j-admin has imported the files); see
    :mod:`moakg.kg.bulk_import`."""
    token = _SPOOL.set(spool)
    try:
        yield spool
    finally:
        _SPOOL.reset(token)


@dataclass(frozen=True)
class Provenance:
    """The run that writes: its node (``label`` + ``run_id``) and how written elements are stamped.

    ``stamp`` is the property that carries ``run_id`` on every written node and relationship;
    ``source`` (ingests only) is stamped as ``source`` and collected in nodes' ``sources``. Model results
    have no source: they are stamped with ``run`` alone.
    """

    label: str
    run_id: str
    stamp: str
    source: str | None = None

    @classmethod
    def ingest(cls, source: str, run_id: str) -> Provenance:
        return cls("IngestRun", run_id, "ingest_run", source)

    @classmethod
    def model(cls, run_id: str) -> Provenance:
        """Training results and explanations of one ``(:ModelRun)``, stamped ``run``."""
        return cls("ModelRun", run_id, "run")

    def params(self) -> dict[str, Any]:
        """The query parameters every write query of this run reads."""
        return {"run": self.run_id, "source": self.source}


@dataclass(frozen=True)
class NodeBatch:
    """Nodes of one label, merged on ``key``; ``rows`` are property dicts that include the key.

    With ``timestamps`` a node gets ``created`` once and ``updated`` on every write.
    """

    label: str
    key: str
    rows: Sequence[Mapping[str, Any]]
    timestamps: bool = False


@dataclass(frozen=True)
class RelBatch:
    """Relationships of one type between nodes found by key.

    ``start``/``end`` are (label, key property). ``rows`` hold ``start``, ``end`` and properties.
    The type must be declared in the schema (kg/schema.toml) with these endpoint labels; the schema's
    ``merge_on`` says which properties besides the endpoints it is merged on (none: one relationship per
    (start, end)); ``merge_on`` / ``per_source`` here may restate it but not differ from it. Merge
    properties ``source`` and the provenance's stamp (e.g. ``run``) take the run's value, any other name
    the row's. Merged on ``source``, two sources asserting the same fact (e.g. a drug target from
    DrugBank and from the Repurposing Hub) keep separate edges. Rows whose end nodes are missing are
    counted and reported; with ``require_endpoints`` they raise :class:`MissingEndpointError` instead
    (the batch is rolled back).
    """

    rel_type: str
    start: tuple[str, str]
    end: tuple[str, str]
    rows: Sequence[Mapping[str, Any]]
    per_source: bool = False
    merge_on: tuple[str, ...] = ()
    require_endpoints: bool = False

    @property
    def merge_keys(self) -> tuple[str, ...]:
        """The merge properties the schema declares for this type, checked against what the batch says."""
        decl = declared_rel(self)
        extra = ("source",) if self.per_source and "source" not in self.merge_on else ()
        given = (*self.merge_on, *extra)
        if given and set(given) != set(decl.merge_on):
            raise ValueError(f"{self.rel_type} is merged on {list(decl.merge_on)} in "
                             f"{current_schema().path}, not {list(given)}")
        return decl.merge_on


def declared_rel(batch: RelBatch) -> RelType:
    """The schema's declaration of ``batch.rel_type``; its endpoint labels and keys must match the batch's.

    A relationship the schema does not declare is refused here, before anything is written: the schema
    file is where a new type is added, so the exporter and the models know it too.
    """
    schema = current_schema()
    if batch.rel_type not in schema.relationships:
        raise ValueError(f"relationship type {batch.rel_type!r} is not declared in {schema.path}; add a "
                         f"[relationships.{batch.rel_type}] entry (README, 'Extending')")
    decl = schema.relationships[batch.rel_type]
    for side, (label, key), allowed in (("start", batch.start, decl.start), ("end", batch.end, decl.end)):
        if allowed != ("*",) and label not in allowed:
            raise ValueError(f"{batch.rel_type} {side}s at {label} here, but {schema.path} declares "
                             f"{side} = {' | '.join(allowed)}")
        if label not in schema.nodes or schema.nodes[label].key != key:
            raise ValueError(f"{batch.rel_type}: {label} nodes are found by their key "
                             f"{schema.key_of(label)!r}, not {key!r}")
    return decl


@dataclass(frozen=True)
class Delete:
    """Delete earlier results before writing new ones (replace semantics), in batches.

    Without ``rel_type``: the ``label`` nodes (DETACH DELETE) whose properties equal ``where``; with it:
    the ``rel_type`` relationships starting at a ``label`` node whose properties equal ``where``. The
    values in ``where`` are query parameters; an empty ``where`` matches every node/relationship.
    """

    label: str
    where: Mapping[str, Any]
    rel_type: str | None = None


@dataclass(frozen=True)
class GraphStep:
    """A write worked out from the graph as the run's earlier batches left it, e.g. merging the
    compounds those batches made one (:mod:`moakg.ingest.identity`). ``apply(conn)`` plans and writes it
    (in transactions of its own) when its turn comes; as a batch of the run, a failure marks the run
    ``failed`` and a re-run applies it again."""

    name: str
    apply: Callable[[Neo4jConnection], object]


Batch = NodeBatch | RelBatch | Delete | GraphStep


class MissingEndpointError(ValueError):
    """A relationship that must be written points at a node that is not in the graph."""


@dataclass
class WriteCounts:
    nodes_created: int = 0
    nodes_matched: int = 0
    rels_created: int = 0
    rels_matched: int = 0
    rels_missing_endpoint: int = 0
    deleted: int = 0  # nodes or relationships removed by Delete items
    missing_examples: list[dict[str, Any]] = field(default_factory=list)
    by_label: dict[str, int] = field(default_factory=dict)
    by_rel_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "nodes_created": self.nodes_created,
            "nodes_matched": self.nodes_matched,
            "rels_created": self.rels_created,
            "rels_matched": self.rels_matched,
            "rels_missing_endpoint": self.rels_missing_endpoint,
            "by_label": dict(self.by_label),
            "by_rel_type": dict(self.by_rel_type),
        }
        if self.deleted:  # ingests never delete: their stored counts keep their shape
            out["deleted"] = self.deleted
        return out


def _py(value: Any) -> Any:
    """Numpy scalars/arrays to plain Python the driver accepts; NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()]
    elif isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with driver-ready values and without ``None``/NaN (which are never written)."""
    out = {}
    for k, v in row.items():
        t = type(v)
        if t is str or t is int or t is bool:  # the common case first: millions of rows at scale
            out[k] = v
        elif t is float:
            if v == v:  # not NaN
                out[k] = v
        elif (v := _py(v)) is not None:
            out[k] = v
    return out


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# ----------------------------------------------------------------------------------- query text


def _stamp(var: str, prov: Provenance, sources: bool = False) -> str:
    """``SET`` items stamping ``var`` with the run (and the source, for ingests)."""
    items = []
    if prov.source is not None:
        items.append(f"{var}.source = $source")
    items.append(f"{var}.{_ident(prov.stamp)} = $run")
    if sources and prov.source is not None:
        items.append(
            f"{var}.sources = CASE WHEN $source IN coalesce({var}.sources, []) THEN {var}.sources "
            f"ELSE coalesce({var}.sources, []) + $source END"
        )
    return ", ".join(items)


def node_query(label: str, key: str, prov: Provenance, timestamps: bool = False) -> str:
    """MERGE on the key, SET the properties; the schema's union-list properties are unioned."""
    label, key = _ident(label), _ident(key)
    union = "".join(
        f" FOREACH (_ IN CASE WHEN r.union.{p} IS NULL THEN [] ELSE [1] END | SET n.{p} = "
        f"reduce(acc = coalesce(n.{p}, []), x IN r.union.{p} | CASE WHEN x IN acc THEN acc ELSE acc + x END))"
        for p in map(_ident, current_schema().union_lists.get(label, ()))
    )
    on_create = " ON CREATE SET n.created = datetime()" if timestamps else ""
    updated = ", n.updated = datetime()" if timestamps else ""
    return (
        f"UNWIND $rows AS r MERGE (n:{label} {{{key}: r.props.{key}}}){on_create} "
        f"SET n += r.props, {_stamp('n', prov, sources=True)}{updated}" + union
    )


def _drop_empty_lists(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if not (isinstance(v, list) and not v)}


def node_rows(label: str, rows: Iterable[Mapping[str, Any]], ingest: bool = False) -> list[dict[str, Any]]:
    """Writer row shape: ``{"props": ..., "union": ...}`` with union-list properties set apart
    (``ingest``: without empty lists)."""
    union_keys = set(current_schema().union_lists.get(label, ()))
    out = []
    for row in rows:
        props = clean_row(row)
        if ingest:
            props = _drop_empty_lists(props)
        union = {k: props.pop(k) for k in union_keys & props.keys()}
        out.append({"props": props, "union": union})
    return out


def _merge_value(prop: str, prov: Provenance) -> str:
    """Where a merge property's value comes from: the run (``source``, the stamp) or the row."""
    if prop == "source":
        if prov.source is None:
            raise ValueError(f"merging on 'source' needs a provenance with a source ({prov.label})")
        return "$source"
    return "$run" if prop == prov.stamp else f"r.props.{_ident(prop)}"


def rel_query(batch: RelBatch, prov: Provenance) -> str:
    (sl, sk), (el, ek), t = batch.start, batch.end, _ident(batch.rel_type)
    sl, sk, el, ek = map(_ident, (sl, sk, el, ek))
    merge = ", ".join(f"{_ident(p)}: {_merge_value(p, prov)}" for p in batch.merge_keys)
    merge_props = f" {{{merge}}}" if merge else ""
    # OPTIONAL MATCH + FOREACH: rows whose end nodes are missing are returned, not silently dropped.
    return (
        f"UNWIND $rows AS r OPTIONAL MATCH (a:{sl} {{{sk}: r.start}}) "
        f"OPTIONAL MATCH (b:{el} {{{ek}: r.end}}) "
        "FOREACH (_ IN CASE WHEN a IS NULL OR b IS NULL THEN [] ELSE [1] END | "
        f"MERGE (a)-[rel:{t}{merge_props}]->(b) "
        f"SET rel += r.props, {_stamp('rel', prov)}) "
        "WITH r, a, b WHERE a IS NULL OR b IS NULL "
        "RETURN r.start AS start, r.end AS end, a IS NULL AS missing_start, b IS NULL AS missing_end"
    )


def delete_query(spec: Delete) -> str:
    """Deletes up to ``$limit`` matching elements and returns how many (call until it returns less)."""
    label = _ident(spec.label)
    cond = " AND ".join(f"x.{_ident(p)} = $where.{_ident(p)}" for p in spec.where) or "true"
    if spec.rel_type is None:
        return f"MATCH (x:{label}) WHERE {cond} WITH x LIMIT $limit DETACH DELETE x RETURN count(*) AS n"
    t = _ident(spec.rel_type)
    return f"MATCH (:{label})-[x:{t}]->() WHERE {cond} WITH x LIMIT $limit DELETE x RETURN count(*) AS n"


def run_start_query(label: str) -> str:
    """MERGE the run node and mark it ``running``; ``$attempt`` (0 or 1) is added to ``attempts``."""
    label, key = _ident(label), _ident(current_schema().key_of(label))
    return (
        f"MERGE (r:{label} {{{key}: $id}}) ON CREATE SET r.attempts = 0, r.created = datetime() "
        "SET r += $props, r.status = 'running', r.started = datetime(), r.ended = null, r.error = null, "
        "r.attempts = coalesce(r.attempts, 0) + $attempt"
    )


def run_end_query(label: str) -> str:
    label, key = _ident(label), _ident(current_schema().key_of(label))
    return (
        f"MATCH (r:{label} {{{key}: $id}}) "
        "SET r += $props, r.status = $status, r.error = $error, r.ended = datetime()"
    )


# ----------------------------------------------------------------------------------- the writer


class BatchWriter:
    """Writes batches stamped with one run. Usually driven by :func:`write_run` / :func:`write_atomic`.

    Without ``tx`` every batch of ``batch_size`` rows is its own transaction (retried by the driver);
    with ``tx`` everything runs in that one transaction.
    """

    def __init__(
        self,
        conn: Neo4jConnection,
        prov: Provenance,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_rows: Callable[[int], object] | None = None,
        tx: ManagedTransaction | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.conn, self.prov, self.batch_size, self.tx = conn, prov, batch_size, tx
        self.on_rows = on_rows  # called with the row count of every written batch (progress)
        self.counts = WriteCounts()
        # a bulk load's ingests send the spool's relationship types to its import files
        self.spool = _SPOOL.get() if prov.label == "IngestRun" and tx is None else None

    def _execute(self, work: Callable[[ManagedTransaction], T]) -> T:
        return work(self.tx) if self.tx is not None else self.conn.write(work)

    def write(self, batch: Batch) -> None:
        if isinstance(batch, NodeBatch):
            self.write_nodes(batch)
        elif isinstance(batch, RelBatch):
            self.write_rels(batch)
        elif isinstance(batch, Delete):
            self.delete(batch)
        elif isinstance(batch, GraphStep):
            if self.tx is not None:
                raise TypeError(f"{batch.name}: a graph step runs its own transactions, not in write_atomic")
            batch.apply(self.conn)
        else:
            raise TypeError(f"not a batch: {type(batch).__name__}")

    def write_nodes(self, batch: NodeBatch) -> None:
        schema = current_schema()
        if batch.label not in schema.nodes:
            raise ValueError(f"node label {batch.label!r} is not declared in {schema.path}; add a "
                             f"[nodes.{batch.label}] entry")
        if schema.nodes[batch.label].key != batch.key:
            raise ValueError(f"{batch.label} nodes are keyed by {schema.nodes[batch.label].key!r} "
                             f"({schema.path}), not {batch.key!r}")
        q = node_query(batch.label, batch.key, self.prov, batch.timestamps)
        rows = node_rows(batch.label, batch.rows, ingest=self.prov.label == "IngestRun")
        for i, r in enumerate(rows):
            if r["props"].get(batch.key) is None:
                raise ValueError(f"{batch.label} row {i} has no key {batch.key!r}: {dict(batch.rows[i])}")
        for chunk in _chunks(rows, self.batch_size):

            def work(tx: ManagedTransaction, chunk: Sequence[dict] = chunk) -> int:
                return tx.run(q, rows=list(chunk), **self.prov.params()).consume().counters.nodes_created

            created = self._execute(work)
            self.counts.nodes_created += created
            self.counts.nodes_matched += len(chunk) - created
            if self.on_rows:
                self.on_rows(len(chunk))
        self.counts.by_label[batch.label] = self.counts.by_label.get(batch.label, 0) + len(rows)
        if self.spool is not None:
            self.spool.saw_nodes(batch.label, [r["props"][batch.key] for r in rows])

    def _rel_rows(self, batch: RelBatch) -> list[dict[str, Any]]:
        from_rows = [p for p in batch.merge_keys if p not in ("source", self.prov.stamp)]
        rows = []
        for r in batch.rows:
            r = clean_row(r)
            if self.prov.label == "IngestRun":
                r = _drop_empty_lists(r)
            start, end = r.pop("start", None), r.pop("end", None)
            if start is None or end is None:
                raise ValueError(f"{batch.rel_type} row needs 'start' and 'end': {r}")
            # MERGE on a null property fails inside Neo4j with a less helpful message
            if lacking := [p for p in from_rows if p not in r]:
                raise ValueError(f"{batch.rel_type} row needs {lacking} to merge on: {r}")
            rows.append({"start": start, "end": end, "props": r})
        return rows

    def write_rels(self, batch: RelBatch) -> None:
        rows = self._rel_rows(batch)
        if self.spool is not None and self.spool.takes(batch.rel_type):
            self._spool_rels(batch, rows)
            return
        q = rel_query(batch, self.prov)
        for chunk in _chunks(rows, self.batch_size):

            def work(tx: ManagedTransaction, chunk: Sequence[dict] = chunk) -> tuple[int, list[dict]]:
                res = tx.run(q, rows=list(chunk), **self.prov.params())
                missing = [rec.data() for rec in res]
                if missing and batch.require_endpoints:  # raised inside: the transaction rolls back
                    raise MissingEndpointError(_describe_missing(batch, missing))
                return res.consume().counters.relationships_created, missing

            self._count_rels(batch, len(chunk), *self._execute(work))
        written = len(rows)
        self.counts.by_rel_type[batch.rel_type] = self.counts.by_rel_type.get(batch.rel_type, 0) + written

    def _spool_rels(self, batch: RelBatch, rows: list[dict[str, Any]]) -> None:
        """The bulk path: the same rows, stamps, merge keys and counts, into the spool's files."""
        assert self.spool is not None
        stamps = {"source": self.prov.source} if self.prov.source is not None else {}
        stamps[self.prov.stamp] = self.prov.run_id
        for chunk in _chunks(rows, self.batch_size):
            if batch.require_endpoints:  # checked before anything of the batch is spooled
                _, missing = self.spool.split_missing(batch.start[0], batch.end[0], chunk)
                if missing:
                    raise MissingEndpointError(_describe_missing(batch, missing))
            created, missing = self.spool.add(batch.rel_type, batch.start[0], batch.end[0], batch.merge_keys,
                                              chunk, stamps)
            self._count_rels(batch, len(chunk), created, missing)
        self.counts.by_rel_type[batch.rel_type] = self.counts.by_rel_type.get(batch.rel_type, 0) + len(rows)

    def _count_rels(self, batch: RelBatch, n: int, created: int, missing: list[dict[str, Any]]) -> None:
        self.counts.rels_created += created
        self.counts.rels_matched += n - created - len(missing)
        self.counts.rels_missing_endpoint += len(missing)
        room = MAX_MISSING_EXAMPLES - len(self.counts.missing_examples)
        self.counts.missing_examples.extend({"type": batch.rel_type, **m} for m in missing[: max(room, 0)])
        if self.on_rows:
            self.on_rows(n)

    def delete(self, spec: Delete) -> int:
        """Run ``spec`` in batches of ``batch_size`` deletions; returns how many were deleted."""
        n = _delete(self._execute, spec, self.batch_size)
        self.counts.deleted += n
        return n


def _delete(execute: Callable[[Callable[[ManagedTransaction], int]], int], spec: Delete, limit: int) -> int:
    """Delete what ``spec`` matches, ``limit`` at a time (each call of ``execute`` one transaction, or all
    in the caller's); returns how many nodes/relationships were deleted."""
    q = delete_query(spec)
    where = dict(spec.where)
    if any(v is None for v in where.values()):  # `x.p = null` matches nothing: a silent no-op
        raise ValueError(f"Delete {spec.label} {spec.rel_type or ''}: where has a None value: {where}")

    def work(tx: ManagedTransaction) -> int:
        return int(tx.run(q, where=where, limit=limit).single()["n"])

    total = 0
    while (n := execute(work)) > 0:
        total += n
        if n < limit:
            break
    return total


def _describe_missing(batch: RelBatch, missing: list[dict[str, Any]]) -> str:
    m = missing[0]
    (sl, _), (el, _) = batch.start, batch.end
    what = f"{sl} {m['start']!r}" if m["missing_start"] else f"{el} {m['end']!r}"
    return f"{what} is not in the graph ({len(missing)} {batch.rel_type} relationship(s) with a missing end)"


# ------------------------------------------------------------------------------------- run locks

#: key prefix of the (never committed) lock nodes of :func:`run_lock`
LOCK_PREFIX = "moakg-lock:"
#: the lock that compound sources take in turn (:func:`moakg.ingest.runner.run_adapters`)
COMPOUND_LOCK = "compound-identities"
#: seconds a writer waits for a lock before it says that it waits (once)
LOCK_NOTE_AFTER = 2.0
_held = threading.local()


@contextmanager
def run_lock(conn: Neo4jConnection, label: str, name: str, what: str | None = None) -> Iterator[None]:
    """Hold the lock ``name`` among ``label`` nodes while the block runs; another writer asking for the
    same lock (another process or thread, with its own connection) waits until the block ends, and after
    :data:`LOCK_NOTE_AFTER` seconds logs that it waits (``what`` names what it waits for).

    The lock is the uniqueness-constraint entry of an uncommitted ``MERGE (:label {key: 'moakg-lock:'
    + name})`` in a transaction of its own that is rolled back at the end: the node is never committed
    (no reader ever sees it), and if the process dies the server rolls the transaction back, so a lock
    never outlives its holder. Re-entrant within a thread. Without the schema's constraints (``moakg db
    init`` not run) it does not exclude anything.

    Why: two writes of the same run at once (two ``moakg ingest`` of the same files, two trainings of the
    same config) would interleave their batches; the run's status would say ``completed`` when the
    first ends while the second still writes, and a run that deletes before it writes (a ModelRun's
    predictions) could end up with a mix of both. With the lock the second waits, then writes the run
    again as a re-run does.
    """
    ident = (conn.settings.uri, conn.database, label, name)
    held: set[tuple[str, ...]] = _held.__dict__.setdefault("locks", set())
    if ident in held:
        yield
        return
    key = current_schema().key_of(label)
    query = f"MERGE (:{_ident(label)} {{{_ident(key)}: $name}})"
    what = what or f"{label} {name}"
    with conn.session() as session:  # a server gone away: Neo4jUnavailable, one line
        tx = session.begin_transaction()
        try:
            note = threading.Timer(LOCK_NOTE_AFTER, log.warning,
                                   (f"waiting: another writer holds {what}; this one goes on when it ends",))
            note.daemon = True
            note.start()
            try:
                tx.run(query, name=LOCK_PREFIX + name).consume()
            finally:
                note.cancel()
            held.add(ident)
            try:
                yield
            finally:
                held.discard(ident)
        finally:
            with suppress(Exception):  # e.g. the server went away: the error to report is the block's
                tx.close()  # rolls back: the lock node is never committed


# ------------------------------------------------------------------------------- runs and modes


def begin_run(
    conn: Neo4jConnection, prov: Provenance, props: Mapping[str, Any] | None = None, new_attempt: bool = True
) -> None:
    """MERGE the run node, set ``props`` and mark it ``running`` (``attempts`` + 1 with ``new_attempt``)."""
    conn.query(run_start_query(prov.label), id=prov.run_id, props=clean_row(props or {}),
               attempt=int(new_attempt))


def end_run(
    conn: Neo4jConnection, prov: Provenance, status: str, error: str | None = None,
    props: Mapping[str, Any] | None = None,
) -> None:
    """Mark the run ``completed``, ``failed`` (with ``error``) or ``staged`` (a bulk load's ingest whose
    relationships wait in the import files) and set ``props`` on it."""
    if status not in ("completed", "failed", "staged"):
        raise ValueError(f"a run ends completed, failed or staged, not {status!r}")
    conn.query(run_end_query(prov.label), id=prov.run_id, status=status, error=error,
               props=clean_row(props or {}))


def _mark_failed(conn: Neo4jConnection, prov: Provenance, exc: BaseException,
                 props: Mapping[str, Any] | None) -> None:
    msg = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        if isinstance(exc, Neo4jUnavailable):
            # The server went away and the driver has already retried for its whole retry time: one
            # try (it may be back), not another round of retries before the error is reported.
            with conn.session() as s:
                s.run(run_end_query(prov.label), id=prov.run_id, status="failed", error=msg,
                      props=clean_row(props or {})).consume()
        else:
            end_run(conn, prov, "failed", msg, props)
    except Exception as mark_exc:  # e.g. Neo4j went away: the original error is the one to raise
        exc.add_note(f"(the {prov.label} {prov.run_id} could not be marked failed: {mark_exc})")
        if isinstance(exc, Neo4jUnavailable):  # the one line the user reads says where the run stands
            exc.args = (f"{exc}; the {prov.label} {prov.run_id} stays 'running' until that re-run "
                        "completes it",)


Summary = Callable[[WriteCounts, bool], Mapping[str, Any]]


def write_run(
    conn: Neo4jConnection,
    prov: Provenance,
    batches: Iterable[Batch],
    props: Mapping[str, Any] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_rows: Callable[[int], object] | None = None,
    new_attempt: bool = True,
    summary: Summary | None = None,
) -> WriteCounts:
    """Write ``batches`` (one transaction per batch) inside the run node's lifecycle.

    The run node gets ``props`` and ``running``, then ``completed`` or, if anything raises (a batch,
    or the iterator producing them), ``failed`` with the error before the exception propagates.
    ``summary(counts, ok)`` gives extra properties stored on the run when it ends. ``new_attempt=False``
    continues a run (a second write of the same run) without counting another attempt.

    Writers of the same run take turns (:func:`run_lock`): a second ``write_run`` of this run started
    meanwhile elsewhere (another process or thread) waits until this one has marked the run.
    """
    with run_lock(conn, prov.label, prov.run_id):  # a second writer of the same run waits here
        begin_run(conn, prov, props, new_attempt)
        writer = BatchWriter(conn, prov, batch_size, on_rows)
        try:
            for batch in batches:
                writer.write(batch)
        except BaseException as exc:
            _mark_failed(conn, prov, exc, summary(writer.counts, False) if summary else None)
            raise
        status = "staged" if writer.spool is not None else "completed"
        end_run(conn, prov, status, props=summary(writer.counts, True) if summary else None)
        return writer.counts


def write_atomic(
    conn: Neo4jConnection, prov: Provenance, batches: Sequence[Batch], batch_size: int = DEFAULT_BATCH_SIZE
) -> WriteCounts:
    """Write every batch in one transaction: all of it lands or none of it does.

    A transient error retries the whole transaction (``batches`` must be a sequence, not an iterator, so
    it can be replayed); any other error rolls it back, leaving the graph as it was. The run node is not
    touched: nothing partial can be seen, so there is no ``running``/``failed`` state to record. Meant
    for small writes (one explanation); large ones belong in :func:`write_run`.
    """
    batches = list(batches)

    def work(tx: ManagedTransaction) -> WriteCounts:
        writer = BatchWriter(conn, prov, batch_size, tx=tx)  # fresh counts on every retry
        for batch in batches:
            writer.write(batch)
        return writer.counts

    return conn.write(work)


def delete_batched(
    conn: Neo4jConnection, specs: Iterable[Delete], batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Run ``specs`` outside any run (clean-up); returns how many nodes/relationships were deleted."""
    return sum(_delete(conn.write, spec, batch_size) for spec in specs)


# ------------------------------------------------------------------------------------- ingests


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class IngestReport:
    run_id: str
    source: str
    status: str
    counts: WriteCounts
    stats: dict[str, Any]
    error: str | None = None


def ingest_run_id(source: str, hashes: Sequence[str], params: Mapping[str, Any]) -> str:
    """Deterministic: the same source, files and parameters give the same run, so a re-run completes it."""
    blob = json.dumps([source, list(hashes), params], sort_keys=True, default=str)
    return f"{source}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def run_ingest(
    conn: Neo4jConnection,
    source: str,
    batches: Iterable[Batch],
    files: Sequence[Path | str] = (),
    params: Mapping[str, Any] | None = None,
    stats: Mapping[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> IngestReport:
    """Write ``batches`` under one ``(:IngestRun)``, marking it completed or failed.

    ``stats`` is a mapping the adapter fills while it yields (skipped rows, unmapped ids, ...); it is
    read at the end and stored on the run. Exceptions are re-raised after the run is marked failed.
    """
    params = dict(params or {})
    paths = [str(Path(f).resolve()) for f in files]
    hashes = [file_sha256(f) for f in files]
    prov = Provenance.ingest(source, ingest_run_id(source, hashes, params))
    run_props = {"source": source, "files": paths, "sha256": hashes,
                 "params": json.dumps(params, default=str)}

    def summary(counts: WriteCounts, ok: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"counts": json.dumps(counts.as_dict())}
        if ok:
            out |= {"stats": json.dumps(dict(stats or {}), default=str),
                    "nodes_created": counts.nodes_created, "rels_created": counts.rels_created,
                    "rels_missing_endpoint": counts.rels_missing_endpoint}
        return out

    bar = tqdm(desc=f"ingest {source}", unit="rows", disable=not progress, leave=False)
    try:
        counts = write_run(conn, prov, batches, run_props, batch_size=batch_size, on_rows=bar.update,
                           summary=summary)
    finally:
        bar.close()
    status = "staged" if _SPOOL.get() is not None else "completed"
    return IngestReport(prov.run_id, source, status, counts, dict(stats or {}))
