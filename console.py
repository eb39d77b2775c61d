"""What every command prints and how it fails: one-line errors, connecting, plain tables."""

from __future__ import annotations

import json

import typer

from moakg.kg.connection import Neo4jConnection, Neo4jSettings, Neo4jUnavailable


def fail(message: str) -> typer.Exit:
    """Print one clear line to stderr and return the exit to raise."""
    typer.echo(f"error: {message}".replace("\n", " "), err=True)
    return typer.Exit(1)


def require_device(device: str) -> None:
    """Fail with one clear line when ``device`` names CUDA and this machine has none (checked before
    any graph work starts, so nothing is written)."""
    if device.startswith("cuda"):
        import torch  # lazily: the CLI's other commands start without it

        if not torch.cuda.is_available():
            raise fail(f"--device {device}: CUDA is not available here; use --device cpu")


def connect() -> Neo4jConnection:
    """Connect as NEO4J_URI/... say (or to the local server), turning failures into one clear line."""
    try:
        return Neo4jConnection(Neo4jSettings.from_env())
    except Neo4jUnavailable as exc:
        raise fail(str(exc)) from None


def _cell(v: object) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else str(v))


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """The rows of :func:`print_table` as a GitHub Markdown table (``|`` inside a cell escaped)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    lines = [columns, ["---"] * len(columns)]
    lines += [[_cell(r.get(c)).replace("|", "\\|") for c in columns] for r in rows]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def print_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """A plain aligned text table on stdout."""
    if not rows:
        typer.echo("(no rows)")
        return
    columns = columns or list(rows[0])
    cell = _cell

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    typer.echo("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        typer.echo("  ".join(cell(r.get(c)).ljust(widths[c]) for c in columns))
