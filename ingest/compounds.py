"""Compound identity across sources: the same structure is the same compound.

RDKit parses SMILES (CXSMILES suffixes included) or InChI, keeps the largest organic fragment (drops
salts and solvents), neutralises it, and computes the standard InChIKey; Compound nodes are merged on it
(``Compound.id`` = InChIKey). :class:`CompoundIndex` places each source record on a node while the
source is ingested, recording how on the node as ``match_<source>``:

* ``inchikey``: its full InChIKey (from the structure, else the source's own key) is a node's key or alias;
* ``source_id``: its source record (``drugbank:DB00001``) is on a node keyed otherwise, e.g. one a
  consensus matrix created from the DrugBank id alone and a later source re-keyed by its structure;
* ``none``: a node of its own, keyed by the InChIKey or, without one, ``<source>:<source id>``.

Links between sources that need more than that (a shared LINCS pert_id or DrugBank id, another stereo
form of the same connectivity, a name for a compound without structure) are made after each ingest over
the whole graph by :mod:`moakg.ingest.identity`, which also re-keys merged nodes, so the graph does not
depend on the order of ingests; it records ``pert_id``, ``drugbank_id``, ``inchikey_connectivity`` or
``name`` as the absorbed sources' ``match_<source>``.
"""

from __future__ import annotations

import re
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

        ``source_ids``, ``inchikey_aliases`` and ``source_keys`` (``<source>|<InChIKey>``: which source
        gave which key, for :mod:`moakg.ingest.identity`) are list properties the writer unions across
        sources (see ``moakg.kg.schema.UNION_LIST_PROPS``).
        """
        return {
            "id": self.id,
            "inchikey": self.inchikey,
            "inchikey_block1": self.inchikey.split("-")[0] if self.inchikey else None,
            f"match_{source}": self.match_level,
            "source_ids": [self.source_ref] if self.source_ref else None,
            "inchikey_aliases": [self.source_key] if self.source_key and self.source_key != self.id else None,
            "source_keys": [f"{source}|{self.source_key}"] if self.source_key else None,
        }


    def smiles_props(self, smiles: str | None) -> dict[str, object]:
        """``smiles`` and ``source_smiles`` (``<InChIKey>|<SMILES>``: the structure behind each key, so
        that :mod:`moakg.ingest.identity` can give a node the SMILES of its own key whichever source
        wrote last)."""
        if not smiles:
            return {}
        keyed = [f"{self.source_key}|{smiles}"] if self.source_key else None
        return {"smiles": smiles, "source_smiles": keyed}


class CompoundIndex:
    """Compounds already known (from earlier sources or the graph), to place a source's records on them.

    Only exact evidence places a record on an existing node here: its InChIKey (as a key or an alias),
    or its own source record (``<source>:<id>``) on a node it or another source wrote before. Everything
    that links different sources less directly is decided after the ingest, over the whole graph, by
    :mod:`moakg.ingest.identity`, so that it does not depend on ingest order.
    """

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._by_alias_key: dict[str, str] = {}
        self._by_ref: dict[str, str] = {}

    def add(self, compound_id: str, source_refs: Iterable[str] = (), alias_keys: Iterable[str] = ()) -> None:
        self._ids.add(compound_id)
        for ref in source_refs:
            self._by_ref.setdefault(ref, compound_id)
        for key in alias_keys:
            if key != compound_id:
                self._by_alias_key.setdefault(key, compound_id)

    @classmethod
    def from_graph(cls, conn: object) -> CompoundIndex:
        """Load every Compound's id, source records and InChIKey aliases from Neo4j."""
        from moakg.kg.queries import load_query

        idx = cls()
        for row in conn.query(load_query("internal_compound_index").text):  # type: ignore[attr-defined]
            idx.add(row["id"], row["source_ids"], row["aliases"])
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
    ) -> CompoundIdentity:
        """Find the node for one source compound, adding it to the index.

        Order: full InChIKey (structure first, else the source's own key) as a node key or an alias;
        the node this source record landed on before (a re-run, or a node another source created from
        the same id); else a node of its own, keyed by the InChIKey or ``<source>:<source id>``.
        """
        key = structure_inchikey(smiles, inchi)
        parsed = key is not None
        if key is None:
            # No structure, or one RDKit cannot parse: the source's InChIKey is the next best thing.
            key = normalise_inchikey(inchikey)
        ref = f"{source}:{source_id}"
        ident = self._match(ref, key, parsed)
        self.add(ident.id, [ref], [key] if key else [])
        return ident

    def _match(self, ref: str, key: str | None, parsed: bool) -> CompoundIdentity:
        def found(node_id: str, level: str) -> CompoundIdentity:
            return CompoundIdentity(node_id, node_id if node_id == key else None, level, parsed, ref, key)

        if key is not None and key in self._ids:
            return found(key, "inchikey")
        if key is not None and key in self._by_alias_key:
            node = self._by_alias_key[key]
            if node != key and INCHIKEY_RE.match(node) and self._by_ref.get(ref) == node:
                # This very record again (a re-run, e.g. after a crash), whose compound identity
                # resolution merged into the node of another InChIKey (another stereo form, a shared id):
                # placed as the first run placed it, on a node of its own key, which resolution then
                # merges the same way. Landing on the merged node instead would overwrite the name, the
                # stamps and the match level that the merge gave it with this record's own.
                return found(key, "inchikey")
            return found(node, "inchikey")
        if ref in self._by_ref:  # a re-run, or a node another source created from this record's id
            node = self._by_ref[ref]
            return found(node, "source_id" if node != ref else "none")
        # Connectivity-block and name matches are not made here, record by record, where the outcome
        # would depend on which source came first: moakg.ingest.identity makes them after the ingest,
        # over the whole graph.
        return found(key, "inchikey") if key is not None else found(ref, "none")
