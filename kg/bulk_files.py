"""The files of a bulk load: typed CSV parts for ``neo4j-admin database import full``, and the spool
that writes an ingest's relationships there instead of into the graph.

Why hand-written: neo4j-admin reads its own CSV dialect (typed header columns ``name:type``, ``:ID(space)``
/ ``:START_ID`` / ``:END_ID``, arrays joined by a delimiter); no library writes it. Python's ``csv``
module does the quoting (``"`` doubled, as the import tool expects), this module the typing.

Layout of a part: a header file, written when the part is closed (so columns may be added while rows
are written: a row only fills the columns it has, shorter rows are fine for the import tool) and a data
file. A value whose type differs from its column's type (``dose`` 10 then 0.5) goes to another part of
the same label or type, so every value keeps the exact type the transactional writer would store.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from neo4j.time import Date, DateTime

#: array elements are joined by the ASCII unit separator: it never occurs in the data we load, and a
#: string that holds it is refused rather than split (``--array-delimiter=U+001F``)
ARRAY_DELIMITER = "\x1f"
ARRAY_DELIMITER_OPTION = "U+001F"


class BulkValueError(ValueError):
    """A value that the import files cannot carry exactly."""


#: exact Python type -> column type: the common case without isinstance chains (millions of values)
_SCALAR_TYPES = {bool: "boolean", int: "long", float: "double", str: "string"}


def value_type(value: Any) -> str:
    """The neo4j-admin column type of one property value (``long``, ``double[]``, ...)."""
    scalar = _SCALAR_TYPES.get(type(value))
    if scalar is not None:
        return scalar
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, DateTime):
        return "datetime"
    if isinstance(value, Date):
        return "date"
    if isinstance(value, (list, tuple)):
        if not value:
            # the import tool reads an empty array field as "no property"; the transactional writer
            # would store []: refuse rather than load a different graph
            raise BulkValueError("an empty list cannot be written to the import files")
        types = {value_type(v) for v in value}
        if len(types) != 1 or next(iter(types)).endswith("[]"):
            raise BulkValueError(f"a list property must hold one scalar type, not {sorted(types)}")
        return f"{types.pop()}[]"
    raise BulkValueError(f"unsupported property type {type(value).__name__}")


def cell(value: Any) -> str:
    """One CSV field for a value of :func:`value_type`."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, (DateTime, Date)):
        return value.iso_format()
    if isinstance(value, (list, tuple)):
        parts = [cell(v) for v in value]
        if any(ARRAY_DELIMITER in p for p in parts):
            raise BulkValueError("a list element holds the array delimiter U+001F")
        return ARRAY_DELIMITER.join(parts)
    return str(value)


def parse_cell(text: str, type_: str) -> Any:
    """The inverse of :func:`cell` for the types :func:`value_type` gives (dates stay ISO strings)."""
    if type_.endswith("[]"):
        return [parse_cell(t, type_[:-2]) for t in text.split(ARRAY_DELIMITER)]
    if type_ == "boolean":
        return text == "true"
    if type_ == "long":
        return int(text)
    if type_ == "double":
        return float(text.replace("Infinity", "inf"))
    return text


@dataclass
class _Part:
    data: Path
    header: Path
    columns: dict[str, str] = field(default_factory=dict)  # name -> type, in column order
    positions: dict[str, int] = field(default_factory=dict)  # name -> field index after the id columns
    rows: int = 0

    def fits(self, types: Mapping[str, str]) -> bool:
        return all(self.columns.get(k, t) == t for k, t in types.items())


class CsvParts:
    """The import files of one node label or relationship type.

    Args:
        folder: where the files go.
        name: file name stem (``node-Gene``, ``rel-UPREGULATES``).
        id_columns: the leading columns, e.g. ``[":ID(Gene)"]`` or ``[":START_ID(Signature)",
            ":END_ID(Gene)"]``; every row gives one value for each.
    """

    def __init__(self, folder: Path, name: str, id_columns: Sequence[str]) -> None:
        self.folder, self.name, self.id_columns = Path(folder), name, list(id_columns)
        self.parts: list[_Part] = []
        self._files: list[Any] = []
        self._writers: list[Any] = []

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def _part_for(self, types: Mapping[str, str]) -> int:
        for i, part in enumerate(self.parts):
            if part.fits(types):
                return i
        i = len(self.parts)
        stem = self.folder / f"{self.name}-{i:03d}"
        self.parts.append(_Part(stem.with_suffix(".csv"), stem.with_name(stem.name + "-header.csv")))
        f = open(self.parts[i].data, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._files.append(f)
        self._writers.append(csv.writer(f, lineterminator="\n"))
        return i

    def write(self, ids: Sequence[Any], props: Mapping[str, Any]) -> None:
        """One node or relationship: its id column values and its properties (no ``None`` values)."""
        types = {}
        for k, v in props.items():
            try:
                types[k] = value_type(v)
            except BulkValueError as exc:
                raise BulkValueError(f"{self.name} {list(ids)}, property {k!r}: {exc}") from None
        i = self._part_for(types)
        part = self.parts[i]
        positions = part.positions
        for k, t in types.items():
            if k not in positions:
                part.columns[k] = t
                positions[k] = len(positions)
        fields = [""] * (max((positions[k] for k in props), default=-1) + 1)
        for k, v in props.items():
            fields[positions[k]] = cell(v)
        self._writers[i].writerow([str(x) for x in ids] + fields)
        part.rows += 1

    def write_many(self, ids: Sequence[Sequence[Any]], props: Sequence[Mapping[str, Any]],
                   const: Mapping[str, Any] | None = None) -> None:
        """Many rows at once: ``ids`` one column of values per id column, ``props[i]`` row i's properties,
        ``const`` properties every row has (the run's stamps).

        The same files as :meth:`write` row by row, column-wise where it can: rows sharing their property
        names and one scalar type per column (one adapter's batch, the common case) are formatted with a
        ``map`` per column and written with ``writerows``, several times faster than row by row at
        millions of relationships. Anything else (lists, dates, mixed types) goes through :meth:`write`.
        """
        const = dict(const or {})
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, p in enumerate(props):
            groups.setdefault(tuple(p), []).append(i)
        for names, rows in groups.items():
            cols = {k: [props[i][k] for i in rows] for k in names if k not in const}
            types: dict[str, str] = {}
            for k, col in cols.items():
                kinds = set(map(type, col))
                t = _SCALAR_TYPES.get(kinds.pop()) if len(kinds) == 1 else None
                if t is None:
                    break
                types[k] = t
            else:
                for k, v in const.items():
                    types[k] = value_type(v)
                self._write_columns([[str(x) for x in (c[i] for i in rows)] for c in ids], cols, const, types,
                                    len(rows))
                continue
            for i in rows:  # the general path, row by row
                self.write([c[i] for c in ids], {**props[i], **const})

    def _write_columns(self, ids: list[list[str]], cols: dict[str, list[Any]], const: Mapping[str, Any],
                       types: Mapping[str, str], n: int) -> None:
        i = self._part_for(types)
        part = self.parts[i]
        for k, t in types.items():
            if k not in part.positions:
                part.columns[k] = t
                part.positions[k] = len(part.positions)
        width = max((part.positions[k] for k in types), default=-1) + 1
        fields: list[Any] = [itertools.repeat("")] * width  # endless: zip stops at the id columns
        for k, col in cols.items():
            t = types[k]
            fields[part.positions[k]] = (col if t == "string" else map(str, col) if t == "long"
                                         else map(cell, col))
        for k, v in const.items():
            fields[part.positions[k]] = itertools.repeat(cell(v))
        self._writers[i].writerows(zip(*ids, *fields, strict=False))
        part.rows += n

    def close(self) -> list[tuple[Path, Path]]:
        """Write the headers, close the data files; ``(header, data)`` per part."""
        for f in self._files:
            f.close()
        self._files, self._writers = [], []
        for part in self.parts:
            header = self.id_columns + [f"{k}:{t}" for k, t in part.columns.items()]
            with open(part.header, "w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow(header)
        return [(p.header, p.data) for p in self.parts]

    def read(self) -> Iterator[tuple[list[str], dict[str, Any]]]:
        """Read back the closed parts: ``(ids, props)`` per row, typed as written."""
        n = len(self.id_columns)
        for part in self.parts:
            names = list(part.columns.items())
            with open(part.data, encoding="utf-8", newline="") as f:
                for row in csv.reader(f):
                    fields = zip(names, row[n:], strict=False)
                    props = {k: parse_cell(v, t) for (k, t), v in fields if v != ""}
                    yield row[:n], props


class HashSet64:
    """A set of 64-bit hashes in sorted numpy arrays: 8 bytes an element where a Python set of ints
    takes about 70 (72M relationship keys: 0.6 GB instead of 5 GB).

    The arrays form a log-structured merge: each new batch is one small sorted array, and the two
    last arrays are merged while the last is at least half the size of the one before, so there are
    O(log n) arrays to search and every element is re-sorted O(log n) times.
    """

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(a.size for a in self._levels)

    @staticmethod
    def _contains(arr: np.ndarray, h: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(arr, h).clip(max=arr.size - 1)
        return arr[pos] == h

    def add_new(self, hashes: np.ndarray) -> np.ndarray:
        """Add ``hashes``; returns a mask of those that were not in the set before (within ``hashes``,
        only the first of equal values counts as new)."""
        seen = np.zeros(hashes.size, bool)
        for arr in self._levels:
            seen |= self._contains(arr, hashes)
        _, first = np.unique(hashes, return_index=True)
        new = np.zeros(hashes.size, bool)
        new[first] = True
        new &= ~seen
        if new.any():
            self._levels.append(np.sort(hashes[new]))
        while len(self._levels) > 1 and self._levels[-1].size * 2 >= self._levels[-2].size:
            last = self._levels.pop()
            self._levels[-1] = np.sort(np.concatenate([self._levels[-1], last]))
        return new


def _merge_values(merge_keys: Sequence[str], props: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(props.get(p) for p in merge_keys)


class RelSpool:
    """Where a bulk load's relationships of ``rel_types`` go instead of the graph.

    :class:`moakg.kg.writer.BatchWriter` hands it every relationship batch of those types while
    :func:`spooling` is active, and every node batch (their keys: a relationship whose end node no
    earlier batch wrote is counted missing, as the transactional writer's ``OPTIONAL MATCH`` would).
    Rows are stamped with the run as the writer stamps them; a row whose merge key (type, ends, the
    type's ``merge_on``) was spooled before is a match, not a new relationship: its properties update
    the first row's (``SET rel += ...``) when the spool is closed, so the files hold what ``MERGE``
    would have left. Keys are remembered as 64-bit hashes (:class:`HashSet64`); two different keys
    with one hash (odds about 1e-4 at 72M relationships) would only miscount created vs matched, the
    files are written from the real keys.
    """

    def __init__(self, folder: Path, rel_types: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.rel_types = set(rel_types)
        self.node_keys: dict[str, set[Any]] = {}
        self.files: dict[tuple[str, str, str], CsvParts] = {}
        self.merge_keys: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._seen: dict[tuple[str, str, str], HashSet64] = {}
        self._later: dict[tuple[str, str, str], list[tuple[str, str, dict[str, Any]]]] = {}

    def takes(self, rel_type: str) -> bool:
        return rel_type in self.rel_types

    def saw_nodes(self, label: str, keys: Sequence[Any]) -> None:
        self.node_keys.setdefault(label, set()).update(keys)

    def split_missing(self, start: str, end: str, rows: Sequence[Mapping[str, Any]]) -> tuple[
            list[Mapping[str, Any]], list[dict[str, Any]]]:
        """``rows`` whose end nodes were written, and the others as the writer reports them (``start``,
        ``end``, ``missing_start``, ``missing_end``), as its ``OPTIONAL MATCH`` would find them."""
        starts, ends = self.node_keys.get(start, set()), self.node_keys.get(end, set())
        missing, kept = [], []
        for r in rows:
            ms, me = r["start"] not in starts, r["end"] not in ends
            if ms or me:
                missing.append({"start": r["start"], "end": r["end"], "missing_start": ms, "missing_end": me})
            else:
                kept.append(r)
        return kept, missing

    def add(
        self, rel_type: str, start: str, end: str, merge_keys: Sequence[str],
        rows: Sequence[Mapping[str, Any]], stamps: Mapping[str, Any],
    ) -> tuple[int, list[dict[str, Any]]]:
        """Spool writer rows (``start``, ``end``, ``props``) of one batch; returns how many were new
        relationships and the rows whose end nodes are missing (``start``, ``end``, ``missing_start``,
        ``missing_end``), which are not spooled."""
        group = (rel_type, start, end)
        if group not in self.files:
            self.files[group] = CsvParts(self.folder, f"rel-{rel_type}-{start}-{end}",
                                         [f":START_ID({start})", f":END_ID({end})"])
            self.merge_keys[group] = tuple(merge_keys)
            self._seen[group] = HashSet64()
        kept, missing = self.split_missing(start, end, rows)
        s_ids = [str(r["start"]) for r in kept]
        e_ids = [str(r["end"]) for r in kept]
        merge_cols = [itertools.repeat(stamps[p]) if p in stamps else [r["props"].get(p) for r in kept]
                      for p in merge_keys]
        keys = zip(s_ids, e_ids, *merge_cols, strict=False)  # merge_cols may be endless repeats
        hashes = np.fromiter(map(hash, keys), np.int64, len(kept))
        new = self._seen[group].add_new(hashes)
        fresh = np.flatnonzero(new).tolist()
        self.files[group].write_many([[s_ids[i] for i in fresh], [e_ids[i] for i in fresh]],
                                     [kept[i]["props"] for i in fresh], stamps)
        if len(fresh) < len(kept):
            later = self._later.setdefault(group, [])
            later += [(s_ids[i], e_ids[i], {**kept[i]["props"], **stamps}) for i in np.flatnonzero(~new)]
        return len(fresh), missing

    def close(self) -> dict[tuple[str, str, str], list[tuple[Path, Path]]]:
        """Close every file (folding repeated keys into their first row); ``(type, start, end)`` ->
        ``(header, data)`` parts."""
        out = {}
        for group, parts in self.files.items():
            parts.close()
            later = self._later.get(group)
            if later:
                parts = self._fold(group, parts, later)
            out[group] = [(p.header, p.data) for p in parts.parts]
        return out

    def _fold(self, group: tuple[str, str, str], parts: CsvParts,
              later: list[tuple[str, str, dict[str, Any]]]) -> CsvParts:
        keys = self.merge_keys[group]
        updates: dict[tuple, list[dict[str, Any]]] = {}
        for s, e, p in later:
            updates.setdefault((s, e, *_merge_values(keys, p)), []).append(p)
        folded = CsvParts(self.folder, f"{parts.name}-folded", parts.id_columns)
        for (s, e), props in parts.read():
            for p in updates.get((s, e, *_merge_values(keys, props)), ()):
                props.update(p)
            folded.write((s, e), props)
        folded.close()
        for p in parts.parts:
            p.data.unlink()
            p.header.unlink(missing_ok=True)
        self.files[group] = folded
        return folded
