"""`newsflow feeds`: the feeds the fetcher polls, and how each one is doing.

Feeds live in Redis (see newsflow_feeds.registry); a running fetcher picks up a change within a
second. `list` shows each feed's health: last success, last error, consecutive failures, the current
polling interval and how many new items it brought.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from newsflow_cli.common import fail, load_settings, run
from newsflow_feeds.opml import OpmlError
from newsflow_feeds.registry import FeedInfo, FeedRegistry, load_feeds_file
from newsflow_shared.runtime import make_redis

app = typer.Typer(no_args_is_help=True, help="Manage the feeds that are polled.")
T = TypeVar("T")


class ExportFormat(StrEnum):
    opml = "opml"
    yaml = "yaml"


def _with_registry(fn: Callable[[FeedRegistry], Awaitable[T]]) -> T:
    settings = load_settings()

    async def go() -> T:
        redis = make_redis(settings)
        try:
            return await fn(FeedRegistry(redis))
        finally:
            await redis.aclose()

    return run(go(), settings)


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    d = now - ts
    future = d < 0
    d = abs(d)
    if d < 90:
        text = f"{d:.0f}s"
    elif d < 5400:
        text = f"{d / 60:.0f}m"
    elif d < 172_800:
        text = f"{d / 3600:.1f}h"
    else:
        text = f"{d / 86400:.0f}d"
    return f"in {text}" if future else f"{text} ago"


def _interval(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def _next_poll(f: FeedInfo, now: float) -> str:
    if f.due_at is None:
        return "-"
    return _ago(f.due_at, now) if f.due_at > now + 0.5 else "due now"


def _health(f: FeedInfo) -> str:
    st = f.state
    if st.unhealthy:
        return "unhealthy"
    if st.consecutive_failures:
        return "failing"
    if st.last_success_at is None:
        return "new"
    return "ok"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def feed_row(f: FeedInfo) -> dict[str, Any]:
    """One feed as `feeds list --json` prints it (also handy for scripts and tests)."""
    st = f.state
    return {
        "url": f.url,
        "title": f.config.title or st.title,
        "health": _health(f),
        "last_success": _iso(st.last_success_at),
        "last_error": st.last_error,
        "last_error_at": _iso(st.last_error_at),
        "consecutive_failures": st.consecutive_failures,
        "interval_s": f.config.interval_s or st.current_interval_s,
        "fixed_interval": f.config.interval_s is not None,
        "items_seen": st.items_seen,
        "polls": st.polls,
        "not_modified": st.not_modified,
        "validators_trusted": st.validators_trusted,
        "next_due": _iso(f.due_at),
    }


@app.command()
def add(
    url: str = typer.Argument(..., help="feed URL (RSS, Atom or JSON Feed)"),
    interval: float | None = typer.Option(
        None, "--interval", min=1, help="poll every N seconds (default: adaptive between the min and max)"
    ),
    title: str | None = typer.Option(None, help="a name to show instead of the feed's own title"),
) -> None:
    """Add a feed (or change its interval/title). It is polled within a second by a running fetcher."""
    try:
        cfg, created = _with_registry(lambda r: r.add(url, interval=interval, title=title))
    except ValueError as e:
        fail(f"cannot add {url!r}: {e}")
        return
    typer.echo(f"{'added' if created else 'updated'} {cfg.url}")


@app.command()
def remove(url: str = typer.Argument(..., help="feed URL, as `feeds list` shows it")) -> None:
    """Stop polling a feed and forget its state (articles already fetched stay)."""
    if not _with_registry(lambda r: r.remove(url)):
        fail(f"no such feed: {url}")
    typer.echo(f"removed {url}")


@app.command("list")
def list_(
    json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
    unhealthy: bool = typer.Option(False, "--unhealthy", help="only feeds that are failing"),
) -> None:
    """List feeds with their health."""
    feeds = _with_registry(lambda r: r.list())
    if unhealthy:
        feeds = [f for f in feeds if f.state.consecutive_failures]
    if json_out:
        for f in feeds:
            typer.echo(json.dumps(feed_row(f)))
        return
    now = time.time()
    bad = sum(1 for f in feeds if f.state.unhealthy)
    table = Table(title=f"feeds ({len(feeds)}, {bad} unhealthy)")
    for col in ("feed", "health", "last success", "last error", "fails", "interval", "items", "next poll"):
        table.add_column(col, overflow="fold")
    colours = {"ok": "green", "new": "cyan", "failing": "yellow", "unhealthy": "red"}
    for f in feeds:
        st = f.state
        health = _health(f)
        name = f.config.title or st.title
        label = f"{name}\n[dim]{f.url}[/dim]" if name else f.url
        error = f"{st.last_error[:80]} ({_ago(st.last_error_at, now)})" if st.last_error else ""
        interval = _interval(f.config.interval_s or st.current_interval_s)
        table.add_row(
            label,
            f"[{colours[health]}]{health}[/{colours[health]}]",
            _ago(st.last_success_at, now),
            error,
            str(st.consecutive_failures),
            interval + (" (fixed)" if f.config.interval_s else ""),
            str(st.items_seen),
            _next_poll(f, now),
        )
    Console().print(table)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="an OPML (or feeds YAML) file"),
) -> None:
    """Add every feed of an OPML export (feed readers) or of a feeds YAML file."""
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            feeds = load_feeds_file(file)
            added, known = _with_registry(lambda r: r.add_many(feeds))
        else:
            text = file.read_bytes()
            added, known = _with_registry(lambda r: r.import_opml(text))
    except (OpmlError, ValueError) as e:
        fail(f"cannot import {file}: {e}")
        return
    typer.echo(f"imported {added} new feeds ({known} already known)")


@app.command()
def export(
    fmt: ExportFormat = typer.Option(ExportFormat.opml, "--format", help="opml (feed readers) or yaml (feeds file)"),
) -> None:
    """Print every feed as OPML (default) or as a feeds YAML file."""
    if fmt is ExportFormat.yaml:
        typer.echo(_with_registry(lambda r: r.export_yaml()), nl=False)
    else:
        typer.echo(_with_registry(lambda r: r.export_opml()), nl=False)
