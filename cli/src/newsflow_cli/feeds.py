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

from newsflow_cli import discover
from newsflow_cli.common import fail, load_settings, run
from newsflow_feeds.discovery import is_site_url
from newsflow_feeds.opml import OpmlError, parse_opml_sources
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


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def feed_row(f: FeedInfo) -> dict[str, Any]:
    """One feed as `feeds list --json` prints it (also handy for scripts and tests)."""
    st = f.state
    return {
        "url": f.url,
        "kind": f.config.kind,
        "format": st.format,
        "title": f.config.title or st.title,
        "health": f.health,
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


class Kind(StrEnum):
    feed = "feed"
    sitemap = "sitemap"


@app.command()
def add(
    url: str = typer.Argument(..., help="a feed (RSS, Atom, JSON Feed), a sitemap, or a site to discover them on"),
    interval: float | None = typer.Option(
        None, "--interval", min=1, help="poll every N seconds (default: adaptive between the min and max)"
    ),
    title: str | None = typer.Option(None, help="a name to show instead of the feed's own title"),
    kind: Kind | None = typer.Option(
        None, "--kind", help="feed or sitemap (default: feed; sitemaps are also recognised)"
    ),
    discover_: bool = typer.Option(
        False,
        "--discover",
        help="treat URL as a site and look for its feeds and sitemaps (automatic for https://site/)",
    ),
    all_: bool = typer.Option(False, "--all", help="discovery: add every feed and news sitemap found"),
    pick: str | None = typer.Option(None, "--pick", help="discovery: add these of the list, e.g. 1,3"),
) -> None:
    """Add a feed or sitemap (or change its interval/title). A site's address (no path) is searched for its
    feeds (<link rel="alternate">) and news sitemaps (robots.txt, usual paths), which are shown and added."""
    if discover_ or is_site_url(url):
        _discover_and_add([url], interval, all_, pick)
        return
    try:
        cfg, created = _with_registry(
            lambda r: r.add(url, interval=interval, title=title, kind=kind.value if kind else None)
        )
    except ValueError as e:
        fail(f"cannot add {url!r}: {e}")
        return
    typer.echo(f"{'added' if created else 'updated'} {cfg.url}" + (f" ({cfg.kind})" if cfg.kind != "feed" else ""))


def _discover_and_add(sites: list[str], interval: float | None, all_: bool, pick: str | None) -> tuple[int, int]:
    """Discover on each site, show, add what is chosen. (added, already known)"""
    settings = load_settings()
    try:
        results = run(discover.discover_sites(settings, sites), settings)
    except ValueError as e:
        fail(f"cannot discover on {sites[0]!r}: {e}")
        raise
    console = Console()
    added = known = 0
    for found in results:
        discover.show(found, console)
        chosen = discover.choose(found, all_, pick)
        if not chosen:
            continue
        for url, created in _with_registry(lambda r, c=chosen: discover.add_found(r, c, interval)):
            typer.echo(f"{'added' if created else 'updated'} {url}")
            added += created
            known += not created
    return added, known


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
        health = f.health
        name = f.config.title or st.title
        label = f"{name}\n[dim]{f.url}[/dim]" if name else f.url
        if f.config.kind != "feed":
            label += f" [dim]({st.format or f.config.kind})[/dim]"
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
    discover_: bool = typer.Option(
        True,
        "--discover/--no-discover",
        help="for sites in the list (no xmlUrl), add the feeds and news sitemaps found",
    ),
) -> None:
    """Add every feed of an OPML export (feed readers) or of a feeds YAML file. Outlines that name only a
    site (htmlUrl, no xmlUrl) are searched for feeds and news sitemaps, and what is found is added."""
    sites: list[dict[str, Any]] = []
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            feeds = load_feeds_file(file)
        else:
            feeds, sites = parse_opml_sources(file.read_bytes())
        # A feed entry whose URL is a bare site is discovered too.
        sites += [f for f in feeds if is_site_url(f["url"])]
        feeds = [f for f in feeds if not is_site_url(f["url"])]
        added, known = _with_registry(lambda r: r.add_many(feeds))
    except (OpmlError, ValueError) as e:
        fail(f"cannot import {file}: {e}")
        return
    typer.echo(f"imported {added} new feeds ({known} already known)")
    if sites and discover_:
        more, also = _discover_and_add([s["url"] for s in sites], None, True, None)
        typer.echo(f"discovered on {len(sites)} site(s): {more} added ({also} already known)")
    elif sites:
        typer.echo(f"{len(sites)} site(s) without a feed URL skipped (--no-discover)")


@app.command()
def export(
    fmt: ExportFormat = typer.Option(ExportFormat.opml, "--format", help="opml (feed readers) or yaml (feeds file)"),
) -> None:
    """Print every feed as OPML (default) or as a feeds YAML file."""
    if fmt is ExportFormat.yaml:
        typer.echo(_with_registry(lambda r: r.export_yaml()), nl=False)
    else:
        typer.echo(_with_registry(lambda r: r.export_opml()), nl=False)
