"""Genetic perturbation signatures: gene over-expression consensus signatures -> ``Signature`` (trt_oe).

Input: a long table of significantly dysregulated genes per perturbation, as dhimmel/lincs'
``dysreg-overexpression.tsv``: ``perturbagen`` (Entrez id of the over-expressed gene),
``entrez_gene_id`` (a dysregulated gene), ``z_score``, ``direction`` (``up`` / ``down``), and
optionally ``symbol`` (of the dysregulated gene), ``status`` (measured / imputed) and
``nlog10_bonferroni_pval``. Tab- or comma-separated, plain or gzip.

Graph: one ``(:Signature {sig_id: 'trt_oe:<entrez id>', pert_type: 'trt_oe', level: 5, kind:
'consensus'})`` per perturbagen, ``-[:PERTURBS]->(:Gene)`` the over-expressed gene, and
``-[:UPREGULATES|DOWNREGULATES {z, rank, status, nlog10_bonferroni_pval}]->(:Gene)`` for its
dysregulated genes (``direction`` decides the type; ``rank`` 1 = largest ``|z|`` of that direction,
ties by symbol). Only significant genes are listed, so these signatures carry no ``z_landmark``.

Genes are mapped by Entrez id through the graph's Gene nodes first (the symbols the L1000 ingest
wrote), then ``gene_info``, then the table's own ``symbol`` column; unmapped ones are counted and
dropped (a perturbagen whose gene cannot be named keeps its signature, without PERTURBS). Genes not yet
in the graph are created (symbol, entrez_id). Bad input (a non-numeric z or id, an unknown direction,
a duplicate perturbagen x gene row, missing columns, truncated gzip) is an :class:`InputFormatError`
naming the file, line and column, raised before anything is written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from moakg.ingest.base import (
    InputFormatError,
    SourceAdapter,
    check_config_section,
    config_paths,
    normalise_symbol,
    open_text,
)
from moakg.ingest.consensus_matrix import (
    MAX_EXAMPLES,
    GeneMap,
    as_paths,
    graph_genes,
    gzip_errors,
)
from moakg.ingest.l1000 import signature_row
from moakg.ingest.l1000_io import MISSING_VALUE_TOKENS
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import DEFAULT_BATCH_SIZE, Batch, IngestReport, NodeBatch, RelBatch

REQUIRED = ("perturbagen", "entrez_gene_id", "z_score", "direction")
DIRECTIONS = {"up": "UPREGULATES", "down": "DOWNREGULATES"}


def _int(path: Path, lineno: int, col: int, name: str, value: str) -> int:
    v = value.strip()
    if not v.isdigit():
        raise InputFormatError(path, lineno, f"column {col + 1} ({name!r}): expected an Entrez gene id "
                               f"(integer), got {v!r}")
    return int(v)


def read_overexpression(path: Path) -> list[dict[str, Any]]:
    """Rows of the table, checked; each with its line number."""
    out: list[dict[str, Any]] = []
    lineno = 1
    try:
        with open_text(path) as f:
            first = f.readline()
            delim = "\t" if "\t" in first else ","
            header = [h.strip().lstrip("\ufeff") for h in next(csv.reader([first], delimiter=delim))] \
                if first.strip() else []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputFormatError(path, 1, f"column {len(header) + 1}: missing required column(s) "
                                       f"{missing}; got {header}")
            dup = {h for h in header if header.count(h) > 1}
            if dup:
                raise InputFormatError(path, 1, f"column {header.index(sorted(dup)[0]) + 1}: duplicate "
                                       f"column {sorted(dup)[0]!r}")
            col = {h: i for i, h in enumerate(header)}
            seen: dict[tuple[int, int], int] = {}
            for lineno, fields in enumerate(csv.reader(f, delimiter=delim), start=2):
                if not any(x.strip() for x in fields):
                    continue
                if len(fields) != len(header):
                    raise InputFormatError(path, lineno, f"{len(fields)} fields, expected {len(header)}")
                pert = _int(path, lineno, col["perturbagen"], "perturbagen", fields[col["perturbagen"]])
                gc = col["entrez_gene_id"]
                gene = _int(path, lineno, gc, "entrez_gene_id", fields[gc])
                zc = col["z_score"]
                try:
                    z = float(fields[zc])
                except ValueError:
                    raise InputFormatError(path, lineno, f"column {zc + 1} ('z_score'): non-numeric value "
                                           f"{fields[zc]!r}") from None
                dc = col["direction"]
                direction = fields[dc].strip().lower()
                if direction not in DIRECTIONS:
                    raise InputFormatError(path, lineno, f"column {dc + 1} ('direction'): expected up or "
                                           f"down, got {fields[dc]!r}")
                if (pert, gene) in seen:
                    raise InputFormatError(path, lineno, f"column {col['entrez_gene_id'] + 1} "
                                           f"('entrez_gene_id'): duplicate row for perturbagen {pert} x gene "
                                           f"{gene} (first on line {seen[pert, gene]})")
                seen[pert, gene] = lineno
                row: dict[str, Any] = {"line": lineno, "perturbagen": pert, "gene": gene, "z": z,
                                       "direction": direction}
                for opt in ("symbol", "status"):
                    if opt in col:
                        row[opt] = fields[col[opt]].strip() or None
                if "nlog10_bonferroni_pval" in col:
                    pc = col["nlog10_bonferroni_pval"]
                    v = fields[pc].strip()
                    try:
                        row["nlog10_bonferroni_pval"] = None if v in MISSING_VALUE_TOKENS else float(v)
                    except ValueError:
                        raise InputFormatError(path, lineno, f"column {pc + 1} ('nlog10_bonferroni_pval'): "
                                               f"non-numeric value {v!r}") from None
                out.append(row)
    except gzip_errors() as exc:
        raise InputFormatError(path, lineno + 1, f"truncated or corrupt gzip data after line {lineno} "
                               f"({exc or type(exc).__name__})") from None
    except csv.Error as exc:
        raise InputFormatError(path, lineno + 1, f"malformed delimited text: {exc}") from None
    if not out:
        raise InputFormatError(path, 2, "no data rows after the header")
    return out


class OverexpressionAdapter(SourceAdapter):
    """Over-expression signatures -> Signature (trt_oe), PERTURBS, UP/DOWNREGULATES, Gene."""

    source = "l1000_overexpression"

    def __init__(self, table: Path | str, *, gene_info: Path | str | Sequence[Path | str] | None = None,
                 genes: GeneMap | None = None) -> None:
        super().__init__()
        self.table = Path(table)
        if not self.table.exists():
            raise FileNotFoundError(f"{self.table}: no such file")
        self.gene_info = as_paths(gene_info)
        self.genes = genes

    def files(self) -> list[Path]:
        return [self.table, *self.gene_info]

    def ingest(self, conn: Neo4jConnection, batch_size: int = DEFAULT_BATCH_SIZE,
               progress: bool = True) -> IngestReport:
        self.genes = graph_genes(conn)
        return super().ingest(conn, batch_size=batch_size, progress=progress)

    def batches(self) -> Iterator[Batch]:
        self.stats.clear()
        genes = self.genes if self.genes is not None else GeneMap()
        for p in self.gene_info:
            genes.add_table(p)
        rows = read_overexpression(self.table)  # checked in full before the first batch
        own: dict[int, str] = {}  # the table's own symbols for its dysregulated genes
        for r in rows:
            sym = normalise_symbol(r.get("symbol"))
            if sym is not None:
                own.setdefault(r["gene"], sym)

        new_genes: dict[str, int] = {}
        unknown: set[int] = set()

        def name(e: int) -> str | None:
            sym, _ = genes.entrez(e)
            sym = sym or own.get(e)
            if sym is None:
                unknown.add(e)
                return None
            if sym not in genes.graph_symbols:
                new_genes.setdefault(sym, e)
            return sym

        perts = sorted({r["perturbagen"] for r in rows})
        sig_rows, perturbs = [], []
        provenance = f"overexpression table {self.table.name}"
        for p in perts:
            sym = name(p)
            sid = f"trt_oe:{p}"
            sig_rows.append({
                **signature_row({"sig_id": sid, "pert_id": str(p), "pert_iname": sym, "pert_type": "trt_oe",
                                 "level": 5}, None),
                "kind": "consensus", "pert_id_type": "entrez", "provenance": provenance})
            if sym is not None:
                perturbs.append({"start": sid, "end": sym})
            else:
                self.count("perturbagens_unmapped")
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            sym = name(r["gene"])
            if sym is None:
                self.count("rows_unmapped_gene")
                continue
            if (r["direction"] == "up") != (r["z"] > 0):
                self.count("direction_sign_mismatch")
            key = (f"trt_oe:{r['perturbagen']}", sym)
            prev = edges.get(key)
            if prev is not None:  # two Entrez ids with one symbol: keep the stronger
                self.count("duplicate_gene_symbols")
                if abs(prev["z"]) >= abs(r["z"]):
                    continue
            edges[key] = {"start": key[0], "end": sym, "z": round(r["z"], 4), "direction": r["direction"],
                          "status": r.get("status"),
                          "nlog10_bonferroni_pval": r.get("nlog10_bonferroni_pval")}
        by_dir: dict[str, list[dict[str, Any]]] = {"up": [], "down": []}
        for (sid, _), e in sorted(edges.items(), key=lambda kv: (kv[0][0], -abs(kv[1]["z"]), kv[0][1])):
            out = by_dir[e.pop("direction")]
            rank = 1 if not out or out[-1]["start"] != sid else out[-1]["rank"] + 1
            out.append({**e, "rank": rank})
        self.stats.update(
            rows=len(rows), signatures=len(sig_rows), perturbs=len(perturbs), edges_up=len(by_dir["up"]),
            edges_down=len(by_dir["down"]), genes_created=len(new_genes), unknown_genes=len(unknown),
            unknown_gene_examples=sorted(unknown)[:MAX_EXAMPLES])
        if new_genes:
            yield NodeBatch("Gene", "symbol",
                            [{"symbol": s, "entrez_id": e} for s, e in sorted(new_genes.items())])
        yield NodeBatch("Signature", "sig_id", sig_rows)
        yield RelBatch("PERTURBS", ("Signature", "sig_id"), ("Gene", "symbol"), perturbs)
        yield RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), by_dir["up"])
        yield RelBatch("DOWNREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), by_dir["down"])


def from_config(section: dict[str, Any], base_dir: Path) -> OverexpressionAdapter:
    """``[overexpression]``: ``table`` (required) and ``gene_info`` (a path or a list)."""
    check_config_section("overexpression", section, {"table", "gene_info"}, ("table",))
    gi = config_paths(section.get("gene_info"), base_dir)
    return OverexpressionAdapter(base_dir / section["table"], gene_info=gi)


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest overexpression``."""

    @app.command("overexpression")
    def ingest_overexpression(
        table: Annotated[Path, typer.Argument(
            help="Dysregulated genes per gene over-expression (perturbagen, entrez_gene_id, z_score, "
                 "direction[, symbol, status, nlog10_bonferroni_pval]), e.g. dysreg-overexpression.tsv.")],
        gene_info: Annotated[list[Path] | None, typer.Option(
            help="Entrez id -> symbol table (genes.tsv, LINCS geneinfo; repeatable); the graph's Gene "
                 "nodes and the table's own symbol column are used first / last.")] = None,
    ) -> None:
        """Load gene over-expression signatures (trt_oe): PERTURBS the gene, UP/DOWNREGULATES genes."""
        run_adapter_cli(lambda: OverexpressionAdapter(table, gene_info=gene_info))


__all__ = ["OverexpressionAdapter", "add_cli", "from_config", "read_overexpression"]
