"""The notifier as a process among the others: a kill -9 during deliveries loses nothing and repeats only
what was in flight; a notifier that is down holds neither indexing back nor loses an alert to trimming."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from notifier_helpers import Receiver, add_rules, alert_for, article, index_articles, publish_alerts
from waiting import wait_until

from newsflow_alerting.state import NotifierState
from newsflow_devtools.processes import ServiceProcess
from newsflow_search.rules import Rule
from newsflow_shared import streams
from newsflow_shared.models import ParsedArticle
from newsflow_shared.runtime import Publisher

pytestmark = [pytest.mark.integration]

FAST = {
    "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
    "NEWSFLOW_CLAIM_IDLE_MS": "2000",
    "NEWSFLOW_CLAIM_INTERVAL_S": "0.5",
    "NEWSFLOW_GRACEFUL_TIMEOUT_S": "5",
    "NEWSFLOW_RULES_REFRESH_S": "0.5",
    "NEWSFLOW_STREAM_TRIM_INTERVAL_S": "0.5",
    "NEWSFLOW_LOG_FORMAT": "text",
    "NEWSFLOW_DELIVERY_TIMEOUT_S": "3",
}


def reports(n: int, prefix: str) -> list[ParsedArticle]:
    return [
        article(
            f"https://wire.example/{prefix}/{i}",
            f"Harbour strike number {i}",
            f"Officials in Harbourtown{i} said {i + 1000} tonnes of cargo were lost. Inspector Vale{i} reported it.",
        )
        for i in range(n)
    ]


async def _pending(redis, stream: str) -> int:  # type: ignore[no-untyped-def]
    groups = await redis.xinfo_groups(stream)
    return sum(int(g["pending"]) + int(g.get("lag") or 0) for g in groups)


@pytest.mark.slow
async def test_kill_9_during_deliveries_loses_none_and_repeats_only_the_in_flight(
    ready, receiver: Receiver, redis_url: str, es_url: str, tmp_path: Path
) -> None:
    es, redis = ready
    n, concurrency = 240, 8
    rule = Rule(name="harbours", query="harbour", storm_guard="off", channels=[f"{receiver.url}/k"])
    await add_rules(es, rule)
    arts = reports(n, "k")
    await index_articles(es, arts)
    alerts = [alert_for(rule, a) for a in arts]
    expected = {f"{a.alert_id}:{rule.channels[0].key}" for a in alerts}
    receiver.delay_s = 0.04  # so that deliveries are in flight when the kill comes
    env = {
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": es_url,
        "NEWSFLOW_SEND_CONCURRENCY": str(concurrency),
        **FAST,
    }
    proc = ServiceProcess("notifier", 1, env, tmp_path)
    try:
        await asyncio.to_thread(proc.start)
        await asyncio.to_thread(proc.wait_ready)
        await publish_alerts(redis, alerts)
        await wait_until(lambda: len(receiver.requests) >= n // 4, 60, "a quarter delivered")
        await asyncio.to_thread(proc.kill)
        at_kill = len(receiver.requests)
        assert at_kill < n, "the kill came too late to prove anything"
        await asyncio.to_thread(proc.start)  # a new consumer name, as a new container has
        await asyncio.to_thread(proc.wait_ready)
        await wait_until(lambda: set(receiver.keys()) >= expected, 90, "every alert delivered")
        await wait_until(lambda: _pending_zero(redis), 30, "nothing left pending")
        assert await asyncio.to_thread(proc.stop) == 0
    finally:
        await asyncio.to_thread(proc.kill)
        print(proc.tail(30))
    keys = receiver.keys()
    assert set(keys) == expected  # none lost, nothing else sent
    repeats = {k: c for k, c in keys.items() if c > 1}
    # Only messages in flight at the kill can repeat: at most one per sending worker, each at most once more.
    assert sum(c - 1 for c in repeats.values()) <= concurrency, repeats
    state = NotifierState(redis)
    for a in alerts[:: n // 12]:
        assert (await state.deliveries(a.alert_id))[rule.channels[0].key].status == "delivered"
    assert await redis.xlen(streams.dlq(streams.NOTIFICATIONS)) == 0
    print(f"kill -9 after {at_kill} of {n} requests; repeats {sum(c - 1 for c in repeats.values())}")


async def _pending_zero(redis) -> bool:  # type: ignore[no-untyped-def]
    return await _pending(redis, streams.ALERTS) == 0 and await _pending(redis, streams.NOTIFICATIONS) == 0


@pytest.mark.slow
async def test_a_dead_notifier_holds_indexing_back_nowhere_and_loses_no_alert_to_trimming(
    ready, receiver: Receiver, redis_url: str, es_url: str, tmp_path: Path
) -> None:
    es, redis = ready
    n = 30
    rule = Rule(name="harbours", query="harbour", storm_guard="off", channels=[f"{receiver.url}/late"])
    await add_rules(es, rule)
    env = {
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": es_url,
        # A tiny backpressure limit: were news.alerts under backpressure, the indexer would stop at 3.
        "NEWSFLOW_BACKPRESSURE_MAX_LAG": "3",
        "NEWSFLOW_BATCH_LINGER_S": "0.1",
        **FAST,
    }
    indexer = ServiceProcess("indexer", 1, env, tmp_path)
    notifier = ServiceProcess("notifier", 1, env, tmp_path)
    pub = Publisher("parser", redis, max_lag=10_000, dedup_ttl_s=3600)
    try:
        await asyncio.to_thread(indexer.start)
        await asyncio.to_thread(indexer.wait_ready)
        for a in reports(n, "d"):
            await pub.publish(streams.PARSED, a)
        await wait_until(lambda: _pending(redis, streams.PARSED), 5, "the indexer reading")  # non-zero first
        await wait_until(lambda: _indexed_all(redis), 90, "every article indexed with the notifier down")
        # Nobody read the alerts yet, and the indexer's trimming of its own input left them all there.
        await asyncio.sleep(1.5)
        assert await redis.xlen(streams.ALERTS) == n
        await asyncio.to_thread(notifier.start)
        await asyncio.to_thread(notifier.wait_ready)
        await wait_until(lambda: len(receiver.on("/late")) == n, 60, "every alert delivered late")
        await wait_until(lambda: _pending_zero(redis), 30, "every alert acknowledged")
    finally:
        for p in (indexer, notifier):
            await asyncio.to_thread(p.stop)
    assert len(set(receiver.keys("/late"))) == n


async def _indexed_all(redis) -> bool:  # type: ignore[no-untyped-def]
    return await _pending(redis, streams.PARSED) == 0 and await redis.xlen(streams.ALERTS) >= 30


async def test_news_alerts_keeps_its_newest_acknowledged_entries_and_never_an_unread_one(
    redis, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from newsflow_shared.runtime import ensure_groups, safe_trim

    monkeypatch.setitem(streams.RETAIN, streams.ALERTS, 5)
    await ensure_groups(redis, {streams.ALERTS: (streams.NOTIFIER_GROUP,)})
    ids = [await redis.xadd(streams.ALERTS, {"n": str(i)}) for i in range(20)]
    # The notifier read and acknowledged the first 12; 8 are unread.
    got = await redis.xreadgroup(streams.NOTIFIER_GROUP, "c", {streams.ALERTS: ">"}, count=12)
    await redis.xack(streams.ALERTS, streams.NOTIFIER_GROUP, *[mid for mid, _f in got[0][1]])
    await safe_trim(redis, streams.ALERTS)
    left = [mid for mid, _f in await redis.xrange(streams.ALERTS)]
    assert left == ids[12:]  # the unread 8 stay, and they are more than the 5 kept anyway
    rest = await redis.xreadgroup(streams.NOTIFIER_GROUP, "c", {streams.ALERTS: ">"})
    await redis.xack(streams.ALERTS, streams.NOTIFIER_GROUP, *[mid for mid, _f in rest[0][1]])
    await safe_trim(redis, streams.ALERTS)
    assert [mid for mid, _f in await redis.xrange(streams.ALERTS)] == ids[15:]  # all acknowledged: the newest 5
