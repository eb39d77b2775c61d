"""Protein-protein interactions: STRING links (mapped to HGNC symbols) and generic symbol-pair tables.

STRING (``source = "string"``)
    ``protein.links`` (``protein1 protein2 combined_score``) or ``protein.links.detailed`` (the seven
    channel scores before ``combined_score``), space-separated, plain or gzip. Proteins are STRING ids
    (``9606.ENSP...``) and are mapped to gene symbols with ``protein.info`` (its ``preferred_name``
    wins) and/or ``protein.aliases`` (used for proteins that ``protein.info`` does not name; see
    :data:`DEFAULT_ALIAS_SOURCES` for which alias sources count as a symbol). Links below
    ``min_score`` are dropped, then links with an unmapped end, then self-links (two isoforms of one
    gene). STRING lists every pair in both directions and several proteins can map to one symbol, so
    links are merged into one ``INTERACTS_WITH`` per unordered symbol pair (start = the smaller
    symbol), keeping the highest ``combined_score`` and the channel scores of that link.

Symbol-pair tables (``source`` configurable, default ``"ppi"``)
    Tab-separated tables with a header and two gene-symbol columns, e.g. the hetio/dhimmel
    ``protein-interactions.txt.gz`` (``source_code source_symbol target_code target_symbol pubmed
    interaction_type method``). One ``INTERACTS_WITH`` per unordered pair; optional columns are
    aggregated (distinct values of ``method`` / ``interaction_type``, number of distinct PubMed ids,
    number of supporting rows).

Both write ``INTERACTS_WITH``, merged per source (``merge_on`` in kg/schema.toml): the type is shared by
several sources, and a STRING score must not overwrite (or be mistaken for) another source's evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.ingest.base import InputFormatError, SourceAdapter, check_source_name, normalise_symbol, open_text
from moakg.ingest.runner import run_adapter_cli
from moakg.kg.writer import Batch, NodeBatch, RelBatch

DEFAULT_MIN_SCORE = 700
MAX_EXAMPLES = 10

LINKS_COLUMNS = ["protein1", "protein2", "combined_score"]
DETAILED_COLUMNS = [
    "protein1", "protein2", "neighborhood", "fusion", "cooccurence", "coexpression",
    "experimental", "database", "textmining", "combined_score",
]
INFO_ID_COLUMNS = {"protein_external_id", "string_protein_id"}

#: Alias sources whose alias is an HGNC gene symbol, best first. Matched as whole source names, not
#: substrings: ``Ensembl_HGNC_UniProt_ID(supplied_by_UniProt)_AC`` *contains* "Ensembl_HGNC" but its
#: alias is a UniProt accession. BioMart_HUGO and Ensembl_HGNC are HGNC's own symbol (STRING v10/v11);
#: the UniProt gene names (GN) are a last resort for proteins HGNC does not name through Ensembl.
DEFAULT_ALIAS_SOURCES: tuple[str, ...] = (
    "BioMart_HUGO", "Ensembl_HGNC", "Ensembl_HGNC_symbol", "HGNC", "Ensembl_UniProt_GN", "BLAST_UniProt_GN",
)

_PUBMED_SPLIT = re.compile(r"[|,;\s]+")





def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


# --------------------------------------------------------------------------------------------- STRING
@dataclass
class _Pair:
    """The best link seen so far for one unordered symbol pair."""

    props: dict[str, int]
    n_links: int = 1
    scores: set[int] = field(default_factory=set)


def _tab_fields(line: str) -> list[str]:
    return line.rstrip("\r\n").split("\t")


def read_protein_info(path: Path) -> dict[str, str]:
    """STRING ``protein.info``: string id -> preferred_name (raw, not yet normalised)."""
    out: dict[str, str] = {}
    with open_text(path) as f:
        header = _tab_fields(f.readline())
        cols = [c.strip().lstrip("#").strip() for c in header]
        if len(cols) < 2 or cols[0] not in INFO_ID_COLUMNS or cols[1] != "preferred_name":
            raise InputFormatError(
                path, 1, "expected a protein.info header 'protein_external_id<TAB>preferred_name<TAB>"
                f"protein_size<TAB>annotation' (or '#string_protein_id ...'), got {header[:4]}",
            )
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = _tab_fields(line)
            if len(fields) != len(cols):
                raise InputFormatError(
                    path, lineno, f"expected {len(cols)} tab-separated fields, got {len(fields)}"
                )
            out[fields[0].strip()] = fields[1]
    return out


def read_protein_aliases(path: Path, sources: Sequence[str]) -> tuple[dict[str, str], int]:
    """STRING ``protein.aliases``: string id -> the alias from the best-ranked symbol source.

    Ties within the best source are broken by the alphabetically first symbol (deterministic); the
    second return value counts the proteins where such a tie happened.
    """
    rank = {s: i for i, s in enumerate(sources)}
    best: dict[str, tuple[int, str]] = {}
    ties: set[str] = set()
    with open_text(path) as f:
        first = f.readline()
        cols = _tab_fields(first)
        # v10/v11: '## string_protein_id ## alias ## source ##';
        # v12: '#string_protein_id<TAB>alias<TAB>source';
        # the sample on STRING's download page: 'string<TAB>other<TAB>type'.
        hashed = first.startswith("#") and "alias" in first
        if not hashed and [c.strip() for c in cols] != ["string", "other", "type"]:
            raise InputFormatError(
                path, 1, "expected a protein.aliases header ('## string_protein_id ## alias ## source ##', "
                "'#string_protein_id<TAB>alias<TAB>source' or 'string<TAB>other<TAB>type'), "
                f"got {first.strip()!r}",
            )
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = _tab_fields(line)
            if len(fields) != 3:
                raise InputFormatError(
                    path, lineno, f"expected 3 tab-separated fields (id, alias, sources), got {len(fields)}"
                )
            sid, alias, srcs = fields
            r = min((rank[s] for s in srcs.split() if s in rank), default=None)
            if r is None or normalise_symbol(alias) is None:
                continue
            sym = normalise_symbol(alias)
            assert sym is not None
            sid = sid.strip()
            cur = best.get(sid)
            if cur is None or r < cur[0]:
                best[sid] = (r, sym)
                ties.discard(sid)
            elif r == cur[0] and sym != cur[1]:
                ties.add(sid)
                best[sid] = (r, min(sym, cur[1]))
    return {sid: sym for sid, (_, sym) in best.items()}, len(ties)


class StringAdapter(SourceAdapter):
    """STRING links -> ``Gene`` nodes (symbol, string_id) and ``INTERACTS_WITH`` {combined_score, channels}.

    Config keys: ``links`` (protein.links[.detailed]), ``info`` (protein.info), ``aliases``
    (protein.aliases); at least one of info/aliases is needed. ``min_score`` (0-1000, default 700),
    ``alias_sources`` (see :data:`DEFAULT_ALIAS_SOURCES`), ``known_genes`` (restrict to these symbols).
    """

    source = "string"

    def __init__(
        self,
        links: Path | str,
        info: Path | str | None = None,
        aliases: Path | str | None = None,
        min_score: int = DEFAULT_MIN_SCORE,
        alias_sources: Sequence[str] = DEFAULT_ALIAS_SOURCES,
        known_genes: set[str] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__()
        if info is None and aliases is None:
            raise UserError("STRING ids are not gene symbols: give protein.info and/or protein.aliases")
        if not 0 <= int(min_score) <= 1000:
            raise UserError(f"min_score is on STRING's 0-1000 scale, got {min_score}")
        self.links = Path(links)
        self.info = Path(info) if info is not None else None
        self.aliases = Path(aliases) if aliases is not None else None
        self.min_score = int(min_score)
        self.alias_sources = tuple(alias_sources)
        self.known_genes = known_genes
        self.progress = progress

    def files(self) -> list[Path]:
        return [p for p in (self.links, self.info, self.aliases) if p is not None]

    def params(self) -> dict[str, Any]:
        return {
            "min_score": self.min_score,
            "alias_sources": list(self.alias_sources),
            "known_genes": len(self.known_genes) if self.known_genes is not None else None,
        }

    def symbol_map(self) -> dict[str, str]:
        """STRING id -> normalised symbol: protein.info's preferred_name first, then the aliases."""
        mapping: dict[str, str] = {}
        if self.aliases is not None:
            from_aliases, ties = read_protein_aliases(self.aliases, self.alias_sources)
            mapping.update(from_aliases)
            self.count("alias_ties", ties)
        if self.info is not None:
            for sid, name in read_protein_info(self.info).items():
                if (sym := normalise_symbol(name)) is not None:
                    mapping[sid] = sym
        if self.known_genes is not None:
            unknown = {sid for sid, sym in mapping.items() if sym not in self.known_genes}
            self.count("unknown_gene_symbols", len({mapping[s] for s in unknown}))
            for sid in unknown:
                del mapping[sid]
        return mapping

    def _read_links(self, mapping: dict[str, str]) -> dict[tuple[str, str], _Pair]:
        path = self.links
        pairs: dict[tuple[str, str], _Pair] = {}
        unmapped: set[str] = set()
        for key in ("links_read", "links_below_threshold", "links_unmapped", "self_links", "duplicate_pairs",
                    "score_conflicts"):
            self.stats.setdefault(key, 0)
        with open_text(path) as f:
            header = f.readline().split()
            if header not in (LINKS_COLUMNS, DETAILED_COLUMNS):
                raise InputFormatError(
                    path, 1, f"expected the STRING header '{' '.join(LINKS_COLUMNS)}' or "
                    f"'{' '.join(DETAILED_COLUMNS)}', got {' '.join(header)!r}",
                )
            channels = header[2:-1]
            ncol = len(header)
            lines = tqdm(f, desc="STRING links", unit="lines", disable=not self.progress)
            for lineno, line in enumerate(lines, start=2):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != ncol:
                    raise InputFormatError(
                        path, lineno, f"expected {ncol} space-separated fields, got {len(fields)}"
                    )
                try:
                    scores = [int(v) for v in fields[2:]]
                except ValueError:
                    raise InputFormatError(
                        path, lineno, f"scores must be integers (0-1000), got {' '.join(fields[2:])!r}"
                    ) from None
                self.stats["links_read"] += 1
                score = scores[-1]
                if score < self.min_score:
                    self.stats["links_below_threshold"] += 1
                    continue
                p1, p2 = fields[0], fields[1]
                s1, s2 = mapping.get(p1), mapping.get(p2)
                if s1 is None or s2 is None:
                    self.stats["links_unmapped"] += 1
                    unmapped.update(p for p, s in ((p1, s1), (p2, s2)) if s is None)
                    continue
                if s1 == s2:
                    self.stats["self_links"] += 1
                    continue
                key = _ordered(s1, s2)
                props = {"combined_score": score, **dict(zip(channels, scores[:-1], strict=True))}
                pair = pairs.get(key)
                if pair is None:
                    pairs[key] = _Pair(props, 1, {score})
                    continue
                self.stats["duplicate_pairs"] += 1
                pair.n_links += 1
                if score not in pair.scores:
                    self.stats["score_conflicts"] += 1
                    pair.scores.add(score)
                if score > pair.props["combined_score"]:
                    pair.props = props
        self.stats["proteins_unmapped"] = len(unmapped)
        self.stats["unmapped_examples"] = sorted(unmapped)[:MAX_EXAMPLES]
        return pairs

    def batches(self) -> Iterator[Batch]:
        # Everything is read and checked before the first batch: a bad file writes nothing.
        self.stats.clear()  # a second run of the same adapter counts afresh
        mapping = self.symbol_map()
        self.stats["proteins_mapped"] = len(mapping)
        pairs = self._read_links(mapping)
        self.stats["pairs_written"] = len(pairs)
        symbol_ids: dict[str, set[str]] = {}
        for sid, sym in mapping.items():
            symbol_ids.setdefault(sym, set()).add(sid)
        genes = sorted({s for pair in pairs for s in pair})
        self.stats["genes"] = len(genes)
        self.stats["symbols_with_several_string_ids"] = sum(len(symbol_ids[g]) > 1 for g in genes)
        # One string_id per Gene (the smallest, so re-runs agree) when isoforms map to one symbol.
        gene_rows = [{"symbol": g, "string_id": min(symbol_ids[g])} for g in genes]
        yield NodeBatch("Gene", "symbol", gene_rows)
        rel_rows = [{"start": a, "end": b, **p.props} for (a, b), p in sorted(pairs.items())]
        yield RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rel_rows)


# ----------------------------------------------------------------------------------- symbol-pair TSV
class SymbolPairAdapter(SourceAdapter):
    """A tab-separated table of interacting gene-symbol pairs -> ``Gene`` + ``INTERACTS_WITH``.

    Config keys: ``path``; ``source`` (the name stamped on the edges, default ``"ppi"``);
    ``symbol_columns`` (two column names; default ``source_symbol``/``target_symbol`` when present,
    else the first two columns); ``list_columns`` (columns whose distinct ``|``-separated values
    become list properties; default ``method``, ``interaction_type`` where present);
    ``pubmed_column`` (its distinct ids are counted into ``n_pubmed``); ``known_genes``.
    Edge props: ``n_records`` (rows supporting the pair) plus the aggregated columns.
    """

    source = "ppi"

    def __init__(
        self,
        path: Path | str,
        source: str = "ppi",
        symbol_columns: Sequence[str] | None = None,
        list_columns: Sequence[str] | None = None,
        pubmed_column: str | None = "pubmed",
        known_genes: set[str] | None = None,
    ) -> None:
        super().__init__()
        check_source_name(source)
        if symbol_columns is not None and len(symbol_columns) != 2:
            raise UserError(f"symbol_columns needs two column names, got {list(symbol_columns)}")
        self.source = source  # type: ignore[misc]  # one adapter class serves several named tables
        self.path = Path(path)
        self.symbol_columns = list(symbol_columns) if symbol_columns is not None else None
        self.list_columns = list(list_columns) if list_columns is not None else None
        self.pubmed_column = pubmed_column
        self.known_genes = known_genes

    def files(self) -> list[Path]:
        return [self.path]

    def params(self) -> dict[str, Any]:
        return {
            "symbol_columns": self.symbol_columns,
            "list_columns": self.list_columns,
            "pubmed_column": self.pubmed_column,
            "known_genes": len(self.known_genes) if self.known_genes is not None else None,
        }

    def _columns(self, header: list[str]) -> tuple[int, int, list[int], int | None]:
        if self.symbol_columns is not None:
            missing = [c for c in self.symbol_columns if c not in header]
            if missing:
                raise InputFormatError(
                    self.path, 1, f"expected the symbol columns {self.symbol_columns} in the header, "
                    f"missing {missing}; header is {header}",
                )
            a, b = (header.index(c) for c in self.symbol_columns)
        elif "source_symbol" in header and "target_symbol" in header:
            a, b = header.index("source_symbol"), header.index("target_symbol")
        elif len(header) >= 2:
            a, b = 0, 1
        else:
            raise InputFormatError(
                self.path, 1, f"expected a tab-separated header with two symbol columns, got {header}"
            )
        wanted = self.list_columns if self.list_columns is not None else ["method", "interaction_type"]
        if self.list_columns is not None and (missing := [c for c in wanted if c not in header]):
            raise InputFormatError(self.path, 1, f"expected the columns {missing} in the header {header}")
        lists = [header.index(c) for c in wanted if c in header]
        pub = header.index(self.pubmed_column) if self.pubmed_column in header else None
        return a, b, lists, pub

    def batches(self) -> Iterator[Batch]:
        path = self.path
        self.stats.clear()
        for key in ("rows_read", "unknown_gene_symbols", "self_links", "duplicate_pairs"):
            self.stats.setdefault(key, 0)
        pairs: dict[tuple[str, str], dict[str, Any]] = {}
        unknown: set[str] = set()
        with open_text(path) as f:
            header = [c.strip() for c in _tab_fields(f.readline())]
            a, b, lists, pub = self._columns(header)
            for lineno, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                fields = _tab_fields(line)
                if len(fields) != len(header):
                    raise InputFormatError(
                        path, lineno, f"expected {len(header)} tab-separated fields ({', '.join(header)}), "
                        f"got {len(fields)}",
                    )
                self.stats["rows_read"] += 1
                syms = [normalise_symbol(fields[a]), normalise_symbol(fields[b])]
                bad = [fields[i] for i, s in zip((a, b), syms, strict=True)
                       if s is None or (self.known_genes is not None and s not in self.known_genes)]
                if bad:
                    self.stats["unknown_gene_symbols"] += 1
                    unknown.update(bad)
                    continue
                s1, s2 = syms
                assert s1 is not None and s2 is not None
                if s1 == s2:
                    self.stats["self_links"] += 1
                    continue
                key = _ordered(s1, s2)
                agg = pairs.get(key)
                if agg is None:
                    agg = pairs[key] = {"n_records": 0, "lists": [set() for _ in lists], "pubmed": set()}
                else:
                    self.stats["duplicate_pairs"] += 1
                agg["n_records"] += 1
                for vals, i in zip(agg["lists"], lists, strict=True):
                    vals.update(v.strip() for v in fields[i].split("|") if v.strip() not in ("", "-"))
                if pub is not None:
                    agg["pubmed"].update(v for v in _PUBMED_SPLIT.split(fields[pub]) if v not in ("", "-"))
        self.stats["unknown_symbol_examples"] = sorted(unknown)[:MAX_EXAMPLES]
        self.stats["pairs_written"] = len(pairs)
        genes = sorted({s for pair in pairs for s in pair})
        self.stats["genes"] = len(genes)
        yield NodeBatch("Gene", "symbol", [{"symbol": g} for g in genes])
        rows = []
        for (s1, s2), agg in sorted(pairs.items()):
            row: dict[str, Any] = {"start": s1, "end": s2, "n_records": agg["n_records"]}
            for vals, i in zip(agg["lists"], lists, strict=True):
                row[header[i]] = sorted(vals)
            if pub is not None:
                row["n_pubmed"] = len(agg["pubmed"])
            rows.append(row)
        yield RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rows)


# ------------------------------------------------------------------------------------- config + CLI
def _path(section: dict[str, Any], key: str, base_dir: Path) -> Path | None:
    value = section.get(key)
    return None if value in (None, "") else (base_dir / value)


def string_from_config(section: dict[str, Any], base_dir: Path) -> StringAdapter:
    """``[string]`` section: links, info, aliases (paths relative to base_dir), min_score, alias_sources."""
    links = _path(section, "links", base_dir)
    if links is None:
        raise UserError("[string] needs 'links' (a protein.links or protein.links.detailed file)")
    return StringAdapter(
        links,
        info=_path(section, "info", base_dir),
        aliases=_path(section, "aliases", base_dir),
        min_score=int(section.get("min_score", DEFAULT_MIN_SCORE)),
        alias_sources=section.get("alias_sources", DEFAULT_ALIAS_SOURCES),
    )


def pairs_from_config(section: dict[str, Any], base_dir: Path) -> SymbolPairAdapter:
    """``[ppi]``-style section: path, source, symbol_columns, list_columns, pubmed_column."""
    path = _path(section, "path", base_dir)
    if path is None:
        raise UserError("a symbol-pair section needs 'path'")
    return SymbolPairAdapter(
        path,
        source=section.get("source", "ppi"),
        symbol_columns=section.get("symbol_columns"),
        list_columns=section.get("list_columns"),
        pubmed_column=section.get("pubmed_column", "pubmed"),
    )


def from_config(section: dict[str, Any], base_dir: Path) -> StringAdapter | SymbolPairAdapter:
    """A section with ``links`` is STRING; one with ``path`` is a symbol-pair table."""
    if "links" in section:
        return string_from_config(section, base_dir)
    return pairs_from_config(section, base_dir)


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg ingest string`` and ``moakg ingest ppi``."""

    @app.command("string")
    def ingest_string(
        links: Annotated[Path, typer.Argument(help="STRING protein.links[.detailed] (gz or plain).")],
        info: Annotated[
            Path | None, typer.Option(help="STRING protein.info: its preferred_name is the gene symbol.")
        ] = None,
        aliases: Annotated[
            Path | None, typer.Option(help="STRING protein.aliases: symbols protein.info lacks.")
        ] = None,
        min_score: Annotated[
            int, typer.Option(help="Keep links with combined_score >= this (STRING's 0-1000 scale).")
        ] = DEFAULT_MIN_SCORE,
    ) -> None:
        """Load STRING links above a score threshold as one INTERACTS_WITH per gene pair."""
        run_adapter_cli(
            lambda: StringAdapter(links, info=info, aliases=aliases, min_score=min_score, progress=True)
        )

    @app.command("ppi")
    def ingest_pairs(
        path: Annotated[Path, typer.Argument(help="Tab-separated table of interacting gene-symbol pairs.")],
        source: Annotated[
            str, typer.Option(help="Source name stamped on the edges: letters, digits, '_', '-', '.' "
                                   "(e.g. HI-II-14, HuRI.v2).")
        ] = "ppi",
        symbol_columns: Annotated[
            str | None,
            typer.Option(help="The two symbol columns, comma-separated (default: source_symbol,target_symbol "
                              "when present, else the first two columns)."),
        ] = None,
    ) -> None:
        """Load a symbol-pair interaction table as one INTERACTS_WITH per gene pair."""
        cols = symbol_columns.split(",") if symbol_columns else None
        run_adapter_cli(lambda: SymbolPairAdapter(path, source=source, symbol_columns=cols))
