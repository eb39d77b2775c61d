"""The `moakg` command line: neo4j, db, ingest, export, train, explain and query sub-commands.

Errors (see :mod:`moakg.errors`): a :class:`~moakg.errors.UserError` or ``FileNotFoundError`` from any
command is printed as one line, ``error: <message>`` (exit status 1). Any other exception is a bug: one
line names it and the log file under ``$MOAKG_HOME/logs/`` that holds its traceback (exit status 1).
``moakg --debug ...`` or ``MOAKG_DEBUG=1`` prints the traceback on stderr instead, for both kinds.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from moakg.console import connect, fail, print_table
from moakg.derive.cli import derive_app
from moakg.errors import describe, is_user_error, write_error_log
from moakg.gnn.cli import add_cli as add_train_cli
from moakg.gnn.cli import add_results_cli
from moakg.gnn.explain.cli import add_cli as add_explain_cli
from moakg.gnn.predict_cli import add_cli as add_predict_cli
from moakg.ingest.commands import ingest_app
from moakg.kg.export import add_cli as add_export_cli
from moakg.kg.local_server import LocalNeo4j, LocalNeo4jError, build_launcher
from moakg.kg.queries import NamedQuery
from moakg.pipeline import add_cli as add_pipeline_cli
from moakg.plots.cli import plot_app


def report_error(exc: Exception, debug: bool) -> typer.Exit:
    """Print what went wrong (see the module docstring) and return the exit to raise."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if is_user_error(exc):
        return fail(str(exc))
    if debug:
        return fail(f"unexpected {describe(exc)} (a bug in moakg; traceback above)")
    try:
        log = write_error_log(exc)
    except OSError as log_exc:  # no writable MOAKG_HOME: the traceback goes to the terminal instead
        traceback.print_exception(exc, file=sys.stderr)
        return fail(f"unexpected {describe(exc)} (a bug in moakg; traceback above, not logged: {log_exc})")
    typer.echo(f"error: unexpected {describe(exc)} (a bug in moakg, not a problem with your input)", err=True)
    typer.echo(f"  traceback: {log}  (or rerun with `moakg --debug ...`)", err=True)
    return typer.Exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not raise BrokenPipeError again
    (the recipe of Python's signal module documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no real stdout (tests): nothing to silence
        pass


class ReportingGroup(TyperGroup):
    """The top-level command group: runs a sub-command and reports its exceptions (:func:`report_error`).

    Exceptions are handled here rather than in :func:`main` so that ``CliRunner().invoke(app, ...)``
    in tests behaves exactly as the ``moakg`` command does."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits, usage errors: typer's own handling
            raise
        except BrokenPipeError:  # the reader went away (`moakg ... | head`): not an error of ours
            _silence_stdout()
            raise typer.Exit(141) from None  # 128 + SIGPIPE, as a shell reports it
        except Exception as exc:
            raise report_error(exc, debug=bool(ctx.params.get("debug"))) from None


app = typer.Typer(
    cls=ReportingGroup,
    help="moakg: predict and explain a drug's mechanism of action and targets from L1000 signatures, "
    "with a Neo4j knowledge graph and heterogeneous GNNs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="MOAKG_DEBUG",
                     help="Print the traceback of any error (default: one line; bugs logged to a file)."),
    ] = False,
) -> None:
    """Global options; ``debug`` is read back by :class:`ReportingGroup` from the context."""


neo4j_app = typer.Typer(
    help="The project's own local Neo4j 5.26 server (built from Maven Central).", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema and contents.", no_args_is_help=True)
query_app = typer.Typer(help="The named Cypher queries in queries/.", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")
app.add_typer(derive_app, name="derive")
app.add_typer(query_app, name="query")
app.add_typer(plot_app, name="plot")
add_export_cli(app)
add_train_cli(app)
add_results_cli(app)
add_explain_cli(app)
add_predict_cli(app)
add_pipeline_cli(app)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Server directory (data, logs, password). Default ~/.moakg/neo4j."),
]
BoltOpt = Annotated[int | None, typer.Option("--bolt-port", help="Bolt port on 127.0.0.1 (default 7687).")]
HttpOpt = Annotated[
    int | None, typer.Option("--http-port", help="HTTP/Browser port on 127.0.0.1 (default 7474).")
]


@neo4j_app.command("build")
def neo4j_build() -> None:
    """Fetch Neo4j's jars with Maven (cached in ~/.m2) and compile the launcher; `start` does this too."""
    try:
        target = build_launcher(quiet=False)
    except LocalNeo4jError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"launcher built in {target}")


@neo4j_app.command("start")
def neo4j_start(
    home: HomeOpt = None,
    bolt_port: BoltOpt = None,
    http_port: HttpOpt = None,
    heap: Annotated[str, typer.Option(help="JVM heap, e.g. 1g or 4g.")] = "1g",
    pagecache: Annotated[str, typer.Option(help="Neo4j page cache, e.g. 512m.")] = "512m",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Bolt to answer.")] = 180.0,
) -> None:
    """Start the local Neo4j in the background; returns once Bolt answers (no-op if already running)."""
    server = LocalNeo4j(home, bolt_port, http_port, heap=heap, pagecache=pagecache)
    already = server.state()
    try:
        st = server.start(timeout=timeout)
    except LocalNeo4jError as exc:
        raise fail(str(exc)) from None
    verb = "already running" if already else "started"
    typer.echo(f"Neo4j {verb}: {st.bolt_uri} (browser {st.http_url}/browser/), pid {st.pid}, home {st.home}")


@neo4j_app.command("stop")
def neo4j_stop(home: HomeOpt = None) -> None:
    """Stop the local Neo4j cleanly; safe to call when it is not running."""
    server = LocalNeo4j(home)
    typer.echo("Neo4j stopped" if server.stop() else "Neo4j was not running")


@neo4j_app.command("status")
def neo4j_status(home: HomeOpt = None) -> None:
    """Say whether the local Neo4j runs, and where; exit code 3 when it does not."""
    server = LocalNeo4j(home)
    st = server.state()
    if st is None:
        typer.echo(f"Neo4j is not running (home {server.home})")
        raise typer.Exit(3)
    typer.echo(
        f"Neo4j is running: pid {st.pid}\n  bolt     {st.bolt_uri}\n  browser  {st.http_url}/browser/\n"
        f"  home     {st.home}\n  logs     {Path(st.home) / 'logs'}\n  password {server.password_file}"
    )


@db_app.command("init")
def db_init() -> None:
    """Create the uniqueness constraints and indexes (idempotent) and record the schema version."""
    from moakg.kg.schema import init_schema

    with connect() as conn:
        summary = init_schema(conn)
    typer.echo(
        f"schema v{summary['schema_version']} ready on {conn.settings.uri}: "
        f"{summary['constraints']} constraints, {summary['indexes']} indexes"
    )


@db_app.command("clear")
def db_clear(
    yes: Annotated[bool, typer.Option("--yes", help="Really delete every node and relationship.")] = False,
) -> None:
    """Delete every node and relationship (the schema stays), e.g. before `moakg ingest all --bulk`."""
    from moakg.kg.maintenance import clear_graph

    if not yes:
        raise typer.BadParameter("this deletes the whole graph; add --yes to do it")
    with connect() as conn:
        clear_graph(conn)
        n = conn.query("MATCH (n) RETURN count(n) AS n")[0]["n"]
    typer.echo(f"graph cleared ({n} nodes left)")


@db_app.command("summary")
def db_summary() -> None:
    """Print how many nodes of each label and relationships of each type the graph holds."""
    from moakg.kg.queries import load_query

    with connect() as conn:
        rows = conn.query(load_query("graph_summary").text)
    print_table(rows, ["kind", "name", "count"])


@db_app.command("schema")
def db_schema(
    markdown: Annotated[bool, typer.Option("--markdown", help="The tables of docs/DESIGN.md.")] = False,
) -> None:
    """Print the graph schema in force (kg/schema.toml, or the file MOAKG_SCHEMA names): node labels
    with their keys, relationship types with their endpoints, role and reverse name. Needs no server."""
    from moakg.kg.schema import current_schema

    schema = current_schema()
    if markdown:
        typer.echo(schema.markdown(), nl=False)
        return
    typer.echo(f"schema v{schema.version} from {schema.path}")
    print_table([{"label": n.label, "key": n.key, "exported": "yes" if n.export else "",
                  "indexed": ", ".join([*n.unique, *n.indexed])} for n in schema.nodes.values()])
    typer.echo("")
    rels = schema.relationships.values()
    print_table([{"relationship": r.name, "from": "|".join(r.start), "to": "|".join(r.end), "role": r.role,
                  "reverse": r.reverse or "", "weight": r.weight or ""} for r in rels])


@query_app.command("list")
def query_list() -> None:
    """List the named queries with their parameters (``name:type=default`` where there is a default)."""
    from moakg.kg.queries import list_queries

    for q in list_queries():
        params = ", ".join(p.signature() for p in q.params)
        typer.echo(f"{q.name:28s} {q.description}" + (f"  [{params}]" if params else ""))


def _parse_param(raw: str, query: NamedQuery) -> tuple[str, object]:
    if "=" not in raw:
        raise fail(f"--param must be key=value, got {raw!r}")
    key, value = raw.split("=", 1)
    param = query.param(key)  # an undeclared name: UserError naming the query's parameters
    try:
        return key, param.convert(value)
    except ValueError:
        raise fail(f"--param {key} expects {param.type}, got {value!r}") from None


@query_app.command("favorites")
def query_favorites(
    out: Annotated[Path, typer.Option("--out", "-o", help="Zip to write.")] = Path("moakg-favorites.zip"),
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value written into every favourite that has that "
                     "parameter (e.g. run=RUN); the others keep their defaults."),
    ] = None,
    name: Annotated[list[str] | None, typer.Option("--query", help="Queries to include (default: the "
                                                   "explanation queries).")] = None,
) -> None:
    """Write Neo4j Browser favourites (a zip of .cypher scripts) of the explanation queries: import it in
    the Browser's favourites drawer (star icon, "Import"), then click a favourite to run it."""
    from moakg.kg.browser_favorites import EXPLANATION_QUERIES, write_favorites
    from moakg.kg.queries import load_query

    names = list(name or EXPLANATION_QUERIES)
    values: dict[str, object] = {}
    for raw in param or []:
        key = raw.split("=", 1)[0]
        q = next((load_query(n) for n in names if key in {p.name for p in load_query(n).params}), None)
        if q is None:
            raise fail(f"--param {key}: none of {', '.join(names)} has that parameter")
        values.update([_parse_param(raw, q)])
    path = write_favorites(out, names, values)
    typer.echo(f"{len(names)} favourites -> {path}; in the Browser: favourites drawer (star) -> Import -> "
               "choose the zip")


@query_app.command("run")
def query_run(
    name: Annotated[str, typer.Argument(help="Query name, see `moakg query list`.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value (repeatable); parameters left out take their default."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
) -> None:
    """Run a named query from queries/ with parameters and print the result."""
    import csv

    from moakg.kg.queries import load_query

    if fmt not in ("table", "json", "csv"):
        raise fail(f"--format must be table, json or csv, not {fmt!r}")
    q = load_query(name)  # an unknown name: UserError listing the known ones
    params = dict(_parse_param(raw, q) for raw in param or [])
    missing = q.missing(params)
    if missing:
        raise fail(f"query {name} needs --param for: {', '.join(missing)} (no default in {q.path.name})")
    with connect() as conn:
        rows = conn.query(q.text, **q.bind(params))
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        print_table(rows)


def main() -> None:
    """The ``moakg`` console script (``[project.scripts]``)."""
    app(prog_name="moakg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
