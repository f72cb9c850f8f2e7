"""`newsflow backfill FILE.warc.gz ...`: WARC files of one's own (CC-NEWS included: response records with
their HTTP headers) through the same parser and indexer as live pages.

Every response record is a candidate; filters by domain, capture date and language keep what is wanted.
Pages already in the index are skipped unless `--replace` (an old capture must not replace a newer
fetch). Alerts are off for backfilled articles unless `--alerts`. Progress is by bytes, the position is
kept per file, and a broken record is reported and skipped (see newsflow_archive.reader).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from newsflow_archive.reader import ArchivedPage, BrokenRecord, iter_responses
from newsflow_cli.common import CliSettings, fail, load_settings, run
from newsflow_cli.pagefeed import Job, Unusable, entry_for, publisher, to_raw_page
from newsflow_search.es import make_client
from newsflow_shared import streams
from newsflow_shared.models import RawPage
from newsflow_shared.runtime import make_redis

BATCH = 100
_LANG = re.compile(rb"""<html[^>]*?\slang\s*=\s*["']?([A-Za-z]{2,3})""", re.IGNORECASE)
_META_LANG = re.compile(
    rb"""<meta[^>]+http-equiv\s*=\s*["']?content-language["']?[^>]*content\s*=\s*["']?([A-Za-z]{2,3})""", re.I
)
_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)


@dataclass
class Filters:
    domains: list[str]
    since: datetime | None
    until: datetime | None
    languages: list[str]

    def reason(self, page: ArchivedPage) -> str | None:
        """Why the page is filtered out, or None to keep it."""
        host = (urlsplit(page.url).hostname or "").lower()
        if self.domains and not any(host == d or host.endswith("." + d) for d in self.domains):
            return "domain"
        if self.since and page.fetched_at < self.since:
            return "date"
        if self.until and page.fetched_at >= self.until:
            return "date"
        if self.languages and language_of(page) not in self.languages:
            return "language"
        return None


def language_of(page: ArchivedPage) -> str | None:
    """The page's language as it declares it (html lang, meta, Content-Language), else as detected."""
    head = page.body[:8192]
    for m in (_LANG.search(head), _META_LANG.search(head)):
        if m:
            return m.group(1).decode("ascii").lower()[:2]
    if declared := page.header("content-language"):
        return declared.strip().lower()[:2]
    from newsflow_extract.language import detect  # loads a model: only when a page declares nothing

    text = _TAGS.sub(" ", page.body[:200_000].decode("utf-8", "replace"))
    found = detect(" ".join(text.split()))
    return found[0] if found else None


def _date(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{what} {value!r} is no ISO date (2024-05-01)") from e
    return d if d.tzinfo else d.replace(tzinfo=datetime.now().astimezone().tzinfo)


async def _file(
    path: Path, size: int, settings: CliSettings, filters: Filters, opts: dict[str, Any], progress: Progress, task: Any
) -> dict[str, Any]:
    es = make_client(settings)
    redis = make_redis(settings)
    try:
        params = {k: v for k, v in opts.items() if k not in ("max_lag", "restart")}
        job = Job(redis, "backfill", {"file": str(path), "size": size, **params})
        await job.load(opts["restart"])
        start = int(job.state.get("offset", 0))
        progress.advance(task, start)
        pub = publisher(redis, opts["max_lag"])
        batch: list[RawPage] = []
        position = start
        for item in iter_responses(path, start):
            if isinstance(item, BrokenRecord):
                job.count("broken-record")
                job.state.setdefault("problems", []).append(f"{path.name} at byte {item.offset}: {item.error}")
                continue
            try:
                # What is no page at all is told apart before the filters, whose language check costs more.
                raw = to_raw_page(item, entry_for(item.url, f"warc:{path.name}"), "backfill", opts["alerts"])
                if (why := filters.reason(item)) is not None:
                    raise Unusable(f"filtered-{why}")
                batch.append(raw)
            except Unusable as e:
                job.count(str(e))
            end = item.ref.offset + item.ref.length
            progress.advance(task, end - position)
            position = end
            if len(batch) >= BATCH:
                await _flush(batch, es, settings, opts["replace"], pub, job)
                job.state["offset"] = position
                await job.save()
        await _flush(batch, es, settings, opts["replace"], pub, job)
        progress.advance(task, size - position)
        counts = {"file": path.name, **job.state["counts"], "problems": job.state.get("problems", [])[:5]}
        await job.finish()
        return counts
    finally:
        await redis.aclose()
        await es.close()


async def _flush(batch: list[RawPage], es: Any, settings: CliSettings, replace: bool, pub: Any, job: Job) -> None:
    if not batch:
        return
    known: set[str] = set()
    if not replace:
        resp = await es.search(
            index=settings.index_alias,
            query={"ids": {"values": [p.entry.article_id for p in batch]}},
            size=len(batch),
            source=False,
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        known = {h["_id"] for h in resp["hits"]["hits"]}
    for page in batch:
        if page.entry.article_id in known:
            job.count("already-indexed")
            continue
        known.add(page.entry.article_id)  # a URL twice in one file is parsed once
        await pub.publish(streams.RAW, page)
        job.count("queued")
    batch.clear()


def backfill(
    files: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="WARC files (.warc.gz or .warc)"
    ),
    domain: list[str] = typer.Option([], "--domain", help="only pages of this domain (and its subdomains); repeatable"),
    since: str | None = typer.Option(None, "--since", help="only pages captured at or after this ISO date"),
    until: str | None = typer.Option(None, "--until", help="only pages captured before this ISO date"),
    language: list[str] = typer.Option([], "--language", help="only pages in this language (en, de, ...); repeatable"),
    alerts: bool = typer.Option(False, "--alerts", help="evaluate alert rules on backfilled articles (off by default)"),
    replace: bool = typer.Option(False, "--replace", help="re-index pages whose URL is already indexed"),
    max_lag: int = typer.Option(200, "--max-lag", min=1, help="backfilled pages waiting on news.raw at most"),
    restart: bool = typer.Option(False, "--restart", help="start the files over instead of resuming"),
) -> None:
    """Feed WARC files through the parser and indexer (which must be running). Resumable: run the same
    command again after a stop."""
    settings = load_settings()
    filters = Filters(
        domains=[d.lower().strip(".") for d in domain],
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        languages=[x.lower()[:2] for x in language],
    )
    opts = {
        "domains": filters.domains,
        "since": since,
        "until": until,
        "languages": filters.languages,
        "alerts": alerts,
        "replace": replace,
        "max_lag": max_lag,
        "restart": restart,
    }
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    results = []
    with Progress(*columns, console=console) as progress:
        for path in files:
            size = path.stat().st_size
            task = progress.add_task(path.name, total=size)
            results.append(run(_file(path.resolve(), size, settings, filters, opts, progress, task), settings))
    for r in results:
        extra = "".join(f", {k} {v}" for k, v in sorted(r.items()) if k not in ("file", "queued", "problems"))
        typer.echo(f"{r['file']}: {r.get('queued', 0)} pages handed to the parser{extra}")
        for p in r["problems"]:
            typer.echo(f"  {p}")
    if not results:
        fail("no file given")
