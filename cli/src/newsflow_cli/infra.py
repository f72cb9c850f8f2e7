"""Placeholder until its issue lands."""

import typer


def init() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
