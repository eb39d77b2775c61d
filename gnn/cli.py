"""``moakg train``: GNNs next to baselines on honest splits, results written back to Neo4j.

Registered on the top-level app by :func:`add_cli` (``moakg.cli`` calls it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moakg.console import connect, fail, print_table

TRAIN_HELP = """Train heterogeneous GNNs on the graph and compare them with baselines on the same splits.

For each seed and setting the task and split are made once; every --model and every baseline
(frequency prior, Tanimoto kNN, fingerprint MLP, signature logistic regression / MLP, shuffled-drug
ablation; degree for targets) is trained and scored on the same test set. Prints a table of
mean ± std over seeds, writes one (:ModelRun) per setting x model with the top-k predictions of its
test compounds (PREDICTED_MOA / PREDICTED_TARGET {score, rank, run}), and saves checkpoints,
metrics.json and curves.png under --out (default $MOAKG_HOME/runs/<run id>/).

Settings: phenotype = held-out compounds come with structure and signatures only (their targets are
hidden); known_targets = they keep their known targets. MoA labels never travel as messages.

Options with several values (space-separated):

  --seeds N [N ...]         seeds, one split and one model per seed (default 0 1 2)

  --label-noise P [P ...]   flip rates in [0, 1): BCE vs GCE under uniform and target-structured
                            label noise, test labels clean (MoA only)

Example: moakg train --task moa --model sage --model hgt --seeds 0 1 2 --label-noise 0 0.2 0.4
"""


_H = {
    "task": "moa (multi-label MoA) or target (Compound->Gene links).",
    "model": "sage, rgcn or hgt; repeat for several.",
    "split": "random, scaffold (Murcko, test scaffolds unseen) or cell_line (MoA only).",
    "setting": "phenotype, known_targets or both (side by side).",
    "epochs": "Maximum epochs (early stopping on val).",
    "patience": "Epochs without val improvement before stopping.",
    "hidden": "Hidden width.",
    "layers": "Message-passing layers.",
    "dropout": "Dropout.",
    "heads": "HGT attention heads.",
    "lr": "Adam learning rate.",
    "min_per_class": "MoA classes need this many labelled compounds.",
    "loss": "bce, weighted (class-weighted BCE) or gce (noise-robust).",
    "quality_weights": "Weight the loss by signature quality (cc_mean, tas).",
    "mini_batch": "Sampled neighbourhood mini-batches instead of full batch.",
    "batch_size": "Seed nodes (or edges) per mini-batch.",
    "device": "cpu, cuda, cuda:1, ...",
    "top_k": "Predictions written per test compound.",
    "out": "Runs directory (default $MOAKG_HOME/runs).",
    "no_baselines": "Skip the baselines.",
    "gce_q": "GCE exponent q in (0, 1]: 0 -> BCE, 1 -> MAE (robust, slow to fit rare classes).",
    "baseline_epochs": "Epochs of the MLP / logistic-regression baselines.",
    "no_write": "Do not write the ModelRun to Neo4j.",
}


def _floats(values: list[str] | None, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values or [])
    except ValueError:
        raise fail(f"{what} expects numbers, got {values}") from None


def _ints(values: list[str] | None, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values or [])
    except ValueError:
        raise fail(f"{what} expects integers, got {values}") from None


def add_cli(app: typer.Typer) -> None:
    """Register the top-level ``train`` command on ``app``."""

    @app.command(
        "train",
        help=TRAIN_HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def train_cmd(
        ctx: typer.Context,
        task: Annotated[str, typer.Option(help=_H["task"])] = "moa",
        model: Annotated[list[str] | None, typer.Option("--model", "-m", help=_H["model"])] = None,
        split: Annotated[str, typer.Option(help=_H["split"])] = "random",
        setting: Annotated[str, typer.Option(help=_H["setting"])] = "both",
        epochs: Annotated[int, typer.Option(help=_H["epochs"])] = 200,
        patience: Annotated[int, typer.Option(help=_H["patience"])] = 20,
        hidden: Annotated[int, typer.Option(help=_H["hidden"])] = 128,
        layers: Annotated[int, typer.Option(help=_H["layers"])] = 2,
        dropout: Annotated[float, typer.Option(help=_H["dropout"])] = 0.2,
        heads: Annotated[int, typer.Option(help=_H["heads"])] = 2,
        lr: Annotated[float, typer.Option(help=_H["lr"])] = 1e-3,
        min_per_class: Annotated[int, typer.Option(help=_H["min_per_class"])] = 5,
        loss: Annotated[str, typer.Option(help=_H["loss"])] = "bce",
        quality_weights: Annotated[
            bool, typer.Option("--quality-weights", help=_H["quality_weights"])
        ] = False,
        mini_batch: Annotated[bool, typer.Option("--mini-batch", help=_H["mini_batch"])] = False,
        batch_size: Annotated[int, typer.Option(help=_H["batch_size"])] = 256,
        device: Annotated[str, typer.Option(help=_H["device"])] = "cpu",
        top_k: Annotated[int, typer.Option(help=_H["top_k"])] = 10,
        out: Annotated[Path | None, typer.Option(help=_H["out"])] = None,
        no_baselines: Annotated[bool, typer.Option("--no-baselines", help=_H["no_baselines"])] = False,
        gce_q: Annotated[float, typer.Option(help=_H["gce_q"])] = 0.3,
        baseline_epochs: Annotated[int, typer.Option(help=_H["baseline_epochs"])] = 200,
        no_write: Annotated[bool, typer.Option("--no-write", help=_H["no_write"])] = False,
    ) -> None:
        from moakg.gnn.run import ExperimentConfig, run_experiment

        seed_vals, noise_vals = _multi_value_options(list(ctx.args))
        if setting not in ("phenotype", "known_targets", "both"):
            raise fail(f"--setting must be phenotype, known_targets or both, not {setting!r}")
        cfg = ExperimentConfig(
            task=task,
            models=tuple(model or ["sage"]),
            split=split,
            settings=("phenotype", "known_targets") if setting == "both" else (setting,),
            seeds=_ints(seed_vals, "--seeds") or (0, 1, 2),
            epochs=epochs,
            patience=patience,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            heads=heads,
            lr=lr,
            min_per_class=min_per_class,
            loss=loss,
            label_noise=_floats(noise_vals, "--label-noise"),
            quality_weights=quality_weights,
            mini_batch=mini_batch,
            batch_size=batch_size,
            device=device,
            top_k=top_k,
            out=out,
            baselines=not no_baselines,
            baseline_epochs=baseline_epochs,
            gce_q=gce_q,
            write=not no_write,
        )
        try:
            cfg.validate()
        except ValueError as exc:
            raise fail(str(exc)) from None
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise fail(f"--device {device}: CUDA is not available here; use --device cpu")
        with connect() as conn:
            try:
                result = run_experiment(conn, cfg, log=typer.echo)
            except (ValueError, RuntimeError) as exc:
                raise fail(str(exc)) from None
        typer.echo("\nresults (test set, mean ± std over seeds " + " ".join(map(str, cfg.seeds)) + ")")
        print_table(result.table, result.table_columns)
        if result.noise_table:
            typer.echo("\nlabel noise (training labels flipped; test labels clean)")
            print_table(result.noise_table)
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


def _multi_value_options(args: list[str]) -> tuple[list[str], list[str]]:
    """Values of ``--seeds N [N ...]`` and ``--label-noise P [P ...]`` from the unbound words.

    Click options take one value each; these two take several, space-separated, so they are not
    declared to click (which would keep only the first value) but read here, in order, from the
    words click left over.
    """
    seeds: list[str] = []
    noise: list[str] = []
    current: list[str] | None = None
    for arg in args:
        if arg in ("--seeds", "--label-noise"):
            current = seeds if arg == "--seeds" else noise
        elif arg.startswith("--seeds=") or arg.startswith("--label-noise="):
            name, value = arg.split("=", 1)
            current = seeds if name == "--seeds" else noise
            current.extend(v for v in value.replace(",", " ").split() if v)
        elif current is not None and not arg.startswith("--"):
            current.extend(v for v in arg.replace(",", " ").split() if v)
        else:
            raise fail(f"unexpected argument {arg!r}; see moakg train --help")
    return seeds, noise
