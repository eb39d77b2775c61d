"""``moakg train``: GNNs next to baselines on honest splits, results written back to Neo4j.

Registered on the top-level app by :func:`add_cli` (``moakg.cli`` calls it). Every option is a field of
:class:`~moakg.gnn.config.TrainConfig` (same name, help text and default), so the options here only say how
each field is spelled on the command line; they default to None, meaning "not given": the value then
comes from ``--config`` or the field's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from moakg.console import connect, fail, print_table, require_device
from moakg.errors import UserError
from moakg.gnn.config import SETTINGS, TrainConfig, field_names
from moakg.gnn.config import option_help as h

TRAIN_HELP = (
    "Train heterogeneous GNNs on the graph and compare them with baselines on the same splits.\n\n"
    "For each seed and setting the task and split are made once; every --model and every baseline "
    "(frequency prior, Tanimoto kNN, fingerprint MLP, signature logistic regression / MLP, shuffled-drug "
    "ablation; degree for targets) is trained and scored on the same test set. Prints a table of mean ± std "
    "over seeds, writes one (:ModelRun) per setting x model with the top-k predictions of its test "
    "compounds (PREDICTED_MOA / PREDICTED_TARGET {score, rank, run}), and saves checkpoints, metrics.json "
    "and curves.png under --out (default $MOAKG_HOME/runs/<run id>/).\n\n"
    "Settings: phenotype = held-out compounds come with structure and signatures only (their targets are "
    "hidden); known_targets = they keep their known targets. MoA labels never travel as messages.\n\n"
    "Options with several values are repeated: --model sage --model hgt --seeds 0 --seeds 1. "
    "--config FILE reads the same options from a TOML file, keys named as the fields (models, seeds, "
    "label_noise, num_neighbors, ...); options given on the command line override the file.\n\n"
    "Example: moakg train --task moa --model sage --model hgt --seeds 0 --seeds 1 --label-noise 0.2"
)


def build_config(config: Path | None, given: dict[str, Any]) -> TrainConfig:
    """The config of ``--config`` (or the defaults) with the options the user gave (not None) on top."""
    overrides = {k: v for k, v in given.items() if v is not None}
    if "settings" in overrides:  # 'both' is the command line's short form of the two settings
        overrides["settings"] = [s for v in overrides["settings"] for s in (SETTINGS if v == "both" else [v])]
    if config is not None:
        return TrainConfig.from_toml(config, overrides)
    return TrainConfig().updated(overrides, source="command line")


def add_cli(app: typer.Typer) -> None:
    """Register the top-level ``train`` command on ``app``."""

    @app.command("train", help=TRAIN_HELP)
    def train_cmd(
        config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file of training options "
                                                    "(keys: the field names); flags override it.")] = None,
        task: Annotated[str | None, typer.Option(help=h("task"))] = None,
        models: Annotated[list[str] | None, typer.Option("--model", "-m", help=h("models"))] = None,
        split: Annotated[str | None, typer.Option(help=h("split"))] = None,
        cluster_threshold: Annotated[float | None, typer.Option(help=h("cluster_threshold"))] = None,
        settings: Annotated[list[str] | None, typer.Option("--setting", help=h("settings"))] = None,
        seeds: Annotated[list[int] | None, typer.Option("--seeds", help=h("seeds"))] = None,
        min_per_class: Annotated[int | None, typer.Option(help=h("min_per_class"))] = None,
        label_noise: Annotated[list[float] | None,
                               typer.Option("--label-noise", help=h("label_noise"))] = None,
        noise_modes: Annotated[list[str] | None, typer.Option("--noise-mode", help=h("noise_modes"))] = None,
        noisy_validation: Annotated[bool | None, typer.Option("--noisy-validation/--clean-validation",
                                                              help=h("noisy_validation"))] = None,
        hidden: Annotated[int | None, typer.Option(help=h("hidden"))] = None,
        layers: Annotated[int | None, typer.Option(help=h("layers"))] = None,
        dropout: Annotated[float | None, typer.Option(help=h("dropout"))] = None,
        heads: Annotated[int | None, typer.Option(help=h("heads"))] = None,
        feature_mlp: Annotated[int | None, typer.Option(help=h("feature_mlp"))] = None,
        epochs: Annotated[int | None, typer.Option(help=h("epochs"))] = None,
        patience: Annotated[int | None, typer.Option(help=h("patience"))] = None,
        lr: Annotated[float | None, typer.Option(help=h("lr"))] = None,
        weight_decay: Annotated[float | None, typer.Option(help=h("weight_decay"))] = None,
        loss: Annotated[str | None, typer.Option(help=h("loss"))] = None,
        gce_q: Annotated[float | None, typer.Option(help=h("gce_q"))] = None,
        forget_rate: Annotated[float | None, typer.Option(help=h("forget_rate"))] = None,
        forget_ramp: Annotated[int | None, typer.Option(help=h("forget_ramp"))] = None,
        quality_weights: Annotated[bool | None, typer.Option("--quality-weights/--no-quality-weights",
                                                             help=h("quality_weights"))] = None,
        mini_batch: Annotated[bool | None,
                              typer.Option("--mini-batch/--full-batch", help=h("mini_batch"))] = None,
        batch_size: Annotated[int | None, typer.Option(help=h("batch_size"))] = None,
        num_neighbors: Annotated[list[int] | None,
                                 typer.Option("--num-neighbors", help=h("num_neighbors"))] = None,
        node_budget: Annotated[int | None, typer.Option(help=h("node_budget"))] = None,
        neg_ratio: Annotated[int | None, typer.Option(help=h("neg_ratio"))] = None,
        target_loss: Annotated[str | None, typer.Option(help=h("target_loss"))] = None,
        supervision_frac: Annotated[float | None, typer.Option(help=h("supervision_frac"))] = None,
        label_trick: Annotated[bool | None, typer.Option("--label-trick/--no-label-trick",
                                                         help=h("label_trick"))] = None,
        moa_votes: Annotated[bool | None, typer.Option("--moa-votes/--no-moa-votes",
                                                       help=h("moa_votes"))] = None,
        tune_votes: Annotated[bool | None, typer.Option("--tune-votes/--no-tune-votes",
                                                        help=h("tune_votes"))] = None,
        label_known_frac: Annotated[float | None, typer.Option(help=h("label_known_frac"))] = None,
        target_edge_dropout: Annotated[float | None, typer.Option(help=h("target_edge_dropout"))] = None,
        device: Annotated[str | None, typer.Option(help=h("device"))] = None,
        top_k: Annotated[int | None, typer.Option(help=h("top_k"))] = None,
        baselines: Annotated[bool | None,
                             typer.Option("--baselines/--no-baselines", help=h("baselines"))] = None,
        baseline_epochs: Annotated[int | None, typer.Option(help=h("baseline_epochs"))] = None,
        out: Annotated[Path | None, typer.Option(help=h("out"))] = None,
        write: Annotated[bool | None, typer.Option("--write/--no-write", help=h("write"))] = None,
    ) -> None:
        # Every parameter but --config is named after its TrainConfig field (a test checks this); read
        # them before any other local exists. (Typer's converted values: click's ctx.params would hold
        # () for a list option not given.)
        given = {k: v for k, v in locals().items() if k in field_names()}
        from moakg.gnn.run import run_experiment

        try:
            cfg = build_config(config, given)
            cfg.validate()
        except UserError as exc:
            raise fail(str(exc)) from None
        require_device(cfg.device)
        with connect() as conn:
            try:
                result = run_experiment(conn, cfg, log=typer.echo)
            except UserError as exc:
                raise fail(str(exc)) from None
        print_results(result)
        if result.run_ids:
            typer.echo("\nmodel runs")
            print_table(
                [
                    {
                        "setting": s,
                        "model": m,
                        "run": rid,
                        "predictions": result.predictions_written.get(rid, 0),
                        "dir": str(result.out_dirs.get(rid, "")),
                    }
                    for (s, m), rid in result.run_ids.items()
                ]
            )
            first = next(iter(result.run_ids.values()))
            typer.echo(f"\nNext: moakg query run top_predictions --param run={first}")


RESULTS_HELP = (
    "Run every experiment of a suite file and write its tables as Markdown: the README's results tables "
    "from one command.\n\n"
    "Each experiment table of the TOML suite (default demo/results.toml) has a name, a title and moakg train "
    "options (the --config keys). Each finished experiment is written to OUT/<name>.md at once, then "
    "OUT/results.md collects them. Re-running skips experiments already written with the same options, so "
    "a stopped suite resumes and a changed experiment alone re-runs (--force re-runs all). The full default "
    "suite takes hours on 2 CPU cores; --only NAME runs one.\n\n"
    "Example: moakg results --only moa-scaffold"
)


def add_results_cli(app: typer.Typer) -> None:
    """Register the top-level ``results`` command on ``app``."""
    from moakg.gnn.suite import DEFAULT_SUITE, load_suite, run_suite, suite_status

    @app.command("results", help=RESULTS_HELP)
    def results_cmd(
        suite: Annotated[Path, typer.Option(help="TOML suite of experiments.")] = DEFAULT_SUITE,
        out: Annotated[Path | None, typer.Option(help="Folder of the Markdown files (default: "
                                                 "$MOAKG_HOME/results).")] = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only these experiments "
                                                       "(repeatable).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Re-run experiments already written.")] = False,
        list_only: Annotated[bool, typer.Option("--list", help="List the experiments and whether each is "
                                                "written; run nothing.")] = False,
    ) -> None:
        from moakg.kg.local_server import moakg_home

        try:
            experiments = load_suite(suite)
        except UserError as exc:
            raise fail(str(exc)) from None
        folder = out or moakg_home() / "results"
        if list_only:
            print_table(suite_status(experiments, folder))
            return
        with connect() as conn:
            try:
                index = run_suite(conn, experiments, folder, only or (), force, log=typer.echo)
            except UserError as exc:
                raise fail(str(exc)) from None
        typer.echo(f"\nall tables: {index}")


def print_results(result: Any) -> None:
    """The tables of an :class:`~moakg.gnn.results.ExperimentResult` (its ``sections``): what ``moakg
    train`` prints."""
    for title, rows, columns in result.sections():
        typer.echo("\n" + title)
        print_table(rows, columns)
