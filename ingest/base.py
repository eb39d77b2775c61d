"""What every source adapter shares: the adapter interface, input errors and file opening.

An adapter (BioCypher style) parses and validates one source and yields node and relationship batches
for :func:`moakg.kg.writer.run_ingest`; it never talks to Neo4j itself. Adapters fill ``self.stats``
(rows read, skipped, unmapped ids, ...) as they go; the numbers end up on the ``(:IngestRun)``.
"""

from __future__ import annotations

import gzip
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TextIO

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import DEFAULT_BATCH_SIZE, Batch, GraphStep, IngestReport, run_ingest

# Letters, digits and the few punctuation marks HGNC symbols use (HLA-A, C4B_2, ...); no whitespace.
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.\-@/]*$")
# STRING's preferred_name is the bare Ensembl protein id when the protein has no gene name.
_ENSEMBL_RE = re.compile(r"^ENS[A-Z]*[GTP]\d+(\.\d+)?$")
# Source names as datasets are named (HI-II-14, HuRI.v2, BioGRID_4.4): ASCII letters, digits, '_', '-'
# and '.', not starting with '-' or '.' (so never an option, '.' or '..'), at most 64 characters.
_SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")  # fullmatch: no trailing newline


def normalise_symbol(symbol: str | None) -> str | None:
    """Gene key as every source writes it: HGNC-style symbol, stripped and upper-cased; None when
    empty, malformed or an Ensembl id."""
    if symbol is None:
        return None
    s = symbol.strip().upper()
    if not s or not _SYMBOL_RE.match(s) or _ENSEMBL_RE.match(s):
        return None
    return s


def check_source_name(name: str) -> str:
    """``name`` if it can be a source name, else :class:`UserError`.

    A source name is stamped on nodes and relationships (``source``, ``sources``) and starts the
    IngestRun id (``<source>-<hash>``); the writer passes it to Cypher only as a query parameter, never
    in the query text, and the character set keeps it safe in ids and file names as well.
    """
    if not isinstance(name, str) or not _SOURCE_NAME_RE.fullmatch(name):
        raise UserError(
            f"source name {name!r}: use 1-64 ASCII letters, digits, '_', '-' or '.', "
            "not starting with '-' or '.' (e.g. HI-II-14, HuRI.v2)"
        )
    return name


def normalise_moa(name: str | None) -> str | None:
    """MoA key: lower-case, stripped, internal whitespace collapsed; None when empty."""
    if not name:
        return None
    n = " ".join(name.split()).lower()
    return n or None


def check_config_section(name: str, section: dict[str, Any], allowed: set[str] | tuple[str, ...],
                         required: tuple[str, ...] = ()) -> None:
    """A sources.toml section ``[name]`` holds only ``allowed`` keys and every ``required`` one."""
    unknown = set(section) - set(allowed)
    if unknown:
        raise UserError(f"[{name}] unknown keys: {sorted(unknown)}")
    for key in required:
        if key not in section:
            raise UserError(f"[{name}] needs `{key}`")


def config_paths(value: str | list[str] | None, base_dir: Path) -> list[Path] | None:
    """A config value holding one path or a list of them, relative to the config file's folder."""
    if not value:
        return None
    return [base_dir / p for p in value] if isinstance(value, list) else [base_dir / value]


class InputFormatError(UserError):
    """Bad input: names the file, the line or record, and what was expected."""

    def __init__(self, path: Path | str, where: str | int | None, problem: str) -> None:
        self.path, self.where, self.problem = Path(path), where, problem
        loc = f"{self.path}"
        if where is not None:
            loc += f", line {where}" if isinstance(where, int) else f", {where}"
        super().__init__(f"{loc}: {problem}")


def open_text(path: Path | str, encoding: str = "utf-8") -> TextIO:
    """Open a plain or gzip-compressed text file (gzip detected by its magic bytes, not its name)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


class SourceAdapter(ABC):
    """One data source: files and parameters in, node and relationship batches out."""

    #: name stamped as ``source`` on everything the adapter writes
    source: ClassVar[str]
    #: writes Compound nodes: compound identities are resolved over the whole graph after its batches
    writes_compounds: ClassVar[bool] = False

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}

    @abstractmethod
    def files(self) -> list[Path]:
        """The input files (hashed into the IngestRun)."""

    def params(self) -> dict[str, Any]:
        """Parameters that change what is written (thresholds, k, ...); part of the run's identity."""
        return {}

    @abstractmethod
    def batches(self) -> Iterator[Batch]:
        """Yield nodes before the relationships that need them."""

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def ingest(
        self, conn: Neo4jConnection, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True
    ) -> IngestReport:
        return run_ingest(
            conn,
            self.source,
            self._batches_then_identities(),
            files=self.files(),
            params=self.params(),
            stats=self.stats,
            batch_size=batch_size,
            progress=progress,
        )

    def _batches_then_identities(self) -> Iterator[Batch]:
        yield from self.batches()
        if self.writes_compounds:
            yield GraphStep("resolve compound identities", self._resolve_identities)

    def _resolve_identities(self, conn: Neo4jConnection) -> None:
        from moakg.ingest.identity import resolve_compound_identities

        self.stats.update(resolve_compound_identities(conn))
