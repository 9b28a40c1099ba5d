"""Command-line interface of this component (assembled into `aquacis` by aquacis/cli.py)."""

import typer

app = typer.Typer(help="edge commands", no_args_is_help=True)
