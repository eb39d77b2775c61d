"""Consensus signatures: a perturbagen x gene matrix of z-scores -> one level-5 ``Signature`` per row.

Not to be confused with :mod:`moakg.ingest.l1000_consensus`, the MODZ collapse of level 3/4 plates:
this module reads signatures that are already consensus ones, e.g. dhimmel/lincs'
``consensi-drugbank.tsv.gz`` (936 DrugBank drugs x 978 landmark Entrez ids), as a matrix.

Inputs
    ``matrix``: TSV or CSV (by the header's delimiter), plain or gzip (by magic bytes), one row per
    perturbagen, one column per gene, and one identifier column (``perturbagen``, ``pert_id``,
    ``drugbank_id``, ``inchikey``, ``id``, ... or an unnamed first column); or a level-5 GCT / GCTX
    (columns = perturbagens, read by :mod:`moakg.ingest.l1000_io`; perturbagen = the column
    metadata's ``pert_id`` when present and unique, else the column id).
    ``gene_info`` (optional): Entrez id -> symbol (and landmark flag) table, e.g. ``genes.tsv``
    (``entrez_gene_id``, ``symbol``, ``status`` = measured/imputed) or LINCS ``geneinfo``.

Identifiers
    Perturbagens (``id_type``: ``drugbank``, ``pert_id``, ``inchikey`` or ``auto`` = the type most
    values look like) are matched to existing compounds through :class:`CompoundIndex`, exactly as the
    source that keys them would: DrugBank ids as ``drugbank:<id>`` source records (the DrugBank
    adapter's), LINCS pert_ids (first 13 characters of a BRD id) as ``lincs:<id>`` records (the L1000
    adapter's) or else the one compound carrying it as ``pert_ids`` / ``drugbank_ids`` (the Repurposing
    Hub's pert_ids), InChIKeys as keys or aliases. Perturbagens that match no compound become
    source-keyed compounds (``drugbank:DB00001``, ``lincs:BRD-...``, or the InChIKey; counted as
    ``compounds_created``) that a later source with their structure merges into and re-keys
    (:mod:`moakg.ingest.identity`), so the graph is the same whichever comes first; with
    ``create_compounds=False`` they are counted and skipped instead (then ingest the compound sources
    first).
    Genes (``gene_type``: ``entrez``, ``symbol`` or ``auto``) are mapped through the graph's Gene nodes
    first (``entrez_id``, so the symbols are those the L1000 ingest wrote), then ``gene_info``; the
    rest are counted and dropped.

Graph (the same as a plate-derived signature, see :mod:`moakg.ingest.l1000`, whose top-k and row
functions are reused): ``(Compound)-[:HAS_SIGNATURE]->(Signature {sig_id: 'consensus:<id>',
level: 5, kind: 'consensus', pert_type: 'trt_cp'})-[:UPREGULATES|DOWNREGULATES {z, rank}]->(Gene)``
for the ``top_k`` most positive / negative z-scores, and ``Signature.z_landmark`` in the order of
the graph's landmark genes sorted by symbol (landmarks the matrix lacks are 0.0, counted). When the
graph has no landmark genes yet, the matrix genes flagged landmark in ``gene_info`` (all of them
without a flag) become the landmarks. No cell, dose or time: consensus signatures have none.

Bad input (non-numeric cells, duplicate perturbagens or gene columns, no identifier column, a
truncated gzip) is an :class:`InputFormatError` naming the file, line and column, raised before the
first batch, so nothing is written. ``NA``/``NaN``/empty/``-666`` cells are missing (0.0, counted).
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from moakg.errors import UserError
from moakg.ingest.base import (
    InputFormatError,
    SourceAdapter,
    check_config_section,
    check_int_option,
    config_paths,
    normalise_symbol,
    open_text,
)
from moakg.ingest.compounds import INCHIKEY_RE, CompoundIndex, normalise_inchikey
from moakg.ingest.l1000 import signature_row, top_k_edges
from moakg.ingest.l1000_io import MISSING_VALUE_TOKENS, GctFile, GctxFile, L1000Matrix
from moakg.ingest.l1000_meta import canonical, read_table, to_bool, to_int
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import DEFAULT_BATCH_SIZE, Batch, IngestReport, NodeBatch, RelBatch

ID_TYPES = ("auto", "drugbank", "pert_id", "inchikey")
GENE_TYPES = ("auto", "entrez", "symbol")
#: header names of an identifier column (case-insensitive); an unnamed first column is one too
ID_COLUMNS = ("perturbagen", "pert_id", "drugbank_id", "drugbank", "inchikey", "inchi_key", "id", "rid",
              "cid", "sig_id", "compound", "drug")
DRUGBANK_RE = re.compile(r"^DB\d{5}$")
PERT_ID_RE = re.compile(r"^BRD-[A-Z]\d{8}")
#: gene table columns, first present wins (genes.tsv, LINCS geneinfo, NCBI gene_info)
GENE_TABLE_ALIASES: dict[str, tuple[str, ...]] = {
    "entrez_id": ("entrez_gene_id", "pr_gene_id", "gene_id", "entrez_id", "GeneID"),
    "symbol": ("symbol", "pr_gene_symbol", "gene_symbol", "Symbol"),
    "is_landmark": ("is_lm", "pr_is_lm", "pr_is_lmark", "is_landmark"),
    "status": ("status", "feature_space"),
}
MAX_EXAMPLES = 10


# ------------------------------------------------------------------------------------------- genes
@dataclass
class GeneMap:
    """Entrez id / symbol -> Gene key, from the graph's Gene nodes first, then a gene table."""

    graph_by_entrez: dict[int, str] = field(default_factory=dict)
    graph_symbols: set[str] = field(default_factory=set)
    graph_landmarks: list[str] = field(default_factory=list)  # sorted
    table_by_entrez: dict[int, str] = field(default_factory=dict)
    table_symbols: set[str] = field(default_factory=set)
    table_landmark: dict[str, bool] = field(default_factory=dict)  # symbol -> flag (only when given)

    @classmethod
    def from_graph_rows(cls, rows: Sequence[dict[str, Any]]) -> GeneMap:
        m = cls()
        # A landmark first, then the smallest symbol: one Gene per Entrez id, the same on every run.
        for r in sorted(rows, key=lambda r: (r["is_landmark"] is not True, r["symbol"])):
            m.graph_symbols.add(r["symbol"])
            e = to_int(r.get("entrez_id"))
            if e is not None:
                m.graph_by_entrez.setdefault(e, r["symbol"])
        m.graph_landmarks = sorted(r["symbol"] for r in rows if r["is_landmark"] is True)
        return m

    def add_table(self, path: Path) -> None:
        t = canonical(read_table(path), GENE_TABLE_ALIASES)
        if "symbol" not in t.columns or "entrez_id" not in t.columns:
            raise InputFormatError(
                path, 1, "gene table needs an Entrez id column (entrez_gene_id, pr_gene_id, gene_id, GeneID) "
                "and a symbol column (symbol, pr_gene_symbol, Symbol)")
        for rec in t.to_dict("records"):
            sym, e = normalise_symbol(rec["symbol"]), to_int(rec["entrez_id"])
            if sym is None:
                continue
            self.table_symbols.add(sym)
            if e is not None:
                self.table_by_entrez.setdefault(e, sym)
            flag = to_bool(rec.get("is_landmark"))
            status = str(rec.get("status") or "").strip().lower()
            if flag is None and status:
                flag = status in ("measured", "landmark")
            if flag is not None:
                self.table_landmark.setdefault(sym, flag)

    def entrez(self, e: int) -> tuple[str | None, str]:
        """(symbol, where it came from: 'graph' / 'table' / 'unknown')."""
        if e in self.graph_by_entrez:
            return self.graph_by_entrez[e], "graph"
        if e in self.table_by_entrez:
            return self.table_by_entrez[e], "table"
        return None, "unknown"

    def symbol(self, raw: str) -> tuple[str | None, str]:
        sym = normalise_symbol(raw)
        if sym is None:
            return None, "unknown"
        if sym in self.graph_symbols:
            return sym, "graph"
        if sym in self.table_symbols or not (self.graph_symbols or self.table_symbols):
            return sym, "table"  # nothing to check against: a well-formed symbol is taken as it is
        return None, "unknown"


def graph_genes(conn: Neo4jConnection) -> GeneMap:
    from moakg.kg.queries import load_query

    return GeneMap.from_graph_rows(conn.query(load_query("internal_gene_index").text))


def as_paths(value: Path | str | Sequence[Path | str] | None) -> list[Path]:
    if value is None:
        return []
    return [Path(value)] if isinstance(value, str | Path) else [Path(v) for v in value]


def graph_compound_ids(conn: Neo4jConnection) -> dict[tuple[str, str], set[str]]:
    """(id type, id) -> Compound.id for the pert_ids / DrugBank ids compounds carry as properties (the
    Repurposing Hub's pert_ids, for instance, are not source records of the CompoundIndex)."""
    from moakg.kg.queries import load_query

    out: dict[tuple[str, str], set[str]] = {}
    for r in conn.query(load_query("internal_compound_ids").text):
        for kind, values in (("pert_id", r["pert_ids"]), ("drugbank", r["drugbank_ids"])):
            for v in values:
                key = normalise_id(str(v), kind)
                if key is not None:
                    out.setdefault((kind, key), set()).add(r["id"])
    return out


def gene_type_of(headers: Sequence[str]) -> str:
    digits = sum(h.strip().isdigit() for h in headers)
    return "entrez" if headers and digits >= 0.9 * len(headers) else "symbol"


# --------------------------------------------------------------------------------------- reading
@dataclass
class Matrix:
    """Perturbagen ids (in file order), gene column labels and the values (perturbagens x genes)."""

    ids: list[str]
    genes: list[str]
    values: np.ndarray
    missing: int = 0


def gzip_errors() -> tuple[type[BaseException], ...]:
    return (EOFError, gzip.BadGzipFile, zlib.error)


def read_table_matrix(path: Path) -> Matrix:
    """A delimited perturbagen x gene matrix; every problem names the file, line and column."""
    lineno = 1
    try:
        with open_text(path) as f:
            first = f.readline()
            if not first.strip():
                raise InputFormatError(path, 1, "empty file; expected a header: identifier column + genes")
            delim = "\t" if "\t" in first else ","
            header = [h.strip().strip('"').lstrip("\ufeff")
                      for h in next(csv.reader([first], delimiter=delim))]
            id_col = _id_column(path, header)
            genes = [h for i, h in enumerate(header) if i != id_col]
            seen: dict[str, int] = {}
            for i, h in enumerate(header):
                if i == id_col:
                    continue
                if not h:
                    raise InputFormatError(path, 1, f"column {i + 1}: empty gene column name")
                if h in seen:
                    raise InputFormatError(path, 1, f"column {i + 1}: duplicate column {h!r} "
                                           f"(also column {seen[h] + 1})")
                seen[h] = i
            gene_cols = [i for i in range(len(header)) if i != id_col]
            ids: list[str] = []
            rows: list[np.ndarray] = []
            first_line: dict[str, int] = {}
            missing = 0
            for lineno, fields in enumerate(csv.reader(f, delimiter=delim), start=2):
                if not any(x.strip() for x in fields):
                    continue
                if len(fields) != len(header):
                    raise InputFormatError(path, lineno, f"{len(fields)} fields, expected {len(header)} "
                                           "(as in the header)")
                pid = fields[id_col].strip()
                if not pid:
                    raise InputFormatError(path, lineno, f"column {id_col + 1} ({header[id_col]!r}): "
                                           "empty identifier")
                if pid in first_line:
                    raise InputFormatError(path, lineno, f"column {id_col + 1} ({header[id_col]!r}): "
                                           f"duplicate row {pid!r} (first on line {first_line[pid]})")
                first_line[pid] = lineno
                cells = [fields[i] for i in gene_cols]
                try:
                    row = np.asarray(cells, dtype=np.float64)
                except ValueError:
                    row = np.empty(len(cells))
                    for j, x in enumerate(cells):
                        x = x.strip()
                        if x in MISSING_VALUE_TOKENS:
                            row[j] = np.nan
                            continue
                        try:
                            row[j] = float(x)
                        except ValueError:
                            col = gene_cols[j]
                            raise InputFormatError(path, lineno, f"column {col + 1} ({header[col]!r}): "
                                                   f"non-numeric value {x!r}") from None
                row[row == -666] = np.nan
                missing += int(np.isnan(row).sum())
                ids.append(pid)
                rows.append(row)
    except gzip_errors() as exc:
        raise InputFormatError(path, lineno + 1, f"truncated or corrupt gzip data after line {lineno} "
                               f"({exc or type(exc).__name__})") from None
    except csv.Error as exc:
        raise InputFormatError(path, lineno + 1, f"malformed delimited text: {exc}") from None
    if not ids:
        raise InputFormatError(path, 2, "no data rows after the header")
    values = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, len(genes)), np.float32)
    return Matrix(ids, genes, values, missing)


def _id_column(path: Path, header: list[str]) -> int:
    lower = [h.lower() for h in header]
    for name in ID_COLUMNS:
        if name in lower:
            return lower.index(name)
    if header and header[0] == "":
        return 0  # an unnamed index column (pandas' to_csv)
    raise InputFormatError(
        path, 1, f"column 1 ({header[0] if header else ''!r}): no identifier column; name the perturbagen "
        f"column one of {list(ID_COLUMNS)} (or leave the first column's name empty)")


def read_gct_matrix(path: Path, is_gctx: bool) -> Matrix:
    m: L1000Matrix = GctxFile(path) if is_gctx else GctFile(path)
    col = m.col_meta
    ids = col.index.astype(str).tolist()
    if "pert_id" in col.columns and col["pert_id"].is_unique and (col["pert_id"].str.strip() != "").all():
        ids = col["pert_id"].astype(str).str.strip().tolist()
    dup = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(dup):
        raise InputFormatError(path, "column metadata", f"duplicate perturbagen {dup[0]!r}")
    row = m.row_meta
    genes = row.index.astype(str).tolist()
    for field_ in ("pr_gene_id", "pr_gene_symbol"):
        if field_ in row.columns and row[field_].astype(str).str.strip().ne("").all():
            genes = row[field_].astype(str).str.strip().tolist()
            break
    dupg = pd.Index(genes)[pd.Index(genes).duplicated()]
    if len(dupg):
        raise InputFormatError(path, "row metadata", f"duplicate gene {dupg[0]!r}")
    values = m.read(np.arange(len(ids)))
    values[values == -666] = np.nan
    return Matrix(ids, genes, values, int(np.isnan(values).sum()))


def read_matrix(path: Path) -> Matrix:
    name = path.name.lower()
    if name.endswith(".gctx"):
        return read_gct_matrix(path, True)
    if name.endswith((".gct", ".gct.gz")):
        return read_gct_matrix(path, False)
    return read_table_matrix(path)


# ---------------------------------------------------------------------------------- perturbagens
def id_type_of(ids: Sequence[str]) -> str | None:
    """The identifier type most ids look like (at least half of them), else None."""
    counts = {
        "drugbank": sum(bool(DRUGBANK_RE.match(i)) for i in ids),
        "pert_id": sum(bool(PERT_ID_RE.match(i)) for i in ids),
        "inchikey": sum(normalise_inchikey(i) is not None for i in ids),
    }
    best = max(counts, key=counts.__getitem__)
    return best if ids and counts[best] >= 0.5 * len(ids) else None


def normalise_id(value: str, id_type: str) -> str | None:
    """The id as the source that keys it writes it (None when it is not of that type)."""
    v = value.strip()
    if id_type == "drugbank":
        return v.upper() if DRUGBANK_RE.match(v.upper()) else None
    if id_type == "pert_id":
        return v[:13] if PERT_ID_RE.match(v) else (v or None)
    key = normalise_inchikey(v)
    return key if key is not None and INCHIKEY_RE.match(key) else None


#: id type -> the source whose records carry that id (``source_ids`` = ``<source>:<id>``)
ID_SOURCES = {"drugbank": "drugbank", "pert_id": "lincs"}


# ---------------------------------------------------------------------------------------- adapter
class ConsensusMatrixAdapter(SourceAdapter):
    """Perturbagen x gene consensus matrix -> Signature (+ HAS_SIGNATURE, UP/DOWNREGULATES, Gene)."""

    source = "l1000_consensus"
    writes_compounds = True

    def __init__(
        self, matrix: Path | str, *, gene_info: Path | str | Sequence[Path | str] | None = None,
        id_type: str = "auto", gene_type: str = "auto", top_k: int = 50, create_compounds: bool = True,
        index: CompoundIndex | None = None, genes: GeneMap | None = None,
    ) -> None:
        super().__init__()
        if id_type not in ID_TYPES:
            raise UserError(f"id_type must be one of {ID_TYPES}, not {id_type!r}")
        if gene_type not in GENE_TYPES:
            raise UserError(f"gene_type must be one of {GENE_TYPES}, not {gene_type!r}")
        check_int_option("top_k", top_k)
        self.matrix = Path(matrix)
        if not self.matrix.exists():
            raise FileNotFoundError(f"{self.matrix}: no such file")
        self.gene_info = as_paths(gene_info)
        self.id_type, self.gene_type, self.top_k = id_type, gene_type, top_k
        self.create_compounds = create_compounds
        self.index = index if index is not None else CompoundIndex()
        self.genes = genes
        self.compound_ids: dict[tuple[str, str], set[str]] = {}

    def files(self) -> list[Path]:
        return [self.matrix, *self.gene_info]

    def params(self) -> dict[str, Any]:
        return {"id_type": self.id_type, "gene_type": self.gene_type, "top_k": self.top_k,
                "create_compounds": self.create_compounds}

    def ingest(self, conn: Neo4jConnection, batch_size: int = DEFAULT_BATCH_SIZE,
               progress: bool = True) -> IngestReport:
        """Match against what the graph holds now: its compounds and its Gene nodes."""
        self.index = CompoundIndex.from_graph(conn)
        self.genes = graph_genes(conn)
        self.compound_ids = graph_compound_ids(conn)
        return super().ingest(conn, batch_size=batch_size, progress=progress)

    # -- preparation ---------------------------------------------------------------------------------
    def _gene_columns(self, m: Matrix, genes: GeneMap) -> tuple[np.ndarray, list[str], list[dict]]:
        """Matrix column positions kept, their symbols (sorted), and Gene rows to write."""
        gtype = self.gene_type if self.gene_type != "auto" else gene_type_of(m.genes)
        self.stats["gene_type"] = gtype
        by_symbol: dict[str, tuple[int, int | None]] = {}
        unknown: list[str] = []
        where_counts = {"graph": 0, "table": 0}
        for j, g in enumerate(m.genes):
            e = to_int(g) if gtype == "entrez" else None
            sym, where = genes.entrez(e) if e is not None else (genes.symbol(g) if gtype == "symbol"
                                                                 else (None, "unknown"))
            if sym is None:
                unknown.append(g)
                continue
            if sym in by_symbol:
                self.count("duplicate_gene_columns")
                continue
            where_counts[where] += 1
            by_symbol[sym] = (j, e)
        self.stats.update(genes_in_matrix=len(m.genes), genes_from_graph=where_counts["graph"],
                          genes_from_gene_info=where_counts["table"], unknown_genes=len(unknown),
                          unknown_gene_examples=unknown[:MAX_EXAMPLES])
        if not by_symbol:
            raise InputFormatError(self.matrix, 1, f"none of the {len(m.genes)} gene columns maps to a gene "
                                   f"({gtype}; e.g. {m.genes[:3]}): pass gene_info or ingest genes first")
        symbols = sorted(by_symbol)
        graph_lm = bool(genes.graph_landmarks)
        if graph_lm:
            self._landmarks = genes.graph_landmarks
        elif genes.table_landmark:
            self._landmarks = [s for s in symbols if genes.table_landmark.get(s) is True]
        else:
            self._landmarks = symbols
        lm_set = set(self._landmarks)
        rows = []
        for s in symbols:
            new = s not in genes.graph_symbols
            set_lm = not graph_lm and s in lm_set
            if new or set_lm:
                rows.append({"symbol": s, "entrez_id": by_symbol[s][1],
                             "is_landmark": True if set_lm else None})
        self.stats["landmarks"] = len(self._landmarks)
        self.stats["landmarks_missing_from_matrix"] = len(lm_set - set(symbols))
        return np.array([by_symbol[s][0] for s in symbols]), symbols, rows

    def _resolve(self, ids: list[str]) -> tuple[list[tuple[int, str, str]], list[dict]]:
        """(matrix row, perturbagen id, Compound.id) for every matched perturbagen; new compound rows."""
        id_type = self.id_type
        if id_type == "auto":
            id_type = id_type_of(ids)
            if id_type is None:
                raise InputFormatError(
                    self.matrix, "identifier column", f"cannot tell the identifier type of {ids[:3]}: "
                    "expected DrugBank ids (DB00001), LINCS pert_ids (BRD-K...) or InChIKeys; pass id_type")
        self.stats["id_type"] = id_type
        matched, created, unmatched, bad = [], [], [], []
        rows: list[dict] = []
        for i, raw in enumerate(ids):
            pid = normalise_id(raw, id_type)
            if pid is None:
                bad.append(raw)
                continue
            src = ID_SOURCES.get(id_type, self.source)
            ref = f"{src}:{pid}" if id_type in ID_SOURCES else pid
            known_before = ref in self.index
            ident = self.index.resolve(src, pid, inchikey=pid if id_type == "inchikey" else None)
            if ident.id != ref or known_before:
                matched.append((i, pid, ident.id))
                continue
            by_prop = self.compound_ids.get((id_type, pid), set())
            if len(by_prop) == 1:  # a compound that carries the id as a property (e.g. a Hub pert_id)
                matched.append((i, pid, next(iter(by_prop))))
                self.count("perturbagens_matched_by_property")
                continue
            if len(by_prop) > 1:
                self.count("perturbagens_ambiguous")
            if not self.create_compounds:
                unmatched.append(raw)
                continue
            created.append((i, pid, ident.id))
            row = {**ident.node_props(self.source), "source_ids": [f"{src}:{pid}"]}
            if id_type == "drugbank":
                row |= {"drugbank_id": pid, "drugbank_ids": [pid]}
            elif id_type == "pert_id":
                row |= {"pert_id": pid, "pert_ids": [pid]}
            rows.append(row)
        self.stats.update(
            perturbagens=len(ids), perturbagens_matched=len(matched), compounds_created=len(created),
            perturbagens_unmatched=len(unmatched), unmatched_examples=unmatched[:MAX_EXAMPLES],
            perturbagens_bad_id=len(bad), bad_id_examples=bad[:MAX_EXAMPLES])
        return matched + created, rows

    # -- batches -------------------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        self.stats.clear()
        genes = self.genes if self.genes is not None else GeneMap()
        for p in self.gene_info:
            genes.add_table(p)
        # Everything is read and checked before the first batch: bad input writes nothing.
        m = read_matrix(self.matrix)
        cols, symbols, gene_rows = self._gene_columns(m, genes)
        perts, compound_rows = self._resolve(m.ids)
        self.stats["missing_values"] = m.missing
        order = sorted(perts, key=lambda p: p[0])
        z = m.values[[i for i, _, _ in order]][:, cols] if order else np.zeros((0, len(cols)), np.float32)
        z = np.nan_to_num(z, nan=0.0)
        pos = {s: j for j, s in enumerate(symbols)}
        lm = np.zeros((len(order), len(self._landmarks)), dtype=np.float32)
        for j, s in enumerate(self._landmarks):
            if s in pos:
                lm[:, j] = z[:, pos[s]]
        sig_ids = np.array([f"consensus:{pid}" for _, pid, _ in order], dtype=object)
        provenance = f"consensus matrix {self.matrix.name}"
        sig_rows = [
            {**signature_row({"sig_id": sid, "pert_id": pid, "pert_type": "trt_cp", "level": 5}, lm[r]),
             "kind": "consensus", "pert_id_type": self.stats["id_type"], "provenance": provenance}
            for r, (sid, (_, pid, _)) in enumerate(zip(sig_ids, order, strict=True))]
        has_sig = [{"start": cid, "end": sid} for sid, (_, _, cid) in zip(sig_ids, order, strict=True)]
        up, down = top_k_edges(sig_ids, z, np.asarray(symbols, dtype=object), self.top_k)
        self.stats.update(signatures=len(sig_rows), edges_up=len(up), edges_down=len(down))
        if gene_rows:
            yield NodeBatch("Gene", "symbol", gene_rows)
        if compound_rows:
            yield NodeBatch("Compound", "id", compound_rows)
        yield NodeBatch("Signature", "sig_id", sig_rows)
        yield RelBatch("HAS_SIGNATURE", ("Compound", "id"), ("Signature", "sig_id"), has_sig)
        yield RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), up)
        yield RelBatch("DOWNREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), down)


# ------------------------------------------------------------------------------------- config + CLI
_OPTION_KEYS = ("id_type", "gene_type", "top_k", "create_compounds")


def from_config(section: dict[str, Any], base_dir: Path) -> ConsensusMatrixAdapter:
    """``[l1000_consensus]``: ``matrix`` (required), ``gene_info`` (a path or a list), and options."""
    check_config_section("l1000_consensus", section, {"matrix", "gene_info", *_OPTION_KEYS}, ("matrix",))
    gi = config_paths(section.get("gene_info"), base_dir)
    return ConsensusMatrixAdapter(base_dir / section["matrix"], gene_info=gi,
                                  **{k: section[k] for k in _OPTION_KEYS if k in section})


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest l1000-consensus``."""

    @app.command("l1000-consensus")
    def ingest_consensus(
        matrix: Annotated[Path, typer.Argument(
            help="Perturbagen x gene matrix of consensus z-scores: TSV/CSV (plain or gzip) with one "
                 "identifier column, or a level-5 .gct/.gctx (columns = perturbagens).")],
        gene_info: Annotated[list[Path] | None, typer.Option(
            help="Entrez id -> symbol table (genes.tsv, LINCS geneinfo; repeatable) for the gene columns "
                 "the graph's Gene nodes (entrez_id, used first) do not know.")] = None,
        id_type: Annotated[str, typer.Option(
            help="Perturbagen ids: auto, drugbank (DB00001), pert_id (BRD-K...) or inchikey.")] = "auto",
        gene_type: Annotated[str, typer.Option(help="Gene columns: auto, entrez or symbol.")] = "auto",
        top_k: Annotated[int, typer.Option(help="UP- and DOWNREGULATES edges per signature, each.")] = 50,
        create_compounds: Annotated[bool, typer.Option(
            "--create-compounds/--skip-unmatched",
            help="Perturbagens that match no compound become source-keyed compounds (drugbank:DB00001) "
                 "that a later compound source merges into (any ingest order gives the same graph), "
                 "or are counted and skipped.")] = True,
    ) -> None:
        """Load consensus signatures (one per perturbagen) with their top-k gene edges and z-vector."""
        run_adapter_cli(lambda: ConsensusMatrixAdapter(
            matrix, gene_info=gene_info, id_type=id_type, gene_type=gene_type, top_k=top_k,
            create_compounds=create_compounds))


__all__ = ["ConsensusMatrixAdapter", "GeneMap", "add_cli", "from_config", "read_matrix"]
