"""The fetcher service on the real runtime: end to end from a feeds file to news.raw and the
dead-letter stream, two replicas sharing 50 feeds, and the real entry point as subprocesses."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from fetcher_helpers import WebServer, fetcher_settings, rss, wait_for

from newsflow_devtools.processes import free_port
from newsflow_feeds.registry import FeedRegistry
from newsflow_fetcher.main import service as fetcher
from newsflow_shared import streams
from newsflow_shared.models import DeadLetter, FeedEntry, RawPage
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY

pytestmark = pytest.mark.integration


async def fake_dns(host: str, port: int) -> list[str]:
    return ["10.9.8.7"] if host.endswith(".internal.test") else ["127.0.0.1"]


async def raw_pages(redis: Any) -> list[RawPage]:
    return [RawPage.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.RAW)]


async def dead_letters(redis: Any) -> dict[str, str]:
    """entry url -> reason, from news.entries.dlq"""
    out = {}
    for _, f in await redis.xrange(streams.dlq(streams.ENTRIES)):
        dl = DeadLetter.model_validate_json(f[DATA_FIELD])
        e = FeedEntry.model_validate_json(dl.original[DATA_KEY])
        out[e.url] = dl.reason
    return out


async def test_service_end_to_end_with_hostile_articles(
    site: WebServer, redis: Any, redis_url: str, tmp_path: Path
) -> None:
    for i in range(3):
        site.article(f"/good/{i}", f"Good {i}")
    site.static("/doc.pdf", b"%PDF-1.4 ...", "application/pdf")

    site.slow("/slow", 5)
    site.stream("/endless", b"z" * 65_536, 5_000)
    site.redirect("/loop-a", "/loop-b")
    site.redirect("/loop-b", "/loop-a")
    site.flaky("/flaky", 2, 503, "<html><body>recovered</body></html>")
    site.static("/always-500", "no", "text/plain", status=500)
    links = [
        site.url(p)
        for p in ("/good/0", "/good/1", "/good/2", "/flaky", "/doc.pdf", "/slow", "/endless", "/loop-a", "/always-500")
    ]
    links.append("http://admin.internal.test/panel")
    site.static("/feed.xml", rss([(u, f"Item {n}") for n, u in enumerate(links)]), "application/rss+xml")
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(yaml.safe_dump([{"url": site.url("/feed.xml"), "title": "Hostile"}]))

    settings = fetcher_settings(
        redis_url,
        feeds_file=feeds_file,
        total_timeout_s=1.0,
        read_timeout_s=0.5,
        download_retries=2,
        max_body_bytes=512 * 1024,
        download_concurrency=8,
    )
    svc = fetcher.instance(settings, provide={"resolver": fake_dns})
    stop = asyncio.Event()
    task = asyncio.create_task(svc.serve(stop))
    try:
        good = {site.url(p) for p in ("/good/0", "/good/1", "/good/2", "/flaky")}

        async def good_arrived() -> bool:
            return good <= {p.url for p in await raw_pages(redis)}

        assert await wait_for(good_arrived, 20)
        # The slow article is still being retried while everything else went through.
        assert site.url("/slow") not in await dead_letters(redis)

        expected = {
            site.url("/doc.pdf"): "not-html",
            site.url("/endless"): "too-large",
            site.url("/loop-a"): "redirect-loop",
            "http://admin.internal.test/panel": "ssrf",
            site.url("/slow"): "max-deliveries",
            site.url("/always-500"): "max-deliveries",
        }

        async def all_dead() -> bool:
            return (await dead_letters(redis)).keys() >= expected.keys()

        assert await wait_for(all_dead, 40)
        assert await dead_letters(redis) == expected
        pages = await raw_pages(redis)
        assert sorted(p.url for p in pages) == sorted(good)
        assert all(site.count(p) == 1 for p in ("/good/0", "/good/1", "/good/2"))

        # Still running: a feed added now is polled and its article downloaded.
        site.article("/late/1", "Late news")
        site.static("/feed2.xml", rss([(site.url("/late/1"), "Late news")]), "application/rss+xml")
        await FeedRegistry(redis).add(site.url("/feed2.xml"))

        async def late_arrived() -> bool:
            return site.url("/late/1") in {p.url for p in await raw_pages(redis)}

        assert await wait_for(late_arrived, 20)
        info = await FeedRegistry(redis).get(site.url("/feed.xml"))
        assert info is not None and info.config.title == "Hostile" and info.state.items_seen == len(links)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_two_replicas_share_50_feeds(site: WebServer, redis: Any, redis_url: str) -> None:
    n_feeds = 50
    article_paths = []
    for i in range(n_feeds):
        items = []
        for j in range(2):
            path = f"/a/{i}/{j}"
            site.article(path, f"Story {i}.{j}")
            article_paths.append(path)
            items.append((site.url(path), f"Story {i}.{j}"))
        # one story carried by every feed, each with its own tracking parameters
        items.append((site.url(f"/shared?utm_source=feed{i}&utm_medium=rss"), "Shared story"))
        body = rss(items, title=f"Feed {i}")

        async def feed(_: web.Request, body: str = body) -> web.StreamResponse:
            await asyncio.sleep(0.03)  # long enough for an overlapping second poll to show
            return web.Response(text=body, content_type="application/rss+xml")

        site.routes[f"/feed/{i}"] = feed
    site.article("/shared", "Shared story")
    article_paths.append("/shared")

    reg = FeedRegistry(redis)
    for i in range(n_feeds):
        await reg.add(site.url(f"/feed/{i}"))

    interval = 2.0
    replicas = [
        fetcher.instance(
            fetcher_settings(
                redis_url,
                min_poll_interval_s=interval,
                max_poll_interval_s=interval * 2,
                poll_concurrency=8,
                user_agent=f"NewsflowBot/0.1 (replica {name})",
                consumer_name=f"replica-{name}",
                # Both replicas share this test's event loop, which stalls for longer than the helpers'
                # 300 ms on a loaded machine: a heartbeat that late lets the other replica take over live
                # work, and a download twice (at least once) is not what this test is about.
                claim_idle_ms=3000,
            )
        )
        for name in ("A", "B")
    ]
    stops = [asyncio.Event() for _ in replicas]
    tasks = [asyncio.create_task(s.serve(e)) for s, e in zip(replicas, stops, strict=True)]
    try:

        async def done() -> bool:
            if await redis.xlen(streams.RAW) < len(article_paths):
                return False
            return all(site.count(f"/feed/{i}") >= 2 for i in range(n_feeds))

        assert await wait_for(done, 60)
    finally:
        for e in stops:
            e.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    for i in range(n_feeds):
        hits = sorted(site.hits_for(f"/feed/{i}"), key=lambda h: h.started)
        assert hits, f"feed {i} never polled"
        for a, b in itertools.pairwise(hits):
            assert b.started >= a.ended, f"feed {i} polled twice at once"
            # next due = end of the previous poll + interval; a little slack for clock reads
            assert b.started - a.ended >= interval - 0.2, f"feed {i} polled twice in one interval"
    agents = {h.headers.get("User-Agent", "") for h in site.hits if h.path.startswith("/feed/")}
    assert any("replica A" in a for a in agents) and any("replica B" in a for a in agents)
    for path in article_paths:
        assert site.count(path) == 1, f"{path} downloaded {site.count(path)} times"
    pages = await raw_pages(redis)
    assert len(pages) == len({p.url for p in pages}) == len(article_paths)


async def test_real_entry_point_as_two_processes(site: WebServer, redis: Any, redis_url: str, tmp_path: Path) -> None:
    paths = [f"/p/{i}" for i in range(20)]
    for p in paths:
        site.article(p)
    feeds = []
    for i in range(10):
        items = [(site.url(paths[2 * i]), "x"), (site.url(paths[2 * i + 1]), "y")]
        site.static(f"/f/{i}", rss(items), "application/rss+xml")
        feeds.append({"url": site.url(f"/f/{i}")})
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(yaml.safe_dump(feeds))
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_FEEDS_FILE": str(feeds_file),
        "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
        "NEWSFLOW_PER_HOST_DELAY_S": "0",
        "NEWSFLOW_PER_HOST_CONCURRENCY": "8",
        "NEWSFLOW_MIN_POLL_INTERVAL_S": "1",
        "NEWSFLOW_MAX_POLL_INTERVAL_S": "5",
        "NEWSFLOW_METRICS_HOST": "127.0.0.1",
        "NEWSFLOW_LOG_LEVEL": "WARNING",
        "NEWSFLOW_GRACEFUL_TIMEOUT_S": "5",
    }
    exe = str(Path(sys.executable).with_name("newsflow-fetcher"))
    ports = [free_port(), free_port()]
    procs = [
        await asyncio.create_subprocess_exec(
            exe,
            env={**env, "NEWSFLOW_CONSUMER_NAME": f"proc-{n}", "NEWSFLOW_METRICS_PORT": str(ports[n])},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(2)
    ]
    try:

        async def all_raw() -> bool:
            return await redis.xlen(streams.RAW) >= len(paths)

        async def both_ready() -> bool:
            # On a fast machine one replica can finish the work while the other is still starting;
            # SIGTERM is meant for running services, so wait for both.
            return all([await asyncio.to_thread(_healthy, port) for port in ports])

        assert await wait_for(all_raw, 90)  # generous: two cold processes on a busy 2-core machine
        assert await wait_for(both_ready, 60)
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        started = time.monotonic()
        codes = [await asyncio.wait_for(p.wait(), 30) for p in procs]
        errs = [(await p.stderr.read()).decode(errors="replace")[-2000:] for p in procs if p.stderr]
    assert codes == [0, 0], errs
    assert time.monotonic() - started < 30
    assert all(site.count(p) == 1 for p in paths)
    assert await FeedRegistry(redis).count() == 10


async def test_downloads_pause_under_backpressure_and_nothing_is_lost(
    site: WebServer, redis: Any, redis_url: str
) -> None:
    paths = [f"/bp/{i}" for i in range(12)]
    for p in paths:
        site.article(p)
    site.static("/bp-feed", rss([(site.url(p), p) for p in paths]), "application/rss+xml")
    await redis.xgroup_create(streams.RAW, streams.PARSER_GROUP, id="0", mkstream=True)
    await FeedRegistry(redis).add(site.url("/bp-feed"))
    limit, concurrency = 3, 2
    svc = fetcher.instance(fetcher_settings(redis_url, backpressure_max_lag=limit, download_concurrency=concurrency))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.serve(stop))
    try:

        async def some_raw() -> bool:
            return await redis.xlen(streams.RAW) >= limit

        assert await wait_for(some_raw, 20)
        await asyncio.sleep(2.0)  # plenty of time to download the rest, were it not paused
        assert limit <= await redis.xlen(streams.RAW) <= limit + concurrency
        fetched_while_paused = sum(site.count(p) for p in paths)
        assert fetched_while_paused < len(paths)

        # A parser catches up: the fetcher resumes and every article arrives, once.
        async def drain() -> bool:
            got = await redis.xreadgroup(streams.PARSER_GROUP, "test-parser", {streams.RAW: ">"}, count=100)
            for _, items in got or []:
                if items:
                    await redis.xack(streams.RAW, streams.PARSER_GROUP, *[mid for mid, _ in items])
            pages = await raw_pages(redis)
            return len({p.url for p in pages}) == len(paths)

        assert await wait_for(drain, 30, step=0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert all(site.count(p) == 1 for p in paths)
    assert await redis.xlen(streams.RAW) == len(paths)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
