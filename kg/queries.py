"""The named Cypher queries in ``queries/``: one ``.cypher`` file each, with a header comment.

Header lines (``// key: value``, before the first Cypher line) give ``name`` (the file name),
``description`` and one ``param`` line per parameter::

    // param: <name> <type> [=<default>] [description]
    // param: compound string Compound.id or name
    // param: top int =10 how many genes to list
    // param: run string ='' ModelRun.id ('' = every run)

``type`` is ``string``, ``int``, ``float``, ``bool`` or ``list`` (comma-separated on the command line).
A default is one token without spaces that starts with ``=``, right after the type, written as the
value would be on the command line (``-p top=10``); quotes around it are removed (``=''`` is the empty
string, or the empty list), and ``=null`` is Cypher ``null``. A parameter without a default must be
given.

:func:`run_query` and ``moakg query run NAME -p key=value`` apply the defaults of the parameters the
caller leaves out and refuse a missing parameter without a default, or an undeclared one, with an
error naming the query and the parameter. The body runs unchanged in the Neo4j Browser, where every
parameter, defaults included, is set with ``:param``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moakg.errors import UserError

if TYPE_CHECKING:
    from moakg.kg.connection import Neo4jConnection

QUERY_DIR = Path(__file__).resolve().parent.parent / "queries"
_HEADER = re.compile(r"^//\s*(\w+)\s*:\s*(.*)$")
PARAM_TYPES = ("string", "int", "float", "bool", "list")
_NO_DEFAULT = object()
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class UnknownQueryError(UserError, KeyError):
    """No query of that name in ``queries/`` (also a ``KeyError``, as before)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class QueryParam:
    name: str
    type: str
    description: str
    default: Any = field(default=_NO_DEFAULT, compare=False)

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def convert(self, raw: str) -> Any:
        """The value of ``raw`` text (a ``-p`` value or a header default) for this parameter's type;
        raises ``ValueError`` if it is not one."""
        if raw == "null":
            return None
        if self.type == "int":
            return int(raw)
        if self.type == "float":
            return float(raw)
        if self.type == "bool":
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError(raw)
            return raw.lower() in _TRUE
        if self.type == "list":
            return [v for v in raw.split(",") if v]
        return raw

    def signature(self) -> str:
        """``top:int=10`` (as ``moakg query list`` shows it)."""
        if not self.has_default:
            return f"{self.name}:{self.type}"
        value = self.default
        if value is None:
            shown = "null"
        elif isinstance(value, bool):
            shown = str(value).lower()
        elif isinstance(value, list):
            shown = ",".join(map(str, value))
        else:
            shown = str(value)
        return f"{self.name}:{self.type}={shown or repr('')}"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[QueryParam, ...]
    text: str
    path: Path = field(compare=False)

    def param(self, name: str) -> QueryParam:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise UserError(f"query {self.name} has no parameter {name!r} (its parameters: {known})")

    def missing(self, given: Mapping[str, Any]) -> list[str]:
        """Parameters without a default that ``given`` leaves out, in header order."""
        return [p.name for p in self.params if p.name not in given and not p.has_default]

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` plus the defaults of the parameters it leaves out; :class:`UserError` for an
        undeclared parameter or a missing one without a default."""
        for name in given:
            self.param(name)
        missing = self.missing(given)
        if missing:
            raise UserError(f"query {self.name} needs a value for {', '.join(missing)} "
                            f"(no default in {self.path.name})")
        return {p.name: given.get(p.name, p.default) for p in self.params}


def _parse_param_line(path: Path, line: str, value: str) -> QueryParam:
    parts = value.split(None, 2)
    if len(parts) < 2:
        raise UserError(f"{path}: param line needs 'name type [=default] [description]': {line!r}")
    name, kind, rest = parts[0], parts[1], parts[2] if len(parts) > 2 else ""
    if kind not in PARAM_TYPES:
        raise UserError(f"{path}: parameter {name} has type {kind!r}; "
                        f"expected one of {', '.join(PARAM_TYPES)}")
    param = QueryParam(name, kind, rest)
    if rest.startswith("="):
        raw, _, description = rest[1:].partition(" ")
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        try:
            default = param.convert(raw)
        except ValueError:
            raise UserError(f"{path}: default {raw!r} of parameter {name} is not a {kind}") from None
        param = QueryParam(name, kind, description.strip(), default)
    return param


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
            params.append(_parse_param_line(path, line, value))
        else:
            meta[key] = value
    if meta.get("name") != path.stem:
        raise UserError(f"{path}: header '// name: {path.stem}' missing or different from the file name")
    return NamedQuery(path.stem, meta.get("description", ""), tuple(params), path.read_text("utf-8"), path)


#: a query name is a file name in queries/ without its extension: never a path (``../x``, ``/etc/x``)
_QUERY_NAME = re.compile(r"[A-Za-z0-9_]+")


@cache
def load_query(name: str) -> NamedQuery:
    path = QUERY_DIR / f"{name}.cypher"
    if not _QUERY_NAME.fullmatch(name) or not path.is_file():
        known = ", ".join(q.name for q in list_queries())
        raise UnknownQueryError(f"no query named {name!r} in {QUERY_DIR}; known: {known}")
    return parse_query_file(path)


def list_queries() -> list[NamedQuery]:
    return [parse_query_file(p) for p in sorted(QUERY_DIR.glob("*.cypher"))]


def run_query(conn: Neo4jConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run the named query with ``params`` (defaults from its header for those left out) -> records."""
    q = load_query(name)
    return conn.query(q.text, **q.bind(params))
