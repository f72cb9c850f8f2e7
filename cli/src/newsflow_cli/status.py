"""Placeholder until its issue lands."""

import typer


def status() -> None:
    """Not implemented yet."""
    raise typer.Exit(2)
