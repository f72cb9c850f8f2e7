"""Placeholder until its issue lands; replaced by the module owner."""

import typer

app = typer.Typer(no_args_is_help=True)
