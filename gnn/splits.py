"""Honest splits: random, Murcko-scaffold, Tanimoto-cluster and unseen-cell-line, each recorded with its
method and seed.

Every split assigns whole *groups* to one side (a group is one item for ``random``, one Murcko scaffold for
``scaffold``, one Butina cluster of Morgan fingerprints for ``cluster``, one cell line for ``cell_line``),
so a test scaffold, cluster or cell line is never seen in training. ``cluster`` is stricter than
``scaffold``: analogues on different scaffolds (a ring swapped, a linker grown) share a cluster when their
fingerprints are similar, so they cannot sit on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from rdkit.ML.Cluster import Butina
from torch import Tensor

from moakg.errors import UserError


@dataclass
class Split:
    """Train / val / test indices (long tensors) into one node type, with how they were made.

    Attributes:
        method: ``'random'``, ``'scaffold'``, ``'cluster'`` or ``'cell_line'``.
        seed: the seed of the group shuffle.
        train, val, test: long ``[n_*]`` indices into ``data['Compound']`` (``data['Signature']`` for
            ``cell_line``); disjoint.
        test_keys: graph keys of the test items (for the fingerprint in :meth:`as_dict`).
        meta: method-specific facts (number of scaffolds or clusters, held-out cell lines, items
            dropped after the split, ...).
    """

    method: str
    seed: int
    train: Tensor
    val: Tensor
    test: Tensor
    test_keys: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly record for the ModelRun: method, seed, sizes, sha1 of the sorted test keys, meta."""
        keys = self.test_keys or [str(i) for i in self.test.tolist()]
        sha1 = hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()
        return {"method": self.method, "seed": self.seed, "n_train": int(self.train.numel()),
                "n_val": int(self.val.numel()), "n_test": int(self.test.numel()), "test_sha1": sha1,
                **{k: v for k, v in self.meta.items() if isinstance(v, int | float | str | bool | list)}}


def _sizes(n: int, val_frac: float, test_frac: float) -> tuple[int, int]:
    if not (0 <= val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"need 0 <= val_frac, 0 < test_frac and val_frac + test_frac < 1, "
                         f"got {val_frac}, {test_frac}")
    return int(round(val_frac * n)), int(round(test_frac * n))


def _as_long(idx: list[int]) -> Tensor:
    return torch.tensor(sorted(idx), dtype=torch.long)


def group_split(items: Tensor, groups: Sequence[Any], method: str, seed: int = 0, val_frac: float = 0.1,
                test_frac: float = 0.2, big_first: bool = True) -> Split:
    """Assign whole groups to train / val / test, deterministically given ``seed``.

    Groups are shuffled with ``seed``; when ``big_first`` the groups larger than half the test size go
    first (to train, in their shuffled order), as in chemprop's balanced scaffold split, so one huge
    scaffold cannot swallow the test set and the small, rarer groups spread over val and test. Each
    group then goes to train while train is below its target size, else to val, else to test.

    Args:
        items: long ``[n]`` indices of the items to split.
        groups: ``n`` hashable group labels, aligned with ``items``.
    """
    if len(groups) != items.numel():
        raise ValueError(f"{items.numel()} items but {len(groups)} group labels")
    n = items.numel()
    n_val, n_test = _sizes(n, val_frac, test_frac)
    members: dict[Any, list[int]] = {}
    for i, g in zip(items.tolist(), groups, strict=True):
        members.setdefault(g, []).append(i)
    rng = np.random.default_rng(seed)
    order = [list(members)[j] for j in rng.permutation(len(members))]
    if big_first:
        big = [g for g in order if len(members[g]) > n_test / 2]
        order = big + [g for g in order if len(members[g]) <= n_test / 2]
    n_train = n - n_val - n_test
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for g in order:
        m = members[g]
        if len(train) + len(m) <= n_train:
            train += m
        elif len(val) + len(m) <= n_val:
            val += m
        else:
            test += m
    return Split(method, seed, _as_long(train), _as_long(val), _as_long(test),
                 meta={"n_groups": len(members)})


def random_split(items: Tensor, seed: int = 0, val_frac: float = 0.1, test_frac: float = 0.2) -> Split:
    """Uniformly random split of ``items`` (long ``[n]``) with exact sizes ``round(frac * n)``."""
    n = items.numel()
    n_val, n_test = _sizes(n, val_frac, test_frac)
    perm = items[torch.from_numpy(np.random.default_rng(seed).permutation(n))]
    return Split("random", seed, perm[n_val + n_test:].sort().values, perm[:n_val].sort().values,
                 perm[n_val:n_val + n_test].sort().values)


def _parse(smiles: str | None) -> Chem.Mol | None:
    """The molecule of ``smiles``; ``None`` when it is missing or does not parse.

    RDKit's parse errors are silenced: the splits count compounds without a structure (``meta``) instead
    of logging one line per odd SMILES.
    """
    if not smiles:
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        return Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")


def murcko_scaffold(smiles: str | None) -> str | None:
    """Bemis-Murcko scaffold SMILES (``''`` if acyclic), ``None`` when the SMILES does not parse."""
    mol = _parse(smiles)
    return None if mol is None else MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def _structure_groups(labels: Sequence[Any], items: Tensor) -> list[Any]:
    """Group label per item: ``labels[j]`` (aligned with ``items``), or a group of its own where it is
    ``None`` (no parseable structure: nothing to share with another compound)."""
    return [g if g is not None else f"__no_structure_{i}"
            for g, i in zip(labels, items.tolist(), strict=True)]


def scaffold_split(items: Tensor, smiles: Sequence[str | None], seed: int = 0, val_frac: float = 0.1,
                   test_frac: float = 0.2) -> Split:
    """Murcko-scaffold split of ``items``; ``smiles[i]`` is the SMILES of node ``i`` (all nodes, not items).

    A compound without a parseable structure is its own group (it has no scaffold to share), and all
    acyclic compounds share the empty scaffold ``''``.
    """
    scaffolds = [murcko_scaffold(smiles[i]) for i in items.tolist()]
    groups = _structure_groups(scaffolds, items)
    split = group_split(items, groups, "scaffold", seed, val_frac, test_frac)
    split.meta.update(n_scaffolds=len(set(groups)), n_no_structure=sum(s is None for s in scaffolds))
    return split


#: Morgan fingerprint of the cluster split: radius 2, 2048 bits (ECFP4-like, as the exported ``fp``)
CLUSTER_FP_RADIUS, CLUSTER_FP_BITS = 2, 2048


def butina_clusters(smiles: Sequence[str | None], threshold: float = 0.6) -> list[int | None]:
    """Butina cluster id of each SMILES (``None`` where it does not parse), on Morgan fingerprints.

    Distances are ``1 - Tanimoto`` (RDKit's ``BulkTanimotoSimilarity``); two compounds are neighbours when
    their distance is ``<= threshold`` (default 0.6: Tanimoto >= 0.4). Butina takes the compound with the
    most unassigned neighbours as a centroid and gives it all of them, so a cluster is a centroid's
    neighbourhood, not a connected component: two members can be less similar than the threshold.

    Memory and time are quadratic: the lower triangle of the distance matrix is one float64 array of
    ``n (n - 1) / 2`` entries (0.6 GB at 12,500 compounds), the format every RDKit version accepts.
    """
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=CLUSTER_FP_RADIUS, fpSize=CLUSTER_FP_BITS)
    mols = [_parse(s) for s in smiles]
    parsed = [i for i, m in enumerate(mols) if m is not None]
    fps = [gen.GetFingerprint(mols[i]) for i in parsed]
    n = len(fps)
    dists = np.empty(n * (n - 1) // 2, dtype=np.float64)
    at = 0
    for i in range(1, n):  # row i of the lower triangle: distances to 0..i-1, in Butina's order
        dists[at:at + i] = 1.0 - np.asarray(DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i]))
        at += i
    out: list[int | None] = [None] * len(smiles)
    for c, members in enumerate(Butina.ClusterData(dists, n, threshold, isDistData=True)):
        for j in members:
            out[parsed[j]] = c
    return out


def cluster_split(items: Tensor, smiles: Sequence[str | None], seed: int = 0, val_frac: float = 0.1,
                  test_frac: float = 0.2, threshold: float = 0.6) -> Split:
    """Tanimoto-cluster split of ``items``: whole Butina clusters (:func:`butina_clusters`) to one side.

    ``smiles[i]`` is the SMILES of node ``i`` (all nodes, not items). The clusters are made over ``items``
    only, and assigned as the scaffold split assigns scaffolds (:func:`group_split`), so no test compound
    has a training compound in its cluster. A compound without a parseable structure is its own group.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"cluster threshold (1 - Tanimoto) must be in [0, 1), got {threshold}")
    clusters = butina_clusters([smiles[i] for i in items.tolist()], threshold)
    split = group_split(items, _structure_groups(clusters, items), "cluster", seed, val_frac, test_frac)
    split.meta.update(n_clusters=len({c for c in clusters if c is not None}), threshold=threshold,
                      n_no_structure=sum(c is None for c in clusters),
                      fingerprint=f"morgan r{CLUSTER_FP_RADIUS} {CLUSTER_FP_BITS} bits")
    return split


def cell_line_split(items: Tensor, cell_of: Tensor, seed: int = 0, val_frac: float = 0.1,
                    test_frac: float = 0.2, cell_keys: Sequence[str] | None = None) -> Split:
    """Signatures split by cell line: test (and, with >= 3 cell lines, val) cell lines unseen in training.

    Args:
        items: long ``[n]`` Signature indices.
        cell_of: long ``[n_signatures]`` cell-line index of every signature (``-1``: unknown; those
            signatures are dropped, since they cannot be placed honestly).
        cell_keys: names of the cell lines, for ``meta``.

    Cell lines are shuffled with ``seed`` and filled greedily (no size-based reordering: a test set of
    one big cell line is a legitimate outcome). With exactly two cell lines there is no third to hold
    out for validation: val is then a seeded random ``val_frac`` of the training cell line's signatures
    (``meta['val_mode'] = 'within_train_cells'``), test stays unseen.
    """
    cells = cell_of[items]
    keep = cells >= 0
    items, cells = items[keep], cells[keep]
    distinct = cells.unique()
    if distinct.numel() < 2:
        raise UserError("an unseen-cell-line split needs >= 2 cell lines with signatures, "
                         f"got {distinct.numel()}")
    if distinct.numel() >= 3:
        split = group_split(items, cells.tolist(), "cell_line", seed, val_frac, test_frac, big_first=False)
        if split.test.numel() == 0 or split.train.numel() == 0:
            raise ValueError("cell-line split left train or test empty; adjust val_frac/test_frac")
        split.meta["val_mode"] = "unseen_cells"
    else:
        rng = np.random.default_rng(seed)
        test_cell, train_cell = distinct[torch.from_numpy(rng.permutation(2))].tolist()
        tr = items[cells == train_cell]
        perm = tr[torch.from_numpy(rng.permutation(tr.numel()))]
        n_val = int(round(val_frac * tr.numel()))
        split = Split("cell_line", seed, perm[n_val:].sort().values, perm[:n_val].sort().values,
                      items[cells == test_cell].sort().values, meta={"val_mode": "within_train_cells"})
    record_cell_lines(split, cell_of, cell_keys)
    split.meta["n_dropped_no_cell"] = int((~keep).sum())
    return split


def record_cell_lines(split: Split, cell_of: Tensor, cell_keys: Sequence[str] | None = None) -> None:
    """Set ``meta['train_cells' | 'val_cells' | 'test_cells']``: the cell lines each part holds (again
    after :func:`restrict`, which can empty a cell line of one part)."""
    name = (lambda c: cell_keys[c]) if cell_keys is not None else str
    for part in ("train", "val", "test"):
        split.meta[f"{part}_cells"] = sorted(name(c) for c in cell_of[getattr(split, part)].unique().tolist())


def restrict(split: Split, keep: Tensor, why: str) -> Split:
    """``split`` with only the items where bool ``keep`` (``[n_nodes]``) is true, in every part.

    For label sets that depend on the training part (a class counts only if enough *training* items
    carry it): the split is made first, the labels are counted on its training part, and the items left
    without a label leave every part here. The groups were already assigned, so removing items moves
    nothing across sides. ``meta[f'n_dropped_{why}']`` records ``[train, val, test]`` removals.
    """
    parts = {p: getattr(split, p) for p in ("train", "val", "test")}
    kept = {p: idx[keep[idx]] for p, idx in parts.items()}
    test_keys = []
    if split.test_keys:  # aligned with split.test
        test_keys = [k for k, ok in zip(split.test_keys, keep[split.test].tolist(), strict=True) if ok]
    meta = {**split.meta, f"n_dropped_{why}": [int(parts[p].numel() - kept[p].numel()) for p in parts]}
    return Split(split.method, split.seed, kept["train"], kept["val"], kept["test"], test_keys, meta)
