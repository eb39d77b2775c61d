r"""Interpretable-by-design MoA baseline in the Rephetio style: metapath DWPCs into logistic regression.

Himmelstein et al. 2017 (eLife 6:e26726, Rephetio on hetionet) score a (compound, disease) pair by how
many paths of each *metapath* (a sequence of node labels and relationship types) join them, each path
down-weighted by the degrees of its nodes. Here the pair is (compound ``c``, MoA class ``m``) and every
metapath ends in a *training* compound that carries ``m``::

    c -[R_1]- n_1 -[R_2]- ... -[R_k]- c' -[HAS_MOA]- m        (c' a training compound, c' != c)

**DWPC.** With ``A_i`` the binary adjacency of step ``i`` (parallel edges, e.g. one TARGETS edge per
source, count once; Rephetio's DWPC ignores edge weights), a path's degree product is

    PDP(n_0 .. n_{k+1}) = prod_i (deg_i(n_{i-1}) * deg_i(n_i))^(-w),        w = 0.4

where ``deg_i`` is a node's degree along the relationship of step ``i``, so a hub damps every path
through it. ``DWPC(c, m)`` is the sum of the PDPs of the metapath's paths from ``c`` to ``m``. As
matrices, with ``P_i = D_out,i^-w A_i D_in,i^-w`` and ``H`` the same normalisation of the training
label matrix ``Y_train`` (compound x class; rows of val/test compounds are zero, so their labels never
enter a feature, not even a training row's)::

    DWPC = P_1 P_2 ... P_k H  -  diag(P_1 ... P_k) * H

The second term removes the paths that come back to ``c`` itself, so no row reads its own label (a
training compound's label enters its features only through ``deg(m)``, the class size, a factor that
every row of class ``m`` shares). Products are sparse (``scipy.sparse``), evaluated as ``L (R H)`` with
``L``/``R`` the two halves of the chain, so no node-type x node-type matrix is ever dense.

**Model.** One row per (compound, class) pair; features: ``asinh(DWPC / mean)`` (Rephetio's transform:
the mean over training pairs puts typical values where asinh bends) standardised on the training pairs,
plus the standardised logit of the class's training frequency. scikit-learn's ``LogisticRegression``
is fitted on the training compounds' pairs, ``C`` chosen on the validation compounds' micro AUPRC
(as the other baselines choose their settings); its probabilities are the ``[n, C]`` scores.

**Explanation.** The logit is ``intercept + sum_k coef_k * z_k`` (:meth:`MetapathModel.contributions`);
:meth:`MetapathModel.path_instances` lists the concrete paths of a metapath by PDP, exactly, and their
PDPs sum to the DWPC.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from torch_geometric.data import HeteroData

from moakg.gnn.baselines import BaselineResult
from moakg.gnn.explain.paths import ExplanationPath
from moakg.gnn.metrics import average_precision, moa_metrics
from moakg.gnn.tasks import COMPOUND, MOA, MoATask
from moakg.kg.schema import current_schema

NAME = "metapath_logreg"
DAMPING = 0.4
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
MAX_TRAIN_PAIRS = 1_000_000
PRIOR = "prior"
"""The name of the class-prior term in :meth:`MetapathModel.contributions`."""


@dataclass(frozen=True)
class Step:
    """One metaedge: relationship ``rel`` walked as stored (``forward=True``: start -> end), against it
    (``False``), or either way (``None``: a symmetric relation between nodes of one label, stored once per
    unordered pair). ``sign`` +1 / -1 keeps only edges whose exported weight (``edge_attr``) has that sign
    (SIMILAR_SIGNATURE holds correlations and anti-correlations, which say opposite things); 0 keeps all."""

    rel: str
    forward: bool | None = True
    sign: int = 0

    def ends(self) -> tuple[str, str]:
        start, end = current_schema().rel(self.rel).endpoints
        return (end, start) if self.forward is False else (start, end)

    @property
    def label(self) -> str:
        return self.rel + {0: "", 1: "[+]", -1: "[-]"}[self.sign]


@dataclass(frozen=True)
class Metapath:
    """Steps from the scored compound to a reference compound (the ``HAS_MOA-MoA`` step is implied).
    ``known_targets_only``: the metapath starts with the compound's TARGETS, which held-out compounds
    lack in the ``'phenotype'`` setting (0 for every scored row, informative on training rows)."""

    steps: tuple[Step, ...]
    known_targets_only: bool = False

    @property
    def node_types(self) -> list[str]:
        types = [COMPOUND]
        for s in self.steps:
            a, b = s.ends()
            if a != types[-1]:
                raise ValueError(f"step {s.label} starts at {a}, not at {types[-1]}")
            types.append(b)
        if types[-1] != COMPOUND:
            raise ValueError(f"a metapath must end at a Compound, not at {types[-1]}")
        return [*types, MOA]

    @property
    def name(self) -> str:
        """hetnetpy-style ``Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA``."""
        parts = [COMPOUND]
        for s, t in zip(self.steps, self.node_types[1:-1], strict=True):
            parts += [s.label, t]
        return "-".join([*parts, "HAS_MOA", MOA])


_TGT, _TGT_BACK = Step("TARGETS"), Step("TARGETS", False)
DEFAULT_METAPATHS: tuple[Metapath, ...] = (
    Metapath((Step("SIMILAR_STRUCTURE", None),)),
    Metapath((Step("SIMILAR_SIGNATURE", None, 1),)),
    Metapath((Step("SIMILAR_SIGNATURE", None, -1),)),
    Metapath((Step("MIMICS"), Step("MIMICS", False))),
    Metapath((Step("OPPOSES"), Step("OPPOSES", False))),
    *(Metapath((Step("HAS_SIGNATURE"), Step(r), Step(r, False), Step("HAS_SIGNATURE", False)))
      for r in ("UPREGULATES", "DOWNREGULATES")),
    Metapath((_TGT, _TGT_BACK), known_targets_only=True),
    Metapath((_TGT, Step("INTERACTS_WITH", None), _TGT_BACK), known_targets_only=True),
)


def stored_adjacency(graph: HeteroData, step: Step) -> sp.csr_matrix | None:
    """Binary ``[n_start, n_end]`` adjacency of ``step.rel`` as stored (start -> end), edges of the wrong
    ``sign`` left out; None if the graph lacks the edge type (its reverse type is used when only that
    exists)."""
    schema = current_schema()
    fwd, rev = schema.edge_type(step.rel), schema.edge_type(step.rel, reverse=True)
    et = fwd if fwd in graph.edge_types else rev if rev in graph.edge_types else None
    if et is None:
        return None
    ei = graph[et].edge_index.cpu().numpy()
    src, dst = (ei[0], ei[1]) if et == fwd else (ei[1], ei[0])
    keep = np.ones(ei.shape[1], dtype=bool)
    attr = graph[et].get("edge_attr")
    if step.sign and attr is not None and ei.shape[1]:  # (an empty edge type has nothing to keep)
        keep = np.sign(attr.reshape(ei.shape[1], -1)[:, 0].cpu().numpy()) == step.sign
    shape = (graph[fwd[0]].num_nodes, graph[fwd[2]].num_nodes)
    a = sp.csr_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=shape)
    a.data[:] = 1.0  # parallel edges were summed: count them once
    return a


def step_adjacency(stored: sp.csr_matrix, step: Step) -> sp.csr_matrix:
    """The binary adjacency the step walks, ``[n_from, n_to]``; symmetric steps lose self-loops (a path
    does not stay on a node)."""
    if step.forward is None:
        a = (stored + stored.T).tolil()
        a.setdiag(0)
        a = a.tocsr()
        a.eliminate_zeros()
        a.data[:] = 1.0
        return a
    return stored if step.forward else stored.T.tocsr()


def degree_normalize(a: sp.spmatrix, damping: float = DAMPING) -> sp.csr_matrix:
    """``D_out^-w A D_in^-w`` of a binary ``A`` (isolated nodes: 0)."""
    def inv(d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=float).ravel()
        return np.where(d > 0, np.maximum(d, 1.0) ** -damping, 0.0)

    return (sp.diags(inv(a.sum(1))) @ a @ sp.diags(inv(a.sum(0)))).tocsr()


def dwpc(chain: Sequence[sp.csr_matrix], h: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """``[len(rows), C]`` DWPC of compounds ``rows`` along normalised step matrices ``chain`` (compound to
    compound) then ``h`` (compound x class), paths that return to the row's own compound excluded."""
    half = (len(chain) + 1) // 2
    left = chain[0][rows]
    for p in chain[1:half]:
        left = left @ p
    right = sp.identity(left.shape[1], format="csr")
    for p in chain[half:]:
        right = right @ p
    through = (left @ (right @ h)).toarray()
    to_self = np.asarray(left.multiply(right[:, rows].T).sum(1)).ravel()  # [P_1 ... P_k]_{cc}
    return np.maximum(through - to_self[:, None] * h[rows].toarray(), 0.0)  # clip rounding below 0


class Contribution(NamedTuple):
    """One term of a prediction's logit: ``coef * z`` of a metapath (or of :data:`PRIOR`), and the raw
    DWPC behind it (nan for the prior)."""

    name: str
    contribution: float
    dwpc: float


@dataclass
class MetapathInstance:
    """One concrete path ``c -> ... -> c' -> m``; the fields of :class:`ExplanationPath`.

    ``weights[i]`` is step ``i``'s factor ``(deg(u) deg(v))^-w`` in (0, 1]; ``weight`` their product,
    the path's PDP, its share of the metapath's DWPC. ``forward[i]``: step ``i`` runs along the stored
    relationship (Neo4j direction)."""

    metapath: str
    weight: float
    node_types: list[str]
    node_index: list[int]
    rel_types: list[str]
    forward: list[bool]
    weights: list[float]

    def to_explanation_path(self, keys: dict[str, list[str]] | None = None, rank: int = 0) -> ExplanationPath:
        """As an :class:`ExplanationPath`, ``score`` = the PDP; the trailing HAS_MOA step is its label step
        (it keeps its degree factor as weight)."""
        nodes = zip(self.node_types, self.node_index, strict=True)
        return ExplanationPath(score=self.weight, node_types=list(self.node_types),
                               node_index=list(self.node_index), rel_types=list(self.rel_types),
                               forward=list(self.forward), weights=list(self.weights),
                               node_keys=[keys[t][i] for t, i in nodes] if keys else [], rank=rank,
                               label_steps=1)


class MetapathModel:
    """DWPC features of a :class:`MoATask`, and the logistic regression on them (see the module doc)."""

    def __init__(self, task: MoATask, metapaths: Sequence[Metapath] = DEFAULT_METAPATHS,
                 damping: float = DAMPING) -> None:
        if not isinstance(task, MoATask):
            raise TypeError(f"metapath features need a compound MoATask, not {type(task).__name__}")
        self.task, self.damping = task, damping
        s = task.split
        self.train, self.val, self.test = (t.cpu().numpy() for t in (s.train, s.val, s.test))
        y_train = np.zeros(tuple(task.y.shape))
        y_train[self.train] = task.y[s.train].cpu().numpy() > 0.5  # the only labels any feature reads
        self.h = degree_normalize(sp.csr_matrix(y_train), damping)
        self.metapaths: list[Metapath] = []
        self.stored: list[list[sp.csr_matrix]] = []
        self.chains: list[list[sp.csr_matrix]] = []
        for mp in metapaths:
            stored = [stored_adjacency(task.graph, st) for st in mp.steps]
            if (mp.known_targets_only and task.setting != "known_targets") or any(
                    a is None or a.nnz == 0 for a in stored):
                continue
            self.metapaths.append(mp)
            self.stored.append(stored)  # type: ignore[arg-type]
            self.chains.append([degree_normalize(step_adjacency(a, st), damping)
                                for a, st in zip(stored, mp.steps, strict=True)])
        self.names = [mp.name for mp in self.metapaths]
        self.rows = np.unique(np.concatenate([self.train, self.val, self.test]))
        self._row = np.full(task.y.size(0), -1)
        self._row[self.rows] = np.arange(self.rows.size)
        self._raw = self.dwpc_features(self.rows)
        # Transform constants from the training pairs only.
        tr = self._raw[self._row[self.train]].reshape(self.train.size * self.h.shape[1], len(self.names))
        mean = tr.mean(0) if tr.size else np.ones(len(self.names))
        self.scale = np.where(mean > 0, mean, 1.0)
        t = np.arcsinh(tr / self.scale)
        freq = np.clip(y_train[self.train].mean(0), 1e-6, 1 - 1e-6)
        self.prior = np.log(freq / (1 - freq))
        t = np.concatenate([t, np.tile(self.prior, self.train.size)[:, None]], 1)
        self.mu, sd = t.mean(0), t.std(0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        self.model: LogisticRegression | None = None
        self.c, self.val_score = math.nan, math.nan

    def dwpc_features(self, compounds: np.ndarray) -> np.ndarray:
        """Raw DWPCs ``[n, C, K]`` of ``compounds`` for the ``K`` kept metapaths (:attr:`names`)."""
        compounds = np.asarray(compounds, dtype=np.int64)
        out = np.zeros((compounds.size, self.h.shape[1], len(self.chains)))
        for k, chain in enumerate(self.chains):
            out[:, :, k] = dwpc(chain, self.h, compounds)
        return out

    def raw(self, compounds: np.ndarray) -> np.ndarray:
        """:meth:`dwpc_features`, from the cache for the task's split compounds."""
        compounds = np.asarray(compounds, dtype=np.int64).reshape(-1)
        pos = self._row[compounds]
        return self._raw[pos] if (pos >= 0).all() else self.dwpc_features(compounds)

    def design(self, compounds: np.ndarray) -> np.ndarray:
        """Standardised features ``[n, C, K + 1]``: ``asinh(DWPC / mean)`` per metapath, then the prior."""
        t = np.arcsinh(self.raw(compounds) / self.scale)
        prior = np.broadcast_to(self.prior[None, :, None], (*t.shape[:2], 1))
        return (np.concatenate([t, prior], 2) - self.mu) / self.sd

    def fit(self, seed: int = 0, c_grid: Sequence[float] = C_GRID,
            max_train_pairs: int = MAX_TRAIN_PAIRS) -> MetapathModel:
        """Fit on the training pairs for each ``C`` of ``c_grid``; keep the best validation micro AUPRC
        (first of the grid when there is no validation score). Beyond ``max_train_pairs`` pairs a seeded
        sample of the negatives is kept and the intercept corrected by ``log(kept fraction)`` (King &
        Zeng's prior correction), so probabilities stay calibrated to the full training set."""
        x = self.design(self.train).reshape(-1, len(self.names) + 1)
        y = (self.task.y[torch.from_numpy(self.train)].cpu().numpy() > 0.5).reshape(-1)
        idx, rate = np.arange(y.size), 1.0
        if y.size > max_train_pairs:
            neg, pos = np.flatnonzero(~y), np.flatnonzero(y)
            n_keep = max(max_train_pairs - pos.size, 1)
            kept = np.random.default_rng(seed).choice(neg, n_keep, replace=False)
            idx = np.sort(np.concatenate([pos, kept]))
            rate = n_keep / neg.size
        y_val = self.task.y[torch.from_numpy(self.val)].cpu()
        best: tuple[float, float, LogisticRegression] | None = None
        for c in c_grid:
            self.model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x[idx], y[idx])
            self.model.intercept_ = self.model.intercept_ + math.log(rate)
            score = (average_precision(y_val, torch.from_numpy(self.predict(self.val)))
                     if self.val.size else math.nan)
            # nan (no validation positive) never beats a defined score; ties keep the smaller C
            if best is None or score > best[0] or (math.isnan(best[0]) and not math.isnan(score)):
                best = (score, c, self.model)
        if best is None:
            raise ValueError("empty c_grid")
        self.val_score, self.c, self.model = best
        return self

    def logits(self, compounds: np.ndarray) -> np.ndarray:
        """``[n, C]`` logits of the fitted model."""
        if self.model is None:
            raise RuntimeError("fit() first")
        x = self.design(compounds)
        return x @ self.model.coef_[0] + self.model.intercept_[0]

    def predict(self, compounds: np.ndarray) -> np.ndarray:
        """``[n, C]`` probabilities."""
        return 1.0 / (1.0 + np.exp(-self.logits(compounds)))

    def contributions(self, compound: int, cls: int) -> list[Contribution]:
        """The terms ``coef_k * z_k`` of the logit of ``(compound, cls)``, largest first (their sum plus
        ``model.intercept_`` is the logit)."""
        if self.model is None:
            raise RuntimeError("fit() first")
        z = self.design(np.array([compound]))[0, cls]
        raw = [*self.raw(np.array([compound]))[0, cls].tolist(), math.nan]
        terms = [Contribution(n, float(c * v), float(r))
                 for n, c, v, r in zip([*self.names, PRIOR], self.model.coef_[0], z, raw, strict=True)]
        return sorted(terms, key=lambda t: -t.contribution)

    def path_instances(self, compound: int, cls: int, metapath: str | int, k: int = 5,
                       max_pops: int = 200_000) -> list[MetapathInstance]:
        """The ``k`` paths of ``metapath`` (name or index in :attr:`names`) from ``compound`` to class
        ``cls`` with the largest PDP, best first.

        Best-first search: a partial path ``c .. u`` (depth ``j``) is keyed by its PDP so far times
        ``[P_{j+1} ... P_k H]_{u m}``, the summed PDP of all its completions, which bounds each of them;
        complete paths therefore come off the heap in decreasing PDP (exact top-``k``) and only branches
        that reach a training compound of ``cls`` are expanded (``max_pops`` caps the work)."""
        i = metapath if isinstance(metapath, int) else self.names.index(metapath)
        mp, chain, stored = self.metapaths[i], self.chains[i], self.stored[i]
        end = self.h[:, cls].toarray().ravel()
        end[compound] = 0.0  # never back to the compound itself
        reach = [end]
        for p in reversed(chain):
            reach.append(p @ reach[-1])
        reach.reverse()  # reach[j][u]: summed PDP of the completions from node u at depth j
        tie = itertools.count()
        heap = [(-reach[0][compound], next(tie), (compound,), ())]
        out: list[MetapathInstance] = []
        for _ in range(max_pops):
            if not heap or len(out) >= k:
                break
            _, _, nodes, ws = heapq.heappop(heap)
            j = len(ws)
            if j == len(chain):
                out.append(self._instance(mp, stored, nodes, [*ws, float(end[nodes[-1]])], cls))
                continue
            p, w = chain[j], math.prod(ws)
            for v, f in zip(p.indices[p.indptr[nodes[-1]]:p.indptr[nodes[-1] + 1]].tolist(),
                            p.data[p.indptr[nodes[-1]]:p.indptr[nodes[-1] + 1]].tolist(), strict=True):
                if reach[j + 1][v] > 0:
                    heapq.heappush(heap, (-w * f * reach[j + 1][v], next(tie), (*nodes, v), (*ws, f)))
        return out

    def _instance(self, mp: Metapath, stored: list[sp.csr_matrix], nodes: tuple[int, ...],
                  ws: list[float], cls: int) -> MetapathInstance:
        fwd = [st.forward if st.forward is not None else bool(a[u, v])
               for st, a, u, v in zip(mp.steps, stored, nodes[:-1], nodes[1:], strict=True)]
        moa = int(self.task.class_nodes[cls]) if self.task.class_nodes.numel() else cls
        return MetapathInstance(mp.name, math.prod(ws), mp.node_types, [*nodes, moa],
                                [*(st.rel for st in mp.steps), "HAS_MOA"], [*fwd, True], ws)

    def explain(self, compound: int, cls: int, n_metapaths: int = 2, k: int = 5) -> list[MetapathInstance]:
        """The top ``k`` paths of each of the ``n_metapaths`` metapaths that add most to the logit (those
        with a positive contribution), metapath by metapath."""
        top = [t.name for t in self.contributions(compound, cls) if t.name != PRIOR and t.contribution > 0]
        return [p for name in top[:n_metapaths] for p in self.path_instances(compound, cls, name, k)]


def metapath_baseline(task: MoATask, seed: int = 0, metapaths: Sequence[Metapath] = DEFAULT_METAPATHS,
                      damping: float = DAMPING, c_grid: Sequence[float] = C_GRID,
                      max_train_pairs: int = MAX_TRAIN_PAIRS) -> tuple[BaselineResult, MetapathModel]:
    """``metapath_logreg`` on ``task``: fitted on training pairs, ``C`` chosen on validation micro AUPRC,
    scored with :func:`moa_metrics` on every test compound."""
    model = MetapathModel(task, metapaths, damping).fit(seed, c_grid, max_train_pairs)
    test = task.split.test
    scores = torch.from_numpy(model.predict(test.numpy())).float()
    note = (f"C={model.c:g} (val micro_auprc {model.val_score:.3f}); DWPC w={damping:g} over "
            f"{len(model.names)} metapaths: {', '.join(model.names)}")
    result = BaselineResult(NAME, moa_metrics(task.y[test], scores), int(test.numel()), scores, test, note,
                            {"C": float(model.c), "val": float(model.val_score)})
    return result, model
