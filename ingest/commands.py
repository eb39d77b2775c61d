"""`moakg ingest ...`: one sub-command per source, and `all` driven by a sources.toml."""

from __future__ import annotations

import typer

ingest_app = typer.Typer(
    help="Load data sources into Neo4j (idempotent; every run is an IngestRun).", no_args_is_help=True
)
