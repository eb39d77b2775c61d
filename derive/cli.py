"""`moakg derive ...`: relationships computed from the graph itself, recorded like ingest runs."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated

import typer

from moakg.console import connect, print_table, require_device
from moakg.derive.similarity import DEFAULT_BLOCK
from moakg.ingest.runner import report_rows
from moakg.kg.schema import require_schema

derive_app = typer.Typer(
    help="Derive relationships from the graph (similarity); idempotent, recorded as an IngestRun.",
    no_args_is_help=True,
)


@derive_app.command("similarity")
def similarity(
    structure_k: Annotated[int, typer.Option(min=1, help="SIMILAR_STRUCTURE: neighbours kept per "
                                                         "compound.")] = 20,
    structure_min: Annotated[float, typer.Option(min=0.0, max=1.0,
                                                 help="SIMILAR_STRUCTURE: minimum Tanimoto.")] = 0.0,
    radius: Annotated[int, typer.Option(min=1, help="Morgan fingerprint radius.")] = 2,
    bits: Annotated[int, typer.Option(min=64, help="Morgan fingerprint length.")] = 2048,
    signature_k: Annotated[int, typer.Option(min=1, help="SIMILAR_SIGNATURE: neighbours kept per "
                                                         "compound (by |Spearman|).")] = 10,
    signature_min: Annotated[float, typer.Option(min=0.0, max=1.0,
                                                 help="SIMILAR_SIGNATURE: minimum |Spearman|.")] = 0.3,
    perturbation_k: Annotated[int, typer.Option(min=1, help="MIMICS/OPPOSES: genes kept per compound "
                                                            "(by |score|).")] = 10,
    perturbation_min: Annotated[float, typer.Option(min=0.0, max=1.0,
                                                    help="MIMICS/OPPOSES: minimum |cosine|.")] = 0.3,
    perturbation_min_genes: Annotated[int, typer.Option(
        min=1, help="MIMICS/OPPOSES: an overexpression signature needs this many landmark genes.")] = 20,
    block: Annotated[int, typer.Option(min=1, help="Rows per score block (memory: block x compounds).")]
    = DEFAULT_BLOCK,
    device: Annotated[str, typer.Option(help="torch device for the score blocks (cpu, cuda).")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="Re-derive even if the graph is unchanged.")] = False,
) -> None:
    """SIMILAR_STRUCTURE (Morgan Tanimoto), SIMILAR_SIGNATURE (Spearman of consensus landmark z) and
    MIMICS / OPPOSES (cosine of a compound's consensus z with gene overexpression signatures).

    Idempotent: an unchanged graph with the same options does nothing; a new ingest replaces them."""
    from moakg.derive.run import SimilarityParams, derive_similarity

    values = locals()
    params = SimilarityParams(**{f.name: values[f.name] for f in fields(SimilarityParams)})
    require_device(device)
    with connect() as conn:
        require_schema(conn)
        report = derive_similarity(conn, params, block=block, device=device, force=force)
    print_table(report_rows([report]))
    for key, value in sorted(report.stats.items()):
        typer.echo(f"  {key}: {value}")
