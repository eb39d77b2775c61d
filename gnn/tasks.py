"""Learning tasks on the exported graph: MoA classification, target prediction, signature-level MoA.

A task is the message-passing graph plus labels plus a split. Labels never travel as messages: every
Compound-MoA edge is removed from ``task.graph``, and so are the held-out Compound-Gene (TARGETS) edges
that are predicted. :func:`assert_no_leakage` checks this pair by pair, in both directions.

The MoA classes are chosen on the training part of the split only (a class needs ``min_per_class``
*training* compounds): counting over every compound would let the test compounds decide which classes
exist, and keep classes that training barely sees. So the split is made first, over every compound with
any MoA label, and the compounds left without a kept class then leave train, val and test.

Settings:
    ``'phenotype'``: held-out compounds come with structure and signatures only; their TARGETS edges
        are removed (the cold-start question: what does this new compound do?).
    ``'known_targets'``: held-out compounds keep their known targets. For :class:`MoATask` all TARGETS
        stay; for :class:`TargetTask` each held-out compound keeps a seeded random ``known_frac`` of its
        targets (at least one target is always held out) and the rest are predicted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.errors import UserError
from moakg.gnn.splits import (
    Split,
    cell_line_split,
    cluster_split,
    random_split,
    record_cell_lines,
    restrict,
    scaffold_split,
)
from moakg.kg.schema import edge_type

SETTINGS = ("phenotype", "known_targets")
COMPOUND, GENE, MOA, SIGNATURE, CELL = "Compound", "Gene", "MoA", "Signature", "CellLine"


@dataclass
class MoATask:
    """Multi-label MoA classification of compounds.

    Attributes:
        graph: message-passing graph (no Compound-MoA edge at all; ``'phenotype'``: no TARGETS of
            val/test compounds).
        y: float ``[n_compounds, n_classes]`` multi-hot labels among ``classes`` (all compounds; rows
            outside the split are all zero).
        labelled: bool ``[n_compounds]``: at least one label among ``classes``; exactly the compounds
            of the split.
        classes: MoA keys with ``>= min_per_class`` compounds in the training part of ``split``.
        split: made over every compound with an MoA label, then restricted to ``labelled``
            (``meta['n_dropped_no_class']``: ``[train, val, test]`` compounds removed).
        setting: ``'phenotype'`` or ``'known_targets'``.
        class_nodes: long ``[n_classes]`` MoA node index of each class.
    """

    graph: HeteroData
    y: Tensor
    labelled: Tensor
    classes: list[str]
    split: Split
    setting: str
    class_nodes: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))


@dataclass
class TargetTask:
    """Compound -> Gene target (link) prediction.

    Attributes:
        graph: message-passing graph without the val/test TARGETS pairs (and without Compound-MoA edges).
        pos: ``'train' | 'val' | 'test'`` -> long ``[2, E]`` (compound index, gene index) true pairs,
            deduplicated over sources. ``'train'`` holds every pair visible in ``graph`` (in
            ``'known_targets'`` that includes the kept targets of val/test compounds), so it is also the
            filter of the filtered ranking.
        n_genes: number of Gene nodes (the candidate set).
        split: over compounds with at least one target.
        setting: ``'phenotype'`` or ``'known_targets'``.
        moa: float ``[n_compounds, n_moa]`` multi-hot MoAs of every compound outside val/test (an input
            of the MoA-mediated target vote, :mod:`moakg.gnn.link_vote`); a held-out compound's row is
            zero, its MoA is no more known than its targets.
    """

    graph: HeteroData
    pos: dict[str, Tensor]
    n_genes: int
    split: Split
    setting: str
    moa: Tensor | None = None


@dataclass
class SignatureTask:
    """Signature-level MoA classification (a signature's labels are its compound's MoAs).

    Attributes:
        graph: no Compound-MoA edges; the HAS_SIGNATURE edges of val/test signatures are removed, so a
            held-out profile cannot look up its compound (whose training signatures carry the same
            labels) and must be classified from the profile itself.
        y: float ``[n_signatures, n_classes]``; labelled: bool ``[n_signatures]``.
        compound: long ``[n_signatures]`` compound index of each signature (``-1`` if none).
        classes: MoA keys with ``>= min_per_class`` compounds among the training signatures' compounds.
        split: ``'cell_line'`` (test cell lines unseen in training) or ``'random'``, made over the
            signatures of compounds with an MoA label, then restricted to ``labelled``.
    """

    graph: HeteroData
    y: Tensor
    labelled: Tensor
    classes: list[str]
    split: Split
    setting: str
    compound: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))


# --------------------------------------------------------------------------------------------- graph edits
def edge_types_between(graph: HeteroData, a: str, b: str, relations: Sequence[str] | None = None
                       ) -> list[tuple[str, str, str]]:
    """Every edge type from ``a`` to ``b`` or from ``b`` to ``a`` (reverses included), of any relation
    name or only of ``relations``."""
    return [et for et in graph.edge_types if {et[0], et[2]} == {a, b} and (a != b or et[0] == et[2])
            and (relations is None or et[1] in relations)]


def target_relations() -> tuple[str, str]:
    """The relation names of the target labels, TARGETS and its reverse. The other Compound-Gene
    relations (MIMICS / OPPOSES, derived from the compound's own signature) are phenotype, not labels:
    held-out compounds keep them, as training compounds do."""
    forward = edge_type("TARGETS")
    return forward[1], edge_type("TARGETS", reverse=True)[1]


def drop_edges(graph: HeteroData, edge_type: tuple[str, str, str], drop: Tensor) -> None:
    """Remove the edges where bool ``drop`` ``[E]`` is true, with every per-edge attribute, in place."""
    store = graph[edge_type]
    n = store.edge_index.size(1)
    keep = ~drop
    # Decide which attributes are per-edge before edge_index shrinks (is_edge_attr compares sizes).
    per_edge = [key for key, value in store.items() if isinstance(value, Tensor) and key != "edge_index"
                and value.dim() > 0 and value.size(0) == n]
    store.edge_index = store.edge_index[:, keep]
    for key in per_edge:
        store[key] = store[key][keep]


def _endpoint(graph_et: tuple[str, str, str], node_type: str, edge_index: Tensor) -> tuple[Tensor, Tensor]:
    """(``node_type`` side, other side) of ``edge_index`` ``[2, E]``."""
    return (edge_index[0], edge_index[1]) if graph_et[0] == node_type else (edge_index[1], edge_index[0])


def drop_incident(graph: HeteroData, a: str, b: str, nodes_a: Tensor | None = None,
                  pairs: Tensor | None = None, n_b: int | None = None,
                  relations: Sequence[str] | None = None) -> int:
    """Remove ``a``-``b`` edges in both directions; returns how many were removed.

    Args:
        nodes_a: bool ``[n_a]``: remove every edge touching these ``a`` nodes (``None``: all nodes).
        pairs: long ``[2, P]`` (``a`` index, ``b`` index): remove only these pairs (needs ``n_b``).
        relations: only edges of these relation names (``None``: every relation between ``a`` and ``b``).
    """
    removed = 0
    codes = None if pairs is None else torch.unique(pairs[0] * n_b + pairs[1])
    for et in edge_types_between(graph, a, b, relations):
        ei = graph[et].edge_index
        ia, ib = _endpoint(et, a, ei)
        drop = torch.ones(ei.size(1), dtype=torch.bool)
        if nodes_a is not None:
            drop &= nodes_a[ia]
        if codes is not None:
            drop &= torch.isin(ia * n_b + ib, codes)
        removed += int(drop.sum())
        drop_edges(graph, et, drop)
    return removed


def _mask(n: int, *idx: Tensor) -> Tensor:
    m = torch.zeros(n, dtype=torch.bool)
    for i in idx:
        m[i] = True
    return m


def _copy_graph(data: HeteroData) -> HeteroData:
    # A shallow copy has its own storages, so replacing an edge_index never touches the caller's data.
    return copy.copy(data)


# --------------------------------------------------------------------------------------------- labels
def _pairs(data: HeteroData, rel: str) -> Tensor:
    """Deduplicated long ``[2, E]`` (start, end) pairs of the relationship ``rel`` (e.g. TARGETS:
    compound, gene)."""
    et = edge_type(rel)
    if et not in data.edge_types:
        return torch.empty(2, 0, dtype=torch.long)
    ei = data[et].edge_index
    n_dst = data[et[2]].num_nodes
    codes = torch.unique(ei[0] * n_dst + ei[1])
    return torch.stack([codes // n_dst, codes % n_dst])


def moa_labels(data: HeteroData, maps: Any, min_per_class: int = 5, count_over: Tensor | None = None
               ) -> tuple[Tensor, list[str], Tensor]:
    """Multi-hot MoA labels of every compound.

    Args:
        count_over: long compound indices whose labels are counted for ``min_per_class`` (the tasks pass
            the training compounds); ``None`` counts every compound.

    Returns:
        y: float ``[n_compounds, C]``; classes: MoA keys of the ``C`` classes with ``>= min_per_class``
        counted compounds; class_nodes: long ``[C]`` their MoA node indices (ascending).
    """
    pairs = _pairs(data, "HAS_MOA")
    n_moa = data[MOA].num_nodes
    counted = pairs[1] if count_over is None else pairs[1][torch.isin(pairs[0], count_over)]
    counts = torch.bincount(counted, minlength=n_moa)
    class_nodes = (counts >= min_per_class).nonzero().view(-1)
    col = torch.full((n_moa,), -1, dtype=torch.long)
    col[class_nodes] = torch.arange(class_nodes.numel())
    y = torch.zeros(data[COMPOUND].num_nodes, class_nodes.numel())
    keep = col[pairs[1]] >= 0
    y[pairs[0][keep], col[pairs[1][keep]]] = 1.0
    return y, [maps.keys[MOA][i] for i in class_nodes.tolist()], class_nodes


def _smiles(maps: Any, smiles: Sequence[str | None] | None, split: str) -> Sequence[str | None]:
    smiles = smiles if smiles is not None else getattr(maps, "smiles", None)
    if smiles is None:
        raise UserError(f"a {split} split needs compound SMILES: pass smiles=[...] aligned with "
                        "maps.keys['Compound'] (moakg.kg.lookups.compound_smiles)")
    return smiles


def make_split(items: Tensor, maps: Any, split: str, seed: int, val_frac: float, test_frac: float,
               smiles: Sequence[str | None] | None = None, cluster_threshold: float = 0.6) -> Split:
    """Compound split of ``items`` by ``split`` (``'random'``, ``'scaffold'`` or ``'cluster'``, the last
    with Butina distance threshold ``cluster_threshold``), test keys recorded."""
    if split == "random":
        s = random_split(items, seed, val_frac, test_frac)
    elif split == "scaffold":
        s = scaffold_split(items, _smiles(maps, smiles, split), seed, val_frac, test_frac)
    elif split == "cluster":
        s = cluster_split(items, _smiles(maps, smiles, split), seed, val_frac, test_frac, cluster_threshold)
    else:
        raise ValueError(f"unknown compound split {split!r} (random | scaffold | cluster)")
    s.test_keys = [maps.keys[COMPOUND][i] for i in s.test.tolist()]
    return s


def _check_setting(setting: str) -> None:
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r} ({' | '.join(SETTINGS)})")


# --------------------------------------------------------------------------------------------- tasks
def make_moa_task(data: HeteroData, maps: Any, split: str = "random", seed: int = 0, min_per_class: int = 5,
                  setting: str = "phenotype", smiles: Sequence[str | None] | None = None,
                  val_frac: float = 0.1, test_frac: float = 0.2, cluster_threshold: float = 0.6) -> MoATask:
    """MoA classification task over compounds with a label among the classes frequent in training.

    The split is made over every compound with an MoA label; the classes are those with
    ``>= min_per_class`` training compounds; compounds of any part without one of them are removed.
    """
    _check_setting(setting)
    candidates = _pairs(data, "HAS_MOA")[0].unique()
    s = make_split(candidates, maps, split, seed, val_frac, test_frac, smiles, cluster_threshold)
    y, classes, class_nodes = moa_labels(data, maps, min_per_class, count_over=s.train)
    labelled = y.sum(1) > 0
    s = restrict(s, labelled, "no_class")
    graph = _copy_graph(data)
    drop_incident(graph, COMPOUND, MOA)  # labels never message, for any compound
    if setting == "phenotype":
        drop_incident(graph, COMPOUND, GENE, nodes_a=_mask(data[COMPOUND].num_nodes, s.val, s.test),
                      relations=target_relations())
    return MoATask(graph, y, labelled, classes, s, setting, class_nodes)


def make_target_task(data: HeteroData, maps: Any, split: str = "random", seed: int = 0,
                     setting: str = "phenotype", smiles: Sequence[str | None] | None = None,
                     val_frac: float = 0.1, test_frac: float = 0.2, known_frac: float = 0.5,
                     cluster_threshold: float = 0.6) -> TargetTask:
    """Target prediction over compounds with >= 1 TARGETS edge; val/test pairs leave the graph."""
    _check_setting(setting)
    pairs = _pairs(data, "TARGETS")
    n_genes = data[GENE].num_nodes
    s = make_split(pairs[0].unique(), maps, split, seed, val_frac, test_frac, smiles, cluster_threshold)
    part = torch.zeros(data[COMPOUND].num_nodes, dtype=torch.long)  # 0 train, 1 val, 2 test
    part[s.val], part[s.test] = 1, 2
    held = part[pairs[0]] > 0
    if setting == "known_targets":
        held &= ~_kept_targets(pairs, held, known_frac, seed)
    p = part[pairs[0]]
    pos = {"train": pairs[:, ~held], "val": pairs[:, held & (p == 1)], "test": pairs[:, held & (p == 2)]}
    graph = _copy_graph(data)
    drop_incident(graph, COMPOUND, MOA)
    drop_incident(graph, COMPOUND, GENE, pairs=pairs[:, held], n_b=n_genes, relations=target_relations())
    return TargetTask(graph, pos, n_genes, s, setting, known_moas(data, torch.cat([s.val, s.test])))


def known_moas(data: HeteroData, held: Tensor) -> Tensor:
    """Float ``[n_compounds, n_moa]`` multi-hot MoAs of ``data``'s compounds, zero on the rows ``held``."""
    pairs = _pairs(data, "HAS_MOA")
    n_moa = int(data[MOA].num_nodes) if MOA in data.node_types else 0
    out = torch.zeros(data[COMPOUND].num_nodes, n_moa)
    out[pairs[0], pairs[1]] = 1.0
    out[held] = 0.0
    return out


def _kept_targets(pairs: Tensor, held: Tensor, known_frac: float, seed: int) -> Tensor:
    """bool ``[E]``: the pairs of held-out compounds that stay known (seeded; >= 1 per compound held out)."""
    rng = np.random.default_rng(seed + 1)
    kept = torch.zeros(pairs.size(1), dtype=torch.bool)
    idx = held.nonzero().view(-1)
    for c in pairs[0, idx].unique().tolist():
        mine = idx[pairs[0, idx] == c]
        n_keep = min(int(round(known_frac * mine.numel())), mine.numel() - 1)
        if n_keep > 0:
            kept[mine[torch.from_numpy(rng.permutation(mine.numel())[:n_keep])]] = True
    return kept


def _signature_partner(data: HeteroData, et: tuple[str, str, str]) -> Tensor:
    """long ``[n_signatures]``: each signature's node at the other end of ``et`` (``-1`` if none; the
    first edge if several)."""
    out = torch.full((data[SIGNATURE].num_nodes,), -1, dtype=torch.long)
    if et in data.edge_types:
        ei = data[et].edge_index
        sig_row = 0 if et[0] == SIGNATURE else 1
        out[ei[sig_row].flip(0)] = ei[1 - sig_row].flip(0)  # flipped so that the first edge wins
    return out


def signature_compounds(data: HeteroData) -> Tensor:
    """long ``[n_signatures]``: the compound of each signature (``-1`` if none; the first if several)."""
    return _signature_partner(data, edge_type("HAS_SIGNATURE"))


def signature_cells(data: HeteroData) -> Tensor:
    """long ``[n_signatures]``: the cell line of each signature (``-1`` if none)."""
    return _signature_partner(data, edge_type("IN_CELL"))


def make_signature_task(data: HeteroData, maps: Any, split: str = "cell_line", seed: int = 0,
                        min_per_class: int = 5, setting: str = "phenotype", val_frac: float = 0.1,
                        test_frac: float = 0.2) -> SignatureTask:
    """Signature-level MoA task; ``split='cell_line'`` holds out whole cell lines (unseen in training).

    As in :func:`make_moa_task`, the split comes first (over the signatures of compounds with an MoA
    label); the classes are the MoAs with ``>= min_per_class`` compounds among the training signatures'
    compounds; signatures without one of them leave every part. In ``'phenotype'`` the TARGETS of
    compounds with a held-out signature are removed too.
    """
    _check_setting(setting)
    comp = signature_compounds(data)
    has = comp >= 0
    with_moa = _mask(data[COMPOUND].num_nodes, _pairs(data, "HAS_MOA")[0])
    items = (has & with_moa[comp.clamp(min=0)]).nonzero().view(-1)
    cells = signature_cells(data)
    cell_keys = maps.keys.get(CELL) if hasattr(maps.keys, "get") else None
    if split == "cell_line":
        s = cell_line_split(items, cells, seed, val_frac, test_frac, cell_keys=cell_keys)
    elif split == "random":
        s = random_split(items, seed, val_frac, test_frac)
    else:
        raise ValueError(f"unknown signature split {split!r} (cell_line | random)")
    s.test_keys = [maps.keys[SIGNATURE][i] for i in s.test.tolist()]
    y_c, classes, _ = moa_labels(data, maps, min_per_class, count_over=comp[s.train].unique())
    y = torch.zeros(comp.numel(), len(classes))
    y[has] = y_c[comp[has]]
    labelled = y.sum(1) > 0
    s = restrict(s, labelled, "no_class")
    if split == "cell_line":
        record_cell_lines(s, cells, cell_keys)
    graph = _copy_graph(data)
    drop_incident(graph, COMPOUND, MOA)
    held = _mask(comp.numel(), s.val, s.test)
    drop_incident(graph, SIGNATURE, COMPOUND, nodes_a=held)
    if setting == "phenotype":
        held_comp = comp[held & has].unique()
        drop_incident(graph, COMPOUND, GENE, nodes_a=_mask(data[COMPOUND].num_nodes, held_comp),
                      relations=target_relations())
    return SignatureTask(graph, y, labelled, classes, s, setting, comp)


# --------------------------------------------------------------------------------------------- leakage
def _present(graph: HeteroData, a: str, b: str, pairs: Tensor, n_b: int,
             relations: Sequence[str] | None = None) -> int:
    """How many of the ``a``-``b`` ``pairs`` ``[2, P]`` appear in ``graph``, counting each direction."""
    codes = pairs[0] * n_b + pairs[1]
    found = 0
    for et in edge_types_between(graph, a, b, relations):
        ia, ib = _endpoint(et, a, graph[et].edge_index)
        found += int(torch.isin(codes, ia * n_b + ib).sum())
    return found


def _touching(graph: HeteroData, a: str, b: str, nodes: Tensor,
              relations: Sequence[str] | None = None) -> int:
    """How many ``a``-``b`` edges (both directions) touch the ``a`` nodes in long ``nodes``."""
    n = 0
    for et in edge_types_between(graph, a, b, relations):
        ia, _ = _endpoint(et, a, graph[et].edge_index)
        n += int(torch.isin(ia, nodes).sum())
    return n


def _check_disjoint(s: Split) -> None:
    tr, va, te = set(s.train.tolist()), set(s.val.tolist()), set(s.test.tolist())
    if tr & va or tr & te or va & te:
        raise AssertionError(f"split {s.method} overlaps: train&val {len(tr & va)}, "
                             f"train&test {len(tr & te)}, "
                             f"val&test {len(va & te)}")


def assert_no_leakage(task: MoATask | TargetTask | SignatureTask) -> None:
    """Raise ``AssertionError`` if a held-out label or target edge is in ``task.graph`` (either direction).

    Checks: the split is disjoint; no Compound-MoA edge exists at all; for :class:`TargetTask` none of
    the val/test pairs is a TARGETS edge and no held-out compound has an MoA input (``task.moa``); in
    ``'phenotype'`` no TARGETS edge touches a held-out
    compound (their MIMICS / OPPOSES edges, phenotype like their signatures, stay); for
    :class:`SignatureTask` no held-out signature reaches its compound.
    """
    g, s = task.graph, task.split
    targets = target_relations()
    _check_disjoint(s)
    n_moa_edges = sum(g[et].edge_index.size(1) for et in edge_types_between(g, COMPOUND, MOA))
    if n_moa_edges:
        raise AssertionError(f"{n_moa_edges} Compound-MoA edges are in the message-passing graph")
    held = torch.cat([s.val, s.test])
    if isinstance(task, TargetTask):
        heldpairs = torch.cat([task.pos["val"], task.pos["test"]], 1)
        if (n := _present(g, COMPOUND, GENE, heldpairs, task.n_genes, targets)):
            raise AssertionError(f"{n} held-out (compound, gene) pairs are TARGETS edges of the graph")
        if task.moa is not None and (n := int((task.moa[held].sum(1) > 0).sum())):
            raise AssertionError(f"{n} held-out compounds have an MoA input")
        if task.setting == "phenotype" and (n := _touching(g, COMPOUND, GENE, held, targets)):
            raise AssertionError(f"phenotype setting: {n} TARGETS edges touch val/test compounds")
    elif isinstance(task, SignatureTask):
        if (n := _touching(g, SIGNATURE, COMPOUND, held)):
            raise AssertionError(f"{n} HAS_SIGNATURE edges connect held-out signatures to their compounds")
        comp = task.compound[held]
        if task.setting == "phenotype" and (n := _touching(g, COMPOUND, GENE, comp[comp >= 0].unique(),
                                                            targets)):
            raise AssertionError(f"phenotype setting: {n} TARGETS edges touch compounds of held-out "
                                 "signatures")
    elif task.setting == "phenotype" and (n := _touching(g, COMPOUND, GENE, held, targets)):
        raise AssertionError(f"phenotype setting: {n} TARGETS edges touch val/test compounds")
