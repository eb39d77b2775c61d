"""L1000 metadata: the GEO release and CLUE beta tables, metadata embedded in GCT/GCTX, value parsing.

Tables are recognised by their columns, not their names:

* signatures: ``sig_id`` (GEO ``sig_info`` / ``sig_metrics``, CLUE ``siginfo_beta``);
* genes: a symbol column, ``pr_gene_symbol`` (GEO ``gene_info``) or ``gene_symbol`` (``geneinfo_beta``);
* perturbagens: ``pert_id`` without ``sig_id`` (GEO ``pert_info``, CLUE ``compoundinfo_beta``, which
  has one row per compound x target and the ``moa`` / ``target`` columns);
* cell lines: ``cell_id`` or ``cell_iname`` without ``pert_id`` (GEO ``cell_info``, ``cellinfo_beta``).

Column names of both releases (and of embedded GCTX metadata) are mapped onto one canonical set
(:data:`SIG_ALIASES` ...). Everything is read as text; :func:`to_float` / :func:`to_bool` turn the CMap
missing-value code ``-666`` and blanks into missing values (NaN / None), never into numbers.

``pct_self_rank_q25`` is stored as a **percent** (0-100, the unit of CMap's ``is_gold`` rule
``pct_self_rank_q25 <= 5``). Some tables write it as a fraction (0-1): a column whose values all lie
in [0, 1] is taken as a fraction and multiplied by 100 (``scale='auto'``; override with ``'fraction'``
or ``'percent'``). The scale used is reported in the adapter's stats.

Doses with a molar unit are converted to micromolar (``dose_unit = 'uM'``; ``'10 µM'``, ``'10 um'``,
``'10 <b5>M'`` as cmapR writes it, and ``'500 nM'`` all parse); other units are kept as written.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, open_text
from moakg.ingest.base import normalise_symbol as _shared_symbol

MISSING_TOKENS = frozenset({"", "-666", "-666.0", "-666.00", "nan", "NaN", "NA", "na", "N/A", "None", "null"})

SIG_ALIASES: dict[str, tuple[str, ...]] = {
    "sig_id": ("sig_id",),
    "pert_id": ("pert_id",),
    "pert_iname": ("pert_iname", "cmap_name"),
    "pert_type": ("pert_type",),
    "cell_id": ("cell_id", "cell_iname", "cell_mfc_name"),
    "pert_dose": ("pert_dose",),
    "pert_dose_unit": ("pert_dose_unit",),
    "pert_idose": ("pert_idose",),
    "pert_time": ("pert_time",),
    "pert_time_unit": ("pert_time_unit",),
    "pert_itime": ("pert_itime",),
    "tas": ("tas",),
    "cc_q75": ("cc_q75", "distil_cc_q75"),
    "pct_self_rank_q25": ("pct_self_rank_q25",),
    "is_hiq": ("is_hiq", "is_gold"),
    "qc_pass": ("qc_pass",),
    "nsample": ("nsample", "distil_nsample"),
    "brew_prefix": ("brew_prefix",),
    "det_plate": ("det_plate",),
    "rna_plate": ("rna_plate",),
    "det_well": ("det_well",),
    "provenance_code": ("provenance_code",),
}
GENE_ALIASES: dict[str, tuple[str, ...]] = {
    "pr_id": ("pr_id",),
    "entrez_id": ("pr_gene_id", "gene_id", "entrez_id"),
    "symbol": ("pr_gene_symbol", "gene_symbol", "symbol"),
    "is_landmark": ("is_lm", "pr_is_lm", "pr_is_lmark", "is_landmark"),
    "feature_space": ("feature_space",),
}
PERT_ALIASES: dict[str, tuple[str, ...]] = {
    "pert_id": ("pert_id",),
    "pert_iname": ("pert_iname", "cmap_name"),
    "pert_type": ("pert_type",),
    "smiles": ("canonical_smiles", "smiles"),
    "inchikey": ("inchi_key", "inchikey"),
    "inchi": ("inchi_string", "inchi"),
    "moa": ("moa",),
    "target": ("target",),
}
CELL_ALIASES: dict[str, tuple[str, ...]] = {
    "cell_id": ("cell_id", "cell_iname"),
    "lineage": ("cell_lineage", "lineage"),
    "primary_site": ("primary_site",),
    "primary_disease": ("primary_disease",),
    "cell_type": ("cell_type",),
    "subtype": ("subtype",),
}
_ALIASES = {"sig": SIG_ALIASES, "gene": GENE_ALIASES, "pert": PERT_ALIASES, "cell": CELL_ALIASES}
TABLE_NAMES = {"sig": "sig_info", "gene": "gene_info", "pert": "pert_info", "cell": "cell_info"}
#: more header columns than any metadata table has (CLUE's widest has ~40): refused, not parsed for minutes
MAX_TABLE_COLUMNS = 10_000
_NUM_UNIT_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
_MOLAR_TO_UM = {"pM": 1e-6, "nM": 1e-3, "uM": 1.0, "mM": 1e3, "M": 1e6}


# ---------------------------------------------------------------------------------------- values
def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return str(value).strip() in MISSING_TOKENS


def clean_str(value: object) -> str | None:
    return None if is_missing(value) else str(value).strip()


def to_float(values: pd.Series) -> tuple[pd.Series, int]:
    """Text to float; missing codes -> NaN. Returns (floats, number of unparseable non-missing values).

    'inf' / '1e999' are unparseable too (NaN): no QC metric is infinite, and an infinite nsample cannot
    become the integer n_replicates.
    """
    s = values.astype(object).map(lambda v: None if is_missing(v) else str(v).strip())
    num = pd.to_numeric(s, errors="coerce").astype(float)
    num[np.isinf(num)] = np.nan
    bad = int((num.isna() & s.notna()).sum())
    num[num == -666] = np.nan  # numeric -666 (e.g. float GCTX fields) is the same missing code
    return num, bad


def to_bool(value: object) -> bool | None:
    v = clean_str(value)
    if v is None:
        return None
    low = v.lower()
    if low in {"1", "1.0", "true", "t", "y", "yes"}:
        return True
    if low in {"0", "0.0", "false", "f", "n", "no"}:
        return False
    return None


def normalise_symbol(value: object) -> str | None:
    """Gene key as every source writes it (string_ppi's rule); also None for -666 and 'A///B' ids."""
    v = clean_str(value)
    if v is None or "///" in v:
        return None
    return _shared_symbol(v)


def to_int(value: object) -> int | None:
    v = clean_str(value)
    try:
        return int(float(v)) if v is not None and float(v).is_integer() else None
    except ValueError:
        return None


def normalise_unit(unit: str | None) -> str | None:
    if unit is None:
        return None
    u = unit.strip().replace("<b5>", "u").replace("\xb5", "u").replace("\u03bc", "u")
    low = u.lower()
    molar = {"pm": "pM", "nm": "nM", "um": "uM", "mm": "mM", "m": "M"}
    return molar.get(low, u) or None


def parse_quantity(value: object, unit: object, combined: object) -> tuple[float | None, str | None]:
    """Dose or time from (value, unit) columns, falling back to the combined text ('10 µM', '24 h')."""
    v, u = clean_str(value), clean_str(unit)
    num = None
    if v is not None:
        try:
            num = float(v)
        except ValueError:
            num = None
    if num is None:
        c = clean_str(combined)
        m = _NUM_UNIT_RE.match(c) if c else None
        if m is None:
            return None, None
        num, u = float(m.group(1)), (m.group(2) or u)
    if num == -666:
        return None, None
    return num, normalise_unit(u)


def dose_in_um(value: object, unit: object, combined: object) -> tuple[float | None, str | None]:
    num, u = parse_quantity(value, unit, combined)
    if num is not None and u in _MOLAR_TO_UM:
        return round(num * _MOLAR_TO_UM[u], 9), "uM"
    return num, u


def time_value(value: object, unit: object, combined: object) -> tuple[float | None, str | None]:
    num, u = parse_quantity(value, unit, combined)
    if u is not None and u.lower() in {"h", "hr", "hrs", "hour", "hours"}:
        u = "h"
    return num, u


# ---------------------------------------------------------------------------------------- tables
def read_table(path: Path | str) -> pd.DataFrame:
    """A tab-separated metadata table as text (plain or gzip); nothing is turned into NaN here."""
    path = Path(path)
    try:
        _check_first_row(path)
        with open_text(path) as f:
            df = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                             quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise InputFormatError(path, int(m.group(1)) if m else None, f"malformed TSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputFormatError(path, 1, "empty file, expected a tab-separated header line") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _check_first_row(path: Path) -> None:
    """The first data row has no more fields than the header.

    pandas reads the extra leading fields of a longer first row as an index: one extra field silently
    shifts every column by one, and a line of a million tabs builds a million-level index for minutes.
    Longer rows further down are pandas' own ParserError (with the line).
    """
    with open_text(path) as f:
        width = len(f.readline().rstrip("\r\n").split("\t"))
        if width > MAX_TABLE_COLUMNS:  # pandas needs ~70 us a column: a line of a million tabs, a minute
            raise InputFormatError(path, 1, f"{width} tab-separated columns in the header; a metadata table "
                                   f"has at most {MAX_TABLE_COLUMNS:,}")
        for lineno, line in enumerate(f, start=2):
            if line.rstrip("\r\n"):
                n = len(line.rstrip("\r\n").split("\t"))
                if n > width:
                    raise InputFormatError(path, lineno, f"{n} tab-separated fields, expected {width} (as in "
                                           "the header)")
                return


def table_kind(df: pd.DataFrame) -> str | None:
    cols = set(df.columns)
    if "sig_id" in cols:
        return "sig"
    if cols & set(GENE_ALIASES["symbol"]):
        return "gene"
    if "pert_id" in cols:
        return "pert"
    if cols & {"cell_id", "cell_iname"}:
        return "cell"
    return None


def load_table(path: Path | str, expect: str) -> pd.DataFrame:
    """Read a table, check it is of the ``expect`` kind, and map its columns to canonical names."""
    df = read_table(path)
    kind = table_kind(df)
    if kind != expect:
        seen = f"a {TABLE_NAMES[kind]} table" if kind else "no known L1000 table"
        key = {"sig": "sig_id", "gene": "pr_gene_symbol/gene_symbol", "pert": "pert_id",
               "cell": "cell_id/cell_iname"}[expect]
        raise InputFormatError(path, 1, f"expected a {TABLE_NAMES[expect]} table (column {key}); "
                               f"the header looks like {seen}: {list(df.columns)[:8]}")
    return canonical(df, _ALIASES[expect])


def canonical(df: pd.DataFrame, aliases: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Keep the known columns under their canonical names (first alias present wins)."""
    out = {}
    for name, cands in aliases.items():
        for c in cands:
            if c in df.columns:
                out[name] = df[c].astype(object)
                break
    return pd.DataFrame(out, index=df.index)


def fill_missing(primary: pd.DataFrame, fallback: pd.DataFrame) -> pd.DataFrame:
    """``primary`` values where present, ``fallback`` where missing (same index, union of columns)."""
    out = primary.copy()
    for col in fallback.columns:
        fb = fallback[col].reindex(out.index)
        if col not in out.columns:
            out[col] = fb
        else:
            miss = out[col].map(is_missing).astype(bool)
            out.loc[miss, col] = fb[miss]
    return out


# ---------------------------------------------------------------------------------------- signatures
@dataclass
class QualityFilters:
    """Which signatures to keep. ``None`` disables a threshold; a missing value fails an active one."""

    pert_types: frozenset[str] | None = frozenset({"trt_cp"})
    require_hiq: bool = False
    require_qc_pass: bool = False
    min_tas: float | None = None
    min_cc_q75: float | None = None
    max_pct_self_rank_q25: float | None = None  # percent (0-100)

    def as_params(self) -> dict[str, object]:
        return {
            "pert_types": sorted(self.pert_types) if self.pert_types is not None else None,
            "require_hiq": self.require_hiq, "require_qc_pass": self.require_qc_pass,
            "min_tas": self.min_tas, "min_cc_q75": self.min_cc_q75,
            "max_pct_self_rank_q25": self.max_pct_self_rank_q25,
        }


def pct_scale(values: pd.Series, scale: str = "auto") -> str:
    """'fraction' or 'percent' for a pct_self_rank_q25 column (see the module docstring)."""
    if scale in ("fraction", "percent"):
        return scale
    if scale != "auto":
        raise UserError(f"pct_self_rank_scale must be auto, fraction or percent, not {scale!r}")
    v = values.dropna()
    return "fraction" if len(v) and v.max() <= 1.0 else "percent"


def parse_signatures(raw: pd.DataFrame, pct: str = "auto") -> tuple[pd.DataFrame, dict[str, object]]:
    """Typed signature metadata (index = sig/column id) from canonical text columns, plus stats."""
    stats: dict[str, object] = {}
    col = lambda name: raw[name] if name in raw.columns else pd.Series(None, index=raw.index, dtype=object)  # noqa: E731
    out = pd.DataFrame(index=raw.index)
    for name in ("pert_id", "pert_iname", "pert_type", "cell_id", "brew_prefix", "det_plate", "rna_plate",
                 "det_well", "provenance_code"):
        out[name] = col(name).map(clean_str)
    triples = zip(col("pert_dose"), col("pert_dose_unit"), col("pert_idose"), strict=True)
    doses = [dose_in_um(a, b, c) for a, b, c in triples]
    out["dose"] = [d for d, _ in doses]
    out["dose_unit"] = [u if d is not None else None for d, u in doses]
    out["dose_raw"] = [clean_str(v) for v in col("pert_dose")]
    triples = zip(col("pert_time"), col("pert_time_unit"), col("pert_itime"), strict=True)
    times = [time_value(a, b, c) for a, b, c in triples]
    out["time"] = [t for t, _ in times]
    out["time_unit"] = [u if t is not None else None for t, u in times]
    for name in ("tas", "cc_q75", "pct_self_rank_q25", "nsample"):
        out[name], bad = to_float(col(name))
        if bad:
            stats[f"unparseable_{name}"] = bad
    if out["pct_self_rank_q25"].notna().any():
        scale = pct_scale(out["pct_self_rank_q25"], pct)
        stats["pct_self_rank_q25_scale"] = scale
        if scale == "fraction":
            out["pct_self_rank_q25"] = out["pct_self_rank_q25"] * 100.0
    out["is_hiq"] = col("is_hiq").map(to_bool)
    out["qc_pass"] = col("qc_pass").map(to_bool)
    return out, stats


def quality_mask(sig: pd.DataFrame, f: QualityFilters) -> tuple[np.ndarray, dict[str, int]]:
    """Apply the filters in order; each dropped signature is counted under the first filter it fails."""
    keep = np.ones(len(sig), dtype=bool)
    counts: dict[str, int] = {}

    def drop(name: str, fails: np.ndarray) -> None:
        n = int((keep & fails).sum())
        if n:
            counts[name] = counts.get(name, 0) + n
        keep[fails] = False

    if f.pert_types is not None:
        drop("filtered_pert_type", ~sig["pert_type"].isin(f.pert_types).to_numpy())
    for flag, on in (("is_hiq", f.require_hiq), ("qc_pass", f.require_qc_pass)):
        if on:
            vals = sig[flag]
            drop(f"filtered_{flag}_missing", vals.isna().to_numpy())
            drop(f"filtered_{flag}", (vals != True).to_numpy())  # noqa: E712 - object column of bools
    for name, limit, lower in (("tas", f.min_tas, True), ("cc_q75", f.min_cc_q75, True),
                               ("pct_self_rank_q25", f.max_pct_self_rank_q25, False)):
        if limit is None:
            continue
        vals = sig[name].to_numpy(dtype=float)
        drop(f"filtered_{name}_missing", np.isnan(vals))
        with np.errstate(invalid="ignore"):
            drop(f"filtered_{name}", (vals < limit) if lower else (vals > limit))
    return keep, counts


# ---------------------------------------------------------------------------------------- genes, perts, cells
def gene_meta(
    row_meta: pd.DataFrame, table: pd.DataFrame | None, matrix_path: Path, table_path: Path | None
) -> pd.DataFrame:
    """Per matrix row: symbol (normalised or None), entrez_id, is_landmark (None = unknown).

    Row ids are matched against the gene table's probe ids (``pr_id``) or Entrez ids, whichever
    matches more; every row must be found there (else an error naming ids and both files). Values
    embedded in the matrix's own row metadata fill what the table lacks.
    """
    emb = canonical(row_meta, GENE_ALIASES)
    if table is not None:
        ids = row_meta.index.astype(str)
        best, hits = None, -1
        for key in ("pr_id", "entrez_id"):
            if key in table.columns:
                n = int(ids.isin(table[key].astype(str)).sum())
                if n > hits:
                    best, hits = key, n
        if best is None:
            raise InputFormatError(table_path, 1, "gene_info has no pr_id / pr_gene_id / gene_id column")
        tab = table.drop_duplicates(subset=best)
        tab.index = tab[best].astype(str)
        missing = ids[~ids.isin(tab.index)]
        if len(missing):
            raise InputFormatError(
                matrix_path, None,
                f"{len(missing)} of {len(ids)} row ids are not in gene_info {table_path} "
                f"(matched on {best}), e.g. {missing[:5].tolist()}",
            )
        emb = fill_missing(tab.reindex(ids).set_axis(row_meta.index), emb)
    out = pd.DataFrame(index=row_meta.index)
    out["symbol"] = emb["symbol"].map(normalise_symbol) if "symbol" in emb else None
    out["entrez_id"] = emb["entrez_id"].map(to_int) if "entrez_id" in emb else None
    lm = emb["is_landmark"].map(to_bool) if "is_landmark" in emb else pd.Series(None, index=emb.index)
    if "feature_space" in emb:
        fs = emb["feature_space"].map(clean_str)
        lm = lm.where(lm.notna(), fs.map(lambda v: None if v is None else v.lower() == "landmark"))
    out["is_landmark"] = lm.astype(object)
    return out


def pert_meta(table: pd.DataFrame) -> pd.DataFrame:
    """One row per pert_id: first non-missing name/structure, all MoAs and targets ('|'-separated too)."""
    rows: dict[str, dict[str, object]] = {}
    cols = [c for c in ("pert_iname", "pert_type", "smiles", "inchikey", "inchi") if c in table.columns]
    for rec in table.to_dict("records"):
        pid = clean_str(rec.get("pert_id"))
        if pid is None:
            continue
        row = rows.setdefault(pid, {"moa": set(), "target": set()})
        for c in cols:
            if row.get(c) is None:
                row[c] = clean_str(rec.get(c))
        for c in ("moa", "target"):
            v = clean_str(rec.get(c))
            if v is not None:
                row[c].update(p.strip() for p in v.split("|") if clean_str(p) is not None)
    df = pd.DataFrame.from_dict(rows, orient="index")
    for c in ("pert_iname", "pert_type", "smiles", "inchikey", "inchi"):
        if c not in df.columns:
            df[c] = None
    df.index.name = "pert_id"
    return df


def cell_meta(table: pd.DataFrame) -> pd.DataFrame:
    df = table.copy()
    df["cell_id"] = df["cell_id"].map(clean_str)
    df = df[df["cell_id"].notna()].drop_duplicates("cell_id").set_index("cell_id")
    return df.apply(lambda s: s.map(clean_str))
