"""The `moakg` command line."""
import typer

app = typer.Typer(help="moakg: knowledge-graph learning of drug MoA and targets.", no_args_is_help=True)
