"""``moakg plot``: pictures of the graph's data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moakg.plots.landscape import CLIP, MAX_TOP_MOAS, METHODS

plot_app = typer.Typer(help="Pictures of the graph's data.", no_args_is_help=True)


@plot_app.command("landscape")
def landscape_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write, e.g. landscape.png.")],
    top_moas: Annotated[int, typer.Option(help=f"Colour the N most frequent MoAs (0-{MAX_TOP_MOAS}); "
                                          "other MoAs are grey.")] = 10,
    method: Annotated[str, typer.Option(help=f"2-D embedding: {' | '.join(METHODS)}.")] = "pca",
    clip: Annotated[float, typer.Option(min=0.0, help="Clip z-scores to +-CLIP first (as CMap does), so a "
                                        "few extreme signatures do not take the axes; 0: no clip.")] = CLIP,
) -> None:
    """Every signature's landmark z-vector in 2-D, coloured by its compound's most frequent MoA."""
    from moakg.console import connect
    from moakg.plots.landscape import signature_landscape

    with connect() as conn:
        res = signature_landscape(conn, out, top_moas=top_moas, method=method, clip=clip or None)
    var = f"PC1 {100 * res.explained[0]:.1f} %, PC2 {100 * res.explained[1]:.1f} % of variance"
    typer.echo(f"{res.n_points} signatures x {res.n_genes} genes ({var}) -> {res.out}")
