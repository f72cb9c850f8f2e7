"""`newsflow search QUERY`: the top articles for a Lucene query-string query, with highlighted snippets."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow_cli.common import fail, load_settings, run

if TYPE_CHECKING:
    from newsflow_search.search import SearchResult


async def _search(query: str, since: str | None, lang: str | None, size: int, newest: bool) -> SearchResult:
    from elasticsearch import BadRequestError, NotFoundError

    from newsflow_search.es import make_client
    from newsflow_search.search import search as run_search

    settings = load_settings()
    es = make_client(settings)
    try:
        return await run_search(
            es, query, since=since, lang=lang, size=size, alias=settings.index_alias, newest_first=newest
        )
    except NotFoundError:
        fail(f"no index {settings.index_alias!r} yet: run `newsflow init` first")
    except BadRequestError as e:
        fail(f"Elasticsearch refused the query {query!r}: {e.message}")
    finally:
        await es.close()
    raise AssertionError("unreachable")


def _highlight(snippet: str) -> str:
    return escape(snippet).replace("«", "[bold yellow]").replace("»", "[/bold yellow]")


def search(
    query: str = typer.Argument(..., help='Lucene query string: rocket attack, "rocket attack", drone AND militia*'),
    since: str | None = typer.Option(None, "--since", help="only articles newer than this: 7d, 12h, 30m, 2w or a date"),
    lang: str | None = typer.Option(None, "--lang", help="only articles in this language (en, ar, fr, ...)"),
    size: int = typer.Option(10, "--size", "-n", min=1, max=1000, help="number of hits"),
    newest: bool = typer.Option(False, "--newest", help="newest first instead of best match first"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per hit"),
) -> None:
    """Search indexed articles: title, date, source and a highlighted snippet per hit."""
    result = run(_search(query, since, lang, size, newest))
    if json_out:
        for h in result.hits:
            typer.echo(json.dumps(h.as_dict(), ensure_ascii=False))
        return
    console = Console()
    if not result.hits:
        console.print(f"no articles match {query!r}")
        return
    table = Table(title=f"{result.total} article(s) match {query!r} ({result.took_ms} ms)", show_lines=True)
    table.add_column("date", no_wrap=True)
    table.add_column("source")
    table.add_column("title / snippet", overflow="fold")
    for h in result.hits:
        date = (h.published_at or "")[:16].replace("T", " ")
        body = f"[bold]{escape(h.title or '(no title)')}[/bold]"
        if h.snippet:
            body += "\n" + _highlight(h.snippet)
        body += f"\n[dim]{escape(h.url)}[/dim]"
        table.add_row(date, escape(h.source or ""), body)
    console.print(table)
