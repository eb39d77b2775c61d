"""Non-graph baselines, run on exactly the split of the task they are compared with.

MoA (and signature-level MoA): frequency prior, nearest neighbours on fingerprints (Tanimoto), on
consensus signatures (Pearson) and on both (fused), an MLP on fingerprints, logistic regression and an
MLP on consensus signatures (trained on compounds with signatures; scored on every test compound, those
without a signature getting the frequency prior, as ``note`` says, so that every baseline is scored on
the GNN's test rows), and the shuffled-drug ablation (signatures reassigned among compounds, then the
same MLP): if it scores like the real signature MLP, the signatures carry no compound-specific MoA
information. MoA in the ``'known_targets'`` setting also gets two baselines that see the held-out
compounds' known targets, as the GNN does there: nearest neighbours on the Jaccard similarity of target
sets and logistic regression on the target multi-hot vector (:func:`target_baselines`). Targets: the
same, plus the gene-degree link score. Each baseline returns scores for its evaluation rows and is
scored with :mod:`moakg.gnn.metrics`.

The GNN picks its epoch on the validation split; the kNN baselines get the same budget: their ``k``
and shrinkage towards the prior are chosen on the validation rows (neighbours from the training rows
only, test labels never read), see :func:`tune_knn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from moakg.gnn.metrics import average_precision, moa_metrics, target_metrics
from moakg.gnn.models import signature_input
from moakg.gnn.similarity_vote import safe_logit
from moakg.gnn.tasks import (
    COMPOUND,
    GENE,
    SIGNATURE,
    MoATask,
    SignatureTask,
    TargetTask,
    edge_types_between,
    target_relations,
)

AnyTask = MoATask | TargetTask | SignatureTask

KNN_KS: tuple[int, ...] = tuple(range(1, 21))
"""Neighbour counts :func:`tune_knn` tries."""
KNN_SHRINKS: tuple[float, ...] = (0.0, 0.1, 0.3)
"""Shrinkages towards the training prior :func:`tune_knn` tries."""
KNN_DEFAULT: tuple[int, float] = (5, 0.0)
"""``(k, shrink)`` when there is nothing to tune on (no validation row or no defined validation score)."""
_W_FLOOR = 1e-6
TARGET_BASELINES = ("target_jaccard_knn", "target_logreg")
"""The MoA baselines that read held-out compounds' targets (known_targets setting only)."""
SETTING_BASELINES = (*TARGET_BASELINES, "metapath_logreg")
"""The MoA baselines whose input depends on the setting (:func:`setting_baselines`): the rest read the
same features, labels and split in both settings."""


@dataclass
class BaselineResult:
    """One baseline on one split.

    Attributes:
        name: e.g. ``'tanimoto_knn'``.
        metrics: :func:`moa_metrics` or :func:`target_metrics` of ``scores``.
        n_eval: number of evaluated rows (test compounds / signatures it could score).
        scores: ``[n_eval, C]`` probabilities (or ``[n_eval, n_genes]`` target scores).
        eval_idx: long ``[n_eval]`` node indices of the rows of ``scores``.
        note: e.g. how many rows fell back to the prior; tuned baselines: the chosen settings.
        params: settings chosen on the validation split (kNN: ``k``, ``shrink``, ``val`` = their
            validation score); empty for untuned baselines.
    """

    name: str
    metrics: dict[str, float]
    n_eval: int
    scores: Tensor = field(repr=False)
    eval_idx: Tensor = field(repr=False)
    note: str = ""
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class LabelView:
    """A task as multi-label rows: ``y(idx)`` gives ``[len(idx), C]`` labels of nodes ``idx``."""

    node_type: str
    n_rows: int
    n_classes: int
    train: Tensor
    val: Tensor
    test: Tensor
    y: Callable[[Tensor], Tensor]


def label_view(task: AnyTask) -> LabelView:
    """Rows, split and labels of ``task`` (for targets: gene columns, train/val labels = known pairs)."""
    s = task.split
    if isinstance(task, TargetTask):
        n_c = task.graph[COMPOUND].num_nodes
        pairs = torch.cat([task.pos["train"], task.pos["val"]], 1)  # never the test pairs

        def y_targets(idx: Tensor) -> Tensor:
            row = torch.full((n_c,), -1, dtype=torch.long)
            row[idx] = torch.arange(idx.numel())
            keep = row[pairs[0]] >= 0
            out = torch.zeros(idx.numel(), task.n_genes)
            out[row[pairs[0][keep]], pairs[1][keep]] = 1.0
            return out

        return LabelView(COMPOUND, n_c, task.n_genes, s.train, s.val, s.test, y_targets)
    node_type = SIGNATURE if isinstance(task, SignatureTask) else COMPOUND
    return LabelView(node_type, task.y.size(0), task.y.size(1), s.train, s.val, s.test, lambda i: task.y[i])


# --------------------------------------------------------------------------------------------- scorers
def frequency_prior(y_train: Tensor, n: int) -> Tensor:
    """``[n, C]``: every row gets the training frequency of each class (most common MoA / gene first)."""
    return y_train.float().mean(0, keepdim=True).expand(n, -1).clone()


def tanimoto(a: Tensor, b: Tensor) -> Tensor:
    """Tanimoto similarity ``[n, m]`` of bit vectors ``a`` ``[n, F]``, ``b`` ``[m, F]`` (0 if both empty)."""
    a, b = (a > 0).float(), (b > 0).float()
    inter = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation ``[n, m]`` of the rows of ``a`` ``[n, D]`` and ``b`` ``[m, D]`` (over the D dims).

    ``r_ij = <a_i - mean(a_i), b_j - mean(b_j)> / (|a_i - mean(a_i)| |b_j - mean(b_j)|)``, the usual
    similarity of L1000 profiles (CMap compares signatures by correlation). A constant row has no
    defined correlation and gets 0.
    """
    def unit(x: Tensor) -> Tensor:
        x = x.float() - x.float().mean(1, keepdim=True)
        norm = x.norm(dim=1, keepdim=True)
        return torch.where(norm > 0, x / norm.clamp(min=1e-12), torch.zeros_like(x))

    return (unit(a) @ unit(b).T).clamp(-1.0, 1.0)


def knn_scores(sim: Tensor, y_train: Tensor, k: int, prior: Tensor | None = None,
               shrink: float = 0.0) -> Tensor:
    """``[n, C]`` k-nearest-neighbour scores from a query x training similarity ``sim`` ``[n, m]``.

    ``s_i = (1 - a) * sum_{j in N_k(i)} w_ij y_j / sum_{j in N_k(i)} w_ij + a * p`` where ``N_k(i)``
    are the ``k`` training rows most similar to query ``i`` (``torch.topk``; ties as it breaks them),
    ``w_ij = max(sim_ij, 0) + 1e-6``, ``p`` the training prior (``prior``, default the label
    frequencies of ``y_train``) and ``a = shrink``. Negative similarities (anti-correlated profiles)
    weigh only the floor: they are evidence against, not for, sharing labels. The floor keeps the mean
    defined when every neighbour has similarity 0. Shrinking towards ``p`` tempers a small ``k``'s
    overconfident 0/1 scores (which matter for pooled AUPRC across rows).

    ``nan`` in ``sim`` marks a pair without a similarity (one side lacks the input): such a training
    row is never a neighbour (weight 0); a query row without any gets ``p``.
    """
    p = (y_train.float().mean(0) if prior is None else prior.float()).reshape(1, -1)
    n, m = sim.shape
    if m == 0 or k < 1:
        return p.expand(n, -1).clone()
    defined = ~torch.isnan(sim)
    top, idx = torch.where(defined, sim, -math.inf).topk(min(k, m), dim=1)
    w = torch.where(torch.isfinite(top), top.clamp(min=0) + _W_FLOOR, torch.zeros_like(top))
    den = w.sum(1, keepdim=True)
    mean = (w.unsqueeze(2) * y_train.float()[idx]).sum(1) / den.clamp(min=_W_FLOOR)
    mean = torch.where(den > 0, mean, p)
    if shrink == 0.0:
        return mean
    return (1.0 - shrink) * mean + shrink * p


def tanimoto_knn(fp_query: Tensor, fp_train: Tensor, y_train: Tensor, k: int = 5) -> Tensor:
    """:func:`knn_scores` on the :func:`tanimoto` similarity of fingerprints (no shrinkage)."""
    return knn_scores(tanimoto(fp_query, fp_train), y_train, k)


@dataclass
class KnnChoice:
    """What :func:`tune_knn` chose: ``k``, ``shrink`` and their validation score (nan: untuned)."""

    k: int
    shrink: float
    val: float

    @property
    def tuned(self) -> bool:
        return not math.isnan(self.val)


def tune_knn(sim_val: Tensor, y_train: Tensor, prior: Tensor, val_score: Callable[[Tensor], float],
             ks: Sequence[int] = KNN_KS, shrinks: Sequence[float] = KNN_SHRINKS) -> KnnChoice:
    """Grid search of ``(k, shrink)`` for :func:`knn_scores` on the validation rows.

    ``sim_val`` ``[n_val, n_train]`` compares validation rows with training rows only, and ``val_score``
    reads validation labels only, so the choice never sees a test label (the budget the GNN gets when
    it picks its epoch on validation). Maximises ``val_score`` (nan counts as worst); ties keep the
    first in ``ks`` x ``shrinks`` order, i.e. the smaller ``k`` and shrinkage. Without any defined
    score (no validation row, no validation pair) returns :data:`KNN_DEFAULT` with ``val`` nan.
    """
    best = KnnChoice(*KNN_DEFAULT, math.nan)
    if sim_val.size(0) == 0:
        return best
    for k in ks:
        for a in shrinks:
            value = float(val_score(knn_scores(sim_val, y_train, k, prior, a)))
            if value > best.val or (math.isnan(best.val) and not math.isnan(value)):
                best = KnnChoice(int(k), float(a), value)
    return best


class MLP(nn.Module):
    """``[N, F] -> [N, C]`` logits; ``hidden=0`` is logistic regression (one Linear)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                                nn.Linear(hidden, out_dim))
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@contextmanager
def _few_threads(small: bool) -> Iterator[None]:
    """One intra-op thread for small problems: on a busy CPU, OpenMP thread hand-offs made each tiny
    op of a baseline MLP ~100x slower than running it on one thread (measured on a 2-core CI box)."""
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Adam weight decay of the MLP recipe (the baselines and the GNN's own-feature branch)
MLP_WEIGHT_DECAY = 1e-4


def train_mlp(model: nn.Module, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor,
              epochs: int = 200, lr: float = 1e-3, weight_decay: float = MLP_WEIGHT_DECAY,
              val_score: Callable[[Tensor], float] | None = None,
              loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> nn.Module:
    """The MLP recipe's loop: full-batch Adam on ``loss_fn(logits, y)`` (default BCE), the model's
    state at the best validation check kept and loaded back into ``model`` (returned).

    With ``val_score`` (probabilities of the validation rows -> the GNN's selection metric, higher is
    better) the epoch is chosen on it, checked every 5 epochs; without it, on the lowest validation
    BCE. Without validation rows the last epoch is kept. Tensors are read on the model's device.
    """
    loss_fn = loss_fn or F.binary_cross_entropy_with_logits
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt, yt = x_train.float().to(device), y_train.float().to(device)
    xv, yv = x_val.float().to(device), y_val.float().to(device)
    best, best_state = -float("inf"), None
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()
        if xv.size(0) and (epoch % 5 == 4 or epoch == epochs - 1):
            model.eval()
            with torch.no_grad():
                logits = model(xv)
                value = (float(val_score(torch.sigmoid(logits).cpu())) if val_score is not None
                         else -float(F.binary_cross_entropy_with_logits(logits, yv)))
            if value > best:
                best, best_state = value, {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


def fit_predict_mlp(x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor, x_test: Tensor,
                    hidden: int = 256, epochs: int = 200, lr: float = 1e-3,
                    weight_decay: float = MLP_WEIGHT_DECAY, dropout: float = 0.2, seed: int = 0,
                    device: str | torch.device = "cpu",
                    val_score: Callable[[Tensor], float] | None = None) -> Tensor:
    """Train an :class:`MLP` with BCE (:func:`train_mlp`), keep the best validation epoch, predict.

    The recipe is the GNN's: the output bias starts at the training label frequencies
    (:func:`~moakg.gnn.train_moa.init_prior_bias`), and with ``val_score`` the epoch is chosen on the
    GNN's selection metric. Returns probabilities ``[n_test, C]`` (on CPU).
    """
    from moakg.gnn.train_moa import init_prior_bias

    with torch.random.fork_rng(devices=[]), _few_threads(x_train.numel() < 5_000_000):
        torch.manual_seed(seed)  # seeded inside fork_rng: the caller's RNG state is left as it was
        model = MLP(x_train.size(1), y_train.size(1), hidden, dropout).to(device)
        out_layer = model.net[-1] if isinstance(model.net, nn.Sequential) else model.net
        init_prior_bias(out_layer, y_train)  # type: ignore[arg-type]
        train_mlp(model, x_train, y_train, x_val, y_val, epochs, lr, weight_decay, val_score)
        with torch.no_grad():
            return torch.sigmoid(model(x_test.float().to(device))).cpu()


def _standardize(x: Tensor, train: Tensor) -> Tensor:
    mu, sd = x[train].mean(0), x[train].std(0)
    return (x - mu) / torch.where(sd > 1e-8, sd, torch.ones_like(sd))


def gene_degree(graph: object) -> Tensor:
    """float ``[n_genes]``: edges ending at each Gene over all edge types of ``graph``.

    Counting destinations only counts every relation once per gene endpoint, since each relation
    also has its reverse type (which starts at the gene).
    """
    deg = torch.zeros(graph[GENE].num_nodes)
    for et in graph.edge_types:
        if et[2] == GENE:
            deg += torch.bincount(graph[et].edge_index[1], minlength=deg.numel()).float()
    return deg


# --------------------------------------------------------------------------------------------- runner
def _score(task: AnyTask, scores: Tensor, rows: Tensor, part: str = "test",
           ranking_only: bool = False) -> dict[str, float]:
    """Metrics of ``scores`` for ``rows`` (targets: the ``part`` pairs of those rows, training pairs
    filtered; ``ranking_only``: MRR and Hits@k only)."""
    if isinstance(task, TargetTask):
        pairs = task.pos[part]
        keep = torch.isin(pairs[0], rows)
        return target_metrics(scores, pairs[:, keep], compounds=rows, known=task.pos["train"],
                              ranking_only=ranking_only)
    return moa_metrics(task.y[rows], scores)


def _val_score(task: AnyTask, v: LabelView) -> tuple[str, Callable[[Tensor], float]]:
    """The headline metric on the validation rows ``v.val``, as a function of their ``[n_val, C]`` scores.

    Targets: filtered MRR of the validation pairs (training pairs filtered, as for test). MoA: micro
    AUPRC, computed as :func:`moa_metrics` computes its ``micro_auprc`` (``average_precision`` over all
    entries) without the per-class scores it would also compute (~20x the time, 60 times per kNN).
    """
    name = "mrr" if isinstance(task, TargetTask) else "micro_auprc"
    return name, _rows_val_score(task, v.val) or (lambda s: math.nan)


SimFn = Callable[[Tensor, Tensor], Tensor]


def _masked(sim: Tensor, ok_q: Tensor, ok_t: Tensor) -> Tensor:
    """``sim`` with ``nan`` where the query or the training row lacks the input."""
    return torch.where(ok_q.unsqueeze(1) & ok_t.unsqueeze(0), sim, torch.full_like(sim, math.nan))


def _knn_inputs(g: object, n_rows: int) -> list[tuple[str, SimFn, Tensor, str]]:
    """``(name, sim(query_idx, train_idx), usable rows, what rows lack)`` of each kNN baseline of ``g``.

    ``tanimoto_knn``: Tanimoto of fingerprints (compounds with a structure). ``signature_knn``: Pearson
    correlation of the consensus z-vectors (compounds with a signature). ``fused_knn``: the mean of the
    two where both are defined for a pair, else whichever is (Tanimoto lies in [0, 1], the correlation
    in [-1, 1]; both are 1 for identical inputs, so the mean keeps "most similar" meaning the same).
    """
    node = g[COMPOUND]
    sims: dict[str, tuple[SimFn, Tensor]] = {}
    if "fp" in node:
        fp = node.fp
        has = node.get("has_structure", torch.ones(n_rows, dtype=torch.bool)).bool()
        sims["structure"] = (lambda q, t: _masked(tanimoto(fp[q], fp[t]), has[q], has[t]), has)
    z, has_sig = node.get("z"), node.get("has_signature")
    if z is not None and has_sig is not None:
        hs = has_sig.bool()
        sims["a signature"] = (lambda q, t: _masked(pearson(z[q], z[t]), hs[q], hs[t]), hs)
    out = [(name, *sims[lack], lack) for name, lack in (("tanimoto_knn", "structure"),
                                                         ("signature_knn", "a signature")) if lack in sims]
    if len(sims) == 2:
        (s_fp, ok_fp), (s_sig, ok_sig) = sims["structure"], sims["a signature"]
        out.append(("fused_knn", lambda q, t: torch.stack([s_fp(q, t), s_sig(q, t)]).nanmean(0),
                    ok_fp | ok_sig, "structure or a signature"))
    return out


def _tanimoto_input(g: object, n_rows: int) -> tuple[SimFn, Tensor]:
    """``(sim, usable rows)`` of ``tanimoto_knn`` (:func:`_knn_inputs`): what the stacked baselines add to."""
    return next((sim, ok) for name, sim, ok, _ in _knn_inputs(g, n_rows) if name == "tanimoto_knn")


def knn_baselines(task: AnyTask, ks: Sequence[int] = KNN_KS,
                  shrinks: Sequence[float] = KNN_SHRINKS) -> list[BaselineResult]:
    """``tanimoto_knn``, ``signature_knn``, ``fused_knn`` (those whose inputs the graph has) of a
    compound-level task, each tuned on validation by :func:`tune_knn` and scored on every test row.

    Neighbours are the training rows that have the baseline's input; validation and test rows are
    scored alike, a row without the input (no neighbour) getting the training frequency prior. The
    chosen ``k`` / shrinkage are in ``params`` and ``note``. Signature-level tasks get none.
    """
    v = label_view(task)
    if v.node_type != COMPOUND or v.test.numel() == 0:
        return []
    return [_tuned_knn(task, v, name, sim, ok, lack, ks, shrinks)
            for name, sim, ok, lack in _knn_inputs(task.graph, v.n_rows)]


def _tuned_knn(task: AnyTask, v: LabelView, name: str, sim: SimFn, ok: Tensor, lack: str,
               ks: Sequence[int], shrinks: Sequence[float]) -> BaselineResult:
    """One kNN baseline: neighbours among the training rows with ``ok``, ``(k, shrink)`` chosen on the
    validation rows by :func:`tune_knn`, every test row scored (rows without ``ok`` get the prior)."""
    prior = frequency_prior(v.y(v.train), 1)[0]
    metric, val_score = _val_score(task, v)
    tr = v.train[ok[v.train]]
    y_tr = v.y(tr)
    choice = tune_knn(sim(v.val, tr), y_tr, prior, val_score, ks, shrinks)
    scores = knn_scores(sim(v.test, tr), y_tr, choice.k, prior, choice.shrink)
    how = f"val {metric} {choice.val:.3f}" if choice.tuned else "untuned: no validation score"
    note = (f"k={choice.k}, shrink={choice.shrink:g} ({how}); "
            f"{int((~ok[v.test]).sum())} test rows without {lack} use the prior")
    return BaselineResult(name, _score(task, scores, v.test), int(v.test.numel()), scores, v.test, note,
                          {"k": float(choice.k), "shrink": choice.shrink, "val": choice.val})


def _rows_val_score(task: AnyTask, rows: Tensor) -> Callable[[Tensor], float] | None:
    """The GNN's selection metric on validation ``rows`` (micro AUPRC for MoA, filtered MRR for
    targets) as a function of their scores; None without a row."""
    if rows.numel() == 0:
        return None
    if isinstance(task, TargetTask):
        return lambda s: _score(task, s, rows, "val", ranking_only=True)["mrr"]
    y_val = task.y[rows]
    return lambda s: average_precision(y_val, s)


def _feature_baselines(task: AnyTask, v: LabelView, name: str, x: Tensor, ok: Tensor, seed: int,
                       epochs: int, device: str | torch.device, hidden: int, standardize: bool,
                       lr: float = 1e-3) -> tuple[Tensor, Tensor, str]:
    """MLP (or logistic regression) on features ``x`` ``[n_rows, F]``, rows with ``ok`` only, with the
    GNN's recipe (:func:`fit_predict_mlp`)."""
    tr, va, te = v.train[ok[v.train]], v.val[ok[v.val]], v.test[ok[v.test]]
    if tr.numel() == 0 or te.numel() == 0:
        return torch.zeros(0, v.n_classes), te, f"{name}: no training or test rows with features"
    x = _standardize(x.float(), tr) if standardize else x.float()
    scores = fit_predict_mlp(x[tr], v.y(tr), x[va], v.y(va), x[te], hidden=hidden, epochs=epochs, lr=lr,
                             seed=seed, device=device, val_score=_rows_val_score(task, va))
    return scores, te, f"{tr.numel()} train rows with features"


#: weights of the kNN's log-odds added to the MLP's in :func:`stacked_mlp_knn` (chosen on validation)
STACK_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def stacked_mlp_knn(task: AnyTask, v: LabelView, x: Tensor, seed: int, epochs: int,
                    device: str | torch.device, hidden: int, lr: float) -> tuple[Tensor, str]:
    """The fp+signature MLP and the Tanimoto kNN stacked, outside the graph: the GNN's starting point
    (its own-feature branch plus the structure vote) as a baseline of its own.

    ``logit(s) = logit(p_mlp) + w (logit(p_knn) - logit(prior))``, the kNN's log-odds against the prior
    added with weight ``w`` from :data:`STACK_WEIGHTS`, as the model's votes add theirs; the MLP
    (:func:`fit_predict_mlp`, this seed, so the ``fp_sig_mlp`` row's model), the kNN's ``(k, shrink)``
    (:func:`tune_knn`) and ``w`` are each chosen on the validation rows. Returns test scores and a note.
    """
    tr, va, te = v.train, v.val, v.test
    y_tr, y_va = v.y(tr), v.y(va)
    val_metric = _rows_val_score(task, va)
    both = fit_predict_mlp(x[tr], y_tr, x[va], y_va, x[torch.cat([va, te])], hidden=hidden, epochs=epochs,
                           lr=lr, seed=seed, device=device, val_score=val_metric)
    mlp_va, mlp_te = both[: va.numel()], both[va.numel():]
    if val_metric is None:
        return mlp_te, "no validation rows: the MLP alone"
    prior = frequency_prior(y_tr, 1)[0]
    sim, has = _tanimoto_input(task.graph, v.n_rows)
    tr_fp = tr[has[tr]]

    def knn(rows: Tensor, k: int, shrink: float) -> Tensor:
        return knn_scores(sim(rows, tr_fp), v.y(tr_fp), k, prior, shrink)

    choice = tune_knn(sim(va, tr_fp), v.y(tr_fp), prior, val_metric)

    def stack(p_mlp: Tensor, p_knn: Tensor, w: float) -> Tensor:
        return torch.sigmoid(safe_logit(p_mlp) + w * (safe_logit(p_knn) - safe_logit(prior)))

    knn_va = knn(va, choice.k, choice.shrink)
    w = max(STACK_WEIGHTS, key=lambda w: (val_metric(stack(mlp_va, knn_va, w)), -w))
    scores = stack(mlp_te, knn(te, choice.k, choice.shrink), w)
    return scores, f"kNN k={choice.k}, shrink={choice.shrink:g}, weight {w:g} (validation)"


#: weights of the MoA-mediated kNN's scores added to the Tanimoto kNN's in :func:`stacked_moa_knn`
MOA_STACK_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0)


def stacked_moa_knn(task: TargetTask, v: LabelView, ks: Sequence[int] = KNN_KS,
                    shrinks: Sequence[float] = KNN_SHRINKS) -> tuple[Tensor, str] | None:
    r"""The target GNN's MoA-mediated vote rebuilt outside the graph, stacked on the Tanimoto kNN of
    targets: :math:`s_{cg} = s^{\mathrm{kNN}}_{cg} + w \sum_m q_{cm} P(g \mid m)`, where :math:`q_c` is
    a Tanimoto kNN of MoAs over the compounds outside validation and test (``task.moa``, normalised to
    sum to 1) and :math:`P(g \mid m)` the share of the training compounds with MoA ``m`` that target
    ``g``. The kNN's ``(k, shrink)`` (:func:`tune_knn`), the MoA kNN's ``k`` (``ks``) and ``w``
    (:data:`MOA_STACK_WEIGHTS`) are chosen on validation MRR. Returns test scores and a note (None
    without MoAs or validation rows)."""
    moa, val_metric = task.moa, _rows_val_score(task, v.val)
    if moa is None or not bool(moa.sum() > 0) or val_metric is None:
        return None
    prior = frequency_prior(v.y(v.train), 1)[0]
    sim, has = _tanimoto_input(task.graph, v.n_rows)
    tr_fp = v.train[has[v.train]]
    y_fp = v.y(tr_fp)
    choice = tune_knn(sim(v.val, tr_fp), y_fp, prior, val_metric, ks, shrinks)
    m_tr = moa[v.train]
    gene_given_moa = (m_tr.T @ v.y(v.train)) / m_tr.sum(0).clamp(min=1).unsqueeze(1)  # [M, G]
    voters = ((moa.sum(1) > 0) & has).nonzero().view(-1)  # never a held-out compound: their rows are 0

    def moa_votes(rows: Tensor, k: int) -> Tensor:
        q = knn_scores(sim(rows, voters), moa[voters], k)
        return (q / q.sum(1, keepdim=True).clamp(min=1e-9)) @ gene_given_moa

    knn_va = knn_scores(sim(v.val, tr_fp), y_fp, choice.k, prior, choice.shrink)
    votes_va = {k: moa_votes(v.val, k) for k in ks}
    k_m, w = max(((k, w) for k in ks for w in MOA_STACK_WEIGHTS),
                 key=lambda kw: (val_metric(knn_va + kw[1] * votes_va[kw[0]]), -kw[1], -kw[0]))
    scores = knn_scores(sim(v.test, tr_fp), y_fp, choice.k, prior, choice.shrink)
    scores = scores + w * moa_votes(v.test, k_m)
    return scores, (f"kNN k={choice.k}, shrink={choice.shrink:g}; MoA kNN k={k_m}, weight {w:g} "
                    "(validation)")


def compound_targets(graph: object) -> Tensor:
    """long ``[2, P]``: the (compound, gene) pairs of ``graph``'s TARGETS edges (either direction),
    deduplicated (one edge per source counts once), i.e. each compound's known targets as they stand in
    the task graph.

    Only the target relations (:func:`~moakg.gnn.tasks.target_relations`): MIMICS / OPPOSES come from
    the compound's own signature, not from its targets.
    """
    n_genes = graph[GENE].num_nodes
    codes = [torch.empty(0, dtype=torch.long)]
    for et in edge_types_between(graph, COMPOUND, GENE, target_relations()):
        ei = graph[et].edge_index
        c, g = (ei[0], ei[1]) if et[0] == COMPOUND else (ei[1], ei[0])
        codes.append(c * n_genes + g)
    code = torch.cat(codes).unique()
    return torch.stack([code // n_genes, code % n_genes])


def _target_sets(pairs: Tensor, rows: Tensor, n_compounds: int) -> tuple[Tensor, Tensor]:
    """``(T, pos)``: float ``T`` ``[len(rows), G]`` multi-hot target sets of compounds ``rows`` over the
    ``G`` genes any of them targets, and long ``pos`` ``[n_compounds]`` the row of each compound in ``T``
    (``-1`` outside ``rows``). Dense over the split's compounds and their genes only: compounds x all
    genes would be ~1 GB on the full graph (12.5k x 20.5k)."""
    pos = torch.full((n_compounds,), -1, dtype=torch.long)
    pos[rows] = torch.arange(rows.numel())
    pairs = pairs[:, pos[pairs[0]] >= 0]
    genes, col = pairs[1].unique(return_inverse=True)
    t = torch.zeros(rows.numel(), genes.numel())
    t[pos[pairs[0]], col] = 1.0
    return t, pos


def target_baselines(task: AnyTask, seed: int = 0, epochs: int = 200, device: str | torch.device = "cpu",
                     ks: Sequence[int] = KNN_KS, shrinks: Sequence[float] = KNN_SHRINKS,
                     lr: float = 1e-3) -> list[BaselineResult]:
    """``target_jaccard_knn`` and ``target_logreg`` of an MoA task, and ``target_jaccard_knn`` of a
    target task, in the ``'known_targets'`` setting (none in ``'phenotype'``: there held-out compounds
    have no targets).

    There the GNN sees every held-out compound's TARGETS edges; these baselines ask how much of its
    score known targets alone explain. Both read target sets from ``task.graph``
    (:func:`compound_targets`) and the MoA labels of training rows (of validation rows for the choices)
    only; a test compound contributes its targets, never its label.

    ``target_jaccard_knn``: :func:`knn_scores` on the Jaccard similarity of target-gene sets
    (:func:`tanimoto` of the multi-hot rows), neighbours among the training compounds with a target,
    ``k`` in ``ks`` and shrinkage in ``shrinks`` chosen on validation exactly as for ``tanimoto_knn``
    (:func:`tune_knn`); compounds without a target get the prior. ``target_logreg``: logistic
    regression on the multi-hot vector over the genes targeted by at least one training compound (the
    feature space is counted on training compounds only, as the classes are), with the MLP baselines'
    recipe (:func:`fit_predict_mlp`: prior-bias init, ``lr``, epoch chosen on validation micro AUPRC),
    trained on the training compounds with a target; test compounds without a target among those genes
    get the prior. ``note`` says how many test rows got it.

    Target task: the held-out compound's kept targets find the training compounds with the most similar
    target sets, whose targets vote for its hidden ones ("targets predict targets", with no graph beyond
    the TARGETS edges); its kept targets are filtered from the ranking as for every model. No
    ``target_logreg`` there: a training compound's input would be its own label vector, so the
    regression would learn the identity, not which targets go together.
    """
    if not isinstance(task, MoATask | TargetTask) or task.setting != "known_targets":
        return []
    v = label_view(task)
    if v.test.numel() == 0:
        return []
    split_rows = torch.cat([v.train, v.val, v.test])
    t, pos = _target_sets(compound_targets(task.graph), split_rows, v.n_rows)
    has = torch.zeros(v.n_rows, dtype=torch.bool)
    has[split_rows] = t.sum(1) > 0
    out = [_tuned_knn(task, v, "target_jaccard_knn",
                      lambda q, tr: _masked(tanimoto(t[pos[q]], t[pos[tr]]), has[q], has[tr]), has,
                      "a target", ks, shrinks)]
    if isinstance(task, TargetTask):
        return out
    x = t[:, t[pos[v.train]].sum(0) > 0]  # columns: the genes targeted by a training compound
    tr, va, te = (rows[x[pos[rows]].sum(1) > 0] for rows in (v.train, v.val, v.test))
    if tr.numel() and te.numel():
        full = frequency_prior(v.y(v.train), v.test.numel())
        full[torch.isin(v.test, te)] = fit_predict_mlp(
            x[pos[tr]], v.y(tr), x[pos[va]], v.y(va), x[pos[te]], hidden=0, epochs=epochs, lr=lr, seed=seed,
            device=device, val_score=_rows_val_score(task, va))
        note = (f"{x.size(1)} target genes of training compounds; {v.test.numel() - te.numel()} test "
                "rows without any of them use the prior")
        out.append(BaselineResult("target_logreg", _score(task, full, v.test), int(v.test.numel()), full,
                                  v.test, note))
    return out


def run_baselines(task: AnyTask, seed: int = 0, epochs: int = 200, hidden: int = 256,
                  device: str | torch.device = "cpu", ks: Sequence[int] = KNN_KS,
                  shrinks: Sequence[float] = KNN_SHRINKS, lr: float = 1e-3) -> list[BaselineResult]:
    """Every baseline that applies to ``task``, on ``task.split``, scored on its test rows.

    MoA / target tasks: ``frequency_prior``, (targets: ``degree`` and ``tanimoto_moa_knn``,
    :func:`stacked_moa_knn`), ``tanimoto_knn``, ``signature_knn``,
    ``fused_knn`` (:func:`knn_baselines`, ``k`` in ``ks`` and shrinkage in ``shrinks`` chosen on
    validation), ``fp_mlp`` (rows without a structure get the prior), ``fp_sig_logreg`` and
    ``fp_sig_mlp`` on the GNN's own compound input (fingerprint, scaled signature, a has-signature
    column; every compound), ``sig_logreg``, ``sig_mlp``,
    ``shuffled_sig_mlp`` (rows without a signature get the prior); in ``'known_targets'`` only:
    ``target_jaccard_knn`` and (MoA) ``target_logreg`` (:func:`target_baselines`); MoA tasks also
    ``metapath_logreg``, the interpretable-by-design Rephetio baseline
    (:mod:`moakg.gnn.explain.metapath_model`). Signature tasks:
    ``frequency_prior``, ``sig_logreg``, ``sig_mlp``, ``shuffled_sig_mlp`` on the signature profiles.
    """
    v = label_view(task)
    g = task.graph
    y_train = v.y(v.train)
    out: list[BaselineResult] = []

    def add(name: str, scores: Tensor, rows: Tensor, note: str = "") -> None:
        if rows.numel():
            metrics = _score(task, scores, rows)
            out.append(BaselineResult(name, metrics, int(rows.numel()), scores, rows, note))

    prior = frequency_prior(y_train, v.test.numel())
    add("frequency_prior", prior, v.test)
    if isinstance(task, TargetTask):
        add("degree", gene_degree(g).unsqueeze(0).expand(v.test.numel(), -1).clone(), v.test,
            "gene degree in the training graph")
    out.extend(knn_baselines(task, ks, shrinks))
    got = stacked_moa_knn(task, v, ks, shrinks) if isinstance(task, TargetTask) and "fp" in g[COMPOUND] \
        else None
    if got is not None:
        add("tanimoto_moa_knn", got[0], v.test, got[1])
    if v.node_type == COMPOUND and "fp" in g[COMPOUND]:
        fp = g[COMPOUND].fp
        has = g[COMPOUND].get("has_structure", torch.ones(v.n_rows, dtype=torch.bool)).bool()
        te_ok = has[v.test]
        mlp_scores, rows, _ = _feature_baselines(task, v, "fp_mlp", fp, has, seed, epochs, device, hidden,
                                                 False, lr)
        fp_mlp = prior.clone()
        fp_mlp[torch.isin(v.test, rows)] = mlp_scores
        add("fp_mlp", fp_mlp, v.test, f"{int((~te_ok).sum())} test rows without structure use the prior")
        z_c, sig_c = g[COMPOUND].get("z"), g[COMPOUND].get("has_signature")
        if z_c is not None and sig_c is not None:
            x_both = torch.cat([fp, signature_input(z_c), sig_c.float().view(-1, 1)], 1)
            every = torch.ones(v.n_rows, dtype=torch.bool)
            for name, hid in (("fp_sig_logreg", 0), ("fp_sig_mlp", hidden)):
                scores, rows, note = _feature_baselines(task, v, name, x_both, every, seed, epochs, device,
                                                        hid, False, lr)
                add(name, scores, rows, "fingerprint | scaled signature | has-signature, the GNN's input")
            if isinstance(task, MoATask):
                scores, note = stacked_mlp_knn(task, v, x_both, seed, epochs, device, hidden, lr)
                add("fp_sig_mlp_knn", scores, v.test, note)
    if v.node_type == COMPOUND:
        z = g[COMPOUND].get("z")
        has_sig = g[COMPOUND].get("has_signature")
    else:
        z, has_sig = g[SIGNATURE].x, torch.ones(v.n_rows, dtype=torch.bool)
    if z is not None and has_sig is not None:
        has_sig = has_sig.bool()
        # Shuffled-drug ablation: the same profiles, dealt to the wrong compounds.
        idx = has_sig.nonzero().view(-1)
        perm = idx[torch.from_numpy(np.random.default_rng(seed).permutation(idx.numel()))]
        z_shuf = z.clone()
        z_shuf[idx] = z[perm]
        for name, x, hid in (("sig_logreg", z, 0), ("sig_mlp", z, hidden),
                             ("shuffled_sig_mlp", z_shuf, hidden)):
            scores, rows, note = _feature_baselines(task, v, name, x, has_sig, seed, epochs, device, hid,
                                                    True, lr)
            if v.node_type == COMPOUND and rows.numel():
                # Scored on the GNN's test rows: compounds without a signature get the prior.
                n_prior = v.test.numel() - rows.numel()
                full = prior.clone()
                full[torch.isin(v.test, rows)] = scores
                scores, rows = full, v.test
                note = f"{n_prior} test rows without a signature use the prior"
            add(name, scores, rows, note)
    out.extend(setting_baselines(task, seed, epochs, device, ks, shrinks, lr))
    return out


def setting_baselines(task: AnyTask, seed: int = 0, epochs: int = 200, device: str | torch.device = "cpu",
                      ks: Sequence[int] = KNN_KS, shrinks: Sequence[float] = KNN_SHRINKS,
                      lr: float = 1e-3) -> list[BaselineResult]:
    """The baselines whose input depends on the setting: :func:`target_baselines` and, for MoA tasks,
    ``metapath_logreg`` (its metapaths through TARGETS exist only in ``'known_targets'``)."""
    out = target_baselines(task, seed, epochs, device, ks, shrinks, lr)
    if isinstance(task, MoATask):
        # imported here: the metapath model builds on this module's BaselineResult
        from moakg.gnn.explain.metapath_model import metapath_baseline

        out.append(metapath_baseline(task, seed)[0])
    return out


def n_with_signature(task: AnyTask) -> int:
    """Test rows (compounds; signature tasks: signatures, all of which are profiles) with a signature."""
    v = label_view(task)
    if v.node_type != COMPOUND:
        return int(v.test.numel())
    has_sig = task.graph[COMPOUND].get("has_signature")
    return 0 if has_sig is None else int(has_sig.bool()[v.test].sum())
