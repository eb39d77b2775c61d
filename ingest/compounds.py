"""Compound identity across sources: the same structure is the same compound.

RDKit parses SMILES (CXSMILES suffixes included) or InChI, keeps the largest organic fragment (drops
salts and solvents), and computes the standard InChIKey; Compound nodes are merged on it
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


@lru_cache(maxsize=200_000)
def _mol_from(smiles: str | None, inchi: str | None) -> Chem.Mol | None:
    mol = None
    if smiles and smiles.strip() and smiles.strip() not in {"-666", "-", "NA", "nan"}:
        mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None and inchi and inchi.strip().startswith("InChI="):
        mol = Chem.MolFromInchi(inchi.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return _fragment_chooser.choose(mol)


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
    """Where a source compound lands: the node key, its InChIKey (if any) and how it was matched."""

    id: str
    inchikey: str | None
    match_level: str
    structure_parsed: bool

    def node_props(self, source: str) -> dict[str, str | None]:
        """Key, InChIKey and ``match_<source>`` (the level at which this source matched the node)."""
        return {
            "id": self.id,
            "inchikey": self.inchikey,
            "inchikey_block1": self.inchikey.split("-")[0] if self.inchikey else None,
            f"match_{source}": self.match_level,
        }


class CompoundIndex:
    """Known compounds (from earlier sources or the graph) for the connectivity and name fallbacks."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._by_block1: dict[str, set[str]] = defaultdict(set)
        self._by_name: dict[str, set[str]] = defaultdict(set)
        self._sources: dict[str, set[str]] = defaultdict(set)

    def add(
        self,
        compound_id: str,
        inchikey: str | None = None,
        names: Iterable[str | None] = (),
        sources: Iterable[str] = (),
    ) -> None:
        self._ids.add(compound_id)
        self._sources[compound_id].update(sources)
        if inchikey:
            self._by_block1[inchikey.split("-")[0]].add(compound_id)
        for n in names:
            if (nn := normalise_name(n)) is not None:
                self._by_name[nn].add(compound_id)

    @classmethod
    def from_graph(cls, conn: object) -> CompoundIndex:
        """Load every Compound's id, InChIKey and names from Neo4j (``conn`` is a Neo4jConnection)."""
        from moakg.kg.queries import load_query

        idx = cls()
        for row in conn.query(load_query("internal_compound_index").text):  # type: ignore[attr-defined]
            idx.add(row["id"], row["inchikey"], row["names"] or [], row["sources"] or [])
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
        """Find the node for one source compound, adding it to the index."""
        key = structure_inchikey(smiles, inchi)
        parsed = key is not None
        if key is None and not (smiles or inchi):
            # No structure given at all: a well-formed InChIKey from the source is the next best thing.
            key = normalise_inchikey(inchikey)
        if key is not None:
            if key in self._ids:
                ident = CompoundIdentity(key, key, "inchikey", parsed)
            else:
                # Only against other sources: two keys from one source are two compounds (e.g. enantiomers).
                same_block = {
                    c for c in self._by_block1.get(key.split("-")[0], set()) if source not in self._sources[c]
                }
                if len(same_block) == 1:
                    (other,) = same_block
                    ident = CompoundIdentity(other, None, "inchikey_connectivity", parsed)
                else:
                    ident = CompoundIdentity(key, key, "inchikey", parsed)
            self.add(ident.id, key, [name], [source])
            return ident
        nn = normalise_name(name)
        candidates = (
            {c for c in self._by_name.get(nn, set()) if source not in self._sources[c]} if nn else set()
        )
        if len(candidates) == 1:
            (other,) = candidates
            ident = CompoundIdentity(other, None, "name", False)
        else:
            ident = CompoundIdentity(f"{source}:{source_id}", None, "none", False)
        self.add(ident.id, None, [name], [source])
        return ident
