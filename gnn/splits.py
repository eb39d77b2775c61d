"""Honest splits: random, Murcko-scaffold and unseen-cell-line, each recorded with its method and seed.

Every split assigns whole *groups* to one side (a group is one item for ``random``, one Murcko scaffold for
``scaffold``, one cell line for ``cell_line``), so a test scaffold or cell line is never seen in training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch import Tensor

from moakg.errors import UserError


@dataclass
class Split:
    """Train / val / test indices (long tensors) into one node type, with how they were made.

    Attributes:
        method: ``'random'``, ``'scaffold'`` or ``'cell_line'``.
        seed: the seed of the group shuffle.
        train, val, test: long ``[n_*]`` indices into ``data['Compound']`` (``data['Signature']`` for
            ``cell_line``); disjoint.
        test_keys: graph keys of the test items (for the fingerprint in :meth:`as_dict`).
        meta: method-specific facts (number of scaffolds, held-out cell lines, ...).
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


def murcko_scaffold(smiles: str | None) -> str | None:
    """Bemis-Murcko scaffold SMILES (``''`` if acyclic), ``None`` when the SMILES does not parse."""
    if not smiles:
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        return None if mol is None else MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    finally:
        RDLogger.EnableLog("rdApp.*")


def scaffold_split(items: Tensor, smiles: Sequence[str | None], seed: int = 0, val_frac: float = 0.1,
                   test_frac: float = 0.2) -> Split:
    """Murcko-scaffold split of ``items``; ``smiles[i]`` is the SMILES of node ``i`` (all nodes, not items).

    A compound without a parseable structure is its own group (it has no scaffold to share), and all
    acyclic compounds share the empty scaffold ``''``.
    """
    scaffolds = [murcko_scaffold(smiles[i]) for i in items.tolist()]
    groups = [s if s is not None else f"__no_structure_{i}" for s, i in zip(scaffolds, items.tolist(),
                                                                          strict=True)]
    split = group_split(items, groups, "scaffold", seed, val_frac, test_frac)
    split.meta.update(n_scaffolds=len(set(groups)), n_no_structure=sum(s is None for s in scaffolds))
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
    name = (lambda c: cell_keys[c]) if cell_keys is not None else str
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
    for part in ("train", "val", "test"):
        split.meta[f"{part}_cells"] = sorted(name(c) for c in cell_of[getattr(split, part)].unique().tolist())
    split.meta["n_dropped_no_cell"] = int((~keep).sum())
    return split
