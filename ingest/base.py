"""What every source adapter shares: the adapter interface, input errors and file opening.

An adapter (BioCypher style) parses and validates one source and yields node and relationship batches
for :func:`moakg.kg.writer.run_ingest`; it never talks to Neo4j itself. Adapters fill ``self.stats``
(rows read, skipped, unmapped ids, ...) as they go; the numbers end up on the ``(:IngestRun)``.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, TextIO

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


def check_int_option(name: str, value: Any, minimum: int = 1) -> int:
    """An integer option (``top_k``, ``chunk_rows``) from a config or a caller: a UserError unless it is
    an integer >= ``minimum`` (a float or a string would fail later, deep inside the parsing)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_number_option(name: str, value: Any) -> float | None:
    """An optional numeric option (a threshold): None, or an int or float that is not NaN."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise UserError(f"{name} must be a number, got {value!r}")
    return value


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


def require_file(path: Path) -> Path:
    """``path`` if it is a file: FileNotFoundError when missing, InputFormatError for a folder (which
    ``open`` would report as IsADirectoryError, an unexpected error for the command line)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise InputFormatError(path, None, "is a folder; expected a file")
    return path


class TextDecodeError(InputFormatError):
    """A text file holding bytes that are not valid in the encoding it is read with."""


#: what the gzip module raises on a truncated or corrupt stream
GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, zlib.error)


class _CheckedBytes(io.RawIOBase):
    """The bytes of a text file, checked as they are read: a truncated or corrupt gzip stream and bytes
    that are not valid in ``encoding`` raise :class:`InputFormatError` naming the file and line, where
    the text layer above would raise ``EOFError`` / ``BadGzipFile`` / ``UnicodeDecodeError``.

    Checking costs one extra incremental decode per 8 KiB block (C speed), not a Python call per line.
    """

    def __init__(self, raw: IO[bytes], path: Path, encoding: str, gz: bool) -> None:
        super().__init__()
        self._raw, self._path, self._encoding, self._gz = raw, path, encoding, gz
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._lines = 0  # newlines before the current block

    @property
    def name(self) -> str:
        return str(self._path)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        try:
            data = self._raw.read(len(buf))
        except GZIP_ERRORS as exc:
            if not self._gz:
                raise
            where = f"after line {self._lines}" if self._lines else None  # the lines read so far are whole
            raise InputFormatError(self._path, where, "truncated or corrupt gzip data "
                                   f"({exc or type(exc).__name__})") from None
        pending = self._decoder.getstate()[0]  # the incomplete character carried over from the last block
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = max(exc.start - len(pending), 0)
            bad = bytes(exc.object[exc.start:exc.start + 4])
            raise TextDecodeError(
                self._path, self._lines + data.count(b"\n", 0, at) + 1,
                f"not {self._encoding} text ({exc.reason} at byte {bad!r}); a different encoding "
                "(latin-1, UTF-16) or a binary file? Save it as UTF-8 text",
            ) from None
        self._lines += data.count(b"\n")
        n = len(data)
        buf[:n] = data
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_text(path: Path | str, encoding: str = "utf-8") -> TextIO:
    """Open a plain or gzip-compressed text file (gzip detected by its magic bytes, not its name).

    Reading it raises :class:`InputFormatError` (naming the file and line) for a truncated or corrupt
    gzip stream and :class:`TextDecodeError` for bytes that are not valid ``encoding`` text.
    """
    path = require_file(Path(path))
    with open(path, "rb") as f:
        magic = f.read(2)
    gz = magic == b"\x1f\x8b"
    raw: IO[bytes] = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    checked = io.BufferedReader(_CheckedBytes(raw, path, encoding, gz))
    return io.TextIOWrapper(checked, encoding=encoding, newline="")


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
