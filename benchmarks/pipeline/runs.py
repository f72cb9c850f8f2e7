"""The pipeline runs: the three services as separate processes (as compose runs them) against the real Redis
and Elasticsearch, fed by the loopback site; and the burst, straight into news.entries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from elasticsearch import ApiError, AsyncElasticsearch

from benchmarks.pipeline.infra import Servers
from benchmarks.pipeline.pages import ROOT
from benchmarks.pipeline.sampler import SELF, Sampler, tree_cpu_seconds
from benchmarks.pipeline.site import BenchSite
from newsflow_cli.common import CliSettings
from newsflow_cli.infra import initialise
from newsflow_devtools.processes import Pipeline
from newsflow_feeds.registry import FeedRegistry
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import encode, stream_backlog
from newsflow_shared.urls import canonicalize

# The shape the end-to-end tests use: loopback allowed, no politeness delay to our own site, short timings.
ENV = {
    "NEWSFLOW_CLAIM_IDLE_MS": "30000",
    "NEWSFLOW_CLAIM_INTERVAL_S": "2",
    "NEWSFLOW_GRACEFUL_TIMEOUT_S": "10",
    "NEWSFLOW_MIN_POLL_INTERVAL_S": "1",
    "NEWSFLOW_MAX_POLL_INTERVAL_S": "2",
    "NEWSFLOW_POLL_JITTER": "0",
    "NEWSFLOW_FEED_LEASE_S": "5",
    "NEWSFLOW_PER_HOST_DELAY_S": "0",
    "NEWSFLOW_PER_HOST_CONCURRENCY": "16",
    "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
    "NEWSFLOW_LOG_LEVEL": "WARNING",
}
POLL_S = 0.25  # how often the benchmark searches for newly searchable documents (paced run; others 2x)
WARM_UP = 20  # articles pushed through fresh services before a run is measured


@dataclass
class RunResult:
    label: str
    replicas: int
    expected: int
    indexed: int = 0
    seconds: float = 0.0  # first feed item served -> last document searchable
    steady_rate: float = 0.0  # documents/s between the 10th and the 90th percentile of searchable times
    latencies: list[float] = field(default_factory=list)  # feed item first served -> searchable, per document
    since_published: list[float] = field(default_factory=list)  # item published in its feed -> searchable
    cpu: dict[str, float] = field(default_factory=dict)
    # CPU of each service's own process, without its children (the parser's extraction workers).
    cpu_self: dict[str, float] = field(default_factory=dict)
    peak_process_mb: dict[str, float] = field(default_factory=dict)
    peak_tree_mb: dict[str, float] = field(default_factory=dict)
    redis_peak_mb: float = 0.0
    redis_info_peak_mb: float = 0.0
    dead_letters: dict[str, int] = field(default_factory=dict)
    target_rate: float | None = None
    sampler: Sampler | None = None
    backlog: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    profile: dict[str, Path] = field(default_factory=dict)
    cold_first_s: float | None = None  # fresh services: first warm-up item served -> its document searchable
    cold_all_s: float | None = None  # ... -> every warm-up document searchable

    @property
    def rate(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Bench:
    """State shared by the runs: servers, clients, the site."""

    def __init__(self, servers: Servers, site: BenchSite, log_dir: Path) -> None:
        self.servers = servers
        self.site = site
        self.log_dir = log_dir
        self.settings = CliSettings(redis_url=servers.redis_url, elasticsearch_url=servers.es_url)
        self.redis = aioredis.Redis.from_url(servers.redis_url)
        self.es = AsyncElasticsearch(servers.es_url, request_timeout=60)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.es.close()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "NEWSFLOW_REDIS_URL": self.servers.redis_url,
            "NEWSFLOW_ELASTICSEARCH_URL": self.servers.es_url,
            **ENV,
            **(extra or {}),
        }

    async def reset(self) -> None:
        """An empty Redis and an empty `news` index: every run starts from nothing."""
        await self.redis.flushall()
        with contextlib.suppress(Exception):
            existing = await self.es.indices.get(index="news-*")
            for name in existing:
                await self.es.indices.delete(index=name)
        await initialise(self.settings)
        await self.es.cluster.health(index="news", wait_for_status="yellow", timeout="30s")
        self.site.reset()

    def doc_id(self, i: int) -> str:
        return article_id(canonicalize(self.site.article_url(i)))

    async def count(self) -> int:
        await self.es.indices.refresh(index="news")
        return int((await self.es.count(index="news"))["count"])

    async def dead_letters(self) -> dict[str, int]:
        return {s: int(await self.redis.xlen(s)) for s in streams.DEAD_LETTER_STREAMS if await self.redis.exists(s)}

    async def backlogs(self) -> dict[str, int]:
        return {s: await stream_backlog(self.redis, s) for s in (streams.ENTRIES, streams.RAW, streams.PARSED)}

    def sampler(self, p: Pipeline) -> Sampler:
        def groups() -> dict[str, list[int]]:
            g = {svc: [sp.proc.pid for sp in p[svc] if sp.proc is not None] for svc in ("fetcher", "parser", "indexer")}
            if self.servers.redis_pid:
                g["redis"] = [self.servers.redis_pid]
            if self.servers.es_pid:
                g["elasticsearch"] = [self.servers.es_pid]
            return g

        return Sampler(groups, self.servers.redis_url)

    async def redis_info_peak_mb(self) -> float:
        return int((await self.redis.info("memory"))["used_memory_peak"]) / 2**20

    # -- watching Elasticsearch ---------------------------------------------------------------------
    async def watch(
        self,
        ids: dict[str, int],
        expected: int,
        stall_s: float,
        deadline_s: float,
        backlog: list[tuple[float, dict[str, int]]] | None = None,
        reveal_done: asyncio.Event | None = None,
        every: float = POLL_S,
        quiet: bool = False,
    ) -> dict[int, float]:
        """Search every POLL_S for documents that became searchable; their first sighting is their time.

        Searches only the last seconds of `indexed_at` (a date the indexer sets just before its bulk
        write), so a poll stays small however many documents are in."""
        seen: dict[int, float] = {}
        watermark = 0.0
        started = last_progress = time.time()
        next_backlog = 0.0
        next_print = started + 10
        backlog_now: dict[str, int] = {}
        while len(seen) < expected:
            now = time.time()
            try:
                res = await self.es.search(
                    index="news",
                    size=10_000,
                    source=False,
                    docvalue_fields=[{"field": "indexed_at", "format": "epoch_millis"}],
                    query={"range": {"indexed_at": {"gte": int((watermark - 10) * 1000), "format": "epoch_millis"}}},
                )
            except ApiError as e:  # a shard not started yet, a node busy: the next poll will do
                print(f"  (search failed: {e.meta.status} {e.message}; retrying)", flush=True)
                if time.time() - started > deadline_s:
                    break
                await asyncio.sleep(every)
                continue
            seen_at = time.time()
            for h in res["hits"]["hits"]:
                i = ids.get(h["_id"])
                if i is not None and i not in seen:
                    seen[i] = seen_at
                    last_progress = seen_at
                ts = h.get("fields", {}).get("indexed_at")
                if ts:
                    watermark = max(watermark, float(ts[0]) / 1000)
            if now >= next_backlog:
                b = backlog_now = await self.backlogs()
                if backlog is not None:
                    backlog.append((now, b))
                if now >= next_print and not quiet:
                    next_print = now + 10
                    print(
                        f"  {now - started:5.0f} s: {len(seen)}/{expected} searchable; not yet processed: "
                        + ", ".join(f"{k} {v}" for k, v in b.items()),
                        flush=True,
                    )
                next_backlog = now + 1.0
            if reveal_done is not None and not reveal_done.is_set():
                last_progress = time.time()
            drained = bool(backlog_now) and not any(backlog_now.values())
            quiet = time.time() - last_progress
            if quiet > stall_s or (drained and quiet > 15) or time.time() - started > deadline_s:
                print(
                    f"  (stopped waiting: {len(seen)}/{expected} searchable, no progress for "
                    f"{time.time() - last_progress:.0f} s)",
                    flush=True,
                )
                break
            await asyncio.sleep(max(0.0, every - (time.time() - now)))
        return seen

    async def settle(self, sampler: Sampler, limit_s: float = 40.0) -> float:
        """Wait until the freshly started services are idle (the parser's workers load their models at
        start), so that start-up is not counted as work. Returns the seconds waited."""
        t0 = time.time()
        prev = await asyncio.to_thread(sampler.cpu_now)
        while time.time() - t0 < limit_s:
            await asyncio.sleep(1.0)
            cur = await asyncio.to_thread(sampler.cpu_now)
            busy = sum(cur.get(k, 0.0) - prev.get(k, 0.0) for k in ("fetcher", "parser", "indexer"))
            prev = cur
            if busy < 0.15:
                break
        return time.time() - t0

    async def warm_up(self, p: Pipeline, sampler: Sampler, numbers: range, result: RunResult) -> None:
        """Register the feeds and push a few articles through fresh services, then wait for quiet: the
        measured run starts warm (the parser's extraction workers start, and load their models, on the
        first page they get). How long that first article took is recorded as the cold start."""
        reg = FeedRegistry(self.redis)
        for url in self.site.feed_urls:
            await reg.add(url, interval=1)
        self.site.publish(numbers)
        ids = {self.doc_id(i): i for i in numbers}
        seen = await self.watch(ids, len(numbers), stall_s=120, deadline_s=300, quiet=True)
        served = [self.site.first_served[i] for i in numbers if i in self.site.first_served]
        if seen and served:
            result.cold_first_s = min(seen.values()) - min(served)
            result.cold_all_s = max(seen.values()) - min(served)
        await self.settle(sampler)

    # -- the runs -----------------------------------------------------------------------------------
    async def feed_run(
        self,
        label: str,
        numbers: range,
        replicas: int,
        *,
        rate: float | None = None,
        profile_s: float = 0.0,
        profile_dir: Path | None = None,
    ) -> RunResult:
        """`numbers` through the pipeline from the site's feeds: all published at once, or `rate` a second."""
        await self.reset()
        result = RunResult(label, replicas, len(numbers), target_rate=rate)
        p = Pipeline(self.env(), self.log_dir / label, {"parser": replicas})
        await asyncio.to_thread(p.start)
        sampler = self.sampler(p)
        reveal_done = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.warm_up(p, sampler, range(numbers.start - WARM_UP, numbers.start), result)
            ids = {self.doc_id(i): i for i in numbers}
            sampler.start()
            if rate is None:
                self.site.publish(numbers)
                reveal_done.set()
            else:
                tasks.append(asyncio.create_task(self._pace(numbers, rate, reveal_done)))
            if profile_s > 0 and profile_dir is not None:
                tasks.append(asyncio.create_task(self._profile(p, profile_s, profile_dir, result)))
            seen = await self.watch(
                ids,
                len(numbers),
                stall_s=60,
                deadline_s=900,
                reveal_done=reveal_done,
                every=POLL_S if rate is not None else 2 * POLL_S,
            )
            sampler.stop()
            for t in tasks:
                try:
                    await t
                except Exception as e:
                    print(f"  {t.get_name()} failed: {type(e).__name__}: {e}", flush=True)
            result.dead_letters = await self.dead_letters()
            result.redis_info_peak_mb = await self.redis_info_peak_mb()
        finally:
            for t in tasks:
                t.cancel()
            if sampler._thread is not None and not sampler._stop.is_set():
                sampler.stop()
            await asyncio.to_thread(p.stop)
        self._fill(result, seen, sampler)
        return result

    def _fill(self, result: RunResult, seen: dict[int, float], sampler: Sampler) -> None:
        site = self.site
        result.indexed = len(seen)
        served = [site.first_served[i] for i in seen if i in site.first_served]
        if seen and served:
            times = sorted(seen.values())
            result.seconds = times[-1] - min(served)
            lo, hi = pct(times, 0.1), pct(times, 0.9)
            result.steady_rate = 0.8 * len(times) / (hi - lo) if hi > lo else 0.0
        result.latencies = [t - site.first_served[i] for i, t in seen.items() if i in site.first_served]
        result.since_published = [t - site.published_at[i] for i, t in seen.items() if i in site.published_at]
        cpu = sampler.cpu_seconds()
        result.cpu = {k: v for k, v in cpu.items() if not k.endswith(SELF)}
        result.cpu_self = {k.removesuffix(SELF): v for k, v in cpu.items() if k.endswith(SELF)}
        result.peak_process_mb = sampler.peak_process_mb()
        result.peak_tree_mb = sampler.peak_tree_mb()
        result.redis_peak_mb = sampler.redis_peak_mb()
        result.sampler = sampler

    async def _pace(self, numbers: range, rate: float, done: asyncio.Event) -> None:
        """Publish `numbers` at `rate` items a second, in small steps."""
        t0 = time.time()
        published = 0
        try:
            while published < len(numbers):
                due = min(len(numbers), int((time.time() - t0) * rate) + 1)
                if due > published:
                    self.site.publish(numbers[published:due])
                    published = due
                await asyncio.sleep(0.05)
        finally:
            done.set()

    async def _profile(self, p: Pipeline, seconds: float, out_dir: Path, result: RunResult) -> None:
        """py-spy on every service (the parser with its extraction workers), for `seconds`, once work flows."""
        await asyncio.sleep(3)
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        private = self.log_dir.parent / "py-spy"  # copied there by run_all.py at start
        spy = str(private if private.exists() else Path(sys.executable).parent / "py-spy")
        procs = []
        for svc in ("parser", "fetcher", "indexer"):
            sp = p[svc][0]
            assert sp.proc is not None
            out = out_dir / f"{svc}.txt"
            cmd = [
                spy,
                "record",
                "-p",
                str(sp.proc.pid),
                "-d",
                str(int(seconds)),
                "-r",
                "50",
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
                "--full-filenames",
            ]
            if svc == "parser":
                cmd.append("--subprocesses")
            procs.append(
                (
                    svc,
                    out,
                    await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                )
            )
        for svc, out, proc in procs:
            _, err = await proc.communicate()
            if proc.returncode == 0 and out.exists():
                result.profile[svc] = out
            else:
                print(f"  py-spy on {svc} failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}")

    async def burst(self, label: str, numbers: range, replicas: int) -> RunResult:
        """`len(numbers)` FeedEntry messages written to news.entries at once, pointing at the site."""
        await self.reset()
        result = RunResult(label, replicas, len(numbers))
        p = Pipeline(self.env(), self.log_dir / label, {"parser": replicas})
        await asyncio.to_thread(p.start)
        sampler = self.sampler(p)
        try:
            await self.warm_up(p, sampler, range(numbers.start - WARM_UP, numbers.start), result)
            ids = {self.doc_id(i): i for i in numbers}
            feed = self.site.feed_url(0)
            sampler.start()
            t0 = time.time()
            for chunk in range(0, len(numbers), 1000):
                pipe = self.redis.pipeline(transaction=False)
                for i in numbers[chunk : chunk + 1000]:
                    url = self.site.article_url(i)
                    canon = canonicalize(url)
                    pipe.xadd(
                        streams.ENTRIES,
                        encode(
                            FeedEntry(
                                url=canon, link=url, article_id=article_id(canon), feed_url=feed, title=f"burst {i}"
                            )
                        ),
                    )
                await pipe.execute()
            now = time.time()
            for i in numbers:
                self.site.first_served[i] = t0
                self.site.published_at[i] = t0
            print(f"  {len(numbers)} entries written in {now - t0:.1f} s", flush=True)
            seen = await self.watch(
                ids, len(numbers), stall_s=120, deadline_s=1500, backlog=result.backlog, every=2 * POLL_S
            )
            sampler.stop()
            result.dead_letters = await self.dead_letters()
            result.redis_info_peak_mb = await self.redis_info_peak_mb()
            final = await self.count()
            if final != len(seen):
                print(f"  note: {final} documents in the index, {len(seen)} of the expected ones seen")
        finally:
            if sampler._thread is not None and not sampler._stop.is_set():
                sampler.stop()
            await asyncio.to_thread(p.stop)
        self._fill(result, seen, sampler)
        return result

    async def naive(self, numbers: range, index: str = "bench-naive") -> dict[str, Any]:
        """The naive sequential pipeline over `numbers`, in its own process, into its own index."""
        self.site.reset()
        self.site.publish(numbers)
        es_cpu0 = tree_cpu_seconds(self.servers.es_pid) if self.servers.es_pid else None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.pipeline.naive",
            "--es",
            self.servers.es_url,
            "--index",
            index,
            *self.site.feed_urls,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"naive pipeline failed: {err.decode(errors='replace')[-1500:]}")
        result = json.loads(out.decode().strip().splitlines()[-1])
        if es_cpu0 is not None and self.servers.es_pid:
            result["es_cpu_seconds"] = tree_cpu_seconds(self.servers.es_pid) - es_cpu0
        return result
