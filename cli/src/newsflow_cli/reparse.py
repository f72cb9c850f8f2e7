"""`newsflow reparse`: archived pages through the current parser again, so the newer extraction wins.

Documents are selected in Elasticsearch (those with an archive location), read back from the archive
and handed to the running parser on `news.raw` (see pagefeed). The indexer replaces each document
because the new parse is newer (external version = parse time): one document per URL, never two.
Alerts that already fired do not fire again (the alerts index records one per rule and article, ever);
a rule that matches only the new extraction does alert, unless `--no-alerts`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsflow_archive.reader import ArchiveError, read_page
from newsflow_cli.common import CliSettings, fail, load_settings, run
from newsflow_cli.pagefeed import Job, Unusable, publisher, to_raw_page
from newsflow_extract.version import PARSER_VERSION
from newsflow_search.es import make_client
from newsflow_search.query import query_string
from newsflow_shared import streams
from newsflow_shared.models import ArchiveRef, FeedEntry
from newsflow_shared.runtime import make_redis

PAGE = 200
ENTRY_FIELDS = ["url", "article_id", "archive", "feed_url", "feed_title", "title", "published_at", "language"]
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def cutoff(since: str, now: datetime | None = None) -> str:
    """`7d` / `12h` / an ISO date -> an absolute ISO time, fixed when the job starts so a resume keeps it."""
    v = since.strip()
    if v[:-1].isdigit() and v[-1] in _UNITS:
        return ((now or datetime.now(UTC)) - timedelta(**{_UNITS[v[-1]]: int(v[:-1])})).isoformat()
    try:
        return datetime.fromisoformat(v).isoformat()
    except ValueError as e:
        raise typer.BadParameter(f"--since {since!r}: use 7d, 12h, 30m, 2w or an ISO date") from e


def selection(state: dict[str, Any], query: str | None, outdated: bool) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"exists": {"field": "archive.file"}}]
    if state.get("cutoff"):
        filters.append({"range": {"fetched_at": {"gte": state["cutoff"]}}})
    must = [query_string(query)] if query else []
    must_not = [{"term": {"parser_version": PARSER_VERSION}}] if outdated else []
    return {"bool": {"filter": filters, "must": must, "must_not": must_not}}


def entry_of(page_meta: dict[str, Any], doc: dict[str, Any]) -> FeedEntry:
    """The feed entry archived with the page, else one rebuilt from the indexed document."""
    try:
        entry = FeedEntry.model_validate(page_meta.get("entry") or {})
        if entry.article_id == doc["article_id"]:
            return entry
    except ValidationError:
        pass
    return FeedEntry(
        url=doc["url"],
        link=doc["url"],
        article_id=doc["article_id"],
        feed_url=doc.get("feed_url") or "",
        feed_title=doc.get("feed_title"),
        title=doc.get("title"),
        published_at=doc.get("published_at"),
        language=doc.get("language"),
    )


async def _reparse(settings: CliSettings, params: dict[str, Any], restart: bool, max_lag: int) -> dict[str, int]:
    es = make_client(settings)
    redis = make_redis(settings)
    console = Console(stderr=True)
    try:
        job = Job(redis, "reparse", params)
        if await job.load(restart):
            started = datetime.fromtimestamp(job.state["started_at"], UTC)
            console.print(f"resuming the reparse started at {started:%Y-%m-%d %H:%M} UTC")
        if params["since"] and "cutoff" not in job.state:
            job.state["cutoff"] = cutoff(params["since"])
        query = selection(job.state, params["query"], params["outdated"])
        done = job.state["counts"].get("queued", 0) + job.state["counts"].get("skipped", 0)
        remaining = (await es.count(index=settings.index_alias, query=_after(query, job.state.get("cursor"))))["count"]
        pub = publisher(redis, max_lag)
        columns = (TextColumn("reparse"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("reparse", total=done + remaining, completed=done)
            while True:
                resp = await es.search(
                    index=settings.index_alias,
                    query=_after(query, job.state.get("cursor")),
                    sort=[{"article_id": "asc"}],
                    size=PAGE,
                    source=ENTRY_FIELDS,
                )
                hits = resp["hits"]["hits"]
                if not hits:
                    break
                for hit in hits:
                    await _one(hit["_source"], settings, params["alerts"], pub, job)
                    job.state["cursor"] = hit["_source"]["article_id"]
                    await job.save()
                    progress.advance(task)
        await job.save(force=True)
        counts = dict(job.state["counts"])
        await job.finish()
        return counts
    finally:
        await redis.aclose()
        await es.close()


def _after(query: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    """The selection past the cursor: sorting on article_id makes the walk resumable by one id."""
    if cursor is None:
        return query
    return {"bool": {"filter": [query, {"range": {"article_id": {"gt": cursor}}}]}}


async def _one(doc: dict[str, Any], settings: CliSettings, alerts: bool, pub: Any, job: Job) -> None:
    try:
        ref = ArchiveRef.model_validate(doc["archive"])
        page = await asyncio.to_thread(read_page, ref, settings.archive_dir)
        raw = to_raw_page(page, entry_of(page.metadata, doc), "reparse", alerts)
    except (ArchiveError, ValidationError, KeyError) as e:
        job.count("skipped")
        job.count("archive-missing" if isinstance(e, ArchiveError) else "bad-record")
        job.state.setdefault("problems", [])
        if len(job.state["problems"]) < 5:
            job.state["problems"].append(f"{doc.get('url')}: {e}"[:300])
        return
    except Unusable as e:
        job.count("skipped")
        job.count(str(e))
        return
    await pub.publish(streams.RAW, raw)
    job.count("queued")


def reparse(
    since: str | None = typer.Option(
        None, "--since", help="pages fetched in the last 7d / 12h / ... or since an ISO date"
    ),
    query: str | None = typer.Option(None, "--query", help="documents matching this search (as `newsflow search`)"),
    all_: bool = typer.Option(False, "--all", help="every archived document"),
    outdated: bool = typer.Option(
        False, "--outdated", help=f"only documents another parser made (now {PARSER_VERSION})"
    ),
    alerts: bool = typer.Option(
        True,
        "--alerts/--no-alerts",
        help="let rules alert on what only the new extraction matches (fired ones never refire)",
    ),
    max_lag: int = typer.Option(
        200, "--max-lag", min=1, help="archived pages waiting on news.raw at most (live pages first)"
    ),
    restart: bool = typer.Option(False, "--restart", help="start over instead of resuming a stopped run"),
) -> None:
    """Re-extract archived pages with the parser now running and re-index them: the newer extraction wins.
    Needs the parser and indexer running; resumable (run the same command again after a stop)."""
    if not (since or query or all_):
        fail("say what to reparse: --since 7d, --query Q or --all")
    settings = load_settings()
    params = {"since": since, "query": query, "all": all_, "outdated": outdated, "alerts": alerts}
    counts = run(_reparse(settings, params, restart, max_lag), settings)
    typer.echo(
        f"reparse: {counts.get('queued', 0)} pages handed to the parser, {counts.get('skipped', 0)} skipped"
        + "".join(f", {k} {v}" for k, v in sorted(counts.items()) if k not in ("queued", "skipped"))
    )
