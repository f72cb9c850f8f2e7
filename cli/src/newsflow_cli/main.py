"""`newsflow`: the operator CLI. Each command group lives in its own module of this package."""

from __future__ import annotations

import typer

from newsflow_cli import alerts, backfill, dlq, feeds, infra, parse, reparse, rules, search, status

app = typer.Typer(
    name="newsflow",
    help="Newsflow: news feeds in, clean searchable articles and alerts out.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print Newsflow's version and the versions of the servers it is built for."""
    from importlib.metadata import version as v

    typer.echo(
        f"newsflow {v('newsflow-shared')} (elasticsearch client {v('elasticsearch')}, faststream {v('faststream')})"
    )


app.add_typer(feeds.app, name="feeds", help="Manage the feeds that are polled.")
app.add_typer(rules.app, name="rules", help="Manage alert rules.")
app.add_typer(alerts.app, name="alerts", help="See alerts and where they were sent.")
app.add_typer(dlq.app, name="dlq", help="See, replay and drop dead-lettered messages.")
app.command(name="parse")(parse.parse)
app.command(name="search")(search.search)
app.command(name="status")(status.status)
app.command(name="init")(infra.init)
app.command(name="reparse")(reparse.reparse)
app.command(name="backfill")(backfill.backfill)


def _plugins() -> None:
    """Command groups other installed packages offer (`newsflow demo` from the development tools)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="newsflow.commands"):
        app.add_typer(ep.load(), name=ep.name)


_plugins()
