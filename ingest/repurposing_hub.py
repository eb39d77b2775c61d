"""The Broad Drug Repurposing Hub: drugs with MoAs, targets and clinical phase; samples with structures.

Inputs (``source = "repurposing_hub"``)
    ``repurposing_drugs_<date>.txt`` (``pert_iname clinical_phase moa target disease_area indication``)
    and ``repurposing_samples_<date>.txt`` (``broad_id pert_iname ... smiles InChIKey pubchem_cid ...``):
    tab-separated, fields with commas double-quoted (Excel style), ``!`` comment lines at the top.
    ``moa``, ``target``, ``disease_area`` and ``indication`` are ``|``-separated lists.

Graph
    One ``Compound`` per drug (pert_iname), identified by structure through :class:`CompoundIndex`:
    the drug's samples vote on the structure (the InChIKey most samples share; ties go to the first
    ``broad_id``). Drugs with the same structure (a salt and its parent, two names of one racemate)
    become one node whose ``synonyms`` hold every name. ``pert_ids`` are the LINCS ids
    (``broad_id[:13]``) of every sample, ``pert_id`` the first of them. ``HAS_MOA`` -> ``MoA`` (key: the
    normalised name) and ``TARGETS`` -> ``Gene`` (key: the upper-cased symbol), both per source.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, SourceAdapter, normalise_moa, normalise_symbol, require_file
from moakg.ingest.compounds import CompoundIdentity, CompoundIndex, canonical_smiles, structure_inchikey
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.writer import Batch, NodeBatch, RelBatch

MAX_EXAMPLES = 10
DRUG_COLUMNS = ["pert_iname", "clinical_phase", "moa", "target", "disease_area", "indication"]
SAMPLE_COLUMNS = ["broad_id", "pert_iname", "smiles", "InChIKey"]
#: Least to most advanced; a node that several drugs share keeps the most advanced phase.
PHASE_ORDER = ["Preclinical", "Phase 1", "Phase 1/Phase 2", "Phase 2", "Phase 2/Phase 3", "Phase 3",
               "Withdrawn", "Launched"]




def split_list(value: str) -> list[str]:
    """A ``|``-separated field to its stripped, non-empty items (order kept)."""
    return [v.strip() for v in value.split("|") if v.strip()]


# ------------------------------------------------------------------------------------------ reading
@dataclass
class Table:
    """A Hub table: its header, data rows with their (1-based) line numbers, and the encoding used."""

    path: Path
    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]
    encoding: str


def decode_hub_text(raw: bytes) -> tuple[str, str]:
    """Decode as strict UTF-8 first, latin-1 only when that fails.

    The 2020 files are UTF-8 (per shared/data/README.md: 'serotonin–norepinephrine', 'krüppel-like');
    older releases were described as latin-1. latin-1 decodes *any* byte string, so trying it first
    would silently garble UTF-8 names; strict UTF-8 fails loudly on latin-1 text, so it decides.
    """
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def read_hub_table(path: Path, required: Sequence[str], strict_width: bool = True) -> Table:
    """Read a Hub table; lines that *start* with '!' are comments ('!' inside a line is data)."""
    text, encoding = decode_hub_text(require_file(Path(path)).read_bytes())
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    # One physical line at a time (no Hub field spans lines), so every error names its real line.
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.startswith("!") or not line.strip():
            continue
        try:
            fields = next(csv.reader([line], delimiter="\t", quotechar='"'))
        except csv.Error as exc:  # a field over csv's size limit, a lone carriage return inside the line
            raise InputFormatError(path, lineno, f"malformed tab-separated line: {exc}") from None
        if header is None:
            header, header_line = [f.strip() for f in fields], lineno
            missing = [c for c in required if c not in header]
            if missing:
                raise InputFormatError(
                    path, lineno, f"header is missing required column(s) {missing}; expected at least "
                    f"{list(required)}, got {header}",
                )
            continue
        if len(fields) != len(header):
            if strict_width or len(fields) > len(header):
                raise InputFormatError(
                    path, lineno, f"expected {len(header)} tab-separated fields ({', '.join(header)}), "
                    f"got {len(fields)}",
                )
            fields = fields + [""] * (len(header) - len(fields))
        rows.append((lineno, fields))
    if header is None:
        raise InputFormatError(path, None, f"no header line (expected columns {list(required)})")
    return Table(Path(path), header, header_line, rows, encoding)


# ------------------------------------------------------------------------------------------ model
@dataclass
class HubDrug:
    """One drug (pert_iname) merged over its rows, plus its samples."""

    name: str
    line: int
    phases: set[str] = field(default_factory=set)
    moas: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    disease_areas: list[str] = field(default_factory=list)
    indications: list[str] = field(default_factory=list)
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # (broad_id, smiles, InChIKey)


def _extend_unique(items: list[str], new: Sequence[str]) -> None:
    for v in new:
        if v not in items:
            items.append(v)


def _best_phase(phases: set[str]) -> str | None:
    known = [p for p in phases if p in PHASE_ORDER]
    if known:
        return max(known, key=PHASE_ORDER.index)
    return min(phases) if phases else None


class RepurposingHubAdapter(SourceAdapter):
    """Repurposing Hub -> ``Compound`` (+ MoA, Gene) with ``HAS_MOA`` and ``TARGETS``.

    Config keys: ``drugs`` (the drugs file), ``samples`` (the samples file; without it compounds have
    no structure and are keyed by name), ``known_genes`` (only these symbols become targets).
    ``index``: a :class:`CompoundIndex` of compounds already known (``CompoundIndex.from_graph``).
    """

    source = "repurposing_hub"
    writes_compounds = True

    def __init__(
        self,
        drugs: Path | str,
        samples: Path | str | None = None,
        index: CompoundIndex | None = None,
        known_genes: set[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.drugs = Path(drugs)
        self.samples = Path(samples) if samples is not None else None
        self.index = index if index is not None else CompoundIndex()
        self.known_genes = known_genes
        self.progress = progress

    def files(self) -> list[Path]:
        return [p for p in (self.drugs, self.samples) if p is not None]

    def params(self) -> dict[str, Any]:
        return {"known_genes": len(self.known_genes) if self.known_genes is not None else None}

    # -- parsing -------------------------------------------------------------------------------
    def read_drugs(self) -> dict[str, HubDrug]:
        table = read_hub_table(self.drugs, DRUG_COLUMNS, strict_width=True)
        self.stats["encoding_drugs"] = table.encoding
        col = {c: table.header.index(c) for c in DRUG_COLUMNS}
        drugs: dict[str, HubDrug] = {}
        seen: set[tuple[str, ...]] = set()
        for key in ("drug_rows", "duplicate_drug_rows", "repeated_drug_names", "drug_rows_without_name"):
            self.stats.setdefault(key, 0)
        for lineno, fields in table.rows:
            self.count("drug_rows")
            if tuple(fields) in seen:
                self.count("duplicate_drug_rows")
                continue
            seen.add(tuple(fields))
            name = fields[col["pert_iname"]].strip()
            if not name:
                self.count("drug_rows_without_name")
                continue
            drug = drugs.get(name)
            if drug is None:
                drug = drugs[name] = HubDrug(name, lineno)
            else:
                # Same name, different content: merge the lists rather than let one row win.
                self.count("repeated_drug_names")
            if phase := fields[col["clinical_phase"]].strip():
                drug.phases.add(phase)
            _extend_unique(drug.moas, split_list(fields[col["moa"]]))
            _extend_unique(drug.targets, split_list(fields[col["target"]]))
            _extend_unique(drug.disease_areas, split_list(fields[col["disease_area"]]))
            _extend_unique(drug.indications, split_list(fields[col["indication"]]))
        return drugs

    def read_samples(self, drugs: dict[str, HubDrug]) -> None:
        if self.samples is None:
            return
        table = read_hub_table(self.samples, SAMPLE_COLUMNS, strict_width=True)
        self.stats["encoding_samples"] = table.encoding
        col = {c: table.header.index(c) for c in SAMPLE_COLUMNS}
        seen: set[tuple[str, ...]] = set()
        for key in ("sample_rows", "duplicate_sample_rows", "samples_without_drug"):
            self.stats.setdefault(key, 0)
        orphans: set[str] = set()
        for lineno, fields in table.rows:
            self.count("sample_rows")
            if tuple(fields) in seen:
                self.count("duplicate_sample_rows")
                continue
            seen.add(tuple(fields))
            broad_id = fields[col["broad_id"]].strip()
            if not broad_id.startswith("BRD-") or len(broad_id) < 13:
                raise InputFormatError(
                    self.samples, lineno, f"broad_id must look like 'BRD-K12345678-...', got {broad_id!r}"
                )
            drug = drugs.get(fields[col["pert_iname"]].strip())
            if drug is None:
                self.count("samples_without_drug")
                orphans.add(fields[col["pert_iname"]].strip())
                continue
            drug.samples.append((broad_id, fields[col["smiles"]].strip(), fields[col["InChIKey"]].strip()))
        self.stats["samples_without_drug_examples"] = sorted(orphans)[:MAX_EXAMPLES]

    # -- identity --------------------------------------------------------------------------------
    def _structure(self, drug: HubDrug) -> tuple[str | None, str | None, str | None]:
        """(structure key, SMILES, Hub InChIKey) the drug is resolved with: the samples' majority."""
        if not drug.samples:
            return None, None, None
        votes: Counter[str] = Counter()
        first: dict[str, tuple[str, str]] = {}
        for _broad_id, smiles, hub_key in sorted(drug.samples):
            # CXSMILES blocks (ChemAxon 'THB:' in 32 samples) are parsed leniently by compounds.py.
            key = structure_inchikey(smiles) if smiles else None
            if key is None:
                continue
            votes[key] += 1
            first.setdefault(key, (smiles, hub_key))
        if not votes:
            broad_id, smiles, hub_key = min(drug.samples)
            return None, smiles or None, hub_key or None
        if len(votes) > 1:
            self.count("drugs_with_several_structures")
        best = max(votes.items(), key=lambda kv: kv[1])[0]  # max keeps the first (sorted broad_id) on ties
        smiles, hub_key = first[best]
        return best, smiles, hub_key

    def resolve_all(self, drugs: dict[str, HubDrug]) -> dict[str, tuple[CompoundIdentity, str | None]]:
        """pert_iname -> (identity, canonical SMILES)."""
        out: dict[str, tuple[CompoundIdentity, str | None]] = {}
        for key in ("structure_unparseable", "no_structure"):
            self.stats.setdefault(key, 0)
        for name in sorted(drugs):
            _, smiles, hub_key = self._structure(drugs[name])
            if smiles is None:
                self.count("no_structure")
            ident = self.index.resolve(self.source, name, smiles=smiles, inchikey=hub_key)
            if smiles is not None and not ident.structure_parsed:
                self.count("structure_unparseable")
            out[name] = (ident, canonical_smiles(smiles) if ident.structure_parsed else None)
        return out

    # -- batches ---------------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        self.stats.clear()  # a second run of the same adapter counts afresh
        # Both files are small: read, validate and resolve everything before the first batch.
        drugs = self.read_drugs()
        self.read_samples(drugs)
        self.stats["drugs"] = len(drugs)
        idents = self.resolve_all(drugs)

        groups: dict[str, list[str]] = defaultdict(list)
        for name in sorted(drugs):
            groups[idents[name][0].id].append(name)
        self.stats["compounds"] = len(groups)
        self.stats["shared_inchikey_names"] = sum(len(n) for n in groups.values() if len(n) > 1)
        self.stats["match_levels"] = dict(Counter(idents[n][0].match_level for n in drugs))

        compounds, moas, has_moa, genes, targets = [], {}, set(), set(), set()
        unknown: set[str] = set()
        self.stats.setdefault("unknown_gene_symbols", 0)
        for cid, names in groups.items():
            ds = [drugs[n] for n in names]
            ident, smiles = idents[names[0]]
            pert_ids = sorted({b[:13] for d in ds for b, _, _ in d.samples})
            row: dict[str, Any] = {
                **ident.node_props(self.source),
                "name": names[0],
                "synonyms": names,
                **ident.smiles_props(smiles),
                "pert_ids": pert_ids or None,
                "pert_id": pert_ids[0] if pert_ids else None,
                "clinical_phase": _best_phase({p for d in ds for p in d.phases}),
                "disease_area": sorted({a for d in ds for a in d.disease_areas}) or None,
                "indication": sorted({a for d in ds for a in d.indications}) or None,
            }
            compounds.append(row)
            for d in ds:
                for m in d.moas:
                    if (key := normalise_moa(m)) is not None:
                        moas.setdefault(key, " ".join(m.split()))
                        has_moa.add((cid, key))
                for t in d.targets:
                    sym = normalise_symbol(t)
                    if sym is None or (self.known_genes is not None and sym not in self.known_genes):
                        unknown.add(t)
                        self.count("unknown_gene_symbols")
                        continue
                    genes.add(sym)
                    targets.add((cid, sym))
        self.stats["unknown_symbol_examples"] = sorted(unknown)[:MAX_EXAMPLES]
        self.stats.update(moas=len(moas), genes=len(genes), has_moa=len(has_moa), targets=len(targets))

        yield NodeBatch("Compound", "id", compounds)
        yield NodeBatch("MoA", "name", [{"name": k, "display_name": v} for k, v in sorted(moas.items())])
        yield NodeBatch("Gene", "symbol", [{"symbol": g} for g in sorted(genes)])
        yield RelBatch("HAS_MOA", ("Compound", "id"), ("MoA", "name"),
                       [{"start": c, "end": m} for c, m in sorted(has_moa)])
        yield RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"),
                       [{"start": c, "end": g} for c, g in sorted(targets)])


# ------------------------------------------------------------------------------------- config + CLI
def from_config(section: dict[str, Any], base_dir: Path) -> RepurposingHubAdapter:
    """``[repurposing_hub]``: ``drugs`` (required) and ``samples`` paths, relative to ``base_dir``."""
    if not section.get("drugs"):
        raise UserError("[repurposing_hub] needs 'drugs' (repurposing_drugs_<date>.txt)")
    samples = section.get("samples")
    return RepurposingHubAdapter(base_dir / section["drugs"], samples=base_dir / samples if samples else None)


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest repurposing-hub``."""

    @app.command("repurposing-hub")
    def ingest_repurposing_hub(
        drugs: Annotated[Path, typer.Argument(help="repurposing_drugs_<date>.txt (moa, target, phase...).")],
        samples: Annotated[
            Path | None,
            typer.Option(help="repurposing_samples_<date>.txt: structures (SMILES) and LINCS pert_ids. "
                              "Without it compounds are keyed by name only."),
        ] = None,
    ) -> None:
        """Load Repurposing Hub drugs as Compounds with HAS_MOA and TARGETS (matched by structure)."""
        run_adapter_cli(lambda: RepurposingHubAdapter(drugs, samples=samples, progress=True))
