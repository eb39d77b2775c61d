"""Training one GNN on one task and split: full batch or sampled mini-batches, early stopping on val.

:func:`train` takes a :class:`~moakg.gnn.tasks.MoATask` (multi-label node classification; Compound, or
Signature for the unseen-cell-line task) or a :class:`~moakg.gnn.tasks.TargetTask` (Compound -> Gene link
prediction) and returns a :class:`RunResult`: the test metrics of the epoch with the best validation
metric (macro AUPRC for MoA, filtered MRR for targets), per-epoch curves, the test scores and the model.

Mini-batches come from :func:`sample_subgraph`, a neighbour sampler in plain torch: PyG's
``NeighborLoader`` / ``LinkNeighborLoader`` need ``pyg-lib`` or ``torch-sparse``, which have no wheels for
this torch on PyPI, so the loaders would fail at import time on CI. The sampler does what they do for
our needs (``num_neighbors`` incoming edges per node and hop, seeds kept, global ids in ``n_id``) and
returns the induced subgraph of the sampled nodes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.models import (
    HeteroEncoder,
    MoAClassifier,
    TargetLinkPredictor,
    build_encoder,
    count_parameters,
    is_label_edge,
    message_edge_types,
)

#: above this many nodes + edges the graph is trained in mini-batches even without ``mini_batch=True``
DEFAULT_NODE_BUDGET = 5_000_000


@dataclass
class ModelConfig:
    """Encoder and head shape (see :class:`~moakg.gnn.models.HeteroEncoder`)."""

    kind: str = "sage"
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.2
    heads: int = 2


@dataclass
class TrainConfig:
    """Optimisation and batching.

    ``mini_batch``: None chooses by size (``node_budget``); ``num_neighbors`` is per hop (one entry per
    layer is typical). ``loss``: ``bce`` | ``weighted`` (BCE with positive-class weights from the training
    frequencies) | ``gce`` (generalized cross-entropy, robust to label noise; ``gce_q``). Target prediction
    always uses BCE on positives vs ``neg_ratio`` random negative genes per positive, with
    ``supervision_frac`` of the training edges held out of message passing each epoch (so the model
    learns to predict edges it cannot see, as at test time).
    """

    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20
    loss: str = "bce"
    # q = 0.7 (the paper's value for single-label softmax) leaves the rare positives of 100+ one-vs-rest
    # MoA columns almost no gradient (p^q at p ~ 0.01); on the demo graph it never left the prior, while
    # q = 0.3 trains like BCE on clean labels (micro AUPRC 0.50 vs 0.53, sage, 40 epochs).
    gce_q: float = 0.3
    quality_weights: bool = False
    mini_batch: bool | None = False
    batch_size: int = 256
    num_neighbors: tuple[int, ...] = (15, 10)
    node_budget: int = DEFAULT_NODE_BUDGET
    neg_ratio: int = 5
    supervision_frac: float = 0.3
    device: str = "cpu"
    seed: int = 0
    verbose: bool = False


@dataclass
class RunResult:
    """What one training run produced.

    ``test_scores`` [n_test, n_classes] probabilities (MoA) or [n_test_compounds, n_genes] sigmoid scores
    (targets), rows aligned with ``test_index`` (node indices of ``task``'s node type).
    ``curves``: ``epoch``, ``loss`` (mean training loss), ``val`` (validation metric) per epoch.
    """

    task: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    metrics: dict[str, float]
    val_metrics: dict[str, float]
    val_metric_name: str
    best_epoch: int
    epochs_run: int
    curves: dict[str, list[float]]
    test_index: Tensor
    test_scores: Tensor
    seconds: float
    seconds_per_epoch: float
    mode: str
    n_params: int
    model: nn.Module = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record without tensors or the model."""
        return {
            "task": self.task, "model": asdict(self.model_cfg), "train": asdict(self.train_cfg),
            "metrics": self.metrics, "val_metrics": self.val_metrics, "val_metric": self.val_metric_name,
            "best_epoch": self.best_epoch, "epochs_run": self.epochs_run, "seconds": round(self.seconds, 3),
            "seconds_per_epoch": round(self.seconds_per_epoch, 4), "mode": self.mode,
            "n_params": self.n_params,
        }


# --------------------------------------------------------------------------------------------------
# sampling


def _group_rank(key: Tensor, generator: torch.Generator) -> Tensor:
    """Random rank of each element within its group of equal ``key`` (0 = first), ``[E] -> [E]``."""
    perm = torch.randperm(key.numel(), generator=generator)
    order = perm[torch.argsort(key[perm], stable=True)]  # grouped by key, random inside a group
    sorted_key = key[order]
    first = torch.searchsorted(sorted_key, sorted_key, right=False)
    rank = torch.empty_like(key)
    rank[order] = torch.arange(key.numel()) - first
    return rank


def sample_subgraph(
    graph: HeteroData, seeds: dict[str, Tensor], num_neighbors: tuple[int, ...], generator: torch.Generator,
) -> tuple[HeteroData, dict[str, Tensor]]:
    """Sampled neighbourhood of ``seeds`` as an induced subgraph, like PyG's ``NeighborLoader``.

    Hop ``h`` keeps at most ``num_neighbors[h]`` incoming message edges (label edges never) per
    frontier node and edge type, chosen at random with ``generator``. Returns the induced subgraph of
    all reached nodes (node attributes sliced, ``sub[t].n_id`` [n_t] = global indices, sorted) and
    ``{t: [len(seeds[t])]}`` local positions of the seeds in it.
    """
    edge_types = message_edge_types(graph)
    reached = {t: torch.zeros(int(graph[t].num_nodes), dtype=torch.bool) for t in graph.node_types}
    frontier = {t: torch.zeros_like(m) for t, m in reached.items()}
    for t, idx in seeds.items():
        reached[t][idx.cpu()] = True
        frontier[t][idx.cpu()] = True
    for k in num_neighbors:
        new = {t: torch.zeros_like(m) for t, m in reached.items()}
        for et in edge_types:
            src_t, _, dst_t = et
            ei = graph[et].edge_index
            if ei.numel() == 0 or not frontier[dst_t].any():
                continue
            cand = frontier[dst_t][ei[1]].nonzero().squeeze(1)
            if cand.numel() == 0:
                continue
            if cand.numel() > k:
                cand = cand[_group_rank(ei[1, cand], generator) < k]
            new[src_t][ei[0, cand]] = True
        frontier = {t: new[t] & ~reached[t] for t in reached}
        for t in reached:
            reached[t] |= new[t]
    node_idx = {t: m.nonzero().squeeze(1) for t, m in reached.items()}
    sub = graph.subgraph(node_idx)
    for t, idx in node_idx.items():
        sub[t].n_id = idx
    local = {t: torch.searchsorted(node_idx[t], idx.cpu()) for t, idx in seeds.items()}
    return sub, local


def _batches(idx: Tensor, size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """``idx`` in slices of ``size``, shuffled when a generator is given."""
    if generator is not None:
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
    for i in range(0, idx.numel(), size):
        yield idx[i : i + size]


def graph_size(graph: HeteroData) -> int:
    """Nodes plus message edges: what full-batch memory grows with."""
    nodes = sum(int(graph[t].num_nodes) for t in graph.node_types)
    return nodes + sum(graph[et].edge_index.size(1) for et in message_edge_types(graph))


def strip_label_edges(graph: HeteroData) -> HeteroData:
    """A shallow copy of ``graph`` without HAS_MOA edge types (they are labels, never messages)."""
    out = copy.copy(graph)
    for et in [et for et in graph.edge_types if is_label_edge(et)]:
        del out[et]
    return out


# --------------------------------------------------------------------------------------------------
# losses and metrics (from moakg.gnn.losses / moakg.gnn.metrics)


def make_moa_loss(cfg: TrainConfig, y_train: Tensor) -> Callable[..., Tensor]:
    """``loss(logits [B, C], y [B, C], sample_weight [B] | None) -> scalar`` for ``cfg.loss``; the
    ``weighted`` loss takes its positive-class weights from the training labels ``y_train``."""
    from moakg.gnn.losses import make_loss, pos_weight_from_labels

    pos_weight = pos_weight_from_labels(y_train) if cfg.loss == "weighted" else None
    return make_loss(cfg.loss, pos_weight, q=cfg.gce_q)


def moa_eval(y: Tensor, probs: Tensor) -> dict[str, float]:
    from moakg.gnn.metrics import moa_metrics

    return moa_metrics(y, probs)


def target_eval(scores: Tensor, comp: Tensor, pos: Tensor, known: Tensor | None) -> dict[str, float]:
    """Filtered ranking metrics of ``scores`` [len(comp), n_genes] (row i = compound ``comp[i]``) against
    the true pairs ``pos`` [2, E]; ``known`` [2, E'] training pairs are left out of the ranking."""
    from moakg.gnn.metrics import target_metrics

    return target_metrics(scores, pos, compounds=comp, known=known)


# --------------------------------------------------------------------------------------------------
# training


def _seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def _is_target_task(task: Any) -> bool:
    return hasattr(task, "pos") and hasattr(task, "n_genes")


def train(task: Any, model_cfg: ModelConfig | None = None, train_cfg: TrainConfig | None = None,
          y: Tensor | None = None, sample_weight: Tensor | None = None) -> RunResult:
    """Train one model on ``task`` (MoATask, signature task or TargetTask) and evaluate it on test.

    ``y`` overrides ``task.y`` for training only (label-noise experiments: val and test stay clean);
    ``sample_weight`` [n_nodes] weights each labelled node's loss (signature quality).
    """
    model_cfg, train_cfg = model_cfg or ModelConfig(), train_cfg or TrainConfig()
    gen = _seed_all(train_cfg.seed)
    graph = strip_label_edges(task.graph)
    mini = train_cfg.mini_batch
    if mini is None:
        mini = graph_size(graph) > train_cfg.node_budget
    device = torch.device(train_cfg.device)
    encoder = build_encoder(graph, model_cfg.kind, model_cfg.hidden, model_cfg.layers, model_cfg.dropout,
                            model_cfg.heads)
    if _is_target_task(task):
        return _train_targets(task, graph, encoder, model_cfg, train_cfg, bool(mini), device, gen)
    return _train_moa(task, graph, encoder, model_cfg, train_cfg, bool(mini), device, gen, y, sample_weight)


def init_prior_bias(layer: nn.Linear, y_train: Tensor, eps: float = 1e-3) -> None:
    """Start the output layer at the training class frequencies: bias = logit(freq) [C].

    With 100+ rare classes and a zero bias every class starts at p = 0.5 and the first many steps only
    push all outputs down; starting at the frequency prior means the model begins where the
    frequency baseline ends and spends its steps on what distinguishes compounds.
    """
    freq = y_train.float().mean(0).clamp(eps, 1 - eps)
    with torch.no_grad():
        layer.bias.copy_(torch.log(freq / (1 - freq)))


class _EarlyStop:
    """Keeps the best state dict by validation metric; says when ``patience`` epochs brought nothing."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best, self.best_epoch, self.state, self.bad = patience, -float("inf"), -1, None, 0

    def step(self, epoch: int, value: float, model: nn.Module) -> bool:
        if value > self.best + 1e-6 or self.state is None:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best state seen back into ``model``."""
        if self.state is not None:
            model.load_state_dict(self.state)


def _end_epoch(curves: dict[str, list[float]], epoch: int, losses: list[float], val: float, metric: str,
               cfg: TrainConfig, stop: _EarlyStop, model: nn.Module) -> bool:
    """Record one epoch's mean loss and validation metric; True when early stopping says stop."""
    curves["epoch"].append(epoch)
    curves["loss"].append(float(np.mean(losses)))
    curves["val"].append(val)
    if cfg.verbose:
        print(f"epoch {epoch:4d}  loss {curves['loss'][-1]:.4f}  val {metric} {val:.4f}")
    return stop.step(epoch, val, model)


def _moa_node_type(task: Any) -> str:
    """Signature for the signature-level task (labels on signatures), else Compound."""
    from moakg.gnn.tasks import SignatureTask

    return "Signature" if isinstance(task, SignatureTask) else "Compound"


def _moa_predict(model: MoAClassifier, graph: HeteroData, idx: Tensor, mini: bool, cfg: TrainConfig,
                 device: torch.device) -> Tensor:
    """Probabilities [len(idx), C] for nodes ``idx`` (eval mode, no grad; fixed-seed sampling)."""
    model.eval()
    with torch.no_grad():
        if not mini:
            return torch.sigmoid(model(graph)[idx.to(device)]).cpu()
        gen = torch.Generator().manual_seed(12345)
        out = []
        for batch in _batches(idx, cfg.batch_size, None):
            sub, local = sample_subgraph(graph, {model.node_type: batch}, cfg.num_neighbors, gen)
            out.append(torch.sigmoid(model(sub)[local[model.node_type].to(device)]).cpu())
        return torch.cat(out) if out else torch.zeros(0, model.head[-1].out_features)


def _train_moa(task: Any, graph: HeteroData, encoder: HeteroEncoder, model_cfg: ModelConfig,
               cfg: TrainConfig, mini: bool, device: torch.device, gen: torch.Generator,
               y_override: Tensor | None, sample_weight: Tensor | None) -> RunResult:
    node_type = _moa_node_type(task)
    y_clean = task.y.float()
    y_train_all = (y_override if y_override is not None else task.y).float()
    split = task.split
    model = MoAClassifier(encoder, y_clean.size(1), node_type)
    init_prior_bias(model.head[-1], y_train_all[split.train])
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = make_moa_loss(cfg, y_train_all[split.train])
    full_graph = graph if mini else graph.to(device)
    y_dev = y_train_all.to(device)
    w_dev = sample_weight.float().to(device) if sample_weight is not None and cfg.quality_weights else None
    stop = _EarlyStop(cfg.patience)
    curves: dict[str, list[float]] = {"epoch": [], "loss": [], "val": []}
    t0 = time.perf_counter()
    epochs_run = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        if mini:
            for batch in _batches(split.train, cfg.batch_size, gen):
                sub, local = sample_subgraph(graph, {node_type: batch}, cfg.num_neighbors, gen)
                logits = model(sub)[local[node_type].to(device)]
                bdev = batch.to(device)
                loss = loss_fn(logits, y_dev[bdev], None if w_dev is None else w_dev[bdev])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        else:
            tr = split.train.to(device)
            logits = model(full_graph)[tr]
            loss = loss_fn(logits, y_dev[tr], None if w_dev is None else w_dev[tr])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        probs = _moa_predict(model, full_graph, split.val, mini, cfg, device)
        val = moa_eval(y_clean[split.val], probs)["macro_auprc"]
        epochs_run = epoch
        if _end_epoch(curves, epoch, losses, float(val), "macro_auprc", cfg, stop, model):
            break
    seconds = time.perf_counter() - t0
    stop.restore(model)
    val_probs = _moa_predict(model, full_graph, split.val, mini, cfg, device)
    test_probs = _moa_predict(model, full_graph, split.test, mini, cfg, device)
    return RunResult(
        task="moa", model_cfg=model_cfg, train_cfg=cfg, metrics=moa_eval(y_clean[split.test], test_probs),
        val_metrics=moa_eval(y_clean[split.val], val_probs), val_metric_name="macro_auprc",
        best_epoch=stop.best_epoch, epochs_run=epochs_run, curves=curves, test_index=split.test.clone(),
        test_scores=test_probs, seconds=seconds, seconds_per_epoch=seconds / max(epochs_run, 1),
        mode="mini-batch" if mini else "full-batch", n_params=count_parameters(model), model=model.cpu(),
    )


# --- targets ---------------------------------------------------------------------------------------

TARGET_REL = ("Compound", "TARGETS", "Gene")
REV_TARGET_REL = ("Gene", "rev_TARGETS", "Compound")


def _without_pairs(graph: HeteroData, pairs: Tensor, n_genes: int) -> HeteroData:
    """Shallow copy of ``graph`` (own stores, shared tensors) without the TARGETS edges of ``pairs``
    [2, E] (compound, gene), in both directions."""
    out = copy.copy(graph)
    drop = pairs[0] * n_genes + pairs[1]
    for et, flip in ((TARGET_REL, False), (REV_TARGET_REL, True)):
        if et not in graph.edge_types:
            continue
        ei = graph[et].edge_index
        ei_cg = ei.flip(0) if flip else ei
        keep = ~torch.isin(ei_cg[0] * n_genes + ei_cg[1], drop)
        out[et].edge_index = ei[:, keep]
        for key in ("edge_attr", "source_code"):
            value = graph[et].get(key)
            if isinstance(value, Tensor) and value.size(0) == ei.size(1):
                out[et][key] = value[keep]
    return out


def _neg_genes(n: int, n_genes: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, n_genes, (n,), generator=gen)


def _target_embed(model: TargetLinkPredictor, graph: HeteroData, comp: Tensor, mini: bool, cfg: TrainConfig,
                  device: torch.device) -> Tensor:
    """Sigmoid scores [len(comp), n_genes] of compounds ``comp`` against every gene (eval, no grad)."""
    model.eval()
    with torch.no_grad():
        if not mini:
            h = model(graph)
            return torch.sigmoid(model.score_all(h, comp.to(device))).cpu()
        # Mini-batch inference: embed genes and compounds in sampled batches, then score all pairs.
        gen = torch.Generator().manual_seed(12345)
        n_genes = int(graph["Gene"].num_nodes)
        tables: dict[str, Tensor] = {}
        for t, idx in (("Gene", torch.arange(n_genes)), ("Compound", comp)):
            parts = []
            for batch in _batches(idx, max(cfg.batch_size, 1024), None):
                sub, local = sample_subgraph(graph, {t: batch}, cfg.num_neighbors, gen)
                parts.append(model(sub)[t][local[t].to(device)])
            tables[t] = torch.cat(parts)
        return torch.sigmoid(model.score_all(tables, torch.arange(comp.numel(), device=device))).cpu()


def _train_targets(task: Any, graph: HeteroData, encoder: HeteroEncoder, model_cfg: ModelConfig,
                   cfg: TrainConfig, mini: bool, device: torch.device, gen: torch.Generator) -> RunResult:
    n_genes = int(task.n_genes)
    model = TargetLinkPredictor(encoder, n_genes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pos_train = task.pos["train"]
    split = task.split
    bce = nn.BCEWithLogitsLoss()
    stop = _EarlyStop(cfg.patience)
    curves: dict[str, list[float]] = {"epoch": [], "loss": [], "val": []}
    eval_graph = graph if mini else graph.to(device)
    t0 = time.perf_counter()
    epochs_run = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        # Hold a random share of the training edges out of message passing and predict exactly those.
        n_sup = max(1, int(round(cfg.supervision_frac * pos_train.size(1))))
        sup = pos_train[:, torch.randperm(pos_train.size(1), generator=gen)[:n_sup]]
        msg_graph = _without_pairs(graph, sup, n_genes)
        losses = []
        for b in _batches(torch.arange(sup.size(1)), cfg.batch_size if mini else sup.size(1), gen):
            p = sup[:, b]
            comp = p[0].repeat(cfg.neg_ratio + 1)
            gene = torch.cat([p[1], _neg_genes(p.size(1) * cfg.neg_ratio, n_genes, gen)])
            label = torch.cat([torch.ones(p.size(1)), torch.zeros(p.size(1) * cfg.neg_ratio)]).to(device)
            if mini:
                uc, ci = torch.unique(comp, return_inverse=True)
                ug, gi = torch.unique(gene, return_inverse=True)
                sub, local = sample_subgraph(msg_graph, {"Compound": uc, "Gene": ug}, cfg.num_neighbors, gen)
                h = model(sub)
                logits = model.score(h, local["Compound"][ci].to(device), local["Gene"][gi].to(device),
                                     gene.to(device))
            else:
                h = model(msg_graph.to(device))
                logits = model.score(h, comp.to(device), gene.to(device))
            loss = bce(logits, label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val_comp = split.val
        scores = _target_embed(model, eval_graph, val_comp, mini, cfg, device)
        val = target_eval(scores, val_comp, task.pos["val"], pos_train)["mrr"]
        epochs_run = epoch
        if _end_epoch(curves, epoch, losses, float(val), "mrr", cfg, stop, model):
            break
    seconds = time.perf_counter() - t0
    stop.restore(model)
    val_scores = _target_embed(model, eval_graph, split.val, mini, cfg, device)
    test_scores = _target_embed(model, eval_graph, split.test, mini, cfg, device)
    return RunResult(
        task="target", model_cfg=model_cfg, train_cfg=cfg,
        metrics=target_eval(test_scores, split.test, task.pos["test"], pos_train),
        val_metrics=target_eval(val_scores, split.val, task.pos["val"], pos_train), val_metric_name="mrr",
        best_epoch=stop.best_epoch, epochs_run=epochs_run, curves=curves, test_index=split.test.clone(),
        test_scores=test_scores, seconds=seconds, seconds_per_epoch=seconds / max(epochs_run, 1),
        mode="mini-batch" if mini else "full-batch", n_params=count_parameters(model), model=model.cpu(),
    )
