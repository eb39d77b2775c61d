"""The one batched, idempotent graph writer that every ingester uses.

Adapters yield :class:`NodeBatch` and :class:`RelBatch` objects; :func:`run_ingest` records an
``(:IngestRun)``, writes the rows in batches of ``batch_size`` with ``UNWIND $rows ... MERGE`` (each
batch one transaction, retried on transient errors by the driver) and marks the run ``completed`` or
``failed``. Every node and relationship it writes is stamped with ``source`` and ``ingest_run``; nodes
also accumulate every source that wrote them in ``sources``.

Rows are plain dicts. Node rows hold all properties including the key; relationship rows hold
``start`` and ``end`` (the key values of the end nodes) plus the relationship's properties. ``None``
values are dropped rather than written, so one source never erases a property another source set.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from neo4j import ManagedTransaction
from tqdm.auto import tqdm

from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import NODE_KEYS, UNION_LIST_PROPS, _ident

DEFAULT_BATCH_SIZE = 5000
MAX_MISSING_EXAMPLES = 20


@dataclass(frozen=True)
class NodeBatch:
    """Nodes of one label, merged on ``key``; ``rows`` are property dicts that include the key."""

    label: str
    key: str
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class RelBatch:
    """Relationships of one type between nodes found by key.

    ``start``/``end`` are (label, key property). ``rows`` hold ``start``, ``end`` and properties.
    With ``per_source`` the relationship is merged per (start, end, source), so two sources asserting
    the same fact (e.g. a drug target from DrugBank and from the Repurposing Hub) keep separate edges.
    """

    rel_type: str
    start: tuple[str, str]
    end: tuple[str, str]
    rows: Sequence[Mapping[str, Any]]
    per_source: bool = False


Batch = NodeBatch | RelBatch


@dataclass
class WriteCounts:
    nodes_created: int = 0
    nodes_matched: int = 0
    rels_created: int = 0
    rels_matched: int = 0
    rels_missing_endpoint: int = 0
    missing_examples: list[dict[str, Any]] = field(default_factory=list)
    by_label: dict[str, int] = field(default_factory=dict)
    by_rel_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes_created": self.nodes_created,
            "nodes_matched": self.nodes_matched,
            "rels_created": self.rels_created,
            "rels_matched": self.rels_matched,
            "rels_missing_endpoint": self.rels_missing_endpoint,
            "by_label": dict(self.by_label),
            "by_rel_type": dict(self.by_rel_type),
        }


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
    out = {}
    for k, v in row.items():
        v = _py(v)
        if v is not None:
            out[k] = v
    return out


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def node_query(label: str, key: str) -> str:
    """MERGE on the key, SET the properties; list properties in UNION_LIST_PROPS are unioned."""
    label, key = _ident(label), _ident(key)
    union = "".join(
        f" FOREACH (_ IN CASE WHEN r.union.{p} IS NULL THEN [] ELSE [1] END | SET n.{p} = "
        f"reduce(acc = coalesce(n.{p}, []), x IN r.union.{p} | CASE WHEN x IN acc THEN acc ELSE acc + x END))"
        for p in map(_ident, UNION_LIST_PROPS.get(label, ()))
    )
    return (
        f"UNWIND $rows AS r MERGE (n:{label} {{{key}: r.props.{key}}}) "
        "SET n += r.props, n.source = $source, n.ingest_run = $run, "
        "n.sources = CASE WHEN $source IN coalesce(n.sources, []) THEN n.sources "
        "ELSE coalesce(n.sources, []) + $source END" + union
    )


def node_rows(label: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Writer row shape: ``{"props": ..., "union": ...}`` with union-list properties set apart."""
    union_keys = set(UNION_LIST_PROPS.get(label, ()))
    out = []
    for row in rows:
        props = clean_row(row)
        union = {k: props.pop(k) for k in union_keys & props.keys()}
        out.append({"props": props, "union": union})
    return out


def rel_query(batch: RelBatch) -> str:
    (sl, sk), (el, ek), t = batch.start, batch.end, _ident(batch.rel_type)
    sl, sk, el, ek = map(_ident, (sl, sk, el, ek))
    merge_props = " {source: $source}" if batch.per_source else ""
    # OPTIONAL MATCH + FOREACH: rows whose end nodes are missing are returned, not silently dropped.
    return (
        f"UNWIND $rows AS r OPTIONAL MATCH (a:{sl} {{{sk}: r.start}}) "
        f"OPTIONAL MATCH (b:{el} {{{ek}: r.end}}) "
        "FOREACH (_ IN CASE WHEN a IS NULL OR b IS NULL THEN [] ELSE [1] END | "
        f"MERGE (a)-[rel:{t}{merge_props}]->(b) "
        "SET rel += r.props, rel.source = $source, rel.ingest_run = $run) "
        "WITH r, a, b WHERE a IS NULL OR b IS NULL "
        "RETURN r.start AS start, r.end AS end, a IS NULL AS missing_start, b IS NULL AS missing_end"
    )


class BatchWriter:
    """Writes batches for one ingest run. Usually driven by :func:`run_ingest`."""

    def __init__(
        self,
        conn: Neo4jConnection,
        source: str,
        run_id: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_rows: Callable[[int], object] | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.conn, self.source, self.run_id, self.batch_size = conn, source, run_id, batch_size
        self.on_rows = on_rows  # called with the row count of every committed transaction (progress)
        self.counts = WriteCounts()

    def write(self, batch: Batch) -> None:
        if isinstance(batch, NodeBatch):
            self.write_nodes(batch)
        else:
            self.write_rels(batch)

    def write_nodes(self, batch: NodeBatch) -> None:
        if NODE_KEYS.get(batch.label) not in (None, batch.key):
            raise ValueError(
                f"{batch.label} nodes are keyed by {NODE_KEYS[batch.label]!r}, not {batch.key!r}"
            )
        q = node_query(batch.label, batch.key)
        rows = node_rows(batch.label, batch.rows)
        for i, r in enumerate(rows):
            if r["props"].get(batch.key) is None:
                raise ValueError(f"{batch.label} row {i} has no key {batch.key!r}: {dict(batch.rows[i])}")
        for chunk in _chunks(rows, self.batch_size):

            def work(tx: ManagedTransaction, chunk: Sequence[dict] = chunk) -> int:
                return (
                    tx.run(q, rows=list(chunk), source=self.source, run=self.run_id)
                    .consume()
                    .counters.nodes_created
                )

            created = self.conn.write(work)
            self.counts.nodes_created += created
            self.counts.nodes_matched += len(chunk) - created
            if self.on_rows:
                self.on_rows(len(chunk))
        self.counts.by_label[batch.label] = self.counts.by_label.get(batch.label, 0) + len(rows)

    def write_rels(self, batch: RelBatch) -> None:
        q = rel_query(batch)
        rows = []
        for r in batch.rows:
            r = clean_row(r)
            start, end = r.pop("start", None), r.pop("end", None)
            if start is None or end is None:
                raise ValueError(f"{batch.rel_type} row needs 'start' and 'end': {r}")
            rows.append({"start": start, "end": end, "props": r})
        for chunk in _chunks(rows, self.batch_size):

            def work(tx: ManagedTransaction, chunk: Sequence[dict] = chunk) -> tuple[int, list[dict]]:
                res = tx.run(q, rows=list(chunk), source=self.source, run=self.run_id)
                missing = [rec.data() for rec in res]
                return res.consume().counters.relationships_created, missing

            created, missing = self.conn.write(work)
            self.counts.rels_created += created
            self.counts.rels_matched += len(chunk) - created - len(missing)
            self.counts.rels_missing_endpoint += len(missing)
            room = MAX_MISSING_EXAMPLES - len(self.counts.missing_examples)
            self.counts.missing_examples.extend(
                {"type": batch.rel_type, **m} for m in missing[: max(room, 0)]
            )
            if self.on_rows:
                self.on_rows(len(chunk))
        written = len(rows)
        self.counts.by_rel_type[batch.rel_type] = self.counts.by_rel_type.get(batch.rel_type, 0) + written


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
    run_id = ingest_run_id(source, hashes, params)
    conn.query(
        "MERGE (r:IngestRun {id: $id}) ON CREATE SET r.attempts = 0, r.created = datetime() "
        "SET r.source = $source, r.files = $files, r.sha256 = $hashes, r.params = $params, "
        "r.status = 'running', r.started = datetime(), r.ended = null, r.error = null, "
        "r.attempts = r.attempts + 1",
        id=run_id,
        source=source,
        files=paths,
        hashes=hashes,
        params=json.dumps(params, default=str),
    )
    bar = tqdm(desc=f"ingest {source}", unit="rows", disable=not progress, leave=False)
    writer = BatchWriter(conn, source, run_id, batch_size, on_rows=bar.update)
    try:
        for batch in batches:
            writer.write(batch)
    except BaseException as exc:
        bar.close()
        msg = f"{type(exc).__name__}: {exc}"[:2000]
        conn.query(
            "MATCH (r:IngestRun {id: $id}) SET r.status = 'failed', r.error = $error, r.ended = datetime(), "
            "r.counts = $counts",
            id=run_id,
            error=msg,
            counts=json.dumps(writer.counts.as_dict()),
        )
        raise
    bar.close()
    final_stats = dict(stats or {})
    conn.query(
        "MATCH (r:IngestRun {id: $id}) SET r.status = 'completed', r.ended = datetime(), r.counts = $counts, "
        "r.stats = $stats, r.nodes_created = $nc, r.rels_created = $rc, r.rels_missing_endpoint = $miss",
        id=run_id,
        counts=json.dumps(writer.counts.as_dict()),
        stats=json.dumps(final_stats, default=str),
        nc=writer.counts.nodes_created,
        rc=writer.counts.rels_created,
        miss=writer.counts.rels_missing_endpoint,
    )
    return IngestReport(run_id, source, "completed", writer.counts, final_stats)
