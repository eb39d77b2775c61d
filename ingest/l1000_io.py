"""Readers and a writer for the CMap matrix formats: GCTX (HDF5) and GCT text (v1.2 and v1.3).

Both readers give the same view: a matrix of **columns x rows** (signatures or wells x genes or probes),
``col_meta`` (one row per column id) and ``row_meta`` (one row per row id), metadata as *strings*
(numbers included) so that one parser (:mod:`moakg.ingest.l1000_meta`) treats ``-666`` and blanks as
missing wherever the metadata came from.

GCTX layout (checked on real level 3 and level 5 files, see shared/NOTES.md): root attribute
``version = b'GCTX1.0'``; ``/0/DATA/0/matrix`` is stored **(n_columns, n_rows)**, i.e. signatures x
genes, the transpose of the GCT text view, chunked by whole rows of that dataset; ``/0/META/COL/<field>``
and ``/0/META/ROW/<field>`` are one 1-D dataset per field, ``id`` among them. Reading a subset of
signatures is therefore a selection of dataset rows: we sort the positions (h5py wants increasing
indices), read them in blocks of at most ``chunk_rows`` rows and subset the genes in memory, so memory
stays bounded by ``chunk_rows x n_genes`` whatever the file size. Byte strings are decoded as UTF-8
and, where that fails, as latin-1 (real files hold ``pert_idose = b'10 \\xb5M'``, i.e. '10 µM').
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from moakg.ingest.base import InputFormatError, TextDecodeError, open_text, require_file

DATA_PATH = "0/DATA/0/matrix"
COL_META = "0/META/COL"
ROW_META = "0/META/ROW"
GCTX_VERSION = b"GCTX1.0"
DEFAULT_CHUNK_ROWS = 2000
#: what GCT text files of the CMap family write for a missing value (read as NaN, as cmapPy does)
MISSING_VALUE_TOKENS = frozenset({"", "NA", "na", "N/A", "NaN", "nan", "NAN", "-666", "-666.0", "-666.00"})
MISSING_VALUE_CODE = -666.0
#: what h5py raises for a corrupt file: OSError mostly, KeyError ('Unable to open object (bad object
#: header ...)') and RuntimeError ('bad symbol table node signature') for damaged object headers, and
#: UnicodeDecodeError for a damaged object name
HDF5_ERRORS: tuple[type[Exception], ...] = (OSError, KeyError, RuntimeError, UnicodeDecodeError)


def decode_strings(values: np.ndarray | Sequence) -> list[str]:
    """Bytes to str: UTF-8 first, latin-1 where UTF-8 fails (latin-1 never fails); others via str()."""
    out = []
    for v in values:
        if isinstance(v, bytes | np.bytes_):
            try:
                out.append(bytes(v).decode("utf-8"))
            except UnicodeDecodeError:
                out.append(bytes(v).decode("latin-1"))
        elif isinstance(v, float | np.floating) and np.isnan(v):
            out.append("")
        else:
            out.append(str(v))
    return out


class L1000Matrix:
    """Common interface of the GCT and GCTX readers: metadata up front, values read on demand."""

    path: Path
    row_meta: pd.DataFrame
    col_meta: pd.DataFrame

    @property
    def shape(self) -> tuple[int, int]:
        """(n_columns, n_rows) = (signatures or wells, genes or probes)."""
        return len(self.col_meta), len(self.row_meta)

    def iter_blocks(
        self, col_pos: Sequence[int] | np.ndarray, row_pos: Sequence[int] | np.ndarray | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, values)`` blocks: ``values[i]`` is column ``positions[i]`` (float32).

        Positions come back sorted (the order the file is read in), at most ``chunk_rows`` per block.
        """
        raise NotImplementedError

    def read(
        self, col_pos: Sequence[int] | np.ndarray, row_pos: Sequence[int] | np.ndarray | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> np.ndarray:
        """Values for ``col_pos`` x ``row_pos`` in the order given (float32, columns x rows)."""
        col_pos = np.asarray(col_pos, dtype=np.int64)
        n_rows = len(self.row_meta) if row_pos is None else len(row_pos)
        out = np.empty((len(col_pos), n_rows), dtype=np.float32)
        where = {int(p): i for i, p in enumerate(col_pos)}
        if len(where) != len(col_pos):
            raise ValueError("duplicate column positions")
        for pos, block in self.iter_blocks(col_pos, row_pos, chunk_rows):
            out[[where[int(p)] for p in pos]] = block
        return out


def _check_positions(pos: Sequence[int] | np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.unique(np.asarray(pos, dtype=np.int64))
    if len(arr) and (arr[0] < 0 or arr[-1] >= n):
        raise IndexError(f"{what} position out of range 0..{n - 1}")
    return arr


class GctxFile(L1000Matrix):
    """A GCTX file: metadata is read at open; matrix values are read in row blocks on demand."""

    def __init__(self, path: Path | str, col_fields: Sequence[str] | None = None) -> None:
        self.path = require_file(Path(path))
        if not h5py.is_hdf5(self.path):
            with open(self.path, "rb") as f:
                head = f.read(64)
            if head.startswith((b"#1.2", b"#1.3")):
                raise InputFormatError(
                    self.path, None,
                    f"not an HDF5 GCTX file: it looks like GCT text (starts with {head[:4].decode()!r}); "
                    "rename it to .gct or pass it as `gct`",
                )
            raise InputFormatError(self.path, None, "not an HDF5 file (no HDF5 signature); expected GCTX")
        try:
            with h5py.File(self.path, "r") as h5:
                for need, kind in ((DATA_PATH, h5py.Dataset), (COL_META, h5py.Group), (ROW_META, h5py.Group)):
                    if need not in h5:
                        raise InputFormatError(self.path, f"/{need}", "missing: not a GCTX layout")
                    if not isinstance(h5[need], kind):
                        raise InputFormatError(self.path, f"/{need}",
                                               f"expected an HDF5 {kind.__name__.lower()}: not a GCTX layout")
                self.col_meta = self._meta(h5[COL_META], "COL", col_fields)
                self.row_meta = self._meta(h5[ROW_META], "ROW", None)
                ds = h5[DATA_PATH]
                if ds.ndim != 2:
                    raise InputFormatError(self.path, f"/{DATA_PATH}", f"expected 2-D, got shape {ds.shape}")
                if ds.dtype.kind not in "fiu":  # strings, complex, compound types: not z-scores
                    raise InputFormatError(self.path, f"/{DATA_PATH}",
                                           f"expected numbers, got dtype {ds.dtype}")
                if ds.shape != (len(self.col_meta), len(self.row_meta)):
                    raise InputFormatError(
                        self.path, f"/{DATA_PATH}",
                        f"matrix shape {ds.shape} does not match (n COL ids, n ROW ids) = "
                        f"({len(self.col_meta)}, {len(self.row_meta)})",
                    )
        except HDF5_ERRORS as exc:  # truncated / corrupt HDF5: what h5py raises from the C library
            raise InputFormatError(self.path, None, f"corrupt or truncated HDF5 file: {exc}") from exc

    def _field(self, group: h5py.Group, name: str) -> np.ndarray:
        """A metadata field: one 1-D dataset (h5py cannot read a group, nor can a scalar be iterated)."""
        obj = group[name]
        if not isinstance(obj, h5py.Dataset) or obj.ndim != 1:
            shape = obj.shape if isinstance(obj, h5py.Dataset) else "a group"
            raise InputFormatError(self.path, f"{group.name}/{name}", f"expected a 1-D dataset, got {shape}")
        return obj[()]

    def _meta(self, group: h5py.Group, which: str, fields: Sequence[str] | None) -> pd.DataFrame:
        if "id" not in group:
            raise InputFormatError(self.path, f"/{group.name}", f"no 'id' dataset in {which} metadata")
        ids = decode_strings(self._field(group, "id"))
        cols = {}
        for name in group:
            if name == "id" or (fields is not None and name not in fields):
                continue
            values = self._field(group, name)
            if values.shape != (len(ids),):
                raise InputFormatError(
                    self.path, f"{group.name}/{name}", f"has shape {values.shape}, expected ({len(ids)},)"
                )
            cols[name] = decode_strings(values)
        meta = pd.DataFrame(cols, index=pd.Index(ids, name="id"), dtype=object)
        if (empty := next((j for j, i in enumerate(ids) if not i.strip()), None)) is not None:
            raise InputFormatError(self.path, f"{group.name}/id", f"{which} id {empty + 1} is empty")
        if not meta.index.is_unique:
            dup = meta.index[meta.index.duplicated()][:5].tolist()
            raise InputFormatError(self.path, f"/{group.name}/id", f"duplicate {which} ids, e.g. {dup}")
        return meta

    def iter_blocks(
        self, col_pos: Sequence[int] | np.ndarray, row_pos: Sequence[int] | np.ndarray | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cols = _check_positions(col_pos, len(self.col_meta), "column")
        rows = None if row_pos is None else np.asarray(row_pos, dtype=np.int64)
        try:
            with h5py.File(self.path, "r") as h5:
                ds = h5[DATA_PATH]
                for start in range(0, len(cols), chunk_rows):
                    pos = cols[start : start + chunk_rows]
                    lo, hi = int(pos[0]), int(pos[-1]) + 1
                    # A contiguous slice is one cheap hyperslab; scattered positions use h5py's
                    # point selection (increasing order) so we never read far more than needed.
                    block = ds[lo:hi][pos - lo] if hi - lo <= 2 * len(pos) else ds[pos.tolist()]
                    if rows is not None:
                        block = block[:, rows]
                    yield pos, np.asarray(block, dtype=np.float32)
        except HDF5_ERRORS as exc:
            raise InputFormatError(self.path, f"/{DATA_PATH}", f"cannot read matrix values: {exc}") from exc


def _split(line: str) -> list[str]:
    return line.rstrip("\r\n").split("\t")


class GctFile(L1000Matrix):
    """A GCT text file (v1.2 or v1.3, plain or gzipped), held in memory (GCT files are small).

    Missing values (``NA``, ``NaN``, an empty cell, ``-666``: what CMap's tools write) are read as NaN
    and counted in ``missing_values``; any other non-numeric cell is an error naming the line.
    """

    missing_values: int = 0

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            with open_text(self.path, encoding="utf-8") as f:
                self._parse(f)
        except TextDecodeError:  # older CMap text files are latin-1 ('µM'); latin-1 never fails
            with open_text(self.path, encoding="latin-1") as f:
                self._parse(f)

    def _err(self, line: int | None, problem: str) -> InputFormatError:
        return InputFormatError(self.path, line, problem)

    def _parse(self, f) -> None:  # noqa: ANN001 - a text stream
        version = f.readline().strip()
        if version not in ("#1.2", "#1.3"):
            raise self._err(1, f"expected GCT version line '#1.2' or '#1.3', got {version[:40]!r}")
        dims = _split(f.readline())
        want = 2 if version == "#1.2" else 4
        try:
            nums = [int(x) for x in dims if x.strip()]
        except ValueError:
            nums = []
        if len(nums) != want or min(nums) < 0:
            raise self._err(2, f"expected {want} integer dimensions for GCT {version[1:]}, got {dims}")
        n_rows, n_cols = nums[0], nums[1]
        n_rmeta, n_cmeta = (1, 0) if version == "#1.2" else (nums[2], nums[3])
        header = _split(f.readline())
        if len(header) != 1 + n_rmeta + n_cols:
            raise self._err(
                3, f"header has {len(header)} fields, expected 1 + {n_rmeta} row-metadata + {n_cols} columns"
            )
        col_ids = header[1 + n_rmeta :]
        if (empty := next((j for j, c in enumerate(col_ids) if not c.strip()), None)) is not None:
            raise self._err(3, f"column {2 + n_rmeta + empty}: empty column id (the signature id)")
        row_fields = ["Description"] if version == "#1.2" else header[1 : 1 + n_rmeta]
        col_fields: dict[str, list[str]] = {}
        lineno = 3
        for _ in range(n_cmeta):
            lineno += 1
            parts = _split(f.readline())
            if len(parts) != 1 + n_rmeta + n_cols:
                raise self._err(lineno, f"column-metadata line has {len(parts)} fields, expected "
                                f"{1 + n_rmeta + n_cols}")
            col_fields[parts[0]] = parts[1 + n_rmeta :]
        ids: list[str] = []
        rmeta: list[list[str]] = []
        # Rows are kept as they are read, not written into an array sized by the dimension line: a
        # hostile '99999999999<TAB>3' must end in 'file ends early', not in allocating terabytes first.
        value_rows: list[np.ndarray] = []
        for i in range(n_rows):
            lineno += 1
            parts = _split(f.readline())
            if len(parts) != 1 + n_rmeta + n_cols:
                what = "file ends early" if parts == [""] else f"{len(parts)} fields"
                raise self._err(lineno, f"data row {i + 1} of {n_rows}: {what}, "
                                f"expected {1 + n_rmeta + n_cols} fields")
            if not parts[0].strip():
                raise self._err(lineno, f"data row {i + 1} of {n_rows}: empty row id")
            ids.append(parts[0])
            rmeta.append(parts[1 : 1 + n_rmeta])
            cells = parts[1 + n_rmeta :]
            try:
                value_rows.append(np.asarray(cells, dtype=np.float64).astype(np.float32))
            except ValueError:
                cells = [x if x.strip() not in MISSING_VALUE_TOKENS else "nan" for x in cells]
                bad = next((x for x in cells if not _is_float(x)), None)
                if bad is not None:
                    raise self._err(lineno, f"non-numeric value {bad!r} in data row {parts[0]!r}") from None
                value_rows.append(np.asarray(cells, dtype=np.float64).astype(np.float32))
        values = np.array(value_rows, dtype=np.float32).reshape(n_rows, n_cols)
        values[values == MISSING_VALUE_CODE] = np.nan  # CMap's numeric missing code
        self.missing_values = int(np.isnan(values).sum())
        extra = [ln for ln in f if ln.strip()]
        if extra:
            raise self._err(lineno + 1, f"{len(extra)} lines beyond the {n_rows} data rows declared")
        self.values = np.ascontiguousarray(values.T)  # columns x rows, like GCTX
        self.row_meta = pd.DataFrame(rmeta, columns=row_fields, index=pd.Index(ids, name="id"), dtype=object)
        self.col_meta = pd.DataFrame(col_fields, index=pd.Index(col_ids, name="id"), dtype=object)
        for what, idx in (("row", self.row_meta.index), ("column", self.col_meta.index)):
            if not idx.is_unique:
                raise self._err(None, f"duplicate {what} ids, e.g. {idx[idx.duplicated()][:5].tolist()}")

    def iter_blocks(
        self, col_pos: Sequence[int] | np.ndarray, row_pos: Sequence[int] | np.ndarray | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cols = _check_positions(col_pos, len(self.col_meta), "column")
        for start in range(0, len(cols), chunk_rows):
            pos = cols[start : start + chunk_rows]
            block = self.values[pos]
            yield pos, block if row_pos is None else block[:, np.asarray(row_pos, dtype=np.int64)]


def _is_float(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def open_matrix(path: Path | str, col_fields: Sequence[str] | None = None) -> L1000Matrix:
    """GCTX for ``.gctx`` names, GCT text otherwise (a ``.gctx`` holding GCT text is rejected)."""
    p = Path(path)
    return GctxFile(p, col_fields) if p.suffix.lower() == ".gctx" else GctFile(p)


def read_gctx(
    path: Path | str, cids: Sequence[str] | None = None, rids: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Read the columns ``cids`` x rows ``rids`` (default: all) of a GCTX in bounded-memory blocks.

    Returns ``(values, row_meta, col_meta)``: ``values`` is float32 **columns x rows** (signatures x
    genes, the file's own orientation) in the order of ``cids`` / ``rids``; the metadata frames are
    indexed by id in the same order. Unknown ids raise :class:`InputFormatError` naming them.
    """
    g = GctxFile(path)
    col_pos = _positions(g.col_meta.index, cids, g.path, "column")
    row_pos = _positions(g.row_meta.index, rids, g.path, "row")
    values = g.read(col_pos, None if rids is None else row_pos, chunk_rows)
    return values, g.row_meta.iloc[row_pos], g.col_meta.iloc[col_pos]


def _positions(index: pd.Index, ids: Sequence[str] | None, path: Path, what: str) -> np.ndarray:
    if ids is None:
        return np.arange(len(index))
    pos = index.get_indexer(list(ids))
    if (pos < 0).any():
        missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
        raise InputFormatError(path, None, f"{len(missing)} {what} ids not in the file, e.g. {missing[:5]}")
    if len(set(pos.tolist())) != len(pos):
        raise ValueError(f"duplicate {what} ids requested")
    return pos


def _meta_array(values: pd.Series, encoding: str) -> np.ndarray:
    """A metadata column as HDF5 data: numbers stay numbers, text becomes fixed-length bytes."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy()
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy().astype(np.int32)
    items = [v if isinstance(v, bytes) else ("" if v is None else str(v)).encode(encoding) for v in values]
    width = max([len(b) for b in items] + [1])
    return np.array(items, dtype=f"S{width}")


def write_gctx(
    path: Path | str, matrix: np.ndarray, row_meta: pd.DataFrame, col_meta: pd.DataFrame,
    chunk_bytes: int = 1 << 20, compression: str | None = None, encoding: str = "utf-8",
) -> Path:
    """Write a GCTX in the real layout: ``matrix`` is **n_columns x n_rows** (signatures x genes).

    ``row_meta`` / ``col_meta`` are indexed by the row / column ids (written as the ``id`` field);
    every other column becomes a ``/0/META/<ROW|COL>/<field>`` dataset (text as bytes, ``bytes`` values
    written as given, e.g. latin-1). The matrix is float32, chunked by whole rows (~``chunk_bytes``).
    """
    path = Path(path)
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (len(col_meta), len(row_meta)):
        raise ValueError(f"matrix {matrix.shape} must be (len(col_meta), len(row_meta)) = "
                         f"({len(col_meta)}, {len(row_meta)})")
    n_cols, n_rows = matrix.shape
    chunk = (max(1, min(n_cols, chunk_bytes // max(4 * n_rows, 1))), max(n_rows, 1))
    with h5py.File(path, "w") as h5:
        h5.attrs["version"] = np.array([GCTX_VERSION], dtype="S8")
        h5.create_dataset(DATA_PATH, data=matrix, chunks=chunk if n_cols and n_rows else None,
                          compression=compression)
        for group, meta in ((COL_META, col_meta), (ROW_META, row_meta)):
            grp = h5.require_group(group)
            grp.create_dataset("id", data=_meta_array(pd.Series(meta.index.astype(str)), encoding))
            for name in meta.columns:
                if name == "id":
                    continue
                grp.create_dataset(str(name), data=_meta_array(meta[name], encoding))
    return path
