"""Fetcher polling benchmark: 2,000 feeds served on loopback, most of them answering 304.

    .venv/bin/python benchmarks/bench_fetcher.py [--feeds 2000] [--rounds 3] [--changing 0.05]

A feed server runs in a separate process (so its CPU is not counted). The poller is the real one
(`newsflow_fetcher.poller.Poller`, real Redis, real HTTP client with the SSRF guard) and publishes
to a real `news.entries` stream. Round 0 is the first poll of every feed (200, parse, entries);
each later round makes every feed due again at once and polls it with its validators: the
`--changing` share of feeds has one new item per round, the rest answer 304.

The feeds are spread over 16 loopback addresses (127.0.0.1-16, one server process listening on
all of them), with 4 requests at most per host; the per-host delay is 0 for the run, since with
125 feeds per host the default 1 s gap would be all the run measured.
Redis comes from NEWSFLOW_REDIS_URL, or is started with scripts/redis.sh in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newsflow_shared.runtime import DATA_FIELD

ROOT = Path(__file__).resolve().parents[1]
HOSTS = 16  # feeds are spread over 127.0.0.1-16, so per-host politeness has something to do


def serve(port: int, n_feeds: int, changing: float, ready: multiprocessing.synchronize.Event) -> None:
    from aiohttp import web

    n_changing = int(n_feeds * changing)
    rounds: dict[int, int] = {}

    def body(i: int, version: int) -> bytes:
        items = "".join(
            f"<item><title>Story {i}.{v}</title><link>http://127.0.0.1:{port}/a/{i}/{v}</link>"
            f"<guid>{i}-{v}</guid><description>Story number {v} of feed {i}.</description></item>"
            for v in range(max(0, version - 20), version + 1)
        )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {i}</title>{items}</channel></rss>'
        ).encode()

    async def feed(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        version = rounds.get(i, 0)
        if i < n_changing:  # a changing feed gets a new item at each poll
            rounds[i] = version = version + 1
        etag = f'"{i}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body(i, version), content_type="application/rss+xml", headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/feed/{i}", feed)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for h in range(1, HOSTS + 1):  # the whole 127.0.0.0/8 is loopback on Linux
            await web.TCPSite(runner, f"127.0.0.{h}", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bench(redis_url: str, port: int, args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis

    from newsflow_feeds.registry import FeedRegistry
    from newsflow_fetcher.poller import Poller
    from newsflow_fetcher.settings import FetcherSettings
    from newsflow_http.httpclient import HttpClient
    from newsflow_shared import streams

    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushdb()
    settings = FetcherSettings(
        redis_url=redis_url,
        allowed_networks=["127.0.0.0/8"],
        per_host_delay_s=0,
        per_host_concurrency=4,
        max_connections=args.concurrency,
        poll_concurrency=args.concurrency,
        min_poll_interval_s=3600,
        max_poll_interval_s=7200,
        validator_check_every=0,
    )
    reg = FeedRegistry(redis)
    urls = [f"http://127.0.0.{i % HOSTS + 1}:{port}/feed/{i}" for i in range(args.feeds)]
    for u in urls:
        await reg.add(u)

    async def publish(stream: str, model: object) -> None:
        await redis.xadd(stream, {DATA_FIELD: model.model_dump_json().encode()})  # type: ignore[attr-defined]

    http = HttpClient(settings)
    poller = Poller(redis, http, settings, publish)
    print(
        f"fetcher benchmark: {args.feeds} feeds on {HOSTS} loopback hosts, {args.changing:.0%} changing per "
        f"round, poll concurrency {args.concurrency} (4 per host, no per-host delay),"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'round':>5} {'polls':>6} {'304':>6} {'200':>6} {'entries':>8} {'wall s':>7} {'polls/s':>8} "
        f"{'CPU ms/poll':>12} {'polls/CPU-s':>13}"
    )
    for rnd in range(args.rounds + 1):
        if rnd:
            await redis.zadd(streams.FEEDS_DUE_KEY, dict.fromkeys(urls, 0))
        entries_before = await redis.xlen(streams.ENTRIES)
        stopping = asyncio.Event()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runner = asyncio.create_task(poller.run(stopping))

        while True:
            await asyncio.sleep(0.05)
            due = await redis.zcount(streams.FEEDS_DUE_KEY, "-inf", time.time())
            if due == 0 and not poller.active:
                break
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stopping.set()
        await runner
        feeds = await reg.list()
        polls = sum(f.state.polls for f in feeds) - (rnd * len(feeds))
        not_modified = sum(1 for f in feeds if f.state.last_status == 304)
        full = polls - not_modified
        entries = await redis.xlen(streams.ENTRIES) - entries_before
        assert polls == len(feeds), polls
        label = "first" if rnd == 0 else str(rnd)
        print(
            f"{label:>5} {polls:>6} {not_modified:>6} {full:>6} {entries:>8} {wall:>7.2f} {polls / wall:>8.0f} "
            f"{cpu * 1000 / polls:>12.2f} {polls / cpu:>13.0f}"
        )
    # polls/s is wall-clock and shares the machine with the feed server, Redis and anything else
    # running; CPU per poll is what the poller itself costs.
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"max RSS of the poller process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    await http.aclose()
    await redis.flushdb()
    await redis.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--changing", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, args.feeds, args.changing, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        sys.exit("feed server did not start")

    tmp = None
    redis_url = os.environ.get("NEWSFLOW_REDIS_URL")
    if not redis_url:
        tmp = tempfile.mkdtemp(prefix="bench-fetcher-redis-")
        out = subprocess.run(
            [str(ROOT / "scripts/redis.sh"), "start", "--dir", tmp], check=True, capture_output=True, text=True
        )
        redis_url = out.stdout.strip().splitlines()[-1]
    try:
        asyncio.run(bench(redis_url, port, args))
    finally:
        server.terminate()
        server.join(5)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"feed server process CPU, whole run: {children.ru_utime + children.ru_stime:.1f} s")
        if tmp:
            subprocess.run([str(ROOT / "scripts/redis.sh"), "stop", "--dir", tmp], check=False, capture_output=True)


if __name__ == "__main__":
    main()
