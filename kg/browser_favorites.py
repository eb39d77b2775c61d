"""The named queries as Neo4j Browser material: a favourites archive to import, and a query with its
parameters written in, to type or paste.

The Browser's favourites drawer imports ``.cypher`` files and zip archives of them (the format its own
"Export favorites" writes). Each script here is the query's header line, one ``:param`` per parameter
(its default, or the value given) and the query body, so a favourite runs as it is in the Browser's
multi-statement editor, and its parameters are edited in place.

Why a zip of scripts and not a ``:play`` guide: a guide must be served over HTTP from a host the server
allow-lists (``browser.remote_content_hostname_whitelist``), one more server to run; an imported
favourite needs nothing but the Browser.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moakg.kg.queries import NamedQuery, load_query

#: the explanation queries of the favourites archive, in the order the Browser lists them
EXPLANATION_QUERIES = ("explanation_paths", "explanations_recovering_targets", "metapaths_for_moa")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def cypher_literal(value: Any) -> str:
    """A Cypher literal of a parameter value (json.dumps quotes and escapes strings as a Cypher
    double-quoted literal does; lists of those are Cypher lists too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def query_body(q: NamedQuery) -> str:
    """The query without its comment lines."""
    return "\n".join(line for line in q.text.splitlines() if not line.lstrip().startswith("//")).strip()


def _values(q: NamedQuery, values: Mapping[str, Any]) -> dict[str, Any]:
    # a parameter without a default and without a value gets an empty placeholder the user edits
    return {p.name: values.get(p.name, p.default if p.has_default else "") for p in q.params}


def inline_query(name: str, values: Mapping[str, Any] | None = None) -> str:
    """Query ``name`` with its parameters written in as literals (header defaults for those left out):
    one statement to type into the Browser, which draws the ``path`` columns it returns."""
    q = load_query(name)
    literals = {p: cypher_literal(v) for p, v in _values(q, values or {}).items()}
    # One pass over the body: every `$name` whole (never `$top` inside `$top_k`), and never again inside
    # a literal written in before (a value holding `$other` stays that text, inside its quotes).
    return _PARAM.sub(lambda m: literals.get(m.group(1), m.group(0)), query_body(q))


def favorite_script(name: str, values: Mapping[str, Any] | None = None) -> str:
    """The Browser favourite of query ``name``: its description, ``:param`` lines, then the body."""
    q = load_query(name)
    lines = [f"// moakg {q.name}: {q.description}"]
    lines += [f":param {p} => {cypher_literal(v)};" for p, v in _values(q, values or {}).items()]
    return "\n".join([*lines, query_body(q) + ";"]) + "\n"


def write_favorites(out: Path, names: Sequence[str] = EXPLANATION_QUERIES,
                    values: Mapping[str, Any] | None = None) -> Path:
    """A zip of one ``<name>.cypher`` favourite per query, to import in the Browser's favourites drawer."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.writestr(f"{name}.cypher", favorite_script(name, values))
    return out
