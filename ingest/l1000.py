"""LINCS L1000 signatures: GCTX/GCT matrices + GEO or CLUE metadata -> Signature, Compound, Gene, CellLine.

Inputs: one matrix (``gctx`` HDF5 or ``gct`` text, see :mod:`moakg.ingest.l1000_io`) and optional
metadata tables (``sig_info``, ``gene_info``, ``pert_info``, ``cell_info``; each a path or a list of
paths, GEO release or CLUE beta, recognised by columns, see :mod:`moakg.ingest.l1000_meta`). Metadata
embedded in the matrix fills what the tables lack.

* **Level 5** (consensus signatures, e.g. ``level5_beta_trt_cp`` or GEO ``COMPZ.MODZ``): one Signature
  per column that passes the quality filters, streamed in blocks of ``chunk_rows`` signatures.
* **Level 3/4** (plates of wells with vehicle controls, like ``test_l1000.gct``): wells are z-scored
  against their plate's vehicle wells (level 3) and collapsed by MODZ to one Signature per compound x
  dose x time x cell (:mod:`moakg.ingest.l1000_consensus`, which also documents the sig_id scheme).
  ``level='auto'`` takes an input with vehicle wells or well ids as a plate, and a plate whose
  provenance has no z-scoring step (``ZS``) and whose values look like log2 expression as level 3.

Graph: ``(Compound)-[:HAS_SIGNATURE]->(Signature)-[:IN_CELL]->(CellLine)``, ``(Signature)-[:UPREGULATES|
DOWNREGULATES {z, rank}]->(Gene)`` for the ``top_k`` most positive and ``top_k`` most negative z-scores
(ties broken by gene symbol, so exactly ``top_k`` each unless fewer genes have that sign), and, when the
compound table has ``moa`` / ``target`` columns (CLUE ``compoundinfo_beta``), ``HAS_MOA`` and
``TARGETS`` (per source). ``Signature.level`` is the level of the input it came from (5, or 3 / 4 for a
signature collapsed here); ``n_replicates`` is ``distil_nsample`` / ``nsample`` for level 5 input.

**Full z-vectors.** Each Signature keeps its landmark z-scores as one float list, ``z_landmark``, in the
order of the landmark genes **sorted by symbol** (the Gene keys this ingest writes with
``is_landmark = true``). One list property per signature costs no extra nodes, labels or edges, is
read in one query by the exporter (which sorts the landmark Gene nodes by symbol to name the
positions) and avoids storing a parallel gene-name list on every signature; with a full release that
is all 978 landmarks, with a partial input the landmarks present in it (``len(z_landmark)`` tells).
NaN values (none in real CMap data) are stored as 0.0, since Neo4j lists cannot hold nulls, and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    check_number_option,
    normalise_moa,
)
from moakg.ingest.compounds import CompoundIndex, canonical_smiles
from moakg.ingest.l1000_consensus import VEHICLE, CollapseStats, collapse
from moakg.ingest.l1000_io import DEFAULT_CHUNK_ROWS, GctFile, GctxFile, L1000Matrix
from moakg.ingest.l1000_meta import (
    SIG_ALIASES,
    QualityFilters,
    canonical,
    cell_meta,
    clean_str,
    fill_missing,
    gene_meta,
    load_table,
    normalise_symbol,
    parse_signatures,
    pert_meta,
    quality_mask,
)
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.writer import Batch, NodeBatch, RelBatch

PathArg = Path | str | Sequence[Path | str] | None
COMPOUND_TYPES = frozenset({"trt_cp"})


def is_compound(pert_type: str | None, pert_id: str | None) -> bool:
    """trt_cp, and positive controls with Broad compound ids (BRD-...; shRNA controls are not)."""
    if pert_id is None:
        return False
    return pert_type in COMPOUND_TYPES or (pert_type == "trt_poscon" and pert_id.startswith("BRD-"))
_QUALITY_FIELDS = ("nsample", "cc_q75", "tas", "pct_self_rank_q25", "is_hiq")


def _paths(value: PathArg) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


class L1000Adapter(SourceAdapter):
    """LINCS L1000 -> Signature, Compound, CellLine, Gene (+ MoA) with the relationships above."""

    source = "lincs"
    writes_compounds = True

    def __init__(
        self, gctx: Path | str | None = None, gct: Path | str | None = None, *, sig_info: PathArg = None,
        gene_info: PathArg = None, pert_info: PathArg = None, cell_info: PathArg = None, top_k: int = 50,
        all_genes: bool = False, compounds_only: bool = True, pert_types: Sequence[str] | None = None,
        require_hiq: bool = False, require_qc_pass: bool = False, min_tas: float | None = None,
        min_cc_q75: float | None = None, max_pct_self_rank_q25: float | None = None,
        pct_self_rank_scale: str = "auto", level: str | int = "auto", mad_floor: float = 0.1,
        chunk_rows: int = DEFAULT_CHUNK_ROWS, index: CompoundIndex | None = None,
        known_genes: set[str] | None = None,
    ) -> None:
        super().__init__()
        if (gctx is None) == (gct is None):
            raise UserError("give exactly one matrix: gctx (HDF5) or gct (text)")
        # Options are checked here, not where they are first used, deep inside the parsing.
        check_int_option("top_k", top_k)
        check_int_option("chunk_rows", chunk_rows)
        for name, value in (("min_tas", min_tas), ("min_cc_q75", min_cc_q75), ("mad_floor", mad_floor),
                            ("max_pct_self_rank_q25", max_pct_self_rank_q25)):
            check_number_option(name, value)
        for name, value in (("all_genes", all_genes), ("compounds_only", compounds_only),
                            ("require_hiq", require_hiq), ("require_qc_pass", require_qc_pass)):
            if not isinstance(value, bool):
                raise UserError(f"{name} must be true or false, got {value!r}")
        if str(level) not in ("auto", "3", "4", "5"):
            raise UserError(f"level must be auto, 3, 4 or 5, not {level!r}")
        if pct_self_rank_scale not in ("auto", "fraction", "percent"):
            raise UserError(f"pct_self_rank_scale must be auto, fraction or percent, not "
                            f"{pct_self_rank_scale!r}")
        if pert_types is not None and (isinstance(pert_types, str)
                                       or not all(isinstance(t, str) for t in pert_types)):
            raise UserError(f"pert_types must be a list of pert_type names, got {pert_types!r}")
        self.matrix_path = Path(gctx if gctx is not None else gct)  # type: ignore[arg-type]
        self.is_gctx = gctx is not None
        self.sig_info, self.gene_info = _paths(sig_info), _paths(gene_info)
        self.pert_info, self.cell_info = _paths(pert_info), _paths(cell_info)
        self.top_k, self.all_genes, self.level, self.mad_floor = top_k, all_genes, str(level), mad_floor
        self.chunk_rows, self.pct_scale = chunk_rows, pct_self_rank_scale
        types = COMPOUND_TYPES if compounds_only else None
        types = frozenset(pert_types) if pert_types is not None else types
        self.filters = QualityFilters(types, require_hiq, require_qc_pass, min_tas, min_cc_q75,
                                      max_pct_self_rank_q25)
        self.index = index if index is not None else CompoundIndex()
        self.known_genes = known_genes

    def files(self) -> list[Path]:
        return [self.matrix_path, *self.sig_info, *self.gene_info, *self.pert_info, *self.cell_info]

    def params(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "all_genes": self.all_genes, "level": self.level,
                "mad_floor": self.mad_floor, "pct_self_rank_scale": self.pct_scale,
                **self.filters.as_params()}

    # ------------------------------------------------------------------ preparation (before any yield)
    def _open(self) -> L1000Matrix:
        # The argument, not the file name, decides the reader: a GCT text passed as gctx is rejected.
        return GctxFile(self.matrix_path) if self.is_gctx else GctFile(self.matrix_path)

    def _genes(self, m: L1000Matrix) -> pd.DataFrame:
        """Selected matrix rows (landmarks, or all with ``all_genes``), one per symbol, sorted by symbol."""
        table = pd.concat([load_table(p, "gene") for p in self.gene_info]) if self.gene_info else None
        genes = gene_meta(m.row_meta, table, self.matrix_path, self.gene_info[0] if self.gene_info else None)
        genes["pos"] = np.arange(len(genes))
        if not self.all_genes:
            if genes["is_landmark"].isna().all():
                raise InputFormatError(
                    self.matrix_path, None,
                    "no landmark flag (is_lm / pr_is_lm / pr_is_lmark / feature_space) in the row metadata "
                    "or gene_info; pass gene_info or all_genes=True")
            genes = genes[genes["is_landmark"] == True]  # noqa: E712 - object column of bools
        bad = genes["symbol"].isna()
        if self.known_genes is not None:
            bad |= ~genes["symbol"].isin(self.known_genes)
        self.count("unknown_gene_symbols", int(bad.sum()))
        genes = genes[~bad].copy()
        genes["lm_first"] = genes["is_landmark"] != True  # noqa: E712
        genes = genes.sort_values(["symbol", "lm_first", "pos"])
        dup = genes["symbol"].duplicated()
        self.count("duplicate_gene_rows", int(dup.sum()))
        genes = genes[~dup]
        if genes.empty:
            raise InputFormatError(self.matrix_path, None, "no usable gene rows (symbols) selected")
        self.stats["genes_selected"] = len(genes)
        self.stats["landmark_genes"] = int((genes["is_landmark"] == True).sum())  # noqa: E712
        return genes

    def _signatures(self, m: L1000Matrix) -> pd.DataFrame:
        raw = canonical(m.col_meta, SIG_ALIASES)
        if self.sig_info:
            table = None
            for p in self.sig_info:  # GEO splits sig_info and sig_metrics: merge them on sig_id
                t = load_table(p, "sig").drop_duplicates("sig_id").set_index("sig_id")
                if table is not None:
                    union = table.index.union(t.index, sort=False)
                    t = fill_missing(table.reindex(union), t.reindex(union))
                table = t
            ids = m.col_meta.index
            missing = ids[~ids.isin(table.index)]
            if len(missing):
                raise InputFormatError(
                    self.matrix_path, None,
                    f"{len(missing)} of {len(ids)} column ids are not sig_ids in "
                    f"{', '.join(map(str, self.sig_info))}, e.g. {missing[:5].tolist()}")
            raw = fill_missing(table.reindex(ids), raw)
        sig, stats = parse_signatures(raw, self.pct_scale)
        self.stats.update(stats)
        return sig

    def _level(self, m: L1000Matrix, sig: pd.DataFrame) -> int:
        if self.level != "auto":
            if self.level not in ("3", "4", "5"):
                raise UserError(f"level must be auto, 3, 4 or 5, not {self.level!r}")
            return int(self.level)
        if self.sig_info or any(sig[c].notna().any() for c in _QUALITY_FIELDS):
            return 5
        if not ((sig["pert_type"] == VEHICLE).any() or sig["det_well"].notna().any()):
            return 5
        if sig["provenance_code"].fillna("").str.contains("ZS").any():
            return 4
        sample = m.read(np.arange(min(len(sig), 20)))
        return 3 if np.nanmedian(sample) > 2.5 else 4  # log2 expression ~ 4-15, z-scores ~ 0

    def _load_perts(self) -> pd.DataFrame:
        if not self.pert_info:
            return pert_meta(pd.DataFrame(columns=["pert_id"]))
        return pert_meta(pd.concat([load_table(p, "pert") for p in self.pert_info], ignore_index=True))

    def _load_cells(self) -> pd.DataFrame:
        if not self.cell_info:
            return pd.DataFrame()
        return cell_meta(pd.concat([load_table(p, "cell") for p in self.cell_info], ignore_index=True))

    # ------------------------------------------------------------------ batches
    def batches(self) -> Iterator[Batch]:
        self.stats.clear()  # a second run of the same adapter counts afresh
        # Everything small is read and checked before the first batch, so bad metadata writes nothing.
        m = self._open()
        self.perts, self.cells = self._load_perts(), self._load_cells()
        sig = self._signatures(m)
        genes = self._genes(m)
        level = self._level(m, sig)
        self.stats.update(level=level, columns_in_input=len(sig))
        self._seen_compounds: dict[str, str] = {}  # pert_id -> Compound.id
        self._emitted_compounds: set[str] = set()
        self._seen_cells: set[str] = set()
        self._seen_moas: set[str] = set()
        self._seen_genes = set(genes["symbol"])
        self._lm_idx = np.flatnonzero((genes["is_landmark"] == True).to_numpy())  # noqa: E712
        self._symbols = genes["symbol"].to_numpy()
        yield NodeBatch("Gene", "symbol", [
            {"symbol": s, "entrez_id": e, "is_landmark": bool(lm is True)}
            for s, e, lm in zip(genes["symbol"], genes["entrez_id"], genes["is_landmark"], strict=True)])
        row_pos = genes["pos"].to_numpy()
        yield from (self._level5(m, sig, row_pos) if level == 5 else self._plates(m, sig, row_pos, level))

    def _level5(self, m: L1000Matrix, sig: pd.DataFrame, row_pos: np.ndarray) -> Iterator[Batch]:
        keep, counts = quality_mask(sig, self.filters)
        for k, v in counts.items():
            self.count(k, v)
        no_pert = keep & sig["pert_id"].isna().to_numpy()
        self.count("missing_pert_id", int(no_pert.sum()))
        keep &= ~no_pert
        sig = sig.assign(sig_id=sig.index, level=5, n_replicates=sig["nsample"], cc_mean=np.nan)
        for pos, z in m.iter_blocks(np.flatnonzero(keep), row_pos, self.chunk_rows):
            yield from self._emit(sig.iloc[pos], z)

    def _plates(self, m: L1000Matrix, sig: pd.DataFrame, row_pos: np.ndarray, level: int) -> Iterator[Batch]:
        types = QualityFilters(pert_types=self.filters.pert_types, require_hiq=False)
        treat, counts = quality_mask(sig[sig["pert_type"] != VEHICLE], types)
        self.count("wells_filtered_pert_type", counts.get("filtered_pert_type", 0))
        treat_all = np.zeros(len(sig), dtype=bool)
        treat_all[np.flatnonzero((sig["pert_type"] != VEHICLE).to_numpy())[treat]] = True
        no_pert = treat_all & sig["pert_id"].isna().to_numpy()
        self.count("missing_pert_id", int(no_pert.sum()))
        treat_all &= ~no_pert
        f = self.filters  # thresholds apply to the collapsed signatures (wells have no tas, cc_q75, ...)
        post = QualityFilters(None, f.require_hiq, f.require_qc_pass, f.min_tas, f.min_cc_q75,
                              f.max_pct_self_rank_q25)
        cstats = CollapseStats()
        corr = self._lm_idx if len(self._lm_idx) >= 2 else None
        buf: list[tuple[pd.DataFrame, np.ndarray]] = []
        for groups, z in collapse(m, sig, treat_all, row_pos, level, corr, self.mad_floor, stats=cstats):
            for name in ("tas", "pct_self_rank_q25", "is_hiq", "qc_pass"):
                groups[name] = None
            ok, counts = quality_mask(groups, post)
            for k, v in counts.items():
                self.count(k, v)
            buf.append((groups[ok].set_index("sig_id", drop=False).assign(level=level), z[ok]))
            if sum(len(g) for g, _ in buf) >= self.chunk_rows:
                yield from self._emit(pd.concat([g for g, _ in buf]), np.concatenate([z for _, z in buf]))
                buf = []
        if buf:
            yield from self._emit(pd.concat([g for g, _ in buf]), np.concatenate([z for _, z in buf]))
        names = {"replicate_wells": "wells_collapsed"}
        self.stats.update({names.get(k, k): v for k, v in vars(cstats).items()})

    # ------------------------------------------------------------------ rows
    def _compound(self, pert_id: str, name: str | None) -> tuple[str, dict[str, Any] | None]:
        """Compound node id for a pert_id (and its node row the first time the id is seen)."""
        if pert_id in self._seen_compounds:
            return self._seen_compounds[pert_id], None
        known = pert_id in self.perts.index
        info = self.perts.loc[pert_id] if known else pd.Series(dtype=object)
        if not known:
            self.count("compounds_without_pert_info")
        smiles, inchi = clean_str(info.get("smiles")), clean_str(info.get("inchi"))
        name = clean_str(info.get("pert_iname")) or name
        ident = self.index.resolve(self.source, pert_id, smiles=smiles, inchi=inchi,
                                   inchikey=clean_str(info.get("inchikey")))
        if (smiles or inchi) and not ident.structure_parsed:
            self.count("structure_unparseable")
        self._seen_compounds[pert_id] = ident.id
        if ident.id in self._emitted_compounds:
            self.count("pert_ids_sharing_a_compound")
            return ident.id, None
        self._emitted_compounds.add(ident.id)
        self.count("compounds")
        return ident.id, {**ident.node_props(self.source), "name": name, "pert_id": pert_id,
                          **ident.smiles_props(canonical_smiles(smiles, inchi) or smiles)}

    def _emit(self, sig: pd.DataFrame, z: np.ndarray) -> Iterator[Batch]:
        nan = np.isnan(z)
        if nan.any():
            self.count("nan_values_as_zero", int(nan.sum()))
            z = np.where(nan, 0.0, z)
        compounds, moas, has_moa, targets, target_genes, cells = [], [], [], [], [], []
        sig_rows, has_sig, in_cell = [], [], []
        for i, r in enumerate(sig.itertuples(index=False)):
            d = r._asdict()
            cid = None
            if is_compound(d["pert_type"], d["pert_id"]):
                cid, node = self._compound(d["pert_id"], d.get("pert_iname"))
                if node is not None:
                    compounds.append(node)
                    self._moa_rows(d["pert_id"], cid, moas, has_moa, targets, target_genes)
                has_sig.append({"start": cid, "end": d["sig_id"]})
            else:
                self.count("signatures_without_compound")
            cell = clean_str(d.get("cell_id"))
            if cell is not None:
                in_cell.append({"start": d["sig_id"], "end": cell})
                if cell not in self._seen_cells:
                    self._seen_cells.add(cell)
                    extra = self.cells.loc[cell].to_dict() if cell in self.cells.index else {}
                    cells.append({"cell_id": cell, **{k: v for k, v in extra.items() if v is not None}})
            else:
                self.count("signatures_without_cell")
            self.count("missing_dose", int(d["dose"] is None or pd.isna(d["dose"])))
            self.count("missing_time", int(d["time"] is None or pd.isna(d["time"])))
            sig_rows.append(self._sig_row(d, z[i]))
        self.count("signatures", len(sig_rows))
        if cells:
            yield NodeBatch("CellLine", "cell_id", cells)
        if compounds:
            yield NodeBatch("Compound", "id", compounds)
        if target_genes:
            yield NodeBatch("Gene", "symbol", target_genes)
        if moas:
            yield NodeBatch("MoA", "name", moas)
        yield NodeBatch("Signature", "sig_id", sig_rows)
        # HAS_MOA and TARGETS are merged per source (kg/schema.toml): other sources keep their own edges
        label_rels = (("HAS_MOA", has_moa, ("MoA", "name")), ("TARGETS", targets, ("Gene", "symbol")))
        for rel, rows, end in label_rels:
            if rows:
                yield RelBatch(rel, ("Compound", "id"), end, rows)
        if has_sig:
            yield RelBatch("HAS_SIGNATURE", ("Compound", "id"), ("Signature", "sig_id"), has_sig)
        if in_cell:
            yield RelBatch("IN_CELL", ("Signature", "sig_id"), ("CellLine", "cell_id"), in_cell)
        up, down = self._top_k(sig["sig_id"].to_numpy(), z)
        self.count("edges_up", len(up))
        self.count("edges_down", len(down))
        yield RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), up)
        yield RelBatch("DOWNREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), down)

    def _sig_row(self, d: dict[str, Any], z: np.ndarray) -> dict[str, Any]:
        return signature_row(d, z[self._lm_idx] if len(self._lm_idx) else None)

    def _moa_rows(self, pert_id: str, cid: str, moas: list, has_moa: list, targets: list,
                  target_genes: list) -> None:
        if pert_id not in self.perts.index:
            return
        info = self.perts.loc[pert_id]
        for m in sorted(info.get("moa") or ()):
            key = normalise_moa(m)
            if key is None:
                continue
            if key not in self._seen_moas:
                self._seen_moas.add(key)
                moas.append({"name": key, "display_name": " ".join(m.split())})
            has_moa.append({"start": cid, "end": key})
        for t in sorted(info.get("target") or ()):
            sym = normalise_symbol(t)
            if sym is None or (self.known_genes is not None and sym not in self.known_genes):
                self.count("unknown_gene_symbols")
                continue
            if sym not in self._seen_genes:
                self._seen_genes.add(sym)
                target_genes.append({"symbol": sym})
            targets.append({"start": cid, "end": sym})

    def _top_k(self, sig_ids: np.ndarray, z: np.ndarray) -> tuple[list[dict], list[dict]]:
        return top_k_edges(sig_ids, z, self._symbols, self.top_k)


def signature_row(d: dict[str, Any], z_landmark: np.ndarray | None) -> dict[str, Any]:
    """A ``Signature`` node row; plate, consensus and over-expression signatures all use it, so every
    signature carries the same fields (absent ones None, which the writer drops)."""

    def num(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    n_rep = num(d.get("n_replicates"))
    return {
        "sig_id": d["sig_id"], "pert_id": d["pert_id"], "pert_iname": d.get("pert_iname"),
        "pert_type": d["pert_type"], "cell_id": d.get("cell_id"), "dose": num(d.get("dose")),
        "dose_unit": d.get("dose_unit"), "time": num(d.get("time")), "time_unit": d.get("time_unit"),
        "tas": num(d.get("tas")), "cc_q75": num(d.get("cc_q75")),
        "pct_self_rank_q25": num(d.get("pct_self_rank_q25")), "is_hiq": d.get("is_hiq"),
        "qc_pass": d.get("qc_pass"), "n_replicates": int(n_rep) if n_rep is not None else None,
        "cc_mean": num(d.get("cc_mean")), "level": int(d["level"]),
        "z_landmark": (np.round(z_landmark.astype(float), 4).tolist()
                       if z_landmark is not None and len(z_landmark) else None),
    }


def top_k_edges(sig_ids: np.ndarray, z: np.ndarray, symbols: Any, k: int) -> tuple[list[dict], list[dict]]:
    """UPREGULATES / DOWNREGULATES rows of every signature: its ``k`` highest positive and ``k`` lowest
    negative z (column ``j`` of ``z`` is gene ``symbols[j]``), with z and rank."""
    k = min(k, z.shape[1])
    up_idx = np.argsort(-z, axis=1, kind="stable")[:, :k]  # stable: ties go to the earlier symbol
    dn_idx = np.argsort(z, axis=1, kind="stable")[:, :k]
    up: list[dict] = []
    down: list[dict] = []
    for out, idx, sign in ((up, up_idx, 1.0), (down, dn_idx, -1.0)):
        for i, sid in enumerate(sig_ids):
            for rank, j in enumerate(idx[i], start=1):
                if z[i, j] * sign > 0:
                    out.append({"start": sid, "end": symbols[j], "z": round(float(z[i, j]), 4), "rank": rank})
    return up, down


# ---------------------------------------------------------------------------------------- config / CLI
_PATH_KEYS = ("gctx", "gct", "sig_info", "gene_info", "pert_info", "cell_info")
_OPTION_KEYS = ("top_k", "all_genes", "compounds_only", "pert_types", "require_hiq", "require_qc_pass",
                "min_tas", "min_cc_q75", "max_pct_self_rank_q25", "pct_self_rank_scale", "level", "mad_floor",
                "chunk_rows")


def from_config(section: dict[str, Any], base_dir: Path) -> L1000Adapter:
    """``[l1000]``: ``gctx`` or ``gct`` (required), table paths (a path or a list), and options."""
    check_config_section("l1000", section, {*_PATH_KEYS, *_OPTION_KEYS})

    def rel(v: Any) -> Any:
        if v is None:
            return None
        return [base_dir / p for p in v] if isinstance(v, list) else base_dir / v

    kwargs = {k: rel(section.get(k)) for k in _PATH_KEYS}
    kwargs.update({k: section[k] for k in _OPTION_KEYS if k in section})
    return L1000Adapter(**kwargs)


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest l1000``."""

    @app.command("l1000")
    def ingest_l1000(
        matrix: Annotated[Path, typer.Argument(
            help="L1000 matrix: .gctx (HDF5) or .gct text (v1.2/v1.3); level 5 signatures, or level 3/4 "
                 "plates (collapsed here by MODZ).")],
        sig_info: Annotated[list[Path] | None, typer.Option(
            help="sig_info / sig_metrics / siginfo_beta (repeatable).")] = None,
        gene_info: Annotated[list[Path] | None, typer.Option(help="gene_info / geneinfo_beta.")] = None,
        pert_info: Annotated[list[Path] | None, typer.Option(
            help="pert_info / compoundinfo_beta (structures; moa and target columns add HAS_MOA and "
                 "TARGETS).")] = None,
        cell_info: Annotated[list[Path] | None, typer.Option(help="cell_info / cellinfo_beta.")] = None,
        top_k: Annotated[int, typer.Option(help="UP- and DOWNREGULATES edges per signature, each.")] = 50,
        all_genes: Annotated[bool, typer.Option(help="Use every gene row, not only the landmarks.")] = False,
        compounds_only: Annotated[bool, typer.Option(help="Keep only pert_type trt_cp.")] = True,
        require_hiq: Annotated[bool, typer.Option(help="Keep only is_hiq (CLUE) / is_gold (GEO).")] = False,
        require_qc_pass: Annotated[bool, typer.Option(help="Keep only qc_pass = 1.")] = False,
        min_tas: Annotated[float | None, typer.Option(help="Minimum transcriptional activity score.")] = None,
        min_cc_q75: Annotated[float | None, typer.Option(help="Minimum replicate correlation q75.")] = None,
        max_pct_self_rank_q25: Annotated[float | None, typer.Option(
            help="Maximum pct_self_rank_q25, in percent (fractions in the input are detected).")] = None,
        level: Annotated[str, typer.Option(help="auto, 3, 4 or 5.")] = "auto",
    ) -> None:
        """Load L1000 signatures: Signature, Compound, CellLine, Gene and the top-k gene edges."""
        gz = matrix.suffix.lower() == ".gctx"
        run_adapter_cli(lambda: L1000Adapter(
            gctx=matrix if gz else None, gct=None if gz else matrix, sig_info=sig_info, gene_info=gene_info,
            pert_info=pert_info, cell_info=cell_info, top_k=top_k, all_genes=all_genes,
            compounds_only=compounds_only, require_hiq=require_hiq, require_qc_pass=require_qc_pass,
            min_tas=min_tas, min_cc_q75=min_cc_q75, max_pct_self_rank_q25=max_pct_self_rank_q25, level=level))
