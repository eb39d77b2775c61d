"""The named Cypher queries in ``queries/``: one ``.cypher`` file each, with a header comment.

Header lines (``// key: value``) give ``name``, ``description`` and one ``param`` line per parameter
(``// param: compound_id  string  Compound.id or name``). The body runs unchanged in the Neo4j Browser
(after ``:param``) and through :func:`run_query` / ``moakg query run NAME``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

QUERY_DIR = Path(__file__).resolve().parent.parent / "queries"
_HEADER = re.compile(r"^//\s*(\w+)\s*:\s*(.*)$")


@dataclass(frozen=True)
class QueryParam:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[QueryParam, ...]
    text: str
    path: Path = field(compare=False)


def parse_query_file(path: Path) -> NamedQuery:
    meta: dict[str, str] = {}
    params: list[QueryParam] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _HEADER.match(line.strip())
        if not m:
            if line.strip() and not line.strip().startswith("//"):
                break
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        if key == "param":
            parts = value.split(None, 2)
            if len(parts) < 2:
                raise ValueError(f"{path}: param line needs 'name type [description]': {line!r}")
            params.append(QueryParam(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
        else:
            meta[key] = value
    if meta.get("name") != path.stem:
        raise ValueError(f"{path}: header '// name: {path.stem}' missing or different from the file name")
    return NamedQuery(path.stem, meta.get("description", ""), tuple(params), path.read_text("utf-8"), path)


@cache
def load_query(name: str) -> NamedQuery:
    path = QUERY_DIR / f"{name}.cypher"
    if not path.exists():
        known = ", ".join(q.name for q in list_queries())
        raise KeyError(f"no query named {name!r} in {QUERY_DIR}; known: {known}")
    return parse_query_file(path)


def list_queries() -> list[NamedQuery]:
    return [parse_query_file(p) for p in sorted(QUERY_DIR.glob("*.cypher"))]
