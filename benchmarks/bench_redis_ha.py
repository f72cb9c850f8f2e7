"""Redis with a replica and Sentinels: what WAIT costs, and how much memory pending pages take.

    .venv/bin/python benchmarks/bench_redis_ha.py                 # about a minute
    .venv/bin/python benchmarks/bench_redis_ha.py --writes 5000

Starts `scripts/redis.sh start --ha` in a temporary directory (stopped at the end) and connects through the
Sentinels with `make_redis`, as the services do.

1. Appends per second through the runtime's `Publisher`, with `wait_replicas` 0 (no WAIT) and 1 (WAIT 1
   after every append, the default with Sentinels), one writer and 16 concurrent writers, for a small message
   (a `FeedEntry`, as on news.entries) and a downloaded page (a `RawPage` of a real news page from
   ../shared/eval/scrapinghub, as on news.raw).
2. Redis memory per 1,000 pending pages: 1,000 `RawPage`s of those pages appended to a stream and read by a
   consumer group without acknowledging them (pending, as when the parser is behind), `used_memory` before and
   after, on the primary; and what the replica holds for them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from pydantic import BaseModel

from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, RawPage
from newsflow_shared.runtime import Publisher, make_redis
from newsflow_shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent.parent / "shared" / "eval" / "scrapinghub"


def entry(n: int) -> FeedEntry:
    url = f"http://example.test/news/{n}.html"
    return FeedEntry(
        url=url, link=url, article_id=article_id(url), feed_url="http://example.test/feed.xml", title=f"Story {n}"
    )


def pages(eval_dir: Path, n: int) -> list[RawPage]:
    htmls = [p.read_text("utf-8", errors="replace") for p in sorted(eval_dir.glob("*.html"))]
    if not htmls:
        sys.exit(f"no pages in {eval_dir} (--eval-dir)")
    out = []
    for i in range(n):
        e = entry(i)
        out.append(
            RawPage.with_html(
                htmls[i % len(htmls)], entry=e, url=e.url, final_url=e.url, status=200, content_type="text/html"
            )
        )
    return out


async def rate(pub: Publisher, stream: str, models: list[BaseModel], writers: int) -> float:
    """Appends per second, `writers` tasks sharing the list."""
    queue = list(reversed(models))

    async def writer() -> None:
        while queue:
            await pub.publish(stream, queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return len(models) / (time.perf_counter() - started)


async def memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=3000, help="appends per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="measurements per case (the median is printed)")
    ap.add_argument("--pending", type=int, default=1000, help="pages left pending for the memory figure")
    ap.add_argument("--eval-dir", type=Path, default=EVAL)
    a = ap.parse_args()
    page_models = pages(a.eval_dir, max(a.writes, a.pending))
    sizes = [len(p.model_dump_json()) for p in page_models[:200]]
    with tempfile.TemporaryDirectory(prefix="bench-redis-ha-") as tmp:
        out = await asyncio.to_thread(
            subprocess.run,
            ["scripts/redis.sh", "start", "--ha", "--dir", tmp],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        address = out.stdout.strip().splitlines()[-1]  # sentinel://h:p,h:p,h:p/name
        hosts, name = address.removeprefix("sentinel://").split("/", 1)
        settings = CommonSettings(redis_sentinels=hosts, redis_sentinel_master=name)
        redis = make_redis(settings)
        try:
            print(f"Redis: primary, replica, 3 Sentinels ({address})")
            print(f"\n1. appends/s through Publisher.publish, median of {a.repeat} x {a.writes}")
            print(f"{'message':<10} {'writers':>7} {'no WAIT':>10} {'WAIT 1':>10} {'cost':>7}")
            for label, models in (
                ("FeedEntry", [entry(i) for i in range(a.writes)]),
                ("RawPage", page_models[: a.writes]),
            ):
                for writers in (1, 16):
                    got = {}
                    for wait in (0, 1):
                        pub = Publisher("bench", redis, max_lag=10**9, dedup_ttl_s=60, wait_replicas=wait)
                        runs = []
                        for _ in range(a.repeat):
                            await redis.delete("bench.wait")
                            runs.append(await rate(pub, "bench.wait", models, writers))
                        got[wait] = statistics.median(runs)
                    cost = 1 - got[1] / got[0]
                    print(f"{label:<10} {writers:>7} {got[0]:>10.0f} {got[1]:>10.0f} {cost:>6.0%}")
            await redis.delete("bench.wait")

            print(f"\n2. memory for {a.pending} pages pending in a consumer group")
            await redis.xgroup_create("bench.raw", "g", id="0", mkstream=True)
            before = await memory(redis)
            pub = Publisher("bench", redis, max_lag=10**9, dedup_ttl_s=60, wait_replicas=1)
            for p in page_models[: a.pending]:
                await pub.publish("bench.raw", p)
            read = await redis.xreadgroup("g", "c", {"bench.raw": ">"}, count=a.pending)
            assert sum(len(entries) for _, entries in read) == a.pending
            after = await memory(redis)
            per_1000 = (after - before) / a.pending * 1000 / 2**20
            print(f"used_memory: +{(after - before) / 2**20:.1f} MB, {per_1000:.1f} MB per 1,000 pending pages")
            median_kb, mean_kb = statistics.median(sizes) / 1024, sum(sizes) / len(sizes) / 1024
            print(f"(page messages: {median_kb:.0f} KB median, {mean_kb:.0f} KB mean)")
            await redis.delete("bench.raw")
        finally:
            await redis.aclose()
            stop = ["scripts/redis.sh", "stop", "--dir", tmp]
            await asyncio.to_thread(subprocess.run, stop, cwd=ROOT, check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
