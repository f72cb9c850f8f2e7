"""Alert delivery under a burst: 10,000 articles indexed at once, 2,000 of them matching one of 50 rules,
one webhook receiver. Prints the messages sent per mode, the latency from indexed to delivered (immediate
mode) and whether anything was lost.

    .venv/bin/python benchmarks/bench_notifier.py            # servers of its own, about 10 minutes
    .venv/bin/python benchmarks/bench_notifier.py --articles 2000 --matching 400   # a quicker look
    .venv/bin/python benchmarks/bench_notifier.py --burst-only --rate 50   # paced at 50 articles/s, no modes 2-3
    .venv/bin/python benchmarks/bench_notifier.py --burst-only --notifiers 2   # two notifier replicas

The real indexer and notifier run as processes (as in compose) against a real Redis and Elasticsearch
(NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL when set, else started here). Articles are generated
demo articles (distinct events); the matching ones carry a rule's keyword. The burst is written to
news.parsed at once, or at `--rate` articles a second (a steady flow: latency without the burst's queue).

Each delivered alert's latency is split into stages by the times it passed each point: `indexed_at` (its
bulk write returned), `matched_at` (the indexer made the alert), its entry on news.alerts and its entry on
news.notifications (a stream entry id is Redis's clock in ms, read live by a follower here), and its
receipt at the webhook.

1. immediate, storm guard off: every story one message; latency = receipt at the webhook minus the alert's
   `indexed_at` (the end of the article's bulk write);
2. immediate with the storm guard (more than 5 within 1 minute: a short window, so the run is short);
3. digest every minute.
Modes 2 and 3 replay the alerts of run 1 onto news.alerts with the notifier's state reset: the indexer
part is the same, only the notifier's decisions differ. "Lost" = an alert neither delivered in a message
of its own, nor in a digest, nor attached to a story that was delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from newsflow_alerting.state import NotifierState
from newsflow_alerting.state import P as STATE_PREFIX
from newsflow_devtools.demo.corpus import FEEDS
from newsflow_devtools.demo.generator import generate
from newsflow_devtools.processes import ServiceProcess
from newsflow_search.index_setup import ensure_index
from newsflow_search.rules import Rule, RuleStore
from newsflow_search.settings import SearchSettings
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.runtime import DATA_FIELD, encode, ensure_groups

ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, float, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.got.append((request.headers.get("Idempotency-Key", ""), time.time(), body))
        return web.Response(text="ok")

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"


def articles(n: int, matching: int, rules: int) -> list[ParsedArticle]:
    rng = random.Random(7)
    match_at = set(rng.sample(range(n), matching))
    base = datetime.now(UTC).replace(microsecond=0)
    out = []
    for i in range(n):
        demo = generate(10_000 + i, 7, base, FEEDS[i % 4])
        text = demo.body_text
        if i in match_at:
            text += f"\n\nFiled under zqk{i % rules:02d}."
        url = f"http://bench.example/{i}"
        out.append(
            ParsedArticle(
                article_id=article_id(url),
                url=url,
                domain=f"outlet{i % 17}.example",
                title=demo.title,
                description=demo.description,
                text=text,
                language="en",
                word_count=len(text.split()),
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                simhash=hashlib.sha256(url.encode()).hexdigest()[:16],
                published_at=demo.published,
            )
        )
    return out


async def servers(tmp: str) -> tuple[str, str, list[list[str]]]:
    stops: list[list[str]] = []
    redis_url = os.environ.get("NEWSFLOW_REDIS_URL")
    es_url = os.environ.get("NEWSFLOW_ELASTICSEARCH_URL")
    if not redis_url:
        out = await asyncio.to_thread(
            subprocess.run, ["scripts/redis.sh", "start", "--dir", f"{tmp}/redis"], cwd=ROOT, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        redis_url = out.stdout.strip().splitlines()[-1]
        stops.append(["scripts/redis.sh", "stop", "--dir", f"{tmp}/redis"])
    if not es_url:
        out = await asyncio.to_thread(
            subprocess.run, ["scripts/elasticsearch.sh", "start", "--home", f"{tmp}/es"], cwd=ROOT,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        es_url = out.stdout.strip().splitlines()[-1]
        stops.append(["scripts/elasticsearch.sh", "stop", "--home", f"{tmp}/es"])
    return redis_url, es_url, stops


async def wait(cond: Any, within: float, every: float = 0.5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await cond():
            return time.monotonic() - started
        await asyncio.sleep(every)
    raise TimeoutError("not done in time")


async def backlog(redis: aioredis.Redis, names: tuple[str, ...]) -> int:
    total = 0
    for s in names:
        for g in await redis.xinfo_groups(s):
            total += int(g.get("lag") or 0) + int(g["pending"])
    return total


class Follower:
    """When each alert reached news.alerts and news.notifications: the entry ids' times, read live (the
    notifier's maintenance trims both streams behind its consumer group)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.at: dict[str, dict[str, float]] = {streams.ALERTS: {}, streams.NOTIFICATIONS: {}}
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = {streams.ALERTS: "0-0", streams.NOTIFICATIONS: "0-0"}
        while True:
            got = await self.redis.xread(last, count=2000, block=200)  # type: ignore[arg-type]
            for stream, entries in got or []:
                name = stream.decode()
                for mid, fields in entries:
                    last[name] = mid.decode()
                    body = json.loads(fields[DATA_FIELD])
                    key = body.get("alert_id") or body.get("notification_id")
                    self.at[name].setdefault(key, int(mid.decode().split("-")[0]) / 1000)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def stages(got: list[tuple[str, float, dict[str, Any]]], follow: Follower) -> str:
    """p50 / p95 of each stage of the delivered alerts' latency."""
    parts: dict[str, list[float]] = {k: [] for k in ("evaluate", "record+publish", "plan", "deliver")}
    for _k, t, b in got:
        if b["type"] != "newsflow.alert":
            continue
        aid = b["alert_id"]
        on_alerts = follow.at[streams.ALERTS].get(aid)
        on_notes = follow.at[streams.NOTIFICATIONS].get(aid)
        if on_alerts is None or on_notes is None:
            continue
        indexed = datetime.fromisoformat(b["indexed_at"]).timestamp()
        matched = datetime.fromisoformat(b["matched_at"]).timestamp()
        parts["evaluate"].append(matched - indexed)
        parts["record+publish"].append(on_alerts - matched)
        parts["plan"].append(on_notes - on_alerts)
        parts["deliver"].append(t - on_notes)
    return "; ".join(
        f"{k} p50 {statistics.median(v):.2f} s p95 {percentile(v, 95):.2f} s" for k, v in parts.items() if v
    )


async def reset_notifier(redis: aioredis.Redis) -> None:
    """Forget the notifier's decisions and deliveries (a new mode on the same alerts)."""
    async for key in redis.scan_iter(match=f"{STATE_PREFIX}*", count=1000):
        await redis.delete(key)
    async for key in redis.scan_iter(match=f"{streams.PUBLISHED_PREFIX}{streams.NOTIFICATIONS}:*", count=1000):
        await redis.delete(key)


async def accounted(redis: aioredis.Redis, alerts: list[Alert]) -> Counter[str]:
    """How each alert ended: delivered (its own message or a digest), also (joined a delivered story), lost."""
    state = NotifierState(redis)
    fate: Counter[str] = Counter()
    for a in alerts:
        d = await state.decision(a.alert_id)
        if d is None:
            fate["lost"] += 1
            continue
        story = await state.story(d.story_id)
        message = d.story_id if d.route == "immediate" or d.role == "also" else (story.digest_id if story else None)
        if d.role == "also" and story is not None and story.route != "immediate":
            message = story.digest_id
        deliveries = await state.deliveries(message or "")
        ok = deliveries and all(x.status == "delivered" for x in deliveries.values())
        fate[("also" if d.role == "also" else d.route) if ok else "lost"] += 1
    return fate


async def run_mode(
    name: str, redis: aioredis.Redis, store: RuleStore, rules: list[Rule], rec: Receiver, alerts: list[Alert],
    env: dict[str, str], logs: Path, replay: bool,
) -> None:  # fmt: skip
    for r in rules:
        await store.add(r, validate=False)
    rec.got.clear()
    notifier = ServiceProcess("notifier", 1, env, logs)
    await asyncio.to_thread(notifier.start)
    await asyncio.to_thread(notifier.wait_ready)
    started = time.monotonic()
    published: dict[str, float] = {}
    try:
        if replay:  # as the indexer publishes them: a batch's alerts at once, batches 0.5 s apart
            for i in range(0, len(alerts), 100):
                for a in alerts[i : i + 100]:
                    published[a.alert_id] = time.time()
                    await redis.xadd(streams.ALERTS, encode(a))
                await asyncio.sleep(0.5)
        await wait(lambda: _settled(redis, alerts), 900, every=1.0)
        cpu = cpu_s(notifier)
    finally:
        await asyncio.to_thread(notifier.stop)
    keys = Counter(k for k, _t, _b in rec.got)
    fate = await accounted(redis, alerts)
    # The notifier alone: from the alert on news.alerts to the message at the receiver (immediate messages).
    waited = [t - published[b["alert_id"]] for _k, t, b in rec.got if b["type"] == "newsflow.alert"]
    latency = (
        f"; published -> delivered p50 {statistics.median(waited):.2f} s, p95 {percentile(waited, 95):.2f} s"
        if waited
        else ""
    )
    print(
        f"{name}: {len(rec.got)} messages for {len(alerts)} alerts in {time.monotonic() - started:.0f} s "
        f"({sum(1 for _k, _t, b in rec.got if b['type'] == 'newsflow.digest')} digests); "
        f"alerts: {dict(fate)}; repeated keys: {sum(c - 1 for c in keys.values())}{latency}; "
        f"notifier CPU {cpu:.1f} s ({1000 * cpu / max(1, len(alerts)):.1f} ms per alert)"
    )


async def _settled(redis: aioredis.Redis, alerts: list[Alert]) -> bool:
    if await backlog(redis, (streams.ALERTS, streams.NOTIFICATIONS)):
        return False
    fate = await accounted(redis, alerts[:: max(1, len(alerts) // 200)])
    return fate["lost"] == 0


async def burst(
    a: argparse.Namespace, redis: aioredis.Redis, es: AsyncElasticsearch, store: RuleStore, base: list[Rule],
    rec: Receiver, env: dict[str, str], logs: Path,
) -> list[Alert]:  # fmt: skip
    """Write the burst to news.parsed with the indexer and the notifier running; print the figures."""
    immediate = [
        r.model_copy(update={"storm_guard": r.storm_guard.model_copy(update={"enabled": False})}) for r in base
    ]
    for r in immediate:
        await store.add(r, validate=False)
    arts = articles(a.articles, a.matching, a.rules)
    indexer = ServiceProcess("indexer", 1, env, logs)
    notifiers = [ServiceProcess("notifier", i + 1, env, logs) for i in range(a.notifiers)]
    for proc in (indexer, *notifiers):
        await asyncio.to_thread(proc.start)
        await asyncio.to_thread(proc.wait_ready)
    follow = Follower(redis)
    follow.start()
    started = time.monotonic()
    if a.rate:
        # A steady flow: one article every 1/rate s, written on a clock (not after each other's write).
        for i, art in enumerate(arts):
            await asyncio.sleep(max(0.0, started + i / a.rate - time.monotonic()))
            await redis.xadd(streams.PARSED, encode(art))
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for art in arts:
                pipe.xadd(streams.PARSED, encode(art))
            await pipe.execute()
    indexed_s = await wait(lambda: _indexed(redis), 1800, every=1.0)
    alerts = await fired_alerts(es)
    await wait(lambda: _settled(redis, alerts), 900, every=1.0)
    total_s = time.monotonic() - started
    await asyncio.sleep(1.0)  # the follower's last read
    await follow.stop()
    cpu = {"indexer": cpu_s(indexer), "notifier": sum(cpu_s(n) for n in notifiers)}
    for proc in (*notifiers, indexer):
        await asyncio.to_thread(proc.stop)
    latencies = [t - datetime.fromisoformat(b["indexed_at"]).timestamp() for _k, t, b in rec.got]
    # The indexer's part (rule evaluation, records, snippets, publishing) and the notifier's.
    evaluated = [
        datetime.fromisoformat(b["matched_at"]).timestamp() - datetime.fromisoformat(b["indexed_at"]).timestamp()
        for _k, _t, b in rec.got
    ]
    notified = [t - datetime.fromisoformat(b["matched_at"]).timestamp() for _k, t, b in rec.got]
    keys = Counter(k for k, _t, _b in rec.got)
    fate = await accounted(redis, alerts)
    how = f"written at {a.rate:g}/s" if a.rate else "written at once"
    print(
        f"burst: {a.articles} articles ({how}), {len(alerts)} alerts of {a.rules} rules, "
        f"{a.notifiers} notifier replica(s); indexed in "
        f"{indexed_s:.0f} s, every alert delivered {total_s:.0f} s after the first article was written"
    )
    print(
        f"immediate, storm guard off: {len(rec.got)} messages; alerts: {dict(fate)}; repeated keys: "
        f"{sum(c - 1 for c in keys.values())}; indexed -> delivered p50 {statistics.median(latencies):.2f} s, "
        f"p95 {percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s (of which the indexer's rule "
        f"evaluation to the alert: p50 {statistics.median(evaluated):.2f} s, "
        f"p95 {percentile(evaluated, 95):.2f} s; "
        f"the alert to delivered: p50 {statistics.median(notified):.2f} s, p95 {percentile(notified, 95):.2f} s)"
    )
    print(f"stages: {stages(rec.got, follow)}")
    print(
        f"CPU: indexer {cpu['indexer']:.1f} s, notifier {cpu['notifier']:.1f} s "
        f"({1000 * cpu['notifier'] / max(1, len(alerts)):.1f} ms per alert)"
    )
    return alerts


def cpu_s(proc: ServiceProcess) -> float:
    """CPU seconds (user + system) the service process has used so far."""
    assert proc.proc is not None
    fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--articles", type=int, default=10_000)
    p.add_argument("--matching", type=int, default=2_000)
    p.add_argument("--rules", type=int, default=50)
    p.add_argument("--rate", type=float, default=0, help="articles written per second (0: all at once)")
    p.add_argument("--burst-only", action="store_true", help="run 1 only (no replayed modes)")
    p.add_argument("--notifiers", type=int, default=1, help="notifier replicas in run 1 (default 1)")
    p.add_argument(
        "--modes", default="alone,storm,digest", help="replayed modes to run after the burst (comma-separated)"
    )
    a = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="nf-bench-notifier-")
    redis_url, es_url, stops = await servers(tmp)
    rec = Receiver()
    runner, hook = await rec.start()
    redis = aioredis.Redis.from_url(redis_url)
    es = AsyncElasticsearch(es_url, request_timeout=120)
    env = {
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": es_url,
        "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
        "NEWSFLOW_LOG_LEVEL": "WARNING",
        "NEWSFLOW_RULES_REFRESH_S": "1",
    }
    logs = Path(tmp) / "logs"
    try:
        await redis.flushdb()
        await es.options(ignore_status=404).indices.delete(index="news-*,newsflow-*")
        await ensure_index(es, SearchSettings(elasticsearch_url=es_url))
        await ensure_groups(redis, streams.GROUPS)
        store = RuleStore(es)
        hooks = [{"webhook": f"{hook}/r{n}"} for n in range(a.rules)]
        base = [Rule(name=f"rule {n:02d}", query=f"zqk{n:02d}", channels=[hooks[n]]) for n in range(a.rules)]
        # 1. The burst, indexed and delivered at once (storm guard off: every story is a message).
        alerts = await burst(a, redis, es, store, base, rec, env, logs)
        if a.burst_only:
            return
        # 2. and 3.: the same alerts again, the notifier's state reset, another mode.
        storm = [
            r.model_copy(update={"storm_guard": r.storm_guard.model_copy(update={"max": 5, "within": 1})}) for r in base
        ]
        digest = [Rule.model_validate({**r.model_dump(), "mode": "digest", "digest": {"every": 1}}) for r in base]
        alone = [
            r.model_copy(update={"storm_guard": r.storm_guard.model_copy(update={"enabled": False})}) for r in base
        ]
        modes = (("notifier alone, immediate, storm guard off", alone, "alone"),
                 ("immediate, storm guard 5 in 1m", storm, "storm"), ("digest every 1m", digest, "digest"))  # fmt: skip
        for name, rules, key in modes:
            if key not in a.modes.split(","):
                continue
            await reset_notifier(redis)
            await run_mode(name, redis, store, rules, rec, alerts, env, logs, replay=True)
    finally:
        await redis.aclose()
        await es.close()
        await runner.cleanup()
        for cmd in stops:
            await asyncio.to_thread(subprocess.run, cmd, cwd=ROOT, check=False, capture_output=True)
    print(json.dumps({"logs": str(logs)}))


async def fired_alerts(es: AsyncElasticsearch) -> list[Alert]:
    """Every alert fired, from the alerts record index (news.alerts is trimmed as the notifier goes)."""
    await es.indices.refresh(index="newsflow-alerts")
    query = {"bool": {"filter": [{"term": {"kind": "fingerprint"}}, {"term": {"fired": True}}]}}
    resp = await es.search(index="newsflow-alerts", query=query, size=10_000, source=["alert"])
    return [Alert.model_validate(h["_source"]["alert"]) for h in resp["hits"]["hits"]]


async def _indexed(redis: aioredis.Redis) -> bool:
    return await backlog(redis, (streams.PARSED,)) == 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
