"""Compound identity across sources: the same structure is the same compound.

RDKit parses SMILES (CXSMILES suffixes included) or InChI, keeps the largest organic fragment (drops
salts and solvents), neutralises it, and computes the standard InChIKey; Compound nodes are merged on it
(``Compound.id`` = InChIKey). Where no structure parses, :class:`CompoundIndex` resolves a compound
against compounds already known, in decreasing strength, and records the level on the node as
``match_level``:

* ``inchikey``: full InChIKey equal;
* ``inchikey_connectivity``: only the first (connectivity) block equal, e.g. another stereo or
  isotope form, used only when exactly one known compound has that block;
* ``name``: a name-only fallback for a compound without any structure, used only when exactly one
  known compound has that normalised name. A compound *with* an InChIKey is never merged on a name.

Anything else becomes its own node keyed ``<source>:<source id>`` (``match_level = 'none'``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rdkit import Chem, RDLogger
from rdkit.Chem.MolStandardize import rdMolStandardize

RDLogger.DisableLog("rdApp.*")  # unparseable structures are counted and reported by the adapters

INCHIKEY_RE = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
_fragment_chooser = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
# A salt's organic ion ('C(=O)[O-].[Na+]') is the parent compound: neutralise it after the fragment
# choice, or the InChIKey's protonation flag (-M vs -N) would split one drug into two nodes.
_uncharger = rdMolStandardize.Uncharger()


def normalise_inchikey(value: str | None) -> str | None:
    """'InChIKey=XXXX-...' or 'XXXX-...' to the bare key; None when it is not a well-formed key."""
    if not value:
        return None
    v = value.strip().removeprefix("InChIKey=").strip().upper()
    return v if INCHIKEY_RE.match(v) else None


def normalise_name(name: str | None) -> str | None:
    if not name:
        return None
    n = re.sub(r"[\s_]+", " ", name.strip().lower())
    return n or None


_smiles_params = Chem.SmilesParserParams()
# ChemAxon writes CXSMILES extensions RDKit does not know (e.g. THB: blocks in Hub SMILES);
# they carry no constitution, so parse the SMILES and ignore what the extension cannot give.
_smiles_params.strictCXSMILES = False


@lru_cache(maxsize=200_000)
def _mol_from(smiles: str | None, inchi: str | None) -> Chem.Mol | None:
    mol = None
    if smiles and smiles.strip() and smiles.strip() not in {"-666", "-", "NA", "nan"}:
        mol = Chem.MolFromSmiles(smiles.strip(), _smiles_params)
    if mol is None and inchi and inchi.strip().startswith("InChI="):
        mol = Chem.MolFromInchi(inchi.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return _uncharger.uncharge(_fragment_chooser.choose(mol))


def structure_inchikey(smiles: str | None = None, inchi: str | None = None) -> str | None:
    """InChIKey of the largest organic fragment of a SMILES (preferred) or InChI; None if unparseable."""
    mol = _mol_from(smiles, inchi)
    if mol is None:
        return None
    key = Chem.MolToInchiKey(mol)
    return key or None


def canonical_smiles(smiles: str | None = None, inchi: str | None = None) -> str | None:
    mol = _mol_from(smiles, inchi)
    return Chem.MolToSmiles(mol) if mol is not None else None


@dataclass(frozen=True)
class CompoundIdentity:
    """Where a source compound lands: the node key, how it was matched, and what identifies it.

    ``inchikey`` is set only when the node is keyed by it; ``source_key`` is the compound's own key
    (structure or given), kept as an alias when the node has another key (connectivity match).
    """

    id: str
    inchikey: str | None
    match_level: str
    structure_parsed: bool
    source_ref: str = ""
    source_key: str | None = None

    def node_props(self, source: str) -> dict[str, object]:
        """Key, InChIKey, ``match_<source>`` and the aliases that let a re-run land on the same node.

        ``source_ids`` and ``inchikey_aliases`` are list properties the writer unions across sources
        (see ``moakg.kg.schema.UNION_LIST_PROPS``).
        """
        return {
            "id": self.id,
            "inchikey": self.inchikey,
            "inchikey_block1": self.inchikey.split("-")[0] if self.inchikey else None,
            f"match_{source}": self.match_level,
            "source_ids": [self.source_ref] if self.source_ref else None,
            "inchikey_aliases": [self.source_key] if self.source_key and self.source_key != self.id else None,
        }


class CompoundIndex:
    """Known compounds (from earlier sources or the graph) for the connectivity and name fallbacks."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._by_block1: dict[str, set[str]] = defaultdict(set)
        self._by_name: dict[str, set[str]] = defaultdict(set)
        self._sources: dict[str, set[str]] = defaultdict(set)
        self._by_alias_key: dict[str, str] = {}
        self._by_ref: dict[str, str] = {}

    def add(
        self,
        compound_id: str,
        inchikey: str | None = None,
        names: Iterable[str | None] = (),
        sources: Iterable[str] = (),
        source_refs: Iterable[str] = (),
        alias_keys: Iterable[str] = (),
    ) -> None:
        self._ids.add(compound_id)
        self._sources[compound_id].update(sources)
        if inchikey:
            self._by_block1[inchikey.split("-")[0]].add(compound_id)
        for n in names:
            if (nn := normalise_name(n)) is not None:
                self._by_name[nn].add(compound_id)
        for ref in source_refs:
            self._by_ref.setdefault(ref, compound_id)
        for key in alias_keys:
            if key != compound_id:
                self._by_alias_key.setdefault(key, compound_id)

    @classmethod
    def from_graph(cls, conn: object) -> CompoundIndex:
        """Load every Compound's id, InChIKey, names, sources and aliases from Neo4j."""
        from moakg.kg.queries import load_query

        idx = cls()
        for row in conn.query(load_query("internal_compound_index").text):  # type: ignore[attr-defined]
            idx.add(
                row["id"], row["inchikey"], row["names"], row["sources"], row["source_ids"], row["aliases"]
            )
        return idx

    def __contains__(self, compound_id: str) -> bool:
        return compound_id in self._ids

    def resolve(
        self,
        source: str,
        source_id: str,
        smiles: str | None = None,
        inchi: str | None = None,
        inchikey: str | None = None,
        name: str | None = None,
    ) -> CompoundIdentity:
        """Find the node for one source compound, adding it to the index.

        Order: full InChIKey (structure first, else the source's own key) or an alias key already
        matched to a node; the node this source record landed on before (a re-run); the
        connectivity block; the name (compounds without any key only); else a node of its own.
        """
        key = structure_inchikey(smiles, inchi)
        parsed = key is not None
        if key is None:
            # No structure, or one RDKit cannot parse: the source's InChIKey is the next best thing.
            key = normalise_inchikey(inchikey)
        ref = f"{source}:{source_id}"
        ident = self._match(source, ref, key, name, parsed)
        self.add(ident.id, ident.inchikey, [name], [source], [ref], [key] if key else [])
        return ident

    def _match(
        self, source: str, ref: str, key: str | None, name: str | None, parsed: bool
    ) -> CompoundIdentity:
        def found(node_id: str, level: str) -> CompoundIdentity:
            return CompoundIdentity(node_id, node_id if node_id == key else None, level, parsed, ref, key)

        if key is not None and key in self._ids:
            return found(key, "inchikey")
        if key is not None and key in self._by_alias_key:
            return found(self._by_alias_key[key], "inchikey_connectivity")
        if ref in self._by_ref:  # a re-run: the node this record landed on before
            node = self._by_ref[ref]
            if key is not None:
                return found(node, "inchikey_connectivity")
            return found(node, "none" if node == ref else "name")
        if key is not None:
            # Only against other sources: two keys from one source are two compounds (e.g. enantiomers).
            same = self._by_block1.get(key.split("-")[0], set())
            block = {c for c in same if source not in self._sources[c]}
            if len(block) == 1:
                return found(next(iter(block)), "inchikey_connectivity")
            return found(key, "inchikey")
        nn = normalise_name(name)
        named = {c for c in self._by_name.get(nn, set()) if source not in self._sources[c]} if nn else set()
        if len(named) == 1:
            return found(next(iter(named)), "name")
        return found(ref, "none")
