"""The main job: ingest a sources.toml, derive similarity relationships, train an MoA GNN next to its
baselines, explain one prediction as paths, write everything to Neo4j and say which Cypher to read next
(`moakg pipeline`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from moakg.console import connect, fail, print_table
from moakg.errors import UserError
from moakg.gnn.explain.loading import LoadedRun
from moakg.gnn.explain.pipeline import ExplainResult

DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / "sources.toml"


def candidate_compounds(run: LoadedRun) -> list[int]:
    """Held-out test compounds worth explaining, best first: those with signatures (so paths can run
    through the genes they move) whose top prediction is right, the most confident first short of a
    saturated probability (where removing edges cannot move the prediction, so fidelity says nothing)."""
    from moakg.gnn.explain.pipeline import resolve_target

    test = [int(i) for i in run.task.split.test]
    has_sig = run.data["Compound"].has_signature
    pool = [i for i in test if bool(has_sig[i])] or test
    scored = []
    for i in pool:
        (_, cls), _, prob = resolve_target(run, i)
        right = bool(run.task.y[i, cls] > 0)
        scored.append((right, prob < 0.99, prob, -i))
    return [-key[3] for key in sorted(scored, reverse=True)]


def explain_one(run: LoadedRun, method: str, top_k: int, tries: int = 20) -> ExplainResult:
    """Explain the first candidate (:func:`candidate_compounds`) whose top path leaves the compound's own
    signature (to an analogue, a gene it mimics or opposes, ...): a path "compound -> its signature ->
    a gene" only restates the input. Falls back to the best candidate after ``tries``."""
    from moakg.gnn.explain.pipeline import explain_prediction

    first = None
    for c in candidate_compounds(run)[:tries]:
        res = explain_prediction(run, run.maps.keys["Compound"][c], method=method, k=top_k)
        first = first or res
        if res.paths.best and res.paths.best[0].rel_types[0] != "HAS_SIGNATURE":
            return res
    if first is None:
        raise UserError(f"run {run.run_id} has no held-out compound to explain")
    return first


def add_cli(app: typer.Typer) -> None:
    """Register `moakg pipeline`."""

    @app.command("pipeline")
    def pipeline(
        config: Annotated[Path, typer.Option("--config", "-c", help="sources.toml to ingest.")] = DEMO_CONFIG,
        model: Annotated[str, typer.Option(help="GNN kind: sage, rgcn or hgt (all explainable).")] = "sage",
        split: Annotated[str, typer.Option(help="random or scaffold (test scaffolds unseen).")] = "scaffold",
        seeds: Annotated[int, typer.Option(help="Number of seeds (0..n-1).")] = 1,
        epochs: Annotated[int, typer.Option(help="Maximum training epochs (early stopping on val).")] = 100,
        method: Annotated[str, typer.Option(help="Explainer: saliency, ig, gnnexplainer.")] = "saliency",
        top_k: Annotated[int, typer.Option(help="Paths to keep for the explanation.")] = 5,
    ) -> None:
        """Ingest, derive similarity, train (MoA, GNN vs baselines, both settings), explain one test
        compound, summarise.

        Idempotent: ingest runs, the ModelRun and the Explanation have ids derived from their inputs.
        """
        from moakg.derive.run import derive_similarity
        from moakg.gnn.config import TrainConfig
        from moakg.gnn.explain.loading import load_run
        from moakg.gnn.explain.pipeline import write_result
        from moakg.gnn.run import run_experiment
        from moakg.ingest.commands import adapters_from_config
        from moakg.ingest.runner import report_rows, run_adapters
        from moakg.kg.explanations import path_query
        from moakg.kg.local_server import moakg_home
        from moakg.kg.lookups import compound_name
        from moakg.kg.queries import load_query
        from moakg.plots.landscape import signature_landscape

        t0 = time.perf_counter()
        with connect() as conn:
            try:
                typer.echo(f"== 1/4 ingest {config}")
                reports = run_adapters(conn, adapters_from_config(config), batch_size=5000)
                print_table(report_rows(reports))

                typer.echo("\n== 2/4 derive similarity relationships (structure, signature, perturbation)")
                derived = derive_similarity(conn)
                print_table(report_rows([derived]))

                typer.echo(f"\n== 3/4 train an MoA {model} GNN and the baselines ({split} split, "
                           f"{seeds} seed(s))")
                # The demo's choices on top of the training defaults: a smaller, faster-learning model.
                cfg = TrainConfig(task="moa", models=(model,), split=split, seeds=tuple(range(seeds)),
                                  epochs=epochs, hidden=64, lr=5e-3, baseline_epochs=100)
                result = run_experiment(conn, cfg, log=lambda _msg: None)
                print_table(result.table, result.table_columns)
                typer.echo("best GNN against the best baselines (paired per test compound; Wilcoxon)")
                print_table(result.evaluation.comparison_table)
                run_id = result.run_ids[("phenotype", model)]

                typer.echo(f"\n== 4/4 explain a held-out prediction of run {run_id} ({method})")
                run = load_run(conn, run_id)
                res = explain_one(run, method, top_k)
                compound = res.compound
                explanation_id = write_result(conn, res)
            except UserError as exc:
                raise fail(str(exc)) from None
            name = compound_name(conn, compound)
            typer.echo(f"{name} ({compound}): predicted MoA '{res.prediction}', p = {res.probability:.3f}")
            print_table(res.rows())
            f = res.fidelity
            typer.echo(f"fidelity+ {f.fidelity_plus:.3f}  fidelity- {f.fidelity_minus:.3f}  "
                       f"characterization {f.characterization:.3f}  sparsity {f.sparsity:.3f}")
            typer.echo("\n== the graph now")
            print_table(conn.query(load_query("graph_summary").text))
            landscape = signature_landscape(conn, moakg_home() / "landscape.png")
            typer.echo(f"\nsignature landscape: {landscape.n_points} signatures (PCA, coloured by MoA) -> "
                       f"{landscape.out}")
        typer.echo(f"\nDone in {time.perf_counter() - t0:.0f} s. Explanation {explanation_id} and run "
                   f"{run_id} are in Neo4j. Read them next:")
        typer.echo(f"  moakg query run explanation_paths -p run={run_id} -p compound={compound} "
                   f"-p top={top_k}")
        typer.echo(f"  moakg query run top_predictions -p run={run_id}")
        typer.echo(f"  moakg query run compound_profile -p compound={compound} -p top=10")
        typer.echo(f"  moakg explain evaluate --run {run_id}")
        typer.echo("  Neo4j Browser (moakg neo4j status prints its address; user neo4j, password in "
                   "~/.moakg/neo4j/password): paste this to see the top path drawn on the graph")
        typer.echo("    " + path_query(res.paths.best[0].as_dict()))
        typer.echo("  or import the explanation queries as Browser favourites: "
                   f"moakg query favorites -p run={run_id}")
