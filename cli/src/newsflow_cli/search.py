"""Placeholder until its issue lands; replaced by the module owner."""

import typer


def search() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
