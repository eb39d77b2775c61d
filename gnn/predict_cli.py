"""``moakg predict``: the top MoAs or targets of new compounds from a trained run
(:mod:`moakg.gnn.predict`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moakg.errors import UserError

PREDICT_HELP = (
    "Predict MoAs or targets of new compounds with a trained run, inductively.\n\n"
    "COMPOUNDS is a TSV/CSV with a header: an id column (id, compound_id, pert_id, drugbank_id or "
    "compound), smiles and/or inchi, and an optional name. --signatures is their consensus signatures: a "
    "compound x gene matrix (TSV/CSV, gzip or not, Entrez ids or symbols as columns, the first column the "
    "compound id) or a level-5 GCT/GCTX whose column ids are the compound ids, or, with --sig-info, whose "
    "column ids are signatures that the signature table maps to compounds (pert_id; averaged per "
    "compound); it must cover the graph's landmark genes. Compounds without a signature are scored from "
    "structure alone.\n\n"
    "New compounds are added to the graph with their signatures and their similarity edges to the "
    "compounds already there (one IngestRun, source new_compounds), scored by the run's model, and their "
    "top-k predictions written as PREDICTED_MOA / PREDICTED_TARGET {run, origin}. A compound the graph "
    "already holds is flagged; its known MoAs / targets are hidden from the model when it is scored. "
    "Anything wrong (unknown run, a structure that does not parse, missing landmark genes, a graph that "
    "changed since training) stops with one line before anything is written.\n\n"
    "Example: moakg predict --run moa-sage-phenotype-scaffold-... --compounds new.tsv "
    "--signatures new_signatures.tsv.gz --top-k 5"
)


def add_cli(app: typer.Typer) -> None:
    """Register ``moakg predict`` on the top-level app."""

    @app.command("predict", help=PREDICT_HELP)
    def predict_cmd(
        run: Annotated[str, typer.Option("--run", help="ModelRun.id (moakg query run model_runs).")],
        compounds: Annotated[Path, typer.Option("--compounds", help="TSV/CSV: id, smiles or inchi, name.")],
        signatures: Annotated[Path | None, typer.Option(
            "--signatures", help="Consensus signatures (matrix TSV/CSV or GCT/GCTX).")] = None,
        sig_info: Annotated[Path | None, typer.Option(
            "--sig-info", help="Signature table (sig_id, pert_id): --signatures rows are signatures, "
            "averaged per compound.")] = None,
        top_k: Annotated[int, typer.Option("--top-k", help="Predictions per compound.")] = 5,
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
        paths: Annotated[int, typer.Option("--paths", help="Explanation paths printed for each new "
                                           "compound's top prediction (saliency; 0: none).")] = 3,
    ) -> None:
        from moakg.console import connect, fail, print_table, require_device
        from moakg.gnn.predict import predict_new_compounds

        require_device(device)
        with connect() as conn:
            try:
                res = predict_new_compounds(conn, run, compounds, signatures, top_k=top_k, device=device,
                                            progress=True, sig_info=sig_info, paths=paths)
            except UserError as exc:
                raise fail(str(exc)) from None
        print_table(res.rows())
        for p in res.predictions:
            if p.paths:
                typer.echo(f"\n{p.ref} -> {p.top[0][0]}: top paths (saliency)")
                for i, line in enumerate(p.paths, start=1):
                    typer.echo(f"  {i}. {line}")
        n_flag = sum(1 for p in res.predictions if p.flag)
        typer.echo(f"{len(res.predictions)} compound(s) scored by run {run} ({n_flag} already in the graph, "
                   f"flagged); {res.written} predictions written with origin {res.ingest_run}. Read them: "
                   f"moakg query run top_predictions -p run={run}")
