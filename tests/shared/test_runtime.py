"""The stream runtime against a real Redis: ack after publish, reclaim, dead letters, backpressure, trim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from waiting import wait_until

from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import DeadLetter, FeedEntry
from newsflow_shared.runtime import (
    DATA_FIELD,
    DATA_KEY,
    Instance,
    PermanentError,
    Publisher,
    Service,
    encode,
    ensure_groups,
    remove_stale_consumers,
    safe_trim,
)
from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

IN, OUT = "t.in", "t.out"
ROOT = Path(__file__).resolve().parents[2]


def entry(n: int) -> FeedEntry:
    url = f"http://example.test/a/{n}"
    return FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="http://example.test/feed", title=str(n))


def settings_for(redis_url: str, **kw: Any) -> CommonSettings:
    base: dict[str, Any] = dict(
        redis_url=redis_url,
        claim_idle_ms=300,
        claim_interval_s=0.2,
        max_deliveries=3,
        graceful_timeout_s=5,
        metrics_host="127.0.0.1",
        metrics_port=0,
        stream_trim_interval_s=0.5,
    )
    base.update(kw)
    return CommonSettings(**base)


def relay(handle: Callable[[FeedEntry], Any], concurrency: int = 1) -> Service[CommonSettings]:
    """A service that passes entries of IN on to OUT, through `handle` (which may raise)."""
    svc = Service("t", CommonSettings)

    @svc.consumer(IN, group="g", publishes={OUT: FeedEntry}, concurrency=concurrency)
    async def consume(e: FeedEntry) -> FeedEntry:
        return await handle(e)

    return svc


@contextlib.asynccontextmanager
async def running(svc: Service[CommonSettings], settings: CommonSettings) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    instance: Instance[CommonSettings] = svc.instance(settings)
    task = asyncio.create_task(instance.serve(stop))
    await asyncio.wait_for(instance.ready.wait(), 10)
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def out_titles(redis: aioredis.Redis) -> list[str]:
    return [json.loads(f[DATA_FIELD])["title"] for _, f in await redis.xrange(OUT)]


async def dead(redis: aioredis.Redis) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(IN))]


async def test_processes_publishes_then_acks_and_dead_letters_permanent_errors(
    redis: aioredis.Redis, redis_url: str
) -> None:
    await ensure_groups(redis, {IN: ("g",), OUT: ("down",)})

    async def handle(e: FeedEntry) -> FeedEntry:
        if e.title == "bad":
            raise PermanentError("not-html", "application/pdf")
        return e

    settings = settings_for(redis_url)
    svc = relay(handle, concurrency=4)
    for i in range(20):
        await redis.xadd(IN, encode(entry(i)))
    bad = entry(99).model_copy(update={"title": "bad"})
    await redis.xadd(IN, encode(bad))
    await redis.xadd(IN, {DATA_FIELD: b"{not json"})
    async with running(svc, settings):
        await wait_until(lambda: _pending_zero(redis, IN, "g", expect_delivered=22))
    assert sorted(await out_titles(redis), key=int) == [str(i) for i in range(20)]
    letters = await dead(redis)
    assert {d.reason for d in letters} == {"not-html", "invalid-message"}
    pdf = next(d for d in letters if d.reason == "not-html")
    assert pdf.error == "application/pdf" and pdf.service == "t" and pdf.attempts == 1
    assert FeedEntry.model_validate_json(pdf.original[DATA_KEY]).title == "bad"


async def _pending_zero(redis: aioredis.Redis, stream: str, group: str, expect_delivered: int) -> bool:
    (info,) = [g for g in await redis.xinfo_groups(stream) if g["name"] == group.encode()]
    return info["pending"] == 0 and info["entries-read"] == expect_delivered


async def test_poison_message_dead_lettered_after_max_deliveries_while_others_flow(
    redis: aioredis.Redis, redis_url: str
) -> None:
    await ensure_groups(redis, {IN: ("g",), OUT: ("down",)})
    calls: dict[str, int] = {}

    async def handle(e: FeedEntry) -> FeedEntry:
        calls[e.title or ""] = calls.get(e.title or "", 0) + 1
        if e.title == "poison":
            raise RuntimeError("boom every time")
        return e

    settings = settings_for(redis_url, max_deliveries=3)
    svc = relay(handle)
    await redis.xadd(IN, encode(entry(1).model_copy(update={"title": "poison"})))
    for i in range(5):
        await redis.xadd(IN, encode(entry(i + 10)))
    async with running(svc, settings):
        await wait_until(lambda: _has_dead(redis))
        await wait_until(lambda: _pending_zero(redis, IN, "g", expect_delivered=6))
    (letter,) = await dead(redis)
    assert letter.reason == "max-deliveries" and letter.attempts == 3
    assert letter.error_type == "RuntimeError" and "boom every time" in letter.error
    assert letter.first_failure_at <= letter.last_failure_at
    assert calls["poison"] == 3
    assert len(await out_titles(redis)) == 5


async def _has_dead(redis: aioredis.Redis) -> bool:
    return await redis.xlen(streams.dlq(IN)) > 0


async def test_entries_left_pending_by_a_dead_consumer_are_reclaimed(redis: aioredis.Redis, redis_url: str) -> None:
    await ensure_groups(redis, {IN: ("g",)})
    for i in range(10):
        await redis.xadd(IN, encode(entry(i)))
    # A consumer that read everything and died without acknowledging.
    got = await redis.xreadgroup("g", "dead-consumer", {IN: ">"}, count=100)
    assert len(got[0][1]) == 10

    async def handle(e: FeedEntry) -> FeedEntry:
        return e

    settings = settings_for(redis_url)
    svc = relay(handle, concurrency=2)
    async with running(svc, settings):
        await wait_until(lambda: _pending_zero(redis, IN, "g", expect_delivered=10))
    assert sorted(await out_titles(redis), key=int) == [str(i) for i in range(10)]


async def test_backpressure_pauses_the_producer_instead_of_trimming(redis: aioredis.Redis, redis_url: str) -> None:
    await ensure_groups(redis, {IN: ("g",), OUT: ("down",)})

    async def handle(e: FeedEntry) -> FeedEntry:
        return e

    settings = settings_for(redis_url, backpressure_max_lag=5)
    svc = relay(handle)
    for i in range(30):
        await redis.xadd(IN, encode(entry(i)))
    async with running(svc, settings):
        await wait_until(lambda: _xlen_at_least(redis, OUT, 6))
        await asyncio.sleep(1.0)
        # Nobody reads OUT: the producer stops just past the limit and the rest stays in IN, unlost.
        assert 6 <= await redis.xlen(OUT) <= 7
        # A downstream consumer drains OUT: the producer resumes.
        for _ in range(40):
            resp = await redis.xreadgroup("down", "d1", {OUT: ">"}, count=10, block=100)
            for _s, items in resp or []:
                await redis.xack(OUT, "down", *[mid for mid, _ in items])
            if await redis.xlen(OUT) >= 30:
                break
        await wait_until(lambda: _xlen_at_least(redis, OUT, 30))
    assert await redis.xlen(OUT) == 30


async def _xlen_at_least(redis: aioredis.Redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def test_safe_trim_removes_only_entries_every_group_acknowledged(redis: aioredis.Redis) -> None:
    await ensure_groups(redis, {IN: ("a", "b")})
    ids = [await redis.xadd(IN, {DATA_FIELD: b"{}"}) for _ in range(10)]
    ra = await redis.xreadgroup("a", "c", {IN: ">"}, count=10)
    await redis.xack(IN, "a", *[mid for mid, _ in ra[0][1]][:8])  # a: 8 acked, 2 pending
    rb = await redis.xreadgroup("b", "c", {IN: ">"}, count=5)  # b: read 5, acked 3, 5 unread
    await redis.xack(IN, "b", *[mid for mid, _ in rb[0][1]][:3])
    removed = await safe_trim(redis, IN)
    assert removed == 3
    remaining = [mid for mid, _ in await redis.xrange(IN)]
    assert remaining == ids[3:]


@contextlib.asynccontextmanager
async def relayed_first_entry(redis: aioredis.Redis, redis_url: str) -> AsyncIterator[None]:
    """A relay that passes entries on unchanged, running, once entry 1 has come out on OUT."""
    await ensure_groups(redis, {IN: ("g",)})

    async def same(e: FeedEntry) -> FeedEntry:
        return e

    async with running(relay(same), settings_for(redis_url)):
        await redis.xadd(IN, encode(entry(1)))
        await wait_until(lambda: _xlen_at_least(redis, OUT, 1))
        yield


async def test_flushed_redis_groups_are_recreated_and_work_resumes(redis: aioredis.Redis, redis_url: str) -> None:
    async with relayed_first_entry(redis, redis_url):
        await redis.flushdb()  # NOGROUP from now on until someone re-creates the group
        await wait_until(lambda: _group_exists(redis, IN, "g"))
        await redis.xadd(IN, encode(entry(2)))
        await wait_until(lambda: _xlen_at_least(redis, OUT, 1), within=20)
    assert await out_titles(redis) == ["2"]


async def _group_exists(redis: aioredis.Redis, stream: str, group: str) -> bool:
    try:
        return any(g["name"] == group.encode() for g in await redis.xinfo_groups(stream))
    except Exception:
        return False


async def test_redis_restart_consumer_reconnects_with_groups_intact(
    redis: aioredis.Redis, redis_url: str, redis_dir: Any
) -> None:
    if redis_dir is None:
        pytest.skip("restarts Redis: needs the suite's own Redis (NEWSFLOW_REDIS_URL is set)")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    async with relayed_first_entry(redis, redis_url):
        await asyncio.sleep(1.1)  # appendfsync everysec
        await asyncio.to_thread(
            subprocess.run,
            ["scripts/redis.sh", "stop", "--dir", str(redis_dir)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        await asyncio.sleep(1.5)
        await asyncio.to_thread(
            subprocess.run,
            ["scripts/redis.sh", "start", "--dir", str(redis_dir), "--port", port],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        assert await _group_exists(redis, IN, "g")  # AOF kept the group
        await redis.xadd(IN, encode(entry(2)))
        await wait_until(lambda: _xlen_at_least(redis, OUT, 2), within=30)
    assert await out_titles(redis) == ["1", "2"]


async def test_stale_consumers_without_pending_entries_are_removed(redis: aioredis.Redis) -> None:
    await ensure_groups(redis, {IN: ("g",)})
    await redis.xadd(IN, {DATA_FIELD: b"{}"})
    await redis.xadd(IN, {DATA_FIELD: b"{}"})
    done = await redis.xreadgroup("g", "gone-clean", {IN: ">"}, count=1)
    await redis.xack(IN, "g", done[0][1][0][0])
    await redis.xreadgroup("g", "gone-holding", {IN: ">"}, count=1)  # still holds an entry
    await asyncio.sleep(0.3)
    assert await remove_stale_consumers(redis, IN, "g", idle_s=0.2) == ["gone-clean"]
    names = [c["name"] for c in await redis.xinfo_consumers(IN, "g")]
    assert names == [b"gone-holding"]


async def test_an_alert_is_published_once_per_key_even_when_published_again(
    redis: aioredis.Redis, redis_url: str
) -> None:
    from newsflow_shared.models import Alert

    ctx = Publisher("t", redis, max_lag=1000, dedup_ttl_s=3600)
    alert = Alert(
        alert_id="a1",
        rule_id="r",
        rule_name="rocket attack",
        query='"rocket attack"',
        article_id="0" * 32,
        url="http://example.test/x",
    )
    first = await ctx.publish(streams.ALERTS, alert)
    # A redelivered batch, or a client retrying after a reply lost in a Redis restart, publishes again.
    again = await ctx.publish(streams.ALERTS, alert.model_copy(update={"snippet": "other"}))
    other = await ctx.publish(streams.ALERTS, alert.model_copy(update={"alert_id": "a2"}))
    assert first and not again and other
    assert [Alert.model_validate_json(f[DATA_FIELD]).alert_id for _, f in await redis.xrange(streams.ALERTS)] == [
        "a1",
        "a2",
    ]
    # Plain messages have no key: every publish appends.
    await ctx.publish(OUT, entry(1))
    await ctx.publish(OUT, entry(1))
    assert await redis.xlen(OUT) == 2


def test_a_service_with_a_bad_setting_exits_with_one_line_naming_the_variable() -> None:
    for service, env in (
        ("parser", {"NEWSFLOW_REDIS_URL": "http://not-redis"}),
        ("fetcher", {"NEWSFLOW_MIN_POLL_INTERVAL_S": "-1"}),
    ):
        out = subprocess.run(
            [str(ROOT / ".venv" / "bin" / f"newsflow-{service}")],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"newsflow-{service}: bad configuration: {next(iter(env))}")
