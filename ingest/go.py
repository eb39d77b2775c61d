"""Gene Ontology: terms and their hierarchy from OBO, gene annotations from GAF 2.x.

OBO (plain or gzip) is parsed with obonet after a light validation pass of our own (obonet reports
neither line numbers nor a [Term] without an id in a readable way). Every non-obsolete term becomes a
``GOTerm`` {go_id, name, namespace, is_obsolete, definition, alt_ids}; ``is_a`` becomes ``IS_A`` and
``relationship: part_of`` becomes ``PART_OF`` (child -> parent). Other relationships (regulates,
has_part, occurs_in, ...) are counted, not written. Obsolete terms are skipped unless
``include_obsolete``.

GAF 2.1/2.2 (gzip or plain): one ``ANNOTATED_WITH`` per (gene symbol, term) with ``evidence`` = the
sorted distinct evidence codes and ``qualifiers`` = the sorted distinct non-NOT qualifiers. ``NOT``
annotations, other taxa (the first taxon of column 13 is the gene product's), excluded evidence codes
and annotations to terms that are not written (unknown or obsolete) are counted and skipped; GO ids
that are a term's ``alt_id`` are mapped to that term. Genes get ``symbol`` and ``uniprot``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import obonet
import typer
from obonet.read import parse_tag_line
from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, SourceAdapter, normalise_symbol, open_text
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.writer import Batch, NodeBatch, RelBatch

STANZA_TYPES = {"[Term]", "[Typedef]", "[Instance]"}
REL_TYPES = {"is_a": "IS_A", "part_of": "PART_OF"}
GAF_COLUMNS = [
    "DB", "DB_Object_ID", "DB_Object_Symbol", "Qualifier", "GO_ID", "DB:Reference", "Evidence", "With/From",
    "Aspect", "DB_Object_Name", "Synonym", "DB_Object_Type", "Taxon", "Date", "Assigned_By",
    "Annotation_Extension", "Gene_Product_Form_ID",
]
GO_ID_RE = re.compile(r"^GO:\d{7}$")
TAXON_RE = re.compile(r"^taxon:(\d+)$")
_DEF_RE = re.compile(r'^"((?:[^"\\]|\\.)*)"')
# ComplexPortal rows annotate complexes, not genes: they must not become Gene nodes.
NON_GENE_TYPES = {"protein_complex", "complex"}





# ------------------------------------------------------------------------------------------------ OBO
def validate_obo(path: Path, lines: Iterable[str]) -> None:
    """Check the stanza structure obonet relies on, so errors can name the line.

    Stanzas are runs of non-blank lines (as obonet groups them); each line is ``tag: value`` (or a
    ``!`` comment); a [Term] has exactly one non-empty ``id``, unique in the file; ``is_a`` is one id
    and ``relationship`` is ``<type> <id>`` (obonet unpacks it into exactly two parts).
    """
    stanza: str | None = None  # the stanza type of the current run of lines; "header" before the first
    start = 0
    term_id: str | None = None
    seen: dict[str, int] = {}
    n_groups = 0

    def close() -> None:
        if stanza == "[Term]":
            if term_id is None:
                raise InputFormatError(path, start, "[Term] stanza without an 'id:' line")
            if term_id in seen:
                raise InputFormatError(
                    path, start, f"duplicate term id {term_id} (first at line {seen[term_id]})"
                )
            seen[term_id] = start

    in_group = False
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if in_group:
                close()
            in_group = False
            continue
        if not in_group:
            in_group, start, term_id, n_groups = True, lineno, None, n_groups + 1
            if line.startswith("["):
                if line.strip() not in STANZA_TYPES:
                    raise InputFormatError(
                        path, lineno, f"unknown stanza type {line.strip()!r}; expected {sorted(STANZA_TYPES)}"
                    )
                stanza = line.strip()
                continue
            if n_groups > 1:
                raise InputFormatError(
                    path, lineno, "tag-value lines outside a stanza (a blank line inside a stanza, or a "
                    "missing [Term] header?)",
                )
            stanza = "header"
        if line.startswith("!"):
            continue
        if line.startswith("["):
            raise InputFormatError(path, lineno, f"stanza header {line.strip()!r} must follow a blank line")
        # obonet's tag-line pattern matches exactly when a colon follows a non-empty tag; running its
        # full regex only on the tags checked below halves the time of this pass on go-basic.
        if line.find(":") < 1:
            raise InputFormatError(path, lineno, f"expected 'tag: value', got {line!r}")
        if stanza != "[Term]" or not line.startswith(("id:", "is_a:", "relationship:")):
            continue
        tag_line = parse_tag_line(line)
        tag, value = tag_line.tag, (tag_line.value or "").strip()
        if tag == "id":
            if term_id is not None:
                raise InputFormatError(path, lineno, f"second 'id:' in the [Term] stanza of {term_id}")
            if not value or " " in value:
                raise InputFormatError(path, lineno, f"expected one term id after 'id:', got {value!r}")
            term_id = value
        elif tag == "is_a" and (not value or " " in value):
            raise InputFormatError(path, lineno, f"expected 'is_a: <term id>', got {line!r}")
        elif tag == "relationship" and len((tag_line.value or "").split(" ")) != 2:
            raise InputFormatError(path, lineno, f"expected 'relationship: <type> <term id>', got {line!r}")
    if in_group:
        close()


def _definition(raw: str | None) -> str | None:
    """The quoted text of an OBO ``def:`` value (without the dbxref list)."""
    if not raw:
        return None
    m = _DEF_RE.match(raw)
    return m.group(1).replace('\\"', '"') if m else raw


class GOAdapter(SourceAdapter):
    """GO terms and hierarchy (OBO) and, optionally, gene annotations (GAF 2.x).

    Config keys: ``obo``, ``gaf`` (optional), ``include_obsolete`` (default False), ``taxon`` (default
    9606; None keeps all), ``evidence_exclude`` (codes such as ``IEA``), ``known_genes``.
    """

    source = "go"

    def __init__(
        self,
        obo: Path | str,
        gaf: Path | str | None = None,
        include_obsolete: bool = False,
        taxon: int | None = 9606,
        evidence_exclude: Sequence[str] = (),
        known_genes: set[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.obo = Path(obo)
        self.gaf = Path(gaf) if gaf is not None else None
        self.include_obsolete = bool(include_obsolete)
        self.taxon = int(taxon) if taxon is not None else None
        self.evidence_exclude = sorted({e.strip().upper() for e in evidence_exclude if e.strip()})
        self.known_genes = known_genes
        self.progress = progress

    def files(self) -> list[Path]:
        return [self.obo] if self.gaf is None else [self.obo, self.gaf]

    def params(self) -> dict[str, Any]:
        return {
            "include_obsolete": self.include_obsolete,
            "taxon": self.taxon,
            "evidence_exclude": self.evidence_exclude,
            "known_genes": len(self.known_genes) if self.known_genes is not None else None,
        }

    # --- ontology
    def read_ontology(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, str]]], set[str],
                                     dict[str, str]]:
        """Terms to write, IS_A/PART_OF edges among them, obsolete ids skipped, alt_id -> id."""
        with open_text(self.obo) as f:
            text = f.read()
        validate_obo(self.obo, io.StringIO(text))
        graph = obonet.read_obo(io.StringIO(text), ignore_obsolete=False)
        terms: dict[str, dict[str, Any]] = {}
        obsolete: set[str] = set()
        alt: dict[str, str] = {}
        for go_id, data in graph.nodes(data=True):
            if not data:  # only named as an edge target, never defined in the file
                continue
            is_obsolete = data.get("is_obsolete", "false") == "true"
            if is_obsolete and not self.include_obsolete:
                obsolete.add(go_id)
                continue
            alt_ids = sorted(data.get("alt_id", []))
            terms[go_id] = {
                "go_id": go_id,
                "name": data.get("name"),
                "namespace": data.get("namespace"),
                "is_obsolete": is_obsolete,
                "definition": _definition(data.get("def")),
                "alt_ids": alt_ids or None,
            }
            alt.update({a: go_id for a in alt_ids})
        edges: dict[str, list[tuple[str, str]]] = {t: [] for t in REL_TYPES.values()}
        other: dict[str, int] = {}
        for child, parent, rel in graph.edges(keys=True):
            if rel not in REL_TYPES:
                other[rel] = other.get(rel, 0) + 1
            elif child in terms and parent in terms:
                edges[REL_TYPES[rel]].append((child, parent))
            else:
                self.count("edges_to_skipped_terms")
        self.stats.update({
            "terms": len(terms),
            "obsolete_terms_skipped": len(obsolete),
            "is_a_edges": len(edges["IS_A"]),
            "part_of_edges": len(edges["PART_OF"]),
            "other_relationships_skipped": dict(sorted(other.items())),
        })
        return terms, edges, obsolete, alt

    # --- annotations
    def read_gaf(
        self, terms: dict[str, Any], obsolete: set[str], alt: dict[str, str]
    ) -> tuple[dict[tuple[str, str], tuple[set[str], set[str]]], dict[str, set[str]]]:
        """(symbol, go_id) -> (evidence codes, qualifiers); symbol -> UniProt accessions."""
        assert self.gaf is not None
        path = self.gaf
        for key in ("annotations_read", "not_qualified", "other_taxon", "evidence_excluded", "unknown_term",
                    "obsolete_term", "alt_id_mapped", "unknown_gene_symbols", "non_gene_products"):
            self.stats.setdefault(key, 0)
        st = self.stats
        pairs: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        uniprot: dict[str, set[str]] = {}
        version: str | None = None
        ncol = len(GAF_COLUMNS)
        exclude = set(self.evidence_exclude)
        with open_text(path) as f:
            lines = tqdm(f, desc="GAF", unit="lines", disable=not self.progress)
            for lineno, line in enumerate(lines, start=1):
                if line.startswith("!"):
                    if line.lower().startswith("!gaf-version:"):
                        version = line.split(":", 1)[1].strip()
                        # GAF 1.0 has 15 columns; 2.0-2.2 have 17.
                        ncol = 15 if version.startswith("1") else len(GAF_COLUMNS)
                    continue
                if not line.strip():
                    continue
                if version is None:
                    version = "missing"
                    warnings.warn(f"{path}: no '!gaf-version:' header; reading it as GAF 2.x", stacklevel=2)
                    st["gaf_version_missing"] = 1
                c = line.rstrip("\r\n").split("\t")
                if len(c) != ncol:
                    raise InputFormatError(
                        path, lineno, f"expected {ncol} tab-separated GAF columns, got {len(c)}"
                    )
                st["annotations_read"] += 1
                go_id, taxa = c[4].strip(), c[12].split("|")
                if not GO_ID_RE.match(go_id):
                    raise InputFormatError(
                        path, lineno, f"column 5 (GO_ID) should look like GO:0000000, got {go_id!r}"
                    )
                tm = TAXON_RE.match(taxa[0].strip())
                if tm is None:
                    raise InputFormatError(
                        path, lineno, f"column 13 (Taxon) should be taxon:<id>, got {c[12]!r}"
                    )
                qualifiers = {q.strip() for q in c[3].split("|") if q.strip()}
                if self.taxon is not None and int(tm.group(1)) != self.taxon:
                    st["other_taxon"] += 1
                elif any(q.upper() == "NOT" for q in qualifiers):
                    st["not_qualified"] += 1
                elif c[6].strip().upper() in exclude:
                    st["evidence_excluded"] += 1
                elif c[11].strip() in NON_GENE_TYPES:
                    st["non_gene_products"] += 1
                else:
                    if go_id not in terms and go_id in alt:
                        go_id = alt[go_id]
                        st["alt_id_mapped"] += 1
                    sym = normalise_symbol(c[2])
                    if go_id not in terms:
                        st["obsolete_term" if go_id in obsolete else "unknown_term"] += 1
                    elif sym is None or (self.known_genes is not None and sym not in self.known_genes):
                        st["unknown_gene_symbols"] += 1
                    else:
                        ev, quals = pairs.setdefault((sym, go_id), (set(), set()))
                        ev.add(c[6].strip())
                        quals.update(qualifiers)
                        if c[0].strip() == "UniProtKB":
                            uniprot.setdefault(sym, set()).add(c[1].strip())
                        else:
                            uniprot.setdefault(sym, set())
        st["gaf_version"] = version
        return pairs, uniprot

    def batches(self) -> Iterator[Batch]:
        # Both files are read and checked before the first batch: a bad file writes nothing.
        self.stats.clear()  # a second run of the same adapter counts afresh
        terms, edges, obsolete, alt = self.read_ontology()
        pairs, uniprot = self.read_gaf(terms, obsolete, alt) if self.gaf is not None else ({}, {})
        yield NodeBatch("GOTerm", "go_id", list(terms.values()))
        for rel_type, pairs_ in edges.items():
            rows = [{"start": a, "end": b} for a, b in sorted(pairs_)]
            yield RelBatch(rel_type, ("GOTerm", "go_id"), ("GOTerm", "go_id"), rows)
        if self.gaf is None:
            return
        self.stats["genes"] = len(uniprot)
        self.stats["symbols_with_several_uniprot"] = sum(len(v) > 1 for v in uniprot.values())
        self.stats["annotation_pairs"] = len(pairs)
        # One accession per Gene (the smallest, so re-runs agree) where a symbol has several.
        genes = [{"symbol": s, "uniprot": min(u) if u else None} for s, u in sorted(uniprot.items())]
        yield NodeBatch("Gene", "symbol", genes)
        rows = [
            {"start": s, "end": t, "evidence": sorted(ev), "qualifiers": sorted(q)}
            for (s, t), (ev, q) in sorted(pairs.items())
        ]
        yield RelBatch("ANNOTATED_WITH", ("Gene", "symbol"), ("GOTerm", "go_id"), rows)


# ------------------------------------------------------------------------------------- config + CLI
def from_config(section: dict[str, Any], base_dir: Path) -> GOAdapter:
    """``[go]`` section: obo, gaf (paths relative to base_dir), include_obsolete, taxon, evidence_exclude."""
    if not section.get("obo"):
        raise UserError("[go] needs 'obo' (a GO .obo file)")
    gaf = section.get("gaf")
    return GOAdapter(
        base_dir / section["obo"],
        gaf=base_dir / gaf if gaf else None,
        include_obsolete=bool(section.get("include_obsolete", False)),
        taxon=section.get("taxon", 9606),
        evidence_exclude=section.get("evidence_exclude", []),
    )


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest go``."""

    @app.command("go")
    def ingest_go(
        obo: Annotated[Path, typer.Argument(help="GO ontology in OBO format (go-basic.obo[.gz]).")],
        gaf: Annotated[Path | None, typer.Option(help="GAF 2.x gene annotations (goa_human.gaf.gz).")] = None,
        include_obsolete: Annotated[bool, typer.Option(help="Also write obsolete terms.")] = False,
        taxon: Annotated[int, typer.Option(help="NCBI taxon of the annotated gene products to keep.")] = 9606,
        evidence_exclude: Annotated[
            str, typer.Option(help="Comma-separated evidence codes to skip, e.g. IEA,ND.")
        ] = "",
    ) -> None:
        """Load GO terms with IS_A/PART_OF and (with --gaf) gene ANNOTATED_WITH edges."""
        excluded = [e for e in evidence_exclude.split(",") if e]
        run_adapter_cli(lambda: GOAdapter(obo, gaf=gaf, include_obsolete=include_obsolete, taxon=taxon,
                                          evidence_exclude=excluded, progress=True))
