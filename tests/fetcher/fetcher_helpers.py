"""Shared pieces of the fetcher tests: a scriptable HTTP server on 127.0.0.1 and test settings."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from newsflow_feeds.registry import FeedRegistry
from newsflow_fetcher.poller import Poller, PollResult
from newsflow_fetcher.settings import FetcherSettings
from newsflow_shared import streams
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import DATA_FIELD
from newsflow_shared.urls import canonicalize

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    started: float
    ended: float = 0.0


@dataclass
class WebServer:
    """One aiohttp server; tests register handlers per path and read the request log."""

    routes: dict[str, Handler] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for h in self.hits if h.path == path)

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(request.path_qs, dict(request.headers), time.monotonic())
        self.hits.append(hit)
        handler = self.routes.get(request.path_qs) or self.routes.get(request.path)
        try:
            if handler is None:
                return web.Response(status=404, text="not here")
            return await handler(request)
        finally:
            hit.ended = time.monotonic()

    async def start(self) -> WebServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # --- handler factories ------------------------------------------------------------------------

    def static(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "text/html",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body

        async def h(_: web.Request) -> web.StreamResponse:
            return web.Response(body=data, status=status, headers={"Content-Type": content_type, **(headers or {})})

        self.routes[path] = h

    def etagged(
        self, path: str, etag: str, body: str | Callable[[], str], content_type: str = "application/rss+xml"
    ) -> None:
        """Serve `body` with the ETag `etag` and answer 304 to whoever sends that ETag back. A callable body is
        read at each full answer, so a test can change the content under the same ETag (a lying server)."""

        async def h(request: web.Request) -> web.StreamResponse:
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            text = body() if callable(body) else body
            return web.Response(text=text, content_type=content_type, headers={"ETag": etag})

        self.routes[path] = h

    def redirect(self, path: str, to: str, permanent: bool = False) -> None:
        async def h(_: web.Request) -> web.StreamResponse:
            raise web.HTTPMovedPermanently(to) if permanent else web.HTTPFound(to)

        self.routes[path] = h

    def slow(self, path: str, delay_s: float) -> None:
        """An HTML page that comes only after `delay_s`: longer than the client waits."""

        async def h(_: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay_s)
            return web.Response(text="<html>late</html>", content_type="text/html")

        self.routes[path] = h

    def stream(self, path: str, chunk: bytes, times: int, pause_s: float = 0.0) -> None:
        """An HTML body written as `chunk` `times` over, `pause_s` apart, until the client hangs up."""

        async def h(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/html"})
            await resp.prepare(request)
            try:
                for _ in range(times):
                    await resp.write(chunk)
                    if pause_s:
                        await asyncio.sleep(pause_s)
            except (ConnectionError, asyncio.CancelledError):
                pass
            return resp

        self.routes[path] = h

    def flaky(self, path: str, failures: int, status: int, body: str) -> None:
        """Answer `status` to the first `failures` requests for `path`, then the HTML `body`."""

        async def h(_: web.Request) -> web.StreamResponse:
            # _dispatch has logged this request already, so the count includes it.
            if self.count(path) <= failures:
                return web.Response(status=status, text="busy")
            return web.Response(text=body, content_type="text/html")

        self.routes[path] = h

    def article(self, path: str, title: str = "An article") -> None:
        self.static(
            path,
            f"<!doctype html><html><head><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1><p>Body of {title}.</p></article></body></html>",
        )


def http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def rss(items: list[tuple[str, str]], title: str = "Test feed", extra_channel: str = "") -> str:
    """An RSS 2.0 document with (link, title) items."""
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="false">{escape(link)}</guid>'
        f"<description>About {t}</description><pubDate>Mon, 02 Jun 2025 10:00:00 GMT</pubDate></item>"
        for link, t in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://example.invalid/</link>{extra_channel}{body}</channel></rss>"
    )


def fetcher_settings(redis_url: str, **overrides: object) -> FetcherSettings:
    values: dict[str, object] = dict(
        redis_url=redis_url,
        allowed_networks=["127.0.0.0/8"],
        per_host_delay_s=0.0,
        per_host_concurrency=8,
        min_poll_interval_s=1.0,
        max_poll_interval_s=8.0,
        poll_jitter=0.0,
        connect_timeout_s=2.0,
        read_timeout_s=1.0,
        total_timeout_s=2.0,
        retry_backoff_s=0.05,
        download_retries=2,
        claim_idle_ms=300,
        claim_interval_s=0.2,
        max_deliveries=2,
        feed_lease_s=15.0,
        graceful_timeout_s=5.0,
        metrics_port=0,
        metrics_host="127.0.0.1",
        consumer_name=f"test-{uuid.uuid4().hex[:8]}",
        backpressure_max_lag=10_000,
        # Each test's own archive directory, never the working tree.
        archive_dir=tempfile.mkdtemp(prefix="newsflow-archive-"),
    )
    values.update(overrides)
    return FetcherSettings(**values)  # type: ignore[arg-type]


async def wait_for(cond: Callable[[], Awaitable[bool]], within: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(step)
    return await cond()


class Sink:
    """Stands in for the runtime's publish: writes to the real stream as the runtime does, and keeps a copy."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.entries: list[FeedEntry] = []

    async def __call__(self, stream: str, model: Any) -> str:
        assert stream == streams.ENTRIES
        self.entries.append(model)
        return str(await self.redis.xadd(stream, {DATA_FIELD: model.model_dump_json().encode()}))

    def take(self) -> list[FeedEntry]:
        out, self.entries = self.entries, []
        return out


async def poll(p: Poller, reg: FeedRegistry, url: str) -> PollResult:
    """One poll of `url` through the real claim/complete path (forced due now)."""
    url = canonicalize(url)
    await reg.redis.zadd(streams.FEEDS_DUE_KEY, {url: 0})
    claimed = await reg.claim_due(100, 15, p.token)
    assert url in claimed
    for other in claimed:
        if other != url:
            await reg.release(other, p.token)
    result = await p.poll_leased(url)
    assert result is not None
    return result
