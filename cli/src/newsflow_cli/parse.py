"""Placeholder until its issue lands; replaced by the module owner."""

import typer


def parse() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
