"""``moakg predict``: MoAs or targets of new compounds from a trained run, inductively.

    from moakg.gnn.predict import predict_new_compounds
    result = predict_new_compounds(conn, "moa-sage-phenotype-scaffold-...", "new.tsv",
                                   signatures="new_signatures.tsv.gz", top_k=5)
    for p in result.predictions: print(p.ref, p.flag, p.top)

What happens, in order (everything is read and checked before anything is written, so a bad file, an
unknown run or a stale model writes nothing):

1. **Check**: the run exists and has its checkpoint; the graph's completed IngestRuns are still those the
   run was trained on (compounds added by earlier predictions aside); every compound's SMILES or InChI
   parses (RDKit); the signatures' genes cover the graph's landmark genes, which are the model's
   signature input.
2. **Add** the compounds that are not in the graph yet (matched by full InChIKey, as every source is)
   under one ``(:IngestRun {source: 'new_compounds'})`` through the one writer: ``Compound`` nodes, their
   consensus ``Signature`` (``consensus:new:<InChIKey>``) with the same top-k UPREGULATES /
   DOWNREGULATES edges and ``z_landmark`` layout as the consensus ingest, and the derived edges the model
   reads, computed from the new compound's side with the parameters of the graph's own derive run:
   SIMILAR_STRUCTURE (Tanimoto of Morgan fingerprints) and SIMILAR_SIGNATURE (Spearman) to its top-k
   compounds, MIMICS / OPPOSES to the genes whose over-expression signature it agrees / disagrees with.
   Existing compounds keep their own top-k lists: a new compound is a reader of the graph, not a change
   to what the model was trained on. Connectivity-block (stereo) and name matches are not merged here.
3. **Score** with the run's model on the full graph exported from Neo4j, as the held-out compounds were
   scored: training compounds' labels as the label-trick input, the new compounds' none. A compound that
   the graph already holds is **flagged**; if it has known MoAs or targets, those are hidden from the
   model (label input, TARGETS edges in the phenotype setting) so it is never scored against its own
   labels.
4. **Write** the top-k predictions as ``PREDICTED_MOA`` / ``PREDICTED_TARGET {run, score, rank, origin}``
   (``origin`` = the new-compounds IngestRun id, so a re-run replaces exactly these predictions and the
   run's test predictions stay).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moakg.derive.run import SOURCE as DERIVE_SOURCE
from moakg.derive.run import SimilarityParams, perturbation_batches
from moakg.derive.similarity import blocked_topk, spearman_scorer, tanimoto_scorer
from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, SourceAdapter, open_text
from moakg.ingest.compounds import CompoundIndex, canonical_smiles, normalise_name, structure_inchikey
from moakg.ingest.consensus_matrix import Matrix, gene_type_of, graph_genes, read_matrix, to_int
from moakg.ingest.l1000 import signature_row, top_k_edges
from moakg.kg import derive_queries as dq
from moakg.kg import predict_queries as pq
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export_features import morgan_fingerprints
from moakg.kg.writer import Batch, NodeBatch, RelBatch, file_sha256, ingest_run_id

COMPOUND = ("Compound", "id")
ID_COLUMNS = ("id", "compound_id", "pert_id", "drugbank_id", "compound")
SMILES_COLUMNS = ("smiles", "canonical_smiles")
DEFAULT_TOP_K_GENES = 50  # the consensus ingest's default, when the graph has no consensus run


# ---------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class NewCompound:
    """One row of the compounds file: the user's ``ref``, its structure and where it was read."""

    ref: str
    name: str | None
    smiles: str
    inchikey: str
    line: int


def read_new_compounds(path: Path | str) -> list[NewCompound]:
    """The compounds of a TSV or CSV file (plain or gzip) with a header: an id column (``id``,
    ``compound_id``, ``pert_id``, ``drugbank_id`` or ``compound``), ``smiles`` and/or ``inchi``, and an
    optional ``name``. Every structure must parse and every id be unique; else one
    :class:`~moakg.ingest.base.InputFormatError` naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such compounds file")
    with open_text(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise InputFormatError(path, 1, "empty file; expected a header with id and smiles (or inchi) columns")
    sep = "\t" if "\t" in lines[0] else ","
    header = [h.strip().lower() for h in lines[0].split(sep)]
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    smi_col = next((header.index(c) for c in SMILES_COLUMNS if c in header), None)
    inchi_col = header.index("inchi") if "inchi" in header else None
    name_col = header.index("name") if "name" in header else None
    if id_col is None or (smi_col is None and inchi_col is None):
        raise InputFormatError(path, 1, f"the header needs an id column ({', '.join(ID_COLUMNS)}) and a "
                               f"smiles or inchi column; got {header}")
    out: list[NewCompound] = []
    seen: dict[str, int] = {}
    keys: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(sep)
        if len(cells) != len(header):
            raise InputFormatError(path, n, f"expected {len(header)} fields, got {len(cells)}")

        def cell(col: int | None, cells: list[str] = cells) -> str | None:
            return (cells[col].strip() or None) if col is not None else None

        ref = cell(id_col)
        if ref is None:
            raise InputFormatError(path, n, "empty compound id")
        if ref in seen:
            raise InputFormatError(path, n, f"compound id {ref!r} repeats line {seen[ref]}")
        seen[ref] = n
        smiles, inchi = cell(smi_col), cell(inchi_col)
        key = structure_inchikey(smiles, inchi)
        if key is None:
            given = f"SMILES {smiles!r}" if smiles else f"InChI {inchi!r}" if inchi else "no structure"
            raise InputFormatError(path, n, f"compound {ref!r}: {given} does not parse (RDKit); a SMILES or "
                                   "InChI is required")
        if key in keys:
            raise InputFormatError(path, n, f"compound {ref!r} has the structure of line {keys[key]} "
                                   f"(InChIKey {key})")
        keys[key] = n
        out.append(NewCompound(ref, normalise_name(cell(name_col)) if name_col is not None else None,
                               canonical_smiles(smiles, inchi) or smiles or "", key, n))
    if not out:
        raise InputFormatError(path, 2, "no compounds below the header")
    return out


@dataclass
class NewSignatures:
    """Signatures of new compounds on the graph's genes: ``z`` [n, genes] over ``symbols`` (genes the graph
    has), ``z_landmark`` [n, landmarks] in the graph's landmark order, ``refs`` the compound ids."""

    refs: list[str]
    symbols: list[str]
    z: np.ndarray
    z_landmark: np.ndarray
    path: Path
    unknown_genes: int = 0


def per_compound(m: Matrix, sig_info: Path | str) -> Matrix:
    """Signatures (``m``'s rows, keyed by ``sig_id``) averaged per compound, the ``pert_id`` that the
    signature table ``sig_info`` (GEO ``sig_info``, CLUE ``siginfo_beta``) gives each: a GCTX of level-5
    signatures becomes one consensus row per compound, as the graph's consensus signatures are (the
    mean of a compound's signatures is also what the exporter gives a compound with several)."""
    from moakg.ingest.l1000_meta import load_table

    table = load_table(sig_info, "sig")
    if "pert_id" not in table.columns:
        raise InputFormatError(sig_info, 1, "the signature table needs a pert_id column (the compound id)")
    pert = dict(zip(table["sig_id"].astype(str), table["pert_id"].astype(str), strict=True))
    unknown = [i for i in m.ids if i not in pert]
    if unknown:
        raise InputFormatError(sig_info, "sig_id column", f"signature {unknown[0]!r} of the matrix is not "
                               f"in the table ({len(unknown)} such signatures)")
    ids = sorted({pert[i] for i in m.ids})
    row = {p: k for k, p in enumerate(ids)}
    rows = np.array([row[pert[sid]] for sid in m.ids], dtype=np.int64)
    values = np.asarray(m.values, dtype=np.float64)
    ok = ~np.isnan(values)
    sums = np.zeros((len(ids), values.shape[1]))
    counts = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, rows, np.where(ok, values, 0.0))  # NaN (gene not measured) adds nothing
    np.add.at(counts, rows, ok)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
    return Matrix(ids, m.genes, mean, m.missing)


def read_new_signatures(path: Path | str, refs: Sequence[str], conn: Neo4jConnection,
                        sig_info: Path | str | None = None) -> NewSignatures:
    """The consensus signatures in ``path`` (a perturbagen x gene table, TSV/CSV, plain or gzip, or a
    level-5 GCT/GCTX whose column ids are the compound ids), rows keyed by the compounds file's ids;
    with ``sig_info``, ``path``'s rows are signatures, averaged per compound (:func:`per_compound`).

    Gene columns are Entrez ids or symbols (detected), mapped through the graph's Gene nodes. The
    graph's landmark genes are the model's signature input: a file that lacks any of them is refused
    (naming a few), as is a row whose id is not in the compounds file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such signatures file")
    m: Matrix = read_matrix(path)
    if sig_info is not None:
        m = per_compound(m, sig_info)
    known = set(refs)
    stray = [i for i in m.ids if i not in known]
    if stray:
        raise InputFormatError(path, "identifier column", f"signature {stray[0]!r} is not a compound of the "
                               f"compounds file ({len(stray)} such rows)")
    genes = graph_genes(conn)
    gtype = gene_type_of(m.genes)
    cols: dict[str, int] = {}
    unknown = 0
    for j, g in enumerate(m.genes):
        e = to_int(g) if gtype == "entrez" else None
        sym = genes.entrez(e)[0] if e is not None else genes.symbol(g)[0] if gtype == "symbol" else None
        if sym is None or sym not in genes.graph_symbols:
            unknown += 1
            continue
        cols.setdefault(sym, j)
    landmarks = genes.graph_landmarks
    missing = [s for s in landmarks if s not in cols]
    if missing:
        raise InputFormatError(path, 1, f"the signatures cover {len(landmarks) - len(missing)} of the "
                               f"model's {len(landmarks)} landmark genes; missing e.g. {missing[:5]} "
                               f"(columns are {gtype} ids)")
    symbols = sorted(cols)
    z = np.nan_to_num(m.values[:, [cols[s] for s in symbols]].astype(np.float32), nan=0.0)
    pos = {s: j for j, s in enumerate(symbols)}
    z_lm = z[:, [pos[s] for s in landmarks]] if landmarks else np.zeros((len(m.ids), 0), np.float32)
    return NewSignatures(list(m.ids), symbols, z, z_lm, path, unknown)


# ---------------------------------------------------------------------------------------- adapter
class NewCompoundsAdapter(SourceAdapter):
    """New compounds, their signatures and their derived edges to the graph (see the module doc)."""

    source = pq.NEW_COMPOUNDS_SOURCE
    # Not a compound source for identity resolution: merging a new compound into a stereo form or a
    # namesake would re-key training compounds and change the graph the model was trained on.
    writes_compounds = False

    def __init__(self, conn: Neo4jConnection, compounds: list[NewCompound], ids: dict[str, str],
                 existing: set[str], signatures: NewSignatures | None, files: list[Path]) -> None:
        """``ids``: compounds file id -> the Compound.id it resolves to; ``existing``: those of them already
        in the graph (flagged, not written)."""
        super().__init__()
        self.conn, self.compounds, self.ids, self.sigs, self._files = conn, compounds, ids, signatures, files
        self.existing = existing
        derive = pq.completed_run_params(conn, DERIVE_SOURCE)
        self.has_derive = derive is not None
        self.derive = SimilarityParams(**{k: v for k, v in (derive or {}).items()
                                          if k in SimilarityParams.__dataclass_fields__})
        consensus = pq.completed_run_params(conn, "l1000_consensus") or {}
        self.top_k = int(consensus.get("top_k", DEFAULT_TOP_K_GENES))

    def files(self) -> list[Path]:
        return self._files

    def params(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "derive": asdict(self.derive) if self.has_derive else None}

    def batches(self) -> Iterator[Batch]:
        new = [c for c in self.compounds if self.ids[c.ref] == c.inchikey and c.inchikey not in self.existing]
        # Written by hand, not with CompoundIdentity.node_props: without source_keys / source_smiles,
        # moakg.ingest.identity never counts these compounds as a source's structure, so a later ingest
        # cannot merge a training compound into one of them (or re-key it).
        rows = [{"id": c.inchikey, "inchikey": c.inchikey, "inchikey_block1": c.inchikey.split("-")[0],
                 "name": c.name, "smiles": c.smiles, "source_ids": [f"{self.source}:{c.ref}"]} for c in new]
        new_ids = [c.inchikey for c in new]
        self.stats.update(compounds_new=len(new), compounds_in_graph=len(self.compounds) - len(new),
                          compounds_added=new_ids)
        yield NodeBatch("Compound", "id", rows)
        sig_ids, z_lm = [], np.zeros((0, 0), np.float32)
        if self.sigs is not None:
            new_refs = {c.ref: c.inchikey for c in new}
            keep = [i for i, r in enumerate(self.sigs.refs) if r in new_refs]
            sig_ids = [f"consensus:new:{new_refs[self.sigs.refs[i]]}" for i in keep]
            z, z_lm = self.sigs.z[keep], self.sigs.z_landmark[keep]
            sig_rows = [{**signature_row({"sig_id": s, "pert_id": self.sigs.refs[i], "pert_type": "trt_cp",
                                          "level": 5}, z_lm[r]),
                         "kind": "consensus", "provenance": f"moakg predict {self.sigs.path.name}"}
                        for r, (s, i) in enumerate(zip(sig_ids, keep, strict=True))]
            up, down = top_k_edges(np.array(sig_ids, dtype=object), z, np.array(self.sigs.symbols, object),
                                   self.top_k)
            self.stats.update(signatures=len(sig_rows), unknown_genes=self.sigs.unknown_genes)
            yield NodeBatch("Signature", "sig_id", sig_rows)
            yield RelBatch("HAS_SIGNATURE", COMPOUND, ("Signature", "sig_id"),
                           [{"start": new_refs[self.sigs.refs[i]], "end": s} for s, i in zip(sig_ids, keep,
                                                                                            strict=True)])
            yield RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), up)
            yield RelBatch("DOWNREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), down)
        if not self.has_derive or not new:
            return
        yield self._structure_edges(new)
        if sig_ids:
            sig_compounds = [s.removeprefix("consensus:new:") for s in sig_ids]
            yield from self._signature_edges(sig_compounds, z_lm)

    # -- derived edges from the new compounds' side, with the graph's derive parameters ----------------
    def _structure_edges(self, new: list[NewCompound]) -> RelBatch:
        p = self.derive
        ids, smiles = dq.compound_smiles(self.conn)
        new_ids = {c.inchikey for c in new}
        old = [(i, s) for i, s in zip(ids, smiles, strict=True) if i not in new_ids]
        all_ids = [c.inchikey for c in new] + [i for i, _ in old]
        fp, ok = morgan_fingerprints([c.smiles for c in new] + [s for _, s in old], p.radius, p.bits)
        fp[~ok] = 0.0
        r, c, s = blocked_topk(tanimoto_scorer(fp.numpy()), len(new), len(all_ids), p.structure_k,
                               p.structure_min, exclude_self=True)
        return self._pairs("SIMILAR_STRUCTURE", all_ids, r, c, s)

    def _signature_edges(self, new_ids: list[str], z_new: np.ndarray) -> Iterator[Batch]:
        p = self.derive
        genes = dq.landmark_symbols(self.conn)
        ids, z_old = dq.compound_consensus(self.conn, len(genes))
        new = set(new_ids)
        keep = [k for k, i in enumerate(ids) if i not in new]
        all_ids = new_ids + [ids[k] for k in keep]
        z = np.concatenate([z_new, z_old[keep]]) if keep else z_new
        r, c, s = blocked_topk(spearman_scorer(z), len(new_ids), len(all_ids), p.signature_k,
                               p.signature_min, signed=True, exclude_self=True)
        yield self._pairs("SIMILAR_SIGNATURE", all_ids, r, c, s)
        # MIMICS / OPPOSES: the derive step's own code, on the new compounds' rows only
        yield from perturbation_batches(self.conn, p, new_ids, z_new, genes, self.count)

    def _pairs(self, rel: str, ids: list[str], r: np.ndarray, c: np.ndarray, s: np.ndarray) -> RelBatch:
        # one relationship per unordered pair, started at the smaller id, as the derive step writes them
        rows = {}
        for i, j, v in zip(r.tolist(), c.tolist(), s.tolist(), strict=True):
            a, b = sorted((ids[i], ids[j]))
            rows.setdefault((a, b), {"start": a, "end": b, "score": round(float(v), 6)})
        self.count(f"{rel.lower()}_written", len(rows))
        return RelBatch(rel, COMPOUND, COMPOUND, list(rows.values()))


# ---------------------------------------------------------------------------------------- result
@dataclass
class CompoundPrediction:
    """One compound's top predictions: ``top`` is ``[(MoA name or gene symbol, probability)]``, best
    first. ``flag`` says why a compound is not new (empty when it is)."""

    ref: str
    compound: str
    name: str | None
    has_signature: bool
    flag: str
    top: list[tuple[str, float]]
    #: the top prediction's explanation paths (``ExplanationPath.pretty()``), best first; none when the
    #: graph knows the compound's MoAs or targets (hidden only in the scores) or nothing reaches it
    paths: list[str] = field(default_factory=list)


@dataclass
class PredictResult:
    run_id: str
    kind: str
    ingest_run: str
    predictions: list[CompoundPrediction] = field(default_factory=list)
    written: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Printable rows: one per compound and rank."""
        out = []
        for p in self.predictions:
            for rank, (label, score) in enumerate(p.top, start=1):
                out.append({"compound": p.ref, "name": p.name or "", "rank": rank,
                            "moa" if self.kind == "moa" else "target": label, "score": round(score, 4),
                            "signature": "yes" if p.has_signature else "no", "flag": p.flag})
        return out


# ---------------------------------------------------------------------------------------- main
def check_data_version(conn: Neo4jConnection, run_id: str, rec: dict[str, Any]) -> None:
    """Refuse a run whose graph changed since training (new compounds from earlier predictions aside)."""
    from moakg.gnn.explain.loading import _json

    stored = [i for i in (_json(rec.get("data_version")) or [])
              if not i.startswith(f"{pq.NEW_COMPOUNDS_SOURCE}-")]
    now = pq.training_runs(conn)
    if sorted(stored) != now:
        gone, added = sorted(set(stored) - set(now)), sorted(set(now) - set(stored))
        raise UserError(f"run {run_id} was trained on another version of the graph (IngestRuns "
                        f"{'missing: ' + ', '.join(gone[:3]) if gone else ''}"
                        f"{'; ' if gone and added else ''}{'added: ' + ', '.join(added[:3]) if added else ''}"
                        "); retrain it (moakg train) before predicting with it")


def predict_new_compounds(
    conn: Neo4jConnection, run_id: str, compounds: Path | str, signatures: Path | str | None = None,
    top_k: int = 5, device: str = "cpu", progress: bool = False, sig_info: Path | str | None = None,
    paths: int = 3,
) -> PredictResult:
    """Add the compounds of ``compounds`` (and their ``signatures``) to the graph, score them with run
    ``run_id`` and write the top ``top_k`` predictions; see the module doc. The top prediction of each
    compound without known MoAs or targets is explained by its best ``paths`` paths (saliency, the
    default explainer of :mod:`moakg.gnn.explain`; 0: none). Raises
    :class:`~moakg.errors.UserError` before writing anything when an input or the run does not fit."""
    from moakg.gnn.explain.loading import load_run, run_config, run_record

    if top_k < 1:
        raise UserError("--top-k must be >= 1")
    rec = run_record(conn, run_id)
    if rec.get("status", "completed") != "completed":  # its training write-back was cut short or failed
        raise UserError(f"run {run_id} is {rec['status']!r}, not completed: its training did not finish "
                        "writing to the graph; run the same `moakg train` again before predicting with it")
    cfg = run_config(rec)
    if cfg.split == "cell_line":
        raise UserError(f"run {run_id} classifies signatures (cell_line split); predict needs a compound run")
    seed = int(rec.get("predictions_seed", cfg.seeds[0]))
    ckpt = Path(rec["checkpoint"]) / f"seed{seed}.pt"
    if not ckpt.exists():
        raise UserError(f"run {run_id}: no checkpoint {ckpt}; retrain the run")
    check_data_version(conn, run_id, rec)
    new = read_new_compounds(compounds)
    sigs = (read_new_signatures(signatures, [c.ref for c in new], conn, sig_info) if signatures is not None
            else None)

    index = CompoundIndex.from_graph(conn)
    ids: dict[str, str] = {}
    for c in new:
        ident = index.resolve(pq.NEW_COMPOUNDS_SOURCE, c.ref, smiles=c.smiles)
        ids[c.ref] = ident.id
    known = pq.compound_labels(conn, sorted(set(ids.values())))
    files = [Path(compounds)] + ([Path(signatures)] if signatures is not None else [])
    files += [Path(sig_info)] if sig_info is not None and signatures is not None else []
    adapter = NewCompoundsAdapter(conn, new, ids, set(known), sigs, files)
    # Compounds that an earlier try of this same predict (same files and parameters: the same IngestRun)
    # wrote before it was cut short are its own, not compounds the graph knew: written again with their
    # signatures and edges (MERGE: nothing doubles), scored as new, not flagged.
    own = pq.added_by(conn, sorted(known), ingest_run_id(adapter.source, [file_sha256(f) for f in files],
                                                         adapter.params()))
    for cid in own:
        known.pop(cid)
    adapter.existing = set(known)
    report = adapter.ingest(conn, progress=progress)

    from moakg.kg.export import export_heterodata

    data, maps = export_heterodata(conn, progress=False)
    run = load_run(conn, run_id, data=data, maps=maps, device=device)
    index_of = {k: i for i, k in enumerate(maps.keys["Compound"])}
    rows = [index_of.get(ids[c.ref]) for c in new]
    if any(r is None for r in rows):  # the writer refused nothing, so this is a bug, not bad input
        raise RuntimeError("a new compound is missing from the export after it was written")
    flagged = {ids[c.ref] for c in new if ids[c.ref] in known}
    hide = torch.tensor(sorted(index_of[i] for i in flagged), dtype=torch.long)
    scores = _scores(run, torch.tensor(rows, dtype=torch.long), hide)

    result = PredictResult(run_id, run.kind, report.run_id)
    labels = run.classes if run.kind == "moa" else list(maps.keys["Gene"])
    with_sig = set(sigs.refs) if sigs is not None else set()
    out_rows = []
    for c, s in zip(new, scores, strict=True):
        cid = ids[c.ref]
        top = torch.topk(s, min(top_k, s.numel()))
        pairs = [(labels[j], float(v))
                 for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        has_sig = c.ref in with_sig or bool(known.get(cid, {}).get("has_signature"))
        flag = _flag(cid, known)
        labelled = bool(known.get(cid, {}).get("moas") or known.get(cid, {}).get("targets"))
        # a compound with known labels is scored with them hidden, but the run's graph (which the
        # explainer reads) still holds them: its paths could end in its own labels, so none are shown
        shown = _top_paths(run, cid, pairs[0][0], paths) if paths and not labelled else []
        result.predictions.append(CompoundPrediction(c.ref, cid, c.name, has_sig, flag, pairs, shown))
        out_rows += [{"start": cid, "end": lab, "score": v, "rank": r, "origin": result.ingest_run}
                     for r, (lab, v) in enumerate(pairs, start=1)]
    from moakg.kg.writeback import write_predictions

    rel = "PREDICTED_MOA" if run.kind == "moa" else "PREDICTED_TARGET"
    result.written = write_predictions(conn, run_id, rel, out_rows, origin=result.ingest_run)["written"]
    return result


def _top_paths(run: Any, cid: str, label: str, k: int) -> list[str]:
    """The best ``k`` explanation paths of ``cid``'s prediction ``label`` (MoA name or gene symbol)."""
    from moakg.gnn.explain.pipeline import explain_prediction

    which = {"moa": label} if run.kind == "moa" else {"gene": label}
    res = explain_prediction(run, cid, method="saliency", k=k, **which)
    return [p.pretty() for p in res.paths.best]


def _flag(cid: str, known: dict[str, dict[str, Any]]) -> str:
    if cid not in known:
        return ""
    k = known[cid]
    what = [f"MoA {', '.join(k['moas'][:2])}" if k["moas"] else "",
            f"{len(k['targets'])} target(s)" if k["targets"] else ""]
    what = [w for w in what if w]
    return (f"in graph ({cid}); known {' and '.join(what)}: hidden when scored" if what
            else f"in graph ({cid})")


def _scores(run: Any, rows: torch.Tensor, hide: torch.Tensor) -> torch.Tensor:
    """Probabilities [len(rows), classes or genes] of compounds ``rows`` on the run's full graph, with the
    labels of the compounds ``hide`` (known compounds being predicted) kept from the model."""
    from moakg.gnn.label_trick import LABEL_INPUT, attach_label_input
    from moakg.gnn.models import model_inputs
    from moakg.gnn.tasks import COMPOUND, GENE, drop_incident, target_relations
    from moakg.gnn.train import label_input

    graph = copy.copy(run.graph)
    n_c = int(graph[COMPOUND].num_nodes)
    if hide.numel():
        given = label_input(run.task, run.config)
        if LABEL_INPUT in graph[COMPOUND] and given is not None:
            values, known_rows = given
            attach_label_input(graph, COMPOUND, values, known_rows[~torch.isin(known_rows, hide)])
        mask = torch.zeros(n_c, dtype=torch.bool)
        mask[hide] = True
        if run.task.setting == "phenotype" or run.kind == "target":
            drop_incident(graph, COMPOUND, GENE, nodes_a=mask, relations=target_relations())
    model = run.model
    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        inputs = model_inputs(graph, dev)
        if run.kind == "moa":
            return torch.sigmoid(model(*inputs)[rows.to(dev)]).cpu()
        return torch.sigmoid(model.logits_all(*inputs, rows.to(dev))).cpu()
