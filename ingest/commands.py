"""`moakg ingest ...`: one sub-command per source, and `all` driven by a sources.toml.

``sources.toml`` has one section per source; paths are relative to the file. `all` runs them in
dependency order (:data:`ORDER`): L1000 first (compounds with LINCS ids, the L1000 gene table),
then the compound sources matched to them by structure, then consensus and over-expression signatures
(matched to those compounds and genes), then the gene-gene and gene-GO sources.
A section with ``enabled = false`` is skipped.
"""

from __future__ import annotations

import importlib
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from moakg.console import connect, print_table
from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, SourceAdapter
from moakg.ingest.runner import report_rows, run_adapters

ingest_app = typer.Typer(
    help="Load data sources into Neo4j (idempotent; every run is recorded as an IngestRun).",
    no_args_is_help=True,
)

#: config section -> (module, factory); the order is the dependency order of `ingest all`
SOURCES: dict[str, tuple[str, str]] = {
    "l1000": ("moakg.ingest.l1000", "from_config"),
    "repurposing_hub": ("moakg.ingest.repurposing_hub", "from_config"),
    "drugbank": ("moakg.ingest.drugbank", "from_config"),
    # after every compound source (perturbagens are matched to their compounds) and the L1000 genes
    "l1000_consensus": ("moakg.ingest.consensus_matrix", "from_config"),
    "overexpression": ("moakg.ingest.overexpression", "from_config"),
    "string": ("moakg.ingest.string_ppi", "string_from_config"),
    "ppi": ("moakg.ingest.string_ppi", "pairs_from_config"),
    "go": ("moakg.ingest.go", "from_config"),
}
ORDER = list(SOURCES)
CLI_MODULES = sorted({module for module, _ in SOURCES.values()})

def factory(section: str) -> Callable[[dict[str, Any], Path], SourceAdapter]:
    module, name = SOURCES[section]
    return getattr(importlib.import_module(module), name)


def load_config(path: Path) -> dict[str, dict[str, Any]]:
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise InputFormatError(path, None, "is a folder; expected the sources.toml file") from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(path, None, f"not UTF-8 text ({exc.reason} at byte "
                               f"{exc.object[exc.start:exc.start + 4]!r}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFormatError(path, None, f"not valid TOML ({exc})") from None
    unknown = sorted(set(config) - set(SOURCES))
    if unknown:
        raise InputFormatError(path, f"section [{unknown[0]}]", f"unknown source; expected one of {ORDER}")
    for name, section in config.items():
        if not isinstance(section, dict):
            raise InputFormatError(path, f"section [{name}]", f"expected a [{name}] table of keys, got "
                                   f"{name} = {section!r}")
    return config


def adapters_from_config(path: Path) -> list[SourceAdapter]:
    """Build every enabled adapter of a sources.toml, in dependency order (validates paths early).

    A bad value in a section (a missing or unknown key, a value of the wrong type or out of range) is an
    :class:`InputFormatError` naming the config file and the section.
    """
    config = load_config(path)
    base = path.resolve().parent
    out = []
    for name in ORDER:
        section = dict(config.get(name, {}))
        if not section or not section.pop("enabled", True):
            continue
        try:
            out.append(factory(name)(section, base))
        except (InputFormatError, FileNotFoundError):
            raise  # they name their own file
        except (UserError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # obo = 5, ...
            msg = str(exc).removeprefix(f"[{name}] ")
            if not isinstance(exc, UserError):
                msg = f"a value of the wrong type or out of range ({type(exc).__name__}: {msg})"
            raise InputFormatError(path, f"section [{name}]", msg) from None
    return out


@ingest_app.command("all")
def ingest_all(
    config: Annotated[Path, typer.Option("--config", "-c", help="sources.toml: one section per source.")],
    batch_size: Annotated[int, typer.Option(help="Rows per write transaction.")] = 5000,
    bulk: Annotated[bool, typer.Option(
        "--bulk", help="First load of an EMPTY database with neo4j-admin import (local server; restarts it): "
        "nodes and compound relationships are staged through the writer, every other relationship is "
        "written to CSV files and imported; same graph as without --bulk, several times faster at scale. "
        "Refuses a non-empty database: incremental loads use the transactional writer.")] = False,
    bulk_dir: Annotated[Path | None, typer.Option(
        help="--bulk: folder for the import files (default MOAKG_HOME/bulk/<time>; kept with "
        "--keep-bulk-files or when the import fails).")] = None,
    keep_bulk_files: Annotated[bool, typer.Option(help="--bulk: keep the import files.")] = False,
) -> None:
    """Run every source of a sources.toml in dependency order, then print what is in the graph."""
    from moakg.kg.queries import load_query

    adapters = adapters_from_config(config)  # errors in the config: UserError, one line (moakg.cli)
    if bulk:
        reports = _bulk(adapters, batch_size, bulk_dir, keep_bulk_files)
    with connect() as conn:
        if not bulk:
            reports = run_adapters(conn, adapters, batch_size)
        typer.echo("\ningest runs")
        print_table(report_rows(reports))
        typer.echo("\ngraph")
        print_table(conn.query(load_query("graph_summary").text))
    for adapter in adapters:
        if adapter.stats:
            stats = ", ".join(f"{k}={v}" for k, v in sorted(adapter.stats.items()))
            typer.echo(f"\n{adapter.source}: {stats}")


def _bulk(adapters: list[SourceAdapter], batch_size: int, folder: Path | None, keep: bool) -> list:
    from moakg.kg.bulk_import import bulk_ingest
    from moakg.kg.connection import Neo4jSettings
    from moakg.kg.local_server import LocalNeo4j, moakg_home

    settings = Neo4jSettings.from_env()
    server = LocalNeo4j() if settings.local else None
    if server is not None and server.state() is None:
        raise typer.BadParameter("the local Neo4j is not running; start it with `moakg neo4j start`")
    folder = folder or moakg_home() / "bulk" / time.strftime("%Y%m%d-%H%M%S")
    result = bulk_ingest(settings, adapters, server=server, folder=folder, batch_size=batch_size,
                         keep_files=keep, echo=typer.echo)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    typer.echo(f"bulk load: {sum(result.relationships.values()):,} relationships, "
               f"{sum(result.nodes.values()):,} nodes ({times})")
    return result.reports


for _module in CLI_MODULES:
    importlib.import_module(_module).add_cli(ingest_app)
