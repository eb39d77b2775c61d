"""Explain one prediction of a loaded run end to end (explainer -> paths -> fidelity -> write-back), and
evaluate an explainer over a run's test compounds.

    run = load_run(conn, "moa-sage-phenotype-random-...")
    res = explain_prediction(run, "BTIHMVBBUGXLCJ-OAHLLOKOSA-N", method="saliency", k=5)
    write_result(conn, res)                 # (:Explanation)-[:HAS_PATH]->(:ExplanationPath)-[:STEP]->()
    rows, summary = evaluate_explainer(run, method="gnnexplainer", k=5)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from moakg.errors import UserError
from moakg.gnn.explain.base import CompSubgraph, Target, computation_subgraph, model_depth, model_device
from moakg.gnn.explain.loading import LoadedRun
from moakg.gnn.explain.methods import make_explainer
from moakg.gnn.explain.metrics import (
    Fidelity,
    known_target_genes,
    node_degrees,
    path_fidelity,
    recovery,
)
from moakg.gnn.explain.paths import PathExplanation, build_weighted_graph, explain_paths
from moakg.gnn.models import model_inputs
from moakg.kg.connection import Neo4jConnection

#: fast defaults per method for the CLI (GNNExplainer epochs, IG steps)
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"gnnexplainer": {"epochs": 100}, "ig": {"n_steps": 50},
                                              "saliency": {}}


@dataclass
class ExplainResult:
    """One explained prediction: the paths, their fidelity, and what they refer to."""

    run_id: str
    method: str
    compound: str
    compound_index: int
    kind: str  # 'moa' | 'target'
    prediction: str  # MoA name or gene symbol
    target: Target
    probability: float
    paths: PathExplanation
    fidelity: Fidelity
    sub: CompSubgraph = field(repr=False)
    seconds: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """Printable rows of the stored paths (the paths to the gene first for targets)."""
        return [{"rank": p.rank, "score": round(p.score, 4), "metapath": p.metapath, "path": p.pretty()}
                for p in self.paths.best]


def _scores(run: LoadedRun, compound: int) -> torch.Tensor:
    """Probabilities of every class (MoA) / gene (target) for one compound, on the full task graph."""
    model = run.model
    model.eval()
    with torch.no_grad():
        # One full-graph forward per run (seconds on the real graph), not one per explained compound.
        if "out" not in run.cache:
            inputs = model_inputs(run.graph, model_device(model))
            run.cache["out"] = model(*inputs)
            if run.kind == "target":
                run.cache["votes"] = model.link_votes(*inputs)
        out = run.cache["out"]
        if run.kind == "moa":
            return torch.sigmoid(out[compound]).cpu()
        comp = torch.tensor([compound], device=model_device(model))
        return torch.sigmoid(model.score_all(out, comp, run.cache["votes"]))[0].cpu()


def resolve_target(run: LoadedRun, compound: int, moa: str | None = None,
                   gene: str | None = None) -> tuple[Target, str, float]:
    """``(target, key, probability)`` of the prediction to explain; default: the top prediction (for
    targets, the top gene among those not already a training target of the compound)."""
    scores = _scores(run, compound)
    if run.kind == "moa":
        if gene:
            raise UserError(f"run {run.run_id} predicts MoAs; use --moa, not --target")
        if moa:
            if moa not in run.classes:
                raise UserError(f"MoA {moa!r} is not a class of run {run.run_id} "
                                 f"({len(run.classes)} classes, e.g. {run.classes[:3]})")
            idx = run.classes.index(moa)
        else:
            idx = int(scores.argmax())
        return ("moa", idx), run.classes[idx], float(scores[idx])
    if moa:
        raise UserError(f"run {run.run_id} predicts targets; use --target, not --moa")
    genes = run.maps.keys["Gene"]
    if gene:
        if gene not in run.maps.index["Gene"]:
            raise UserError(f"gene {gene!r} is not in the graph")
        idx = run.maps.index["Gene"][gene]
    else:
        s = scores.clone()
        known = run.task.pos["train"]
        s[known[1, known[0] == compound]] = -1.0  # predictions are new targets, not known ones
        idx = int(s.argmax())
    return ("target", idx), genes[idx], float(scores[idx])


def explain_prediction(run: LoadedRun, compound: str, moa: str | None = None, gene: str | None = None,
                       method: str = "gnnexplainer", k: int = 5, max_length: int = 3,
                       method_kwargs: dict[str, Any] | None = None) -> ExplainResult:
    """Explain the prediction of ``run`` for ``compound`` (Compound.id); see :func:`resolve_target`."""
    if compound not in run.maps.index["Compound"]:
        raise UserError(f"compound {compound!r} is not in the exported graph")
    c = run.maps.index["Compound"][compound]
    target, key, prob = resolve_target(run, c, moa, gene)
    kw = {**METHOD_DEFAULTS.get(method, {}), **(method_kwargs or {})}
    t0 = time.perf_counter()
    imp, sub = make_explainer(method, **kw).explain_with_subgraph(run.model, run.graph, c, target)
    pe = explain_paths(sub, imp, target, k, max_length, run.maps.keys)
    fid = path_fidelity(run.model, sub, target, pe.best)
    return ExplainResult(run.run_id, method, compound, c, run.kind, key, target, prob, pe, fid, sub,
                         time.perf_counter() - t0)


def write_result(conn: Neo4jConnection, res: ExplainResult) -> str:
    """Store ``res`` in Neo4j (idempotent per run, compound, prediction and method); returns the id."""
    from moakg.kg.explanations import write_explanation

    props = {"score": res.probability, **res.fidelity.as_dict(), "n_edges": res.fidelity.n_edges,
             "subgraph_edges": res.sub.num_edges()}
    return write_explanation(conn, res.run_id, res.compound, res.kind, res.prediction, res.method, props,
                             [p.as_dict() for p in res.paths.best])


def _nanmean(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def evaluate_explainer(run: LoadedRun, method: str = "gnnexplainer", k: int = 5, max_length: int = 3,
                       compounds: list[int] | None = None, seed: int = 0, n_random: int = 20,
                       method_kwargs: dict[str, Any] | None = None,
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fidelity, characterization, sparsity and known-target recovery (with both random baselines) of
    ``method``'s top-``k`` paths for the top prediction of every test compound (or ``compounds``).

    Compounds whose computation subgraph has no edge (no signature, targets hidden) have nothing to
    explain and are counted in ``n_no_edges`` instead. Returns per-compound rows and the mean summary.
    """
    rng = np.random.default_rng(seed)
    degree = node_degrees(run.graph)
    idx = run.task.split.test.tolist() if compounds is None else list(compounds)
    keys = run.maps.keys["Compound"]
    rows, skipped = [], 0
    depth = model_depth(run.model)
    for c in idx:
        # Cheap pre-check (MoA): nothing reaches the compound, so there is nothing to explain. Target
        # subgraphs also hold the predicted gene's neighbourhood, known only after the prediction.
        if run.kind == "moa" and not computation_subgraph(run.graph, c, depth).edge_types:
            skipped += 1
            continue
        res = explain_prediction(run, keys[c], method=method, k=k, max_length=max_length,
                                 method_kwargs=method_kwargs)
        if not res.sub.edge_types:
            skipped += 1
            continue
        genes = known_target_genes(run.data, c)
        rec = recovery(res.paths.best, build_weighted_graph(res.sub), genes, degree, rng, n_random)
        rows.append({"compound": keys[c], "prediction": res.prediction, "n_paths": len(res.paths.best),
                     **res.fidelity.as_dict(), **rec, "has_targets": bool(genes),
                     "seconds": round(res.seconds, 3)})
    metrics = ("fidelity_plus", "fidelity_minus", "characterization", "sparsity")
    rec_keys = ("recovery", "random_metapath", "degree_matched")
    with_t = [r for r in rows if r["has_targets"]]
    summary: dict[str, Any] = {"method": method, "n_explained": len(rows), "n_no_edges": skipped,
                               "n_with_known_targets": len(with_t)}
    summary.update({m: _nanmean([r[m] for r in rows]) for m in metrics})
    # Recovery is only defined where the compound has known targets in the graph.
    summary.update({m: _nanmean([r[m] for r in with_t]) for m in rec_keys})
    return rows, summary
