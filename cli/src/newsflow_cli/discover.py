"""Discovery for `newsflow feeds add SITE` and `newsflow feeds import` (sites in an OPML list): find a
site's feeds and news sitemaps through the guarded HTTP client, show them, add the chosen ones."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from newsflow_cli.common import CliSettings
from newsflow_feeds.discovery import Discoverer, Discovery, Found
from newsflow_feeds.registry import FeedRegistry
from newsflow_http.httpclient import HttpClient


async def discover_sites(settings: CliSettings, sites: list[str]) -> list[Discovery]:
    async with HttpClient(settings) as http:
        d = Discoverer(http)
        return [await d.discover(site) for site in sites]


def show(found: Discovery, console: Console) -> None:
    if not found.found:
        console.print(f"no feed or sitemap found on {found.site}")
    else:
        table = Table(title=f"found on {found.site}")
        for col in ("#", "url", "what", "title", "found in", "--all"):
            table.add_column(col, overflow="fold")
        for i, f in enumerate(found.found, 1):
            table.add_row(str(i), f.url, f.what, f.title or "", f.via, "yes" if f.recommended else "")
        console.print(table)
    for p in found.problems[:5]:
        console.print(f"[dim]  {p}[/dim]")


def parse_pick(text: str, n: int) -> list[int]:
    """'1,3' or '1 3' or 'all' -> zero-based indices; BadParameter on anything else."""
    text = text.strip().lower()
    if text in ("all", "a"):
        return list(range(n))
    out: list[int] = []
    for part in text.replace(",", " ").split():
        if not part.isdigit() or not 1 <= int(part) <= n:
            raise typer.BadParameter(f"{part!r} is not one of 1..{n}")
        out.append(int(part) - 1)
    return out


def choose(found: Discovery, all_: bool, pick: str | None) -> list[Found]:
    if not found.found:
        return []
    if pick is not None:
        return [found.found[i] for i in parse_pick(pick, len(found.found))]
    if all_:
        return [f for f in found.found if f.recommended]
    if not sys.stdin.isatty():
        typer.echo("nothing added: pass --all (feeds and news sitemaps) or --pick 1,2", err=True)
        return []
    answer = typer.prompt("add which? (numbers like 1,3; 'all'; empty for none)", default="", show_default=False)
    return [found.found[i] for i in parse_pick(answer, len(found.found))] if answer.strip() else []


async def add_found(registry: FeedRegistry, chosen: list[Found], interval: float | None) -> list[tuple[str, bool]]:
    out = []
    for f in chosen:
        cfg, created = await registry.add(f.url, interval=interval, title=f.title, kind=f.kind)
        out.append((cfg.url, created))
    return out
