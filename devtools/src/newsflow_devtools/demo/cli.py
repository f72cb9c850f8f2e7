"""`newsflow demo`: run the demo news site by hand."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from newsflow_devtools.demo.server import DemoFeedServer, DemoServerError, serve_forever

app = typer.Typer(no_args_is_help=True, help="The demo news site (sample articles and feeds on loopback).")


@app.callback()
def demo() -> None:
    """The demo news site (sample articles and feeds on loopback)."""
    # A callback keeps `serve` a sub-command even while it is the only one.


@app.command()
def serve(
    port: int = typer.Option(0, help="Port to listen on (0: a free one)."),
    articles: int = typer.Option(30, min=1, help="Number of articles (30 are hand-written; more are generated)."),
    seed: int = typer.Option(0, help="Seed of the generated articles."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
) -> None:
    """Serve the demo corpus as RSS, Atom and JSON feeds plus article pages, until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(DemoFeedServer(articles, seed, host=host, port=port, access_log=True), stop)

    try:
        asyncio.run(run())
    except DemoServerError as e:
        typer.echo(f"newsflow demo serve: {e}", err=True)
        raise typer.Exit(1) from None
