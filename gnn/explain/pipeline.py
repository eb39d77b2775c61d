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
    HitFn,
    compare_to_random,
    ends_in,
    hit_rates,
    known_target_genes,
    node_degrees,
    passes_through,
    path_fidelity,
)
from moakg.gnn.explain.paths import (
    ExplanationPath,
    MoAEvidence,
    PathExplanation,
    WeightedGraph,
    build_weighted_graph,
    explain_paths,
)
from moakg.gnn.label_trick import LABEL_INPUT, LABEL_KNOWN
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


def moa_evidence(run: LoadedRun, class_idx: int) -> MoAEvidence:
    """The reference compounds of MoA class ``class_idx``: those whose label input carries it (training
    compounds only, as the model reads them; never a held-out compound) and the MoA node."""
    comp = run.graph["Compound"]
    if LABEL_INPUT in comp and LABEL_KNOWN in comp:
        carry = (comp[LABEL_KNOWN].view(-1) > 0) & (comp[LABEL_INPUT][:, class_idx] > 0)
        refs = frozenset(carry.nonzero().view(-1).tolist())
    else:  # no label trick: the model reads no labels, so no path may end in one
        refs = frozenset()
    node = int(run.task.class_nodes[class_idx]) if len(run.task.class_nodes) else -1
    key = run.maps.keys["MoA"][node] if node >= 0 else None
    return MoAEvidence(("MoA", node), refs, key)


def moa_genes(run: LoadedRun, refs: frozenset[int]) -> set[int]:
    """Genes targeted by reference compounds (TARGETS edges of the model's graph: in the phenotype setting
    only training compounds keep theirs)."""
    from moakg.kg.schema import edge_type

    et = edge_type("TARGETS")
    if et not in run.graph.edge_types or not refs:
        return set()
    ei = run.graph[et].edge_index
    return set(ei[1, torch.isin(ei[0], torch.tensor(sorted(refs)))].tolist())


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
    evidence = moa_evidence(run, target[1]) if target[0] == "moa" else None
    pe = explain_paths(sub, imp, target, k, max_length, run.maps.keys, moa=evidence)
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


#: the path checks of :func:`evaluate_explainer`: (row prefix, hit test builder)
CHECKS = ("recovery", "consistency")


def with_signature(run: LoadedRun, compounds: list[int]) -> list[int]:
    """The compounds that have an L1000 signature (all of them when the graph does not say)."""
    has = run.graph["Compound"].get("has_signature")
    return compounds if has is None else [c for c in compounds if bool(has[c])]


def path_checks(run: LoadedRun, compound: int, moa_class: int | None, paths: list[ExplanationPath],
                wg: WeightedGraph, degree: dict[str, torch.Tensor], rng: np.random.Generator,
                n_random: int) -> dict[str, Any]:
    """One compound's row entries for the path checks (``has_targets``, then ``<check>_rate``,
    ``_random_metapath``, ``_degree_matched``, ``_first_rank``): known-target recovery (any hit among
    the top paths; only for a compound with known targets) and, for an MoA prediction of class
    ``moa_class``, MoA consistency (the fraction of paths that hit), each against random paths drawn
    on ``wg``."""
    genes = known_target_genes(run.data, compound)
    checks: list[tuple[str, HitFn, str]] = [("recovery", passes_through(genes), "any")] if genes else []
    if moa_class is not None:
        refs = moa_evidence(run, moa_class).compounds
        checks.append(("consistency", ends_in(set(refs), moa_genes(run, refs)), "mean"))
    out: dict[str, Any] = {"has_targets": bool(genes)}
    for name, hit, rule in checks:
        rates = hit_rates(paths, wg, hit, degree, rng, n_random, rule)
        out.update({f"{name}_{key}": v for key, v in rates.items()})
    return out


def evaluate_explainer(run: LoadedRun, method: str = "gnnexplainer", k: int = 5, max_length: int = 3,
                       compounds: list[int] | None = None, seed: int = 0, n_random: int = 20,
                       method_kwargs: dict[str, Any] | None = None, progress: bool = False,
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Signed fidelity, characterization, sparsity, known-target recovery and (MoA) MoA consistency of
    ``method``'s top-``k`` paths for the top prediction of every held-out compound with a signature (or
    of ``compounds``), each path check against random-metapath and degree-matched random paths.

    Compounds whose computation subgraph has no edge have nothing to explain and are counted in
    ``n_no_edges``. Returns per-compound rows and the summary: means, and per check the explainer's rate
    with its bootstrap interval and, per random baseline, the paired difference, interval and
    permutation p-value (:func:`~moakg.gnn.explain.metrics.compare_to_random`).
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    degree = node_degrees(run.graph)
    idx = with_signature(run, run.task.split.test.tolist()) if compounds is None else list(compounds)
    keys = run.maps.keys["Compound"]
    rows, skipped = [], 0
    depth = model_depth(run.model)
    for c in tqdm(idx, desc=f"explain {method}", unit="compound", disable=not progress):
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
        row: dict[str, Any] = {"compound": keys[c], "prediction": res.prediction,
                               "n_paths": len(res.paths.best), **res.fidelity.as_dict(),
                               "seconds": round(res.seconds, 3)}
        moa_class = res.target[1] if run.kind == "moa" else None
        row.update(path_checks(run, c, moa_class, res.paths.best, build_weighted_graph(res.sub), degree,
                               rng, n_random))
        rows.append(row)
    return rows, summarize(method, rows, skipped, seed)


#: the name ``explain evaluate --method`` gives the interpretable-by-design metapath baseline
METAPATH_METHOD = "metapath"


def evaluate_metapath_model(run: LoadedRun, k: int = 5, compounds: list[int] | None = None, seed: int = 0,
                            n_random: int = 20, progress: bool = False,
                            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The path checks of :func:`evaluate_explainer` for the Rephetio-style metapath model
    (:mod:`moakg.gnn.explain.metapath_model`), fitted on ``run``'s task (same split, same training
    labels) and explaining its own top MoA per compound with the top paths of its most contributing
    metapaths. Its explanation is exact by construction (the logit is a sum of metapath terms), so
    fidelity is not measured: those columns are nan. MoA runs only."""
    from tqdm.auto import tqdm

    from moakg.gnn.explain.metapath_model import MetapathModel

    if run.kind != "moa":
        raise UserError("the metapath baseline explains MoA runs only")
    rng = np.random.default_rng(seed)
    degree = node_degrees(run.graph)
    model = MetapathModel(run.task).fit(seed)
    idx = with_signature(run, run.task.split.test.tolist()) if compounds is None else list(compounds)
    scores = model.predict(np.asarray(idx, dtype=np.int64))
    keys = run.maps.keys["Compound"]
    rows, skipped = [], 0
    for c, s in tqdm(list(zip(idx, scores, strict=True)), desc="explain metapath", unit="compound",
                     disable=not progress):
        m = int(s.argmax())
        paths = [p.to_explanation_path(run.maps.keys) for p in model.explain(c, m, n_metapaths=2, k=k)][:k]
        for r, p in enumerate(paths, start=1):
            p.rank = r
        if not paths:
            skipped += 1
            continue
        depth = max(len(p.message_nodes) - 1 for p in paths)
        wg = build_weighted_graph(computation_subgraph(run.graph, c, depth))
        row: dict[str, Any] = {"compound": keys[c], "prediction": run.classes[m], "n_paths": len(paths),
                               "fidelity_plus": float("nan"), "fidelity_minus": float("nan"),
                               "characterization": float("nan"), "sparsity": float("nan")}
        row.update(path_checks(run, c, m, paths, wg, degree, rng, n_random))
        rows.append(row)
    return rows, summarize(METAPATH_METHOD, rows, skipped, seed)


def summarize(method: str, rows: list[dict[str, Any]], skipped: int, seed: int = 0) -> dict[str, Any]:
    """The summary row of :func:`evaluate_explainer`'s per-compound ``rows``."""
    from moakg.gnn.stats import bootstrap_ci

    summary: dict[str, Any] = {"method": method, "n_explained": len(rows), "n_no_edges": skipped}
    for m in ("fidelity_plus", "fidelity_minus", "characterization", "sparsity"):
        summary[m] = _nanmean([r[m] for r in rows])
    for name in CHECKS:
        have = [r for r in rows if f"{name}_rate" in r and not math.isnan(r[f"{name}_rate"])]
        summary[f"{name}_n"] = len(have)
        if not have:
            continue
        rate = np.array([r[f"{name}_rate"] for r in have])
        summary[name] = float(rate.mean())
        summary[f"{name}_ci"] = bootstrap_ci(lambda rows, rate=rate: float(rate[rows].mean()), rate.size,
                                             seed=seed)
        summary[f"{name}_first_rank"] = _nanmean([r[f"{name}_first_rank"] for r in have])
        for base in ("random_metapath", "degree_matched"):
            other = np.array([r[f"{name}_{base}"] for r in have])
            summary[f"{name}_{base}"] = float(np.nanmean(other)) if np.isfinite(other).any() else float("nan")
            cmp = compare_to_random(rate, other, seed)
            summary[f"{name}_{base}_p"] = cmp["p"]
    return summary
