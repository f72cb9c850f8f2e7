"""One slow site never holds back another (issue 14, defect 1).

A feed whose article pages trickle one byte a second, next to 100 healthy articles on another host: the
healthy articles are searchable within seconds, and SIGTERM still stops the fetcher promptly. The two
hosts are 127.0.0.1 and 127.0.0.2 (both loopback), so per-host politeness tells them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from .conftest import add_feeds, at_least, doc_count, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTHY = 100
SLOW = 40


def rss(base: str, paths: list[str]) -> str:
    items = "".join(f"<item><title>{p}</title><link>{base}{p}</link><guid>{base}{p}</guid></item>" for p in paths)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'


def page(path: str) -> str:
    words = " ".join(f"word{i}" for i in range(120))
    return (
        f"<html><head><title>Article {path}</title></head><body><article><h1>Article {path}</h1>"
        f"<p>This is the text of the article at {path}. {words}.</p></article></body></html>"
    )


@contextlib.asynccontextmanager
async def host(address: str, trickle: bool) -> AsyncIterator[str]:
    async def feed(request: web.Request) -> web.Response:
        n = SLOW if trickle else HEALTHY
        return web.Response(text=rss(base, [f"/a/{i}" for i in range(n)]), content_type="application/rss+xml")

    async def article(request: web.Request) -> web.StreamResponse:
        body = page(request.path).encode()
        if not trickle:
            return web.Response(body=body, content_type="text/html")
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Length": str(len(body))})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            for b in body:  # one byte a second: never a read timeout, never a finished page
                await resp.write(bytes([b]))
                await asyncio.sleep(1)
        return resp

    app = web.Application()
    app.router.add_get("/feed.xml", feed)
    app.router.add_get("/robots.txt", lambda _r: web.Response(text="User-agent: *\nAllow: /\n"))
    app.router.add_get("/a/{n}", article)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    base = f"http://{address}:{runner.addresses[0][1]}"
    try:
        yield base
    finally:
        await runner.cleanup()


async def test_a_trickling_host_does_not_hold_back_a_healthy_one(
    initialised: Any, redis: aioredis.Redis, es: AsyncElasticsearch, pipeline_env: dict[str, str], log_dir: Any
) -> None:
    env = {
        **pipeline_env,
        "NEWSFLOW_PER_HOST_CONCURRENCY": "2",
        "NEWSFLOW_PER_HOST_DELAY_S": "0",
        "NEWSFLOW_READ_TIMEOUT_S": "5",
        "NEWSFLOW_TOTAL_TIMEOUT_S": "30",
    }
    async with host("127.0.0.1", trickle=True) as slow, host("127.0.0.2", trickle=False) as fast:
        # The slow feed first: its entries are at the head of news.entries.
        await add_feeds(redis, [f"{slow}/feed.xml"])
        async with running(env, log_dir) as p:
            await wait_for(lambda: _entries_at_least(redis, SLOW), within=60, what="the slow feed's entries")
            await add_feeds(redis, [f"{fast}/feed.xml"])
            took = await wait_for(lambda: at_least(es, HEALTHY), within=60, what=f"{HEALTHY} healthy articles")
            print(f"\n{HEALTHY} healthy articles searchable {took:.1f} s after their feed was added")
            fetcher = p["fetcher"][0]
            t0 = time.monotonic()
            code = await asyncio.to_thread(fetcher.stop)
            stop_s = time.monotonic() - t0
            print(f"SIGTERM fetcher: exit {code} after {stop_s:.1f} s")
    assert await doc_count(es) == HEALTHY  # the slow pages never finished, and nothing else was lost
    assert code == 0 and stop_s < float(env["NEWSFLOW_GRACEFUL_TIMEOUT_S"]) + 3


async def _entries_at_least(redis: aioredis.Redis, n: int) -> bool:
    return int(await redis.xlen("news.entries")) >= n
