"""What `newsflow reparse` and `newsflow backfill` share: archived pages go back into the pipeline as
RawPages on `news.raw`, marked with their origin, and run through the same parser and indexer as live
pages. Nothing here extracts or indexes: the running services do, so a reparse uses the parser version
that is deployed, and the indexer's external versioning (parse time) makes the newer extraction win.

Live pages keep priority: a job publishes only while `news.raw` holds at most `max_lag` unprocessed
entries (backpressure), far below the services' own limit, so a live page never waits behind more than
that many archived ones. A job's position is kept in Redis (`JOBS_PREFIX`) after each page it handed
over, so a stopped job resumes where it was; a page handed over twice is parsed twice, which the
idempotent index write absorbs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from newsflow_archive.reader import ArchivedPage
from newsflow_http.charset import decode_html
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, Origin, RawPage
from newsflow_shared.runtime import Publisher
from newsflow_shared.urls import canonicalize

HTML_TYPES = ("text/html", "application/xhtml+xml")


class Unusable(ValueError):
    """An archived record that is no page to parse; the message is the reason counted."""


def looks_like_html(body: bytes) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head")) or b"<html" in head


def to_raw_page(page: ArchivedPage, entry: FeedEntry, origin: Origin, alerts: bool) -> RawPage:
    """The RawPage the fetcher would have sent for this archived response. Raises Unusable."""
    if not 200 <= page.status < 300:
        raise Unusable(f"http-{page.status}")
    ctype = page.content_type
    if ctype not in HTML_TYPES and not (
        ctype in ("", "text/plain", "application/octet-stream") and looks_like_html(page.body)
    ):
        raise Unusable("not-html")
    if not page.body:
        raise Unusable("empty")
    html, charset, source = decode_html(page.body, page.header("content-type"))
    return RawPage.with_html(
        html,
        entry=entry,
        url=entry.url,
        final_url=page.url or entry.url,
        status=page.status,
        content_type=ctype or "text/html",
        charset=charset,
        charset_source=source,  # type: ignore[arg-type]
        etag=page.header("etag"),
        last_modified=page.header("last-modified"),
        fetched_at=page.fetched_at,
        archive=page.ref,
        origin=origin,
        alerts=alerts,
    )


def entry_for(url: str, feed_url: str) -> FeedEntry:
    """A minimal feed entry for a page no feed announced (a backfilled WARC record). Raises Unusable."""
    try:
        canonical = canonicalize(url)
    except ValueError as e:
        raise Unusable("bad-url") from e
    return FeedEntry(url=canonical, link=url, article_id=article_id(canonical), feed_url=feed_url)


@dataclass
class Job:
    """A resumable job's state in Redis: its parameters, cursor and counts."""

    redis: aioredis.Redis
    kind: str
    params: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    _saved: float = 0.0

    @property
    def key(self) -> str:
        ident = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]
        return f"{streams.JOBS_PREFIX}{self.kind}:{ident}"

    async def load(self, restart: bool) -> bool:
        """Load a previous run's state; True when resuming one."""
        if restart:
            await self.redis.delete(self.key)
        raw = await self.redis.get(self.key)
        self.state = json.loads(raw) if raw else {"params": self.params, "started_at": time.time(), "counts": {}}
        return raw is not None

    def count(self, what: str, n: int = 1) -> None:
        counts = self.state.setdefault("counts", {})
        counts[what] = counts.get(what, 0) + n

    async def save(self, force: bool = False) -> None:
        # At most every half second: a crash repeats at most that many pages, which are idempotent.
        now = time.monotonic()
        if force or now - self._saved > 0.5:
            await self.redis.set(self.key, json.dumps(self.state), ex=90 * 86400)
            self._saved = now

    async def finish(self) -> None:
        await self.redis.delete(self.key)


def publisher(redis: aioredis.Redis, max_lag: int) -> Publisher:
    return Publisher("cli", redis, max_lag=max_lag, dedup_ttl_s=86400, backpressure={streams.RAW})
