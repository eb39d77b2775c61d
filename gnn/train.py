"""Training one GNN on one task and split: the entry point.

:func:`train` takes a :class:`~moakg.gnn.tasks.MoATask` (multi-label node classification; Compound, or
Signature for the unseen-cell-line task) or a :class:`~moakg.gnn.tasks.TargetTask` (Compound -> Gene link
prediction), a :class:`~moakg.gnn.config.TrainConfig`, the model kind and the seed, and returns a
:class:`~moakg.gnn.fit.RunResult`: the test metrics of the epoch with the best validation metric (macro
AUPRC for MoA, filtered MRR for targets), per-epoch curves, the test scores and the model.

    result = train(task, TrainConfig(hidden=64, epochs=50), kind="hgt", seed=1)

The work is split by job: :mod:`~moakg.gnn.config` (the options), :mod:`~moakg.gnn.sampling` (neighbour
sampling), :mod:`~moakg.gnn.fit` (epoch loop, early stopping, result), :mod:`~moakg.gnn.train_moa` and
:mod:`~moakg.gnn.train_target` (one task each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import RunResult, fit, seed_all
from moakg.gnn.label_trick import attach_label_input
from moakg.gnn.link_vote import LinkVotes
from moakg.gnn.models import (
    FeatureMLP,
    MoAClassifier,
    TargetLinkPredictor,
    build_encoder,
    check_kinds,
    signature_input,
    strip_label_edges,
)
from moakg.gnn.sampling import graph_size
from moakg.gnn.similarity_vote import TARGET_JACCARD, LabelVotes, VoteSpec
from moakg.gnn.tasks import COMPOUND, SIGNATURE, MoATask, SignatureTask, TargetTask
from moakg.gnn.train_moa import MoATrainer
from moakg.gnn.train_target import TargetTrainer
from moakg.kg.schema import edge_type

__all__ = ["RunResult", "TrainConfig", "build_model", "model_graph", "train"]

#: similarity relations the label votes run over: the similarity recomputed on their endpoints, the
#: feature compared, the initial gate. The model starts as the structure kNN (the strongest baseline on
#: every dataset measured, README); the signature vote starts closed and opens as far as training finds
#: it useful (open from the start, its weak evidence cost 0.05-0.07 test micro AUPRC on the demo).
VOTE_RELATIONS = (("SIMILAR_STRUCTURE", "tanimoto", "fp", 1.0), ("SIMILAR_SIGNATURE", "pearson", "z", 0.0))
#: the vote of compounds sharing known targets (metapath Compound-TARGETS-Gene-TARGETS-Compound, Jaccard
#: of the target sets in the graph passed in), in the 'known_targets' setting only: there held-out
#: compounds bring targets; in 'phenotype' they have none, so the vote could only fit training compounds.
#: It starts closed, as the signature vote does.
SHARED_TARGET = "SHARED_TARGET"
#: target votes through the MoA layer (metapath Compound-SIMILAR_STRUCTURE-Compound-HAS_MOA-MoA-HAS_MOA-
#: Compound-TARGETS-Gene, :class:`~moakg.gnn.link_vote.MoAVoteTable`): the structural neighbours' MoAs
#: vote with the targets of the training compounds that share them. Starts closed; the validation grid
#: opens it. Why: on the demo's five scaffold splits a kNN of targets plus this vote (10 neighbours'
#: MoAs, its best weight per split) beat the kNN alone on validation MRR on every split (0.216 -> 0.225
#: on split 0, 0.186 -> 0.211 on split 3); the stacked baseline `tanimoto_moa_knn` is that sum.
MOA_MEDIATED = "MOA_MEDIATED"


def uses_label_trick(task: Any, cfg: TrainConfig) -> bool:
    """The label trick (training compounds' MoA labels as input) applies to compound MoA tasks when
    ``cfg.label_trick`` is on; target tasks vote with the TARGETS edges instead
    (:func:`uses_link_votes`)."""
    return cfg.label_trick and isinstance(task, MoATask)


def uses_link_votes(task: Any, cfg: TrainConfig) -> bool:
    """Target tasks add their similar compounds' target votes when ``cfg.label_trick`` is on."""
    return cfg.label_trick and isinstance(task, TargetTask)


def _scale_signature_inputs(graph: HeteroData) -> None:
    """Replace the z-valued inputs (Compound ``x``'s signature columns, Signature ``x``) by
    :func:`signature_input` of them, on ``graph``'s own stores (the task's tensors are left alone)."""
    store = graph[COMPOUND]
    cols = _feature_cols(graph, "z") if COMPOUND in graph.node_types and "x" in store else None
    if cols is not None:
        x = store.x.clone()
        x[:, cols[0]:cols[1]] = signature_input(x[:, cols[0]:cols[1]])
        store.x = x
    if SIGNATURE in graph.node_types and "x" in graph[SIGNATURE]:
        graph[SIGNATURE].x = signature_input(graph[SIGNATURE].x)


def uses_moa_votes(task: Any, cfg: TrainConfig) -> bool:
    """Target tasks with link votes also vote through the MoA layer (:data:`MOA_MEDIATED`) when
    ``cfg.moa_votes`` is on and some compound outside validation and test has an MoA."""
    return (uses_link_votes(task, cfg) and cfg.moa_votes and getattr(task, "moa", None) is not None
            and bool(task.moa.sum() > 0))


def label_input(task: Any, cfg: TrainConfig) -> tuple[Tensor, Tensor] | None:
    """``(values [N, C], rows)`` of the compound label input of ``task``'s model (None without one):
    MoA tasks with the label trick, the training compounds' MoA labels; target tasks with MoA votes, the
    MoAs of the compounds outside validation and test (``task.moa``). Never a held-out compound's."""
    if uses_label_trick(task, cfg):
        return task.y, task.split.train
    if uses_moa_votes(task, cfg):
        return task.moa, (task.moa.sum(1) > 0).nonzero().view(-1)
    return None


def model_graph(task: Any, cfg: TrainConfig) -> HeteroData:
    """The graph a model of ``task`` reads: the task's message graph without label edge types, z-valued
    features scaled (:func:`signature_input`), and the compounds' :func:`label_input` (with the label
    trick the training compounds' labels, :mod:`moakg.gnn.label_trick`; with MoA votes the MoAs of the
    compounds outside validation and test; validation and test compounds' never). Training and
    :func:`~moakg.gnn.explain.loading.load_run` both build it here, so the model sees the same inputs
    when it is explained."""
    graph = strip_label_edges(task.graph)
    _scale_signature_inputs(graph)
    if (given := label_input(task, cfg)) is not None:
        attach_label_input(graph, COMPOUND, *given)
    return graph


def _feature_cols(graph: HeteroData, name: str) -> tuple[int, int] | None:
    """Columns of the Compound attribute ``name`` (``fp`` or ``z``) inside ``x`` (x = cat(fp, z))."""
    store = graph[COMPOUND]
    if name not in store or "fp" not in store:
        return None
    bits = int(store.fp.size(1))
    width = int(store[name].size(1))
    start = 0 if name == "fp" else bits
    return (start, start + width) if start + width <= int(store.x.size(1)) else None


def vote_relations(graph: HeteroData, setting: str = "phenotype") -> dict[str, VoteSpec]:
    """``{relation: (similarity, feature columns, edge types, initial gate)}`` of the similarity
    relations ``graph`` has edges of, each with both directions (an unordered pair is stored once), and
    in the ``'known_targets'`` setting :data:`SHARED_TARGET` over its Compound -> Gene TARGETS edges."""
    out = {}
    for rel, sim, feature, gate in VOTE_RELATIONS:
        cols = _feature_cols(graph, feature)
        ets = [et for et in (edge_type(rel), edge_type(rel, reverse=True))
               if et in graph.edge_types and graph[et].edge_index.numel()]
        if cols is not None and ets:
            out[rel] = (sim, cols, ets, gate)
    targets = edge_type("TARGETS")
    if setting == "known_targets" and targets in graph.edge_types and graph[targets].edge_index.numel():
        out[SHARED_TARGET] = (TARGET_JACCARD, (0, 0), [targets], 0.0)
    return out


#: PyG's MessagePassing swaps its class's ``propagate`` for a generated one when the first instance of a
#: class is built, and two threads doing that at once can leave the class without the original (the one
#: that reads explanation masks): trainings in threads of one process (the Python API) build in turn.
_BUILD_LOCK = threading.Lock()


def build_model(task: Any, graph: HeteroData, cfg: TrainConfig, kind: str) -> nn.Module:
    """The model ``kind`` for ``task`` on its model graph ``graph`` (:func:`model_graph`), shaped by
    ``cfg``: a :class:`~moakg.gnn.models.TargetLinkPredictor` for target tasks, else a
    :class:`~moakg.gnn.models.MoAClassifier` (of Signatures for the signature-level task; with the label
    trick, with votes over the similarity edges). Training and
    :func:`~moakg.gnn.explain.loading.load_run` both build models here, so a checkpoint always fits."""
    with _BUILD_LOCK:
        return _build_model(task, graph, cfg, kind)


def _build_model(task: Any, graph: HeteroData, cfg: TrainConfig, kind: str) -> nn.Module:
    encoder = build_encoder(graph, kind, cfg.hidden, cfg.layers, cfg.dropout, cfg.heads)
    node_type = SIGNATURE if isinstance(task, SignatureTask) else COMPOUND
    # x of a labelled type is its features, then the label input: the branch and the votes read the first
    width = int(graph[node_type].x.size(1))
    if isinstance(task, TargetTask):
        relations = vote_relations(graph, task.setting) if uses_link_votes(task, cfg) else {}
        moa_cols = None
        if uses_moa_votes(task, cfg) and "SIMILAR_STRUCTURE" in relations:
            relations[MOA_MEDIATED] = (*relations["SIMILAR_STRUCTURE"][:3], 0.0)
            moa_cols = (width, width + int(task.moa.size(1)))
        votes = (LinkVotes(relations, edge_type("TARGETS"), int(task.n_genes),
                           (MOA_MEDIATED,) if moa_cols else (), moa_cols) if relations else None)
        return TargetLinkPredictor(encoder, int(task.n_genes), votes)
    n_classes = task.y.size(1)
    features = FeatureMLP(cfg.feature_mlp, n_classes, (0, width), cfg.dropout) if cfg.feature_mlp else None
    if not uses_label_trick(task, cfg):
        return MoAClassifier(encoder, n_classes, node_type, features=features)
    relations = vote_relations(graph, task.setting)
    votes = LabelVotes(relations, n_classes) if relations else None
    return MoAClassifier(encoder, n_classes, COMPOUND, votes, (width, width + n_classes), features)


def train(task: Any, cfg: TrainConfig | None = None, kind: str | None = None, seed: int | None = None, *,
          y: Tensor | None = None, sample_weight: Tensor | None = None,
          log: Callable[[str], object] | None = None) -> RunResult:
    """Train model ``kind`` (default ``cfg.models[0]``) with ``seed`` (default ``cfg.seeds[0]``) on ``task``
    and evaluate it on the test split.

    ``y`` overrides ``task.y`` for training and validation (label-noise experiments: its validation rows are
    what early stopping reads, clean unless ``noisy_validation``; test is always scored on ``task.y``);
    ``sample_weight`` [n_nodes] weights each labelled node's loss (signature quality); ``log`` receives
    one line per epoch.
    """
    cfg = cfg or TrainConfig()
    cfg.validate()
    kind = check_kinds([kind or cfg.models[0]])[0]
    seed = cfg.seeds[0] if seed is None else seed
    gen = seed_all(seed)
    graph = model_graph(task, cfg)
    mini = cfg.mini_batch if cfg.mini_batch is not None else graph_size(graph) > cfg.node_budget
    device = torch.device(cfg.device)
    model = build_model(task, graph, cfg, kind)
    trainer: MoATrainer | TargetTrainer
    if isinstance(task, TargetTask):
        trainer = TargetTrainer(task, graph, model, cfg, seed, mini, device, gen)  # type: ignore[arg-type]
    else:
        trainer = MoATrainer(task, graph, model, cfg, seed, mini, device, gen, y,  # type: ignore[arg-type]
                             sample_weight)
    return fit(trainer, cfg, kind, seed, task.split, mini, log)
