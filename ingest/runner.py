"""Running adapters against Neo4j: in order, with structure matching, and from the command line."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import typer

from moakg.console import connect, print_table
from moakg.errors import USER_ERRORS  # noqa: F401 - re-exported: kg/export.py imports it here
from moakg.ingest.base import SourceAdapter
from moakg.ingest.compounds import CompoundIndex
from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import require_schema
from moakg.kg.writer import COMPOUND_LOCK, DEFAULT_BATCH_SIZE, IngestReport, run_lock


def run_adapters(
    conn: Neo4jConnection, adapters: list[SourceAdapter], batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> list[IngestReport]:
    """Ingest in order; compound sources see every compound written before them (structure matching).

    Compound sources take turns with those of other ``moakg`` processes (:func:`compound_turn`).
    """
    require_schema(conn)
    reports = []
    for adapter in adapters:
        with compound_turn(conn, adapter):
            if hasattr(adapter, "index"):
                adapter.index = CompoundIndex.from_graph(conn)
            reports.append(adapter.ingest(conn, batch_size=batch_size, progress=progress))
    return reports


def compound_turn(conn: Neo4jConnection, adapter: SourceAdapter) -> AbstractContextManager[object]:
    """For a source that writes compounds, the compound lock (:func:`~moakg.kg.writer.run_lock`), held
    from its snapshot of the graph's compounds to the end of its identity resolution; nothing for others.

    Two compound sources ingested at once would each resolve identities over the graph while the other
    writes: a resolution re-keys or absorbs a node that the other ingest's later relationships point at
    (they are then counted missing and dropped), and it replaces the properties of the nodes it merges
    with what it read before the other ingest added its own. Taking turns, the second waits and then
    ingests against the first one's compounds, as it would after it.
    """
    if not adapter.writes_compounds:
        return nullcontext()
    return run_lock(conn, "IngestRun", COMPOUND_LOCK, what="the compounds (another compound source is being "
                    "ingested)")


def report_rows(reports: list[IngestReport]) -> list[dict[str, Any]]:
    return [
        {
            "source": r.source,
            "status": r.status,
            "nodes_created": r.counts.nodes_created,
            "nodes_matched": r.counts.nodes_matched,
            "rels_created": r.counts.rels_created,
            "rels_matched": r.counts.rels_matched,
            "rels_missing_endpoint": r.counts.rels_missing_endpoint,
        }
        for r in reports
    ]


def run_adapter_cli(
    make_adapter: Callable[[], SourceAdapter], batch_size: int = DEFAULT_BATCH_SIZE
) -> IngestReport:
    """What every `moakg ingest <source>` does: build the adapter (checking its inputs), connect,
    ingest, print counts and stats. Bad input and connection problems raise a
    :class:`~moakg.errors.UserError`, which the command line prints in one line."""
    with connect() as conn:
        adapter = make_adapter()
        [report] = run_adapters(conn, [adapter], batch_size)
    print_table(report_rows([report]))
    if report.counts.missing_examples:
        typer.echo(f"relationships to missing nodes (first {len(report.counts.missing_examples)}):")
        for m in report.counts.missing_examples:
            typer.echo(f"  {m}")
    for key, value in sorted(adapter.stats.items()):
        typer.echo(f"  {key}: {value}")
    return report
