"""Compound identity that does not depend on ingest order.

Each compound source places its records on nodes as it ingests
(:class:`~moakg.ingest.compounds.CompoundIndex`: same InChIKey, an alias key, or the node the record
landed on before). What links records of
*different* sources is decided here, after every compound ingest, over the whole graph, as a function of
the set of compounds rather than of the order they came in:

1. ``inchikey``: two nodes sharing a full InChIKey (key, ``inchikey`` or ``inchikey_aliases``);
2. ``pert_id``: sharing a LINCS pert_id (``pert_id``, ``pert_ids``, a ``lincs:<pert_id>`` source record;
   the Repurposing Hub's ``broad_id[:13]`` is one);
3. ``drugbank_id``: sharing a DrugBank id (``drugbank_id``, ``drugbank_ids``, a ``drugbank:<id>`` record);
4. ``inchikey_connectivity``: InChIKeys of two different sources with the same first (connectivity)
   block, when each of the two sources has exactly one InChIKey in that block (another stereo or
   isotope form of the same drug; two keys of one source in a block are two compounds, e.g.
   enantiomers, and then the block links nothing). Which source gave which key is kept in
   ``source_keys`` (``<source>|<InChIKey>``);
5. ``name``: a compound with no InChIKey at all and the one compound with an InChIKey carrying its
   normalised name (e.g. a second LINCS pert_id of a drug the Hub knows), or, when no compound with
   an InChIKey has the name, the one compound of other sources that does (a name never merges two
   InChIKeys).

Nodes linked by 1-4 (transitively), then 5, become one node, keyed by the smallest InChIKey among them
(the others stay as ``inchikey_aliases``; ``smiles`` is the structure behind that key, see
:func:`chosen_smiles`), or by the smallest source key (``lincs:BRD-...``) when none has
one: a node a source created from an id alone (``drugbank:DB00001``) is re-keyed once a later source
knows its structure, keeping its relationships. Because every rule reads only the union of what the
sources said, any order of whole-source ingests ends in the same nodes with the same keys. Rules 4 and 5
count "exactly one" among the sources ingested so far, so a third source adding a second key to a block
(or a second compound with a name) after a merge does not split it again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scipy.cluster.hierarchy import DisjointSet

from moakg.ingest.compounds import INCHIKEY_RE, normalise_inchikey, normalise_name
from moakg.kg.connection import Neo4jConnection
from moakg.kg.node_merge import NodeMerge, merge_nodes
from moakg.kg.schema import current_schema


def _merge_all(uf: DisjointSet, members: Sequence[int]) -> None:
    for m in members[1:]:
        uf.merge(members[0], m)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _refs(props: Mapping[str, Any], source: str) -> set[str]:
    prefix = f"{source}:"
    return {r[len(prefix):] for r in _as_list(props.get("source_ids")) if str(r).startswith(prefix)}


def inchikeys(props: Mapping[str, Any]) -> set[str]:
    keys = {normalise_inchikey(str(v)) for v in [props.get("id"), props.get("inchikey"),
                                                 *_as_list(props.get("inchikey_aliases"))] if v}
    return {k for k in keys if k}


def pert_ids(props: Mapping[str, Any]) -> set[str]:
    ids = [props.get("pert_id"), *_as_list(props.get("pert_ids")), *_refs(props, "lincs")]
    return {str(p)[:13] for p in ids if p and str(p).startswith("BRD-")}


def drugbank_ids(props: Mapping[str, Any]) -> set[str]:
    ids = [props.get("drugbank_id"), *_as_list(props.get("drugbank_ids")), *_refs(props, "drugbank")]
    return {str(d) for d in ids if d}


def source_keys(props: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(source, InChIKey) pairs: which source gave which key (``source_keys``)."""
    out = set()
    for item in _as_list(props.get("source_keys")):
        source, _, key = str(item).partition("|")
        if INCHIKEY_RE.match(key):
            out.add((source, key))
    return out


def chosen_smiles(props: Mapping[str, Any], key: str) -> str | None:
    """The SMILES a node keyed ``key`` shows: the (smallest) SMILES behind ``key`` itself in
    ``source_smiles``, else the smallest one there, else the ``smiles`` it has. Without this the last
    source to write would decide, e.g. a stereo form's SMILES on a node keyed by the flat one, and
    with it the Murcko scaffold a split groups the compound by."""
    pairs = [str(v).partition("|")[::2] for v in _as_list(props.get("source_smiles"))]
    mine = sorted(smi for k, smi in pairs if k == key and smi)
    if mine:
        return mine[0]
    others = sorted(smi for _, smi in pairs if smi)
    return others[0] if others else props.get("smiles")


def names(props: Mapping[str, Any]) -> set[str]:
    raw = [props.get("name"), *_as_list(props.get("synonyms"))]
    return {n for n in (normalise_name(str(r)) for r in raw if r) if n}


def clusters(nodes: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Groups of node indices (rules 1-5 of the module doc), each sorted, singletons included."""
    # scipy's union-find: groups are the connected components of the evidence
    uf = DisjointSet(range(len(nodes)))
    for evidence in (inchikeys, pert_ids, drugbank_ids):
        holders: dict[str, list[int]] = defaultdict(list)
        for i, props in enumerate(nodes):
            for value in evidence(props):
                holders[value].append(i)
        for members in holders.values():
            _merge_all(uf, members)

    # 4: per connectivity block, per source, its keys; link keys of sources with one key each.
    by_block: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    node_of_key: dict[str, int] = {}
    for i, props in enumerate(nodes):
        for source, key in source_keys(props):
            by_block[key[:14]][source].add(key)
        for key in inchikeys(props):
            node_of_key.setdefault(key, i)
    for per_source in by_block.values():
        single = [next(iter(keys)) for keys in per_source.values() if len(keys) == 1]
        _merge_all(uf, [node_of_key[k] for k in single if k in node_of_key])

    # 5: a compound without any InChIKey joins the one group of other sources that has its name.
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(nodes)):
        groups[uf[i]].append(i)
    group_names: dict[str, set[int]] = defaultdict(set)
    group_sources = {g: {s for i in ms for s in _as_list(nodes[i].get("sources"))}
                     for g, ms in groups.items()}
    for g, members in groups.items():
        for i in members:
            for n in names(nodes[i]):
                group_names[n].add(g)
    keyed = {g for g, members in groups.items() if any(inchikeys(nodes[i]) for i in members)}
    for g, members in groups.items():
        if g in keyed:
            continue
        named = {h for i in members for n in names(nodes[i]) for h in group_names[n] if h != g}
        found = named & keyed or {h for h in named if not (group_sources[h] & group_sources[g])}
        if len(found) == 1:
            uf.merge(g, next(iter(found)))

    out: dict[int, list[int]] = defaultdict(list)
    for i in range(len(nodes)):
        out[uf[i]].append(i)
    return [sorted(m) for m in out.values()]


def _rule(props: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> str:
    """The strongest rule linking one node to the rest of its group (for ``match_<source>``)."""
    for rule, evidence in (("inchikey", inchikeys), ("pert_id", pert_ids), ("drugbank_id", drugbank_ids)):
        mine = evidence(props)
        if any(mine & evidence(o) for o in others):
            return rule
    blocks = {k[:14] for k in inchikeys(props)}
    if blocks and any(blocks & {k[:14] for k in inchikeys(o)} for o in others):
        return "inchikey_connectivity"
    return "name"


def merged_props(group: Sequence[Mapping[str, Any]], key: str, union_lists: Iterable[str]) -> dict[str, Any]:
    """The properties of one group's node: unions of the list properties, the first non-null scalar
    (nodes in key order: the node already keyed ``key`` first), the new key, InChIKey and aliases."""
    ordered = sorted(group, key=lambda p: (p.get("id") != key, str(p.get("id"))))
    lists = set(union_lists) | {"sources"}
    out: dict[str, Any] = {}
    for props in ordered:
        for name, value in props.items():
            if value is None:
                continue
            if name in lists:
                out[name] = sorted(set(_as_list(out.get(name))) | {str(v) for v in _as_list(value)})
            else:
                out.setdefault(name, value)
    keys = set().union(*(inchikeys(p) for p in group))
    is_key = INCHIKEY_RE.match(key) is not None
    out["id"] = key
    for name in ("inchikey", "inchikey_block1"):
        out.pop(name, None)
    if is_key:
        out["inchikey"], out["inchikey_block1"] = key, key[:14]
    smiles = chosen_smiles(out, key)
    if smiles is not None:
        out["smiles"] = smiles
    aliases = sorted(keys - {key})
    if aliases:
        out["inchikey_aliases"] = aliases
    else:
        out.pop("inchikey_aliases", None)
    first = ordered[0]
    for props in ordered[1:]:  # how each absorbed node's sources were matched, unless the kept node says
        rule = _rule(props, [p for p in ordered if p is not props])
        for source in _as_list(props.get("sources")):
            if first.get(f"match_{source}") is None:
                out[f"match_{source}"] = rule
    return out


def plan(nodes: Sequence[Mapping[str, Any]]) -> list[NodeMerge]:
    """The merges and re-keys that make ``nodes`` (every Compound's properties) one node per compound."""
    union_lists = current_schema().union_lists.get("Compound", ())
    merges = []
    for members in clusters(nodes):
        group = [nodes[i] for i in members]
        keys = sorted(set().union(*(inchikeys(p) for p in group)))
        key = keys[0] if keys else min(str(p["id"]) for p in group)
        ids = sorted(str(p["id"]) for p in group)
        if (len(group) == 1 and ids[0] == key and (not keys or group[0].get("inchikey") == key)
                and chosen_smiles(group[0], key) == group[0].get("smiles")):
            continue
        keep = key if key in ids else ids[0]
        merges.append(NodeMerge(keep, merged_props(group, key, union_lists),
                                tuple(i for i in ids if i != keep)))
    return merges


def resolve_compound_identities(conn: Neo4jConnection) -> dict[str, int]:
    """Merge and re-key the graph's compounds (rules of the module doc), in one transaction.

    Returns ``compounds_merged`` (nodes absorbed into another), ``compounds_rekeyed`` and
    ``compound_rels_moved``; nothing happens (all zeros) when every compound is already one node with
    its canonical key, so running it again is a no-op.
    """
    from moakg.kg.queries import load_query

    nodes = [r["props"] for r in conn.query(load_query("internal_compound_nodes").text)]
    merges = plan(nodes)
    counts = merge_nodes(conn, "Compound", merges)
    return {"compounds_merged": counts["nodes_absorbed"],
            "compounds_rekeyed": sum(1 for m in merges if m.keep != m.props["id"]),
            "compound_rels_moved": counts["rels_moved"]}
