"""DrugBank: drugs (structure identity) and their protein targets, from any of DrugBank's formats.

Inputs (``source = "drugbank"``; give any combination, each is optional):

``xml``
    The full DrugBank XML (namespace ``http://www.drugbank.ca``, root ``<drugbank>``, one ``<drug>``
    child per drug; plain, gzip or a zip holding it). Over 1 GB, so it is streamed with
    ``iterparse`` and every finished drug is cleared from the tree. Only *direct* children of a
    top-level ``<drug>`` describe it: ``<drugbank-id>`` recurs inside ``<drug-interactions>`` and
    ``<salts>``, and ``<pathways>`` hold nested ``<drug>`` elements, which are not drugs of the file.
``vocabulary``
    The open ``drugbank vocabulary.csv`` (``DrugBank ID, Accession Numbers, Common name, CAS, UNII,
    Synonyms, Standard InChI Key``; lists separated by `` | ``): names and InChIKeys, no structures.
``drugs_tsv`` + ``proteins_tsv``
    The dhimmel/drugbank derived tables (``drugbank.tsv``: id, name, type, groups, atc_codes,
    categories, inchikey, inchi; ``proteins.tsv``: drugbank_id, category, uniprot_id, entrez_gene_id,
    organism, known_action, actions). ``proteins.tsv`` has no gene symbols: ``gene_info`` (a table
    with ``pr_gene_id``/``pr_gene_symbol``, e.g. LINCS geneinfo, or NCBI's ``GeneID``/``Symbol``)
    maps Entrez ids to symbols.

Graph: ``Compound`` (via :class:`CompoundIndex`; ``drugbank_id``, ``drugbank_ids``, ``name``,
``synonyms``, ``groups``, ...), ``Gene`` (symbol, uniprot, entrez_id / hgnc_id) and one ``TARGETS``
per (compound, gene) for this source, aggregating every protein record behind it: ``actions``,
``known_action`` ('yes' if any record says so), ``uniprot``, ``target_category``.
"""

from __future__ import annotations

import csv
import gzip
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any
from xml.etree import ElementTree as ET
from xml.parsers import expat

import typer
from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.ingest.base import (
    GZIP_ERRORS,
    InputFormatError,
    SourceAdapter,
    normalise_symbol,
    open_text,
    require_file,
)
from moakg.ingest.compounds import (
    CompoundIdentity,
    CompoundIndex,
    canonical_smiles,
    normalise_inchikey,
)
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.writer import Batch, NodeBatch, RelBatch

NS = "http://www.drugbank.ca"
CATEGORIES = ("target", "enzyme", "carrier", "transporter")  # also the priority of target_category
HUMAN_NAMES = {"human", "humans", "homo sapiens"}  # the XML says 'Humans', proteins.tsv 'Human'
DRUG_TSV_COLUMNS = ["drugbank_id", "name", "inchikey", "inchi"]
PROTEIN_TSV_COLUMNS = ["drugbank_id", "category", "uniprot_id", "entrez_gene_id", "organism", "known_action",
                       "actions"]
VOCABULARY_COLUMNS = ["DrugBank ID", "Accession Numbers", "Common name", "CAS", "UNII", "Synonyms",
                      "Standard InChI Key"]
FLUSH_DRUGS = 5_000
MAX_EXAMPLES = 10


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(elem: ET.Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    return elem.text.strip() or None


def _texts(elem: ET.Element, outer: str, inner: str) -> list[str]:
    """Non-empty texts of ``<outer><inner>`` children (direct path only)."""
    return [t for t in (_text(x) for x in elem.iterfind(f"{_q(outer)}/{_q(inner)}")) if t]


def _split(value: str | None, sep: str = "|") -> list[str]:
    return [v.strip() for v in (value or "").split(sep) if v.strip()]


def organism_key(name: str | None) -> str:
    n = " ".join((name or "").split()).lower()
    return "human" if n in HUMAN_NAMES else n


# -------------------------------------------------------------------------------------------- model
@dataclass
class Partner:
    """One drug-protein record (a target, enzyme, carrier or transporter polypeptide)."""

    category: str
    organism: str | None
    actions: list[str]
    known_action: str | None
    gene_name: str | None = None
    uniprot: str | None = None
    entrez_id: int | None = None
    hgnc_id: str | None = None


@dataclass
class DrugRecord:
    """One drug as any input describes it; ``where`` locates it for error messages."""

    drugbank_id: str
    where: str
    name: str | None = None
    smiles: str | None = None
    inchi: str | None = None
    inchikey: str | None = None
    synonyms: list[str] = field(default_factory=list)
    props: dict[str, Any] = field(default_factory=dict)
    partners: list[Partner] = field(default_factory=list)
    n_partner_records: int = 0  # partners of the selected categories before any filter


# --------------------------------------------------------------------------------------------- XML
def open_binary(path: Path) -> IO[bytes]:
    """Plain, gzip (by magic bytes) or a zip archive (its first .xml member, else its only member)."""
    require_file(path)
    if zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
            names = [n for n in zf.namelist() if n.lower().endswith(".xml")] or zf.namelist()
            if not names:
                raise InputFormatError(path, None, "empty zip archive; expected the DrugBank XML in it")
            return zf.open(names[0])
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, *GZIP_ERRORS) as exc:  # encrypted,
            raise InputFormatError(path, None, f"unreadable zip archive ({exc})") from None  # unknown method
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _xml_partner(elem: ET.Element, category: str) -> list[Partner]:
    base = {
        "category": category,
        "organism": _text(elem.find(_q("organism"))),
        "actions": sorted({a.lower() for a in _texts(elem, "actions", "action")}),
        "known_action": (_text(elem.find(_q("known-action"))) or "").lower() or None,
    }
    polys = elem.findall(_q("polypeptide"))
    if not polys:
        return [Partner(**base)]
    out = []
    for p in polys:  # a complex lists several polypeptides: each is one gene
        hgnc = None
        for ext in p.iterfind(f"{_q('external-identifiers')}/{_q('external-identifier')}"):
            if "HGNC" in (_text(ext.find(_q("resource"))) or ""):
                hgnc = _text(ext.find(_q("identifier")))
        gene = _text(p.find(_q("gene-name")))
        out.append(Partner(**base, gene_name=gene, uniprot=p.get("id"), hgnc_id=hgnc))
    return out


def xml_drug_record(drug: ET.Element, record: int, categories: Sequence[str]) -> DrugRecord:
    """A top-level ``<drug>`` element to a :class:`DrugRecord` (direct children only)."""
    ids = drug.findall(_q("drugbank-id"))
    primary = [i for i in ids if i.get("primary") == "true"] or ids[:1]
    dbid = _text(primary[0]) if primary else None
    if dbid is None:
        raise UserError(f"record {record}: <drug> without a <drugbank-id>")
    calc = {}
    for prop in drug.iterfind(f"{_q('calculated-properties')}/{_q('property')}"):
        kind, value = _text(prop.find(_q("kind"))), _text(prop.find(_q("value")))
        if kind and value:
            calc.setdefault(kind, value)
    rec = DrugRecord(
        drugbank_id=dbid,
        where=f"drug {dbid} (record {record})",
        name=_text(drug.find(_q("name"))),
        smiles=calc.get("SMILES"),
        inchi=calc.get("InChI"),
        inchikey=calc.get("InChIKey"),
        synonyms=_texts(drug, "synonyms", "synonym"),
        props={
            "drug_type": drug.get("type"),
            "groups": _texts(drug, "groups", "group"),
            "cas": _text(drug.find(_q("cas-number"))),
            "unii": _text(drug.find(_q("unii"))),
            "atc_codes": [c.get("code") for c in drug.iterfind(f"{_q('atc-codes')}/{_q('atc-code')}")
                          if c.get("code")],
        },
    )
    for cat in categories:
        for elem in drug.iterfind(f"{_q(cat + 's')}/{_q(cat)}"):
            rec.n_partner_records += 1
            rec.partners.extend(_xml_partner(elem, cat))
    return rec


class NoDoctypeReader:
    """A binary reader that refuses an XML document with a DOCTYPE before the XML parser reads it.

    DrugBank XML declares no DTD, and a DTD is what the XML attacks need: external entities (XXE: the
    parser would read a local file or a URL into the text) and nested entity expansion ("billion
    laughs", quadratic blow-up). ``xml.etree`` never fetches external entities and expat >= 2.4 caps
    expansion, but the first depends on the parser's defaults and the second on the expat Python was
    built with; refusing any DTD depends on neither (and needs no dependency such as defusedxml).

    A second expat parser reads the prolog (everything before the root element's start tag) in small
    pieces, before the real parser gets those bytes: its DOCTYPE handler fires at ``<!DOCTYPE name``,
    before any entity is declared or expanded, and raises. It decodes like the real parser (BOM, UTF-16,
    the encoding declaration), so no encoding hides a DTD; '<!DOCTYPE' in a comment or CDATA section is
    text, not a DTD. After the root start tag it only passes bytes on (a DTD cannot come later).
    """

    PIECE = 256  # bytes the checker reads at a time: what it may parse after a DOCTYPE begins
    #: a longer prolog is refused: DrugBank's is one short XML declaration, and expat (< 2.6) rescans a
    #: token that spans pieces, so a megabyte-long comment would take seconds in pieces this small
    MAX_PROLOG = 64 * 1024

    def __init__(self, raw: IO[bytes], path: Path) -> None:
        self._raw, self._path, self._in_prolog, self._fed = raw, path, True, 0
        self._checker = expat.ParserCreate()
        self._checker.StartDoctypeDeclHandler = self._doctype
        self._checker.StartElementHandler = self._root

    def _doctype(self, name: str, *_: Any) -> None:
        raise InputFormatError(
            self._path, self._checker.CurrentLineNumber,
            f"document type declaration <!DOCTYPE {name} ...> refused: DrugBank XML has none, and a DTD's "
            "entities can read local files (XXE) or expand without bound (billion laughs)",
        )

    def _root(self, *_: Any) -> None:
        self._in_prolog = False

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        try:
            for i in range(0, len(data), self.PIECE):
                if not self._in_prolog:
                    break
                if self._fed >= self.MAX_PROLOG:
                    raise InputFormatError(
                        self._path, self._checker.CurrentLineNumber,
                        f"no root element in the first {self.MAX_PROLOG // 1024} KiB (a DrugBank XML starts "
                        "with <drugbank> after its XML declaration)")
                self._checker.Parse(data[i : i + self.PIECE], False)
                self._fed += self.PIECE
            if not data and self._in_prolog:
                self._checker.Parse(b"", True)  # end of file in the prolog: no root element
        except InputFormatError:
            raise
        except expat.ExpatError as exc:
            raise InputFormatError(self._path, exc.lineno, f"malformed XML (column {exc.offset}): "
                                   f"{expat.ErrorString(exc.code)}") from None
        except (LookupError, ValueError) as exc:  # the declared encoding: unknown to Python ('nonsense'),
            # or a multi-byte one expat does not know by that name ('UTF-16-BE'), which xml.etree fails on
            # with the same ValueError
            raise InputFormatError(self._path, 1, f"unsupported encoding in the XML declaration ({exc}); "
                                   "save the file as UTF-8") from None
        return data


def iter_xml_drugs(path: Path, categories: Sequence[str] = ("target",)) -> Iterator[DrugRecord]:
    """Stream the top-level drugs of a DrugBank XML file with flat memory (any DOCTYPE is refused)."""
    path = Path(path)
    drug_tag, depth, root, record = _q("drug"), 0, None, 0
    with open_binary(path) as f:
        try:
            for event, elem in ET.iterparse(NoDoctypeReader(f, path), events=("start", "end")):
                if event == "start":
                    depth += 1
                    if depth == 1:
                        if elem.tag != _q("drugbank"):
                            raise InputFormatError(
                                path, "root element", f"expected <drugbank> in namespace {NS}, "
                                f"got {elem.tag!r}",
                            )
                        root = elem
                    continue
                depth -= 1
                if depth != 1:
                    continue  # inner elements stay until their drug ends (pathway <drug>s included)
                if elem.tag == drug_tag:
                    record += 1
                    try:
                        rec = xml_drug_record(elem, record, categories)
                    except ValueError as exc:
                        raise InputFormatError(path, f"record {record}", str(exc)) from None
                    yield rec
                # The finished drug and the root's reference to it go, so memory stays flat.
                elem.clear()
                assert root is not None
                root.clear()
        except ET.ParseError as exc:
            line, col = exc.position
            raise InputFormatError(path, line, f"malformed XML (column {col}): {exc}") from None
        except (*GZIP_ERRORS, zipfile.BadZipFile) as exc:
            raise InputFormatError(path, f"record {record + 1}", "truncated or corrupt gzip / zip data "
                                   f"({exc or type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------- tables
def _csv_records(path: Path, delimiter: str, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line of the record, row) for a delimited file with quoted multi-line fields."""
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            raise InputFormatError(path, 1, f"empty file; expected a header with {list(required)}") from None
        except csv.Error as exc:
            raise InputFormatError(path, 1, f"malformed delimited text: {exc}") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise InputFormatError(
                path, 1, f"header is missing required column(s) {missing}; got {header}"
            )
        last = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a field over csv's size limit, a NUL, a stray quote ...
                raise InputFormatError(path, last + 1, f"malformed delimited text: {exc}") from None
            start, last = last + 1, reader.line_num
            if not any(v.strip() for v in fields):
                continue
            if len(fields) != len(header):
                raise InputFormatError(
                    path, start, f"expected {len(header)} fields ({', '.join(header)}), got {len(fields)}"
                )
            yield start, dict(zip(header, fields, strict=True))


def read_gene_info(path: Path) -> dict[int, str]:
    """Entrez gene id -> raw symbol, from LINCS geneinfo (pr_gene_id, pr_gene_symbol) or NCBI gene_info."""
    with open_text(path) as f:
        header = [h.strip().lstrip("#") for h in f.readline().rstrip("\r\n").split("\t")]
        for id_col, sym_col in (("pr_gene_id", "pr_gene_symbol"), ("GeneID", "Symbol")):
            if id_col in header and sym_col in header:
                break
        else:
            raise InputFormatError(
                path, 1, f"expected gene-id and symbol columns (pr_gene_id/pr_gene_symbol or GeneID/Symbol), "
                f"got {header}",
            )
        i, j = header.index(id_col), header.index(sym_col)
        out: dict[int, str] = {}
        for lineno, line in enumerate(f, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if len(fields) != len(header):  # a cut line would otherwise give a cut symbol ('PTGS2' -> 'PTG')
                raise InputFormatError(path, lineno, f"expected {len(header)} tab-separated fields (as in "
                                       f"the header), got {len(fields)}")
            gid, sym = fields[i].strip(), fields[j].strip()
            if gid.isdigit() and sym and sym != "-":  # skips '100510314///27341' multi-gene probes
                out.setdefault(int(gid), sym)
    return out


# --------------------------------------------------------------------------------------- adapter
@dataclass
class _Edge:
    actions: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    uniprots: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)

    def row(self, start: str, end: str) -> dict[str, Any]:
        known = next((k for k in ("yes", "no", "unknown") if k in self.known), None)
        cats = sorted(self.categories, key=CATEGORIES.index)
        return {
            "start": start, "end": end, "actions": sorted(self.actions), "known_action": known,
            "uniprot": min(self.uniprots) if self.uniprots else None, "uniprot_ids": sorted(self.uniprots),
            "target_category": cats[0] if cats else None, "target_categories": cats,
        }


class DrugBankAdapter(SourceAdapter):
    """DrugBank (XML and/or vocabulary CSV and/or derived TSVs) -> ``Compound``, ``Gene``, ``TARGETS``.

    Config keys: ``xml``, ``vocabulary``, ``drugs_tsv``, ``proteins_tsv`` (needs ``drugs_tsv``),
    ``gene_info`` (Entrez -> symbol for ``proteins_tsv``); ``categories`` (which of target, enzyme,
    carrier, transporter become TARGETS; default targets only); ``organism`` (default 'Humans'; None
    keeps all); ``strict`` (an XML drug without structure or targets is an error, not a count);
    ``known_genes``. ``index``: a :class:`CompoundIndex` of compounds already known.
    """

    source = "drugbank"
    writes_compounds = True

    def __init__(
        self,
        xml: Path | str | None = None,
        vocabulary: Path | str | None = None,
        drugs_tsv: Path | str | None = None,
        proteins_tsv: Path | str | None = None,
        gene_info: Path | str | None = None,
        categories: Sequence[str] = ("target",),
        organism: str | None = "Humans",
        strict: bool = False,
        index: CompoundIndex | None = None,
        known_genes: set[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__()
        p = {k: Path(v) if v is not None else None for k, v in
             {"xml": xml, "vocabulary": vocabulary, "drugs_tsv": drugs_tsv, "proteins_tsv": proteins_tsv,
              "gene_info": gene_info}.items()}
        if not any(p[k] for k in ("xml", "vocabulary", "drugs_tsv")):
            raise UserError("give at least one DrugBank input: xml, vocabulary or drugs_tsv")
        if p["proteins_tsv"] is not None and p["drugs_tsv"] is None:
            raise UserError("proteins_tsv needs drugs_tsv (the drugs it refers to)")
        if organism is not None and not isinstance(organism, str):  # checked here, not deep in the parsing
            raise UserError(f"organism must be a name such as 'Humans', got {organism!r}")
        bad = [c for c in categories if c not in CATEGORIES]
        if bad or not categories:
            raise UserError(f"categories must be a non-empty subset of {CATEGORIES}, got {list(categories)}")
        self.xml, self.vocabulary = p["xml"], p["vocabulary"]
        self.drugs_tsv, self.proteins_tsv, self.gene_info = p["drugs_tsv"], p["proteins_tsv"], p["gene_info"]
        self.categories = tuple(categories)
        self.organism = organism
        self.strict = strict
        self.index = index if index is not None else CompoundIndex()
        self.known_genes = known_genes
        self.progress = progress
        self._reset()

    def _reset(self) -> None:
        """Fresh stats and accumulators: a second run of the same adapter starts from nothing."""
        self.stats.clear()
        self._idents: dict[str, CompoundIdentity] = {}
        self._compounds: dict[str, dict[str, Any]] = {}
        self._genes: dict[str, dict[str, Any]] = {}
        self._edges: dict[tuple[str, str], _Edge] = {}
        self._dirty: set[str] = set()
        self._dirty_genes: set[str] = set()
        self._dirty_edges: set[tuple[str, str]] = set()
        self._unmapped: set[int] = set()

    def files(self) -> list[Path]:
        return [p for p in (self.xml, self.vocabulary, self.drugs_tsv, self.proteins_tsv, self.gene_info)
                if p is not None]

    def params(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories), "organism": self.organism, "strict": self.strict,
            "known_genes": len(self.known_genes) if self.known_genes is not None else None,
        }

    # -- compounds ----------------------------------------------------------------------------------
    def add_drug(self, rec: DrugRecord) -> str:
        """Resolve a drug (once per DrugBank id) and merge it into its compound row; returns the node id."""
        ident = self._idents.get(rec.drugbank_id)
        has_structure = bool(rec.smiles or rec.inchi)
        if ident is None:
            ident = self.index.resolve(self.source, rec.drugbank_id, smiles=rec.smiles, inchi=rec.inchi,
                                       inchikey=rec.inchikey)
            unparseable = has_structure and not ident.structure_parsed
            self._idents[rec.drugbank_id] = ident
            if not has_structure:
                self.count("no_structure")
                if normalise_inchikey(rec.inchikey):
                    self.count("inchikey_only")
            elif unparseable:
                self.count("structure_unparseable")
        row = self._compounds.get(ident.id)
        if row is None:
            row = {**ident.node_props(self.source), "drugbank_ids": [], "synonyms": []}
            self._compounds[ident.id] = row
        if rec.drugbank_id not in row["drugbank_ids"]:
            row["drugbank_ids"] = sorted([*row["drugbank_ids"], rec.drugbank_id])
        first = row["drugbank_ids"][0] == rec.drugbank_id
        row["drugbank_id"] = row["drugbank_ids"][0]
        if rec.name and (first or not row.get("name")):
            row["name"] = rec.name  # the drug with the smallest id names a node several drugs share
        row["synonyms"] = sorted({*row["synonyms"], *rec.synonyms, *([rec.name] if rec.name else [])})
        if has_structure and not row.get("smiles"):
            row.update(ident.smiles_props(canonical_smiles(rec.smiles, rec.inchi)))
        for k, v in rec.props.items():
            if isinstance(v, list):
                row[k] = sorted({*row.get(k, []), *v})
            elif v not in (None, "") and (first or row.get(k) is None):
                row[k] = v
        self._dirty.add(ident.id)
        return ident.id

    # -- targets ------------------------------------------------------------------------------------
    def add_partners(self, compound_id: str, partners: Sequence[Partner]) -> None:
        for p in partners:
            self.count("partner_records")
            if p.category not in self.categories:
                self.count("partners_other_category")
                continue
            if self.organism is not None and organism_key(p.organism) != organism_key(self.organism):
                self.count("partners_other_organism")
                continue
            if p.gene_name is None:
                if p.entrez_id is not None:  # proteins.tsv: the gene table does not know this Entrez id
                    self._unmapped.add(p.entrez_id)
                    self.count("unmapped_entrez_rows")
                else:
                    self.count("partners_without_gene")
                continue
            sym = normalise_symbol(p.gene_name)
            if sym is None or (self.known_genes is not None and sym not in self.known_genes):
                self.count("unknown_gene_symbols")
                continue
            gene = self._genes.get(sym)
            if gene is None:
                gene = self._genes[sym] = {"symbol": sym}
                self._dirty_genes.add(sym)
            for k, v in (("uniprot", p.uniprot), ("entrez_id", p.entrez_id), ("hgnc_id", p.hgnc_id)):
                if v is not None and (gene.get(k) is None or v < gene[k]):  # smallest: re-runs agree
                    gene[k] = v
                    self._dirty_genes.add(sym)
            edge = self._edges.setdefault((compound_id, sym), _Edge())
            edge.actions.update(p.actions)
            edge.known.update([p.known_action] if p.known_action else [])
            edge.uniprots.update([p.uniprot] if p.uniprot else [])
            edge.categories.add(p.category)
            self._dirty_edges.add((compound_id, sym))

    def flush(self) -> Iterator[Batch]:
        """Batches for everything changed since the last flush (rows are cumulative, so SET += is right)."""
        # Empty lists are left out (None is not written), like any other absent value.
        compounds = [{k: (v if v != [] else None) for k, v in self._compounds[c].items()}
                     for c in sorted(self._dirty)]
        genes = [self._genes[g] for g in sorted(self._dirty_genes)]
        edges = [self._edges[e].row(*e) for e in sorted(self._dirty_edges)]
        self._dirty, self._dirty_genes, self._dirty_edges = set(), set(), set()
        yield NodeBatch("Compound", "id", compounds)
        yield NodeBatch("Gene", "symbol", genes)
        yield RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"), edges)

    # -- inputs -------------------------------------------------------------------------------------
    def read_vocabulary(self, path: Path) -> list[DrugRecord]:
        """Parse and check the vocabulary CSV; the records are resolved after the structured inputs."""
        records = []
        for lineno, r in _csv_records(path, ",", VOCABULARY_COLUMNS):
            dbid = r["DrugBank ID"].strip()
            if not dbid:
                raise InputFormatError(path, lineno, "empty 'DrugBank ID'")
            self.count("vocabulary_rows")
            records.append(DrugRecord(
                dbid, f"line {lineno}", name=r["Common name"].strip() or None,
                inchikey=r["Standard InChI Key"].strip() or None, synonyms=_split(r["Synonyms"], " | "),
                props={"cas": r["CAS"].strip() or None, "unii": r["UNII"].strip() or None},
            ))
        return records

    def read_tsvs(self, drugs: Path, proteins: Path | None) -> None:
        known: dict[str, str] = {}
        for lineno, r in _csv_records(drugs, "\t", DRUG_TSV_COLUMNS):
            dbid = r["drugbank_id"].strip()
            if not dbid:
                raise InputFormatError(drugs, lineno, "empty drugbank_id")
            if dbid in known:
                self.count("duplicate_drug_rows")
                continue
            self.count("tsv_drug_rows")
            known[dbid] = self.add_drug(DrugRecord(
                dbid, f"line {lineno}", name=r["name"].strip() or None, inchi=r["inchi"].strip() or None,
                inchikey=r["inchikey"].strip() or None,
                props={"drug_type": r.get("type", "").strip() or None, "groups": _split(r.get("groups")),
                       "atc_codes": _split(r.get("atc_codes")),
                       "drug_categories": _split(r.get("categories"))},
            ))
        if proteins is None:
            return
        symbols = read_gene_info(self.gene_info) if self.gene_info is not None else {}
        seen: set[tuple[str, ...]] = set()
        for lineno, r in _csv_records(proteins, "\t", PROTEIN_TSV_COLUMNS):
            key = tuple(r[c].strip() for c in PROTEIN_TSV_COLUMNS)
            if key in seen:
                self.count("duplicate_protein_rows")
                continue
            seen.add(key)
            self.count("protein_rows")
            dbid, entrez = r["drugbank_id"].strip(), r["entrez_gene_id"].strip()
            if dbid not in known:
                self.count("protein_rows_unknown_drug")
                continue
            if not entrez.isdigit():
                raise InputFormatError(proteins, lineno, f"entrez_gene_id must be an integer, got {entrez!r}")
            cat = r["category"].strip().lower()
            if cat not in CATEGORIES:
                raise InputFormatError(proteins, lineno, f"category must be one of {CATEGORIES}, got {cat!r}")
            sym = symbols.get(int(entrez))
            self.add_partners(known[dbid], [Partner(
                category=cat, organism=r["organism"].strip(),
                actions=sorted({a.lower() for a in _split(r["actions"])}),
                known_action=r["known_action"].strip().lower() or None, gene_name=sym,
                uniprot=r["uniprot_id"].strip() or None, entrez_id=int(entrez),
            )])
        self.stats["unmapped_entrez_ids"] = len(self._unmapped)
        self.stats["unmapped_entrez_examples"] = sorted(self._unmapped)[:MAX_EXAMPLES]

    def read_xml(self, path: Path) -> Iterator[Batch]:
        drugs = tqdm(iter_xml_drugs(path, self.categories), desc="DrugBank XML", unit="drugs",
                     disable=not self.progress)
        for key in ("xml_drugs", "xml_drugs_without_structure", "xml_drugs_without_targets"):
            self.stats.setdefault(key, 0)
        for n, rec in enumerate(drugs, start=1):
            self.count("xml_drugs")
            if not (rec.smiles or rec.inchi):
                if self.strict:
                    raise InputFormatError(path, rec.where, "no structure (no SMILES/InChI property)")
                self.count("xml_drugs_without_structure")
            if rec.n_partner_records == 0:
                if self.strict:
                    raise InputFormatError(path, rec.where, f"no {'/'.join(self.categories)} records")
                self.count("xml_drugs_without_targets")
            cid = self.add_drug(rec)
            self.add_partners(cid, rec.partners)
            if n % FLUSH_DRUGS == 0:
                yield from self.flush()

    def batches(self) -> Iterator[Batch]:
        self._reset()
        for key in ("no_structure", "structure_unparseable", "unknown_gene_symbols"):
            self.stats.setdefault(key, 0)
        # The small tables are read and checked in full first: a bad table writes nothing.
        if self.drugs_tsv is not None:
            self.read_tsvs(self.drugs_tsv, self.proteins_tsv)
        vocabulary = self.read_vocabulary(self.vocabulary) if self.vocabulary is not None else []
        if self.xml is not None:
            yield from self.read_xml(self.xml)
        # InChIKey-only records last: a drug the XML/TSV gave a structure keeps that structure's identity
        # (a salt's standard InChIKey differs from its largest fragment's).
        for rec in vocabulary:
            self.add_drug(rec)
        yield from self.flush()
        per_node = Counter(len(r["drugbank_ids"]) for r in self._compounds.values())
        self.stats.update(
            drugs=len(self._idents), compounds=len(self._compounds), genes=len(self._genes),
            targets=len(self._edges),
            shared_inchikey_drugs=sum(n * c for n, c in per_node.items() if n > 1),
            match_levels=dict(Counter(i.match_level for i in self._idents.values())),
        )


# ------------------------------------------------------------------------------------- config + CLI
def from_config(section: dict[str, Any], base_dir: Path) -> DrugBankAdapter:
    """``[drugbank]``: any of xml, vocabulary, drugs_tsv, proteins_tsv, gene_info (paths relative to
    ``base_dir``); categories, organism, strict."""
    def path(key: str) -> Path | None:
        return base_dir / section[key] if section.get(key) else None

    return DrugBankAdapter(
        xml=path("xml"), vocabulary=path("vocabulary"), drugs_tsv=path("drugs_tsv"),
        proteins_tsv=path("proteins_tsv"), gene_info=path("gene_info"),
        categories=tuple(section.get("categories", ("target",))),
        organism=section.get("organism", "Humans") or None, strict=bool(section.get("strict", False)),
    )


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest drugbank``."""

    @app.command("drugbank")
    def ingest_drugbank(
        xml: Annotated[Path | None, typer.Option(help="Full DrugBank XML (plain/gz/zip), streamed.")] = None,
        vocabulary: Annotated[
            Path | None, typer.Option(help="Open 'drugbank vocabulary.csv': names + InChIKeys, no targets.")
        ] = None,
        drugs_tsv: Annotated[Path | None, typer.Option(help="Derived drugbank.tsv (dhimmel)")] = None,
        proteins_tsv: Annotated[
            Path | None, typer.Option(help="Derived proteins.tsv (needs --drugs-tsv and --gene-info).")
        ] = None,
        gene_info: Annotated[
            Path | None, typer.Option(help="Entrez id -> symbol table (LINCS geneinfo or NCBI gene_info).")
        ] = None,
        category: Annotated[
            list[str] | None,
            typer.Option(help="Protein categories that become TARGETS (repeatable): target, enzyme, carrier, "
                              "transporter. Default: target."),
        ] = None,
        organism: Annotated[str, typer.Option(help="Keep proteins of this organism ('all' keeps every one).")]
        = "Humans",
        strict: Annotated[bool, typer.Option(help="An XML drug without structure or targets is an error.")]
        = False,
    ) -> None:
        """Load DrugBank drugs as Compounds (matched by structure) with TARGETS to Genes."""
        kwargs = {"xml": xml, "vocabulary": vocabulary, "drugs_tsv": drugs_tsv, "proteins_tsv": proteins_tsv,
                  "gene_info": gene_info, "categories": tuple(category or ("target",)),
                  "organism": None if organism.lower() == "all" else organism, "strict": strict}
        run_adapter_cli(lambda: DrugBankAdapter(**kwargs, progress=True))  # type: ignore[arg-type]


__all__ = ["DrugBankAdapter", "DrugRecord", "Partner", "add_cli", "from_config", "iter_xml_drugs"]
