"""Alerts: once per (rule, article) ever, once per syndicated story; recorded and returned for news.alerts
(the notifier delivers them: tests/notifier)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from indexer_helpers import BUDGET_TEXT, ROCKET_TEXT, make_article, rocket_article

from newsflow_indexer.alerts import alert_id
from newsflow_indexer.handler import Indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_search import fired
from newsflow_search.rules import Rule, rule_id
from newsflow_shared import streams
from newsflow_shared.models import Alert
from newsflow_shared.runtime import DATA_FIELD, encode
from newsflow_shared.runtime.publisher import Publisher

pytestmark = pytest.mark.integration


def alerts_of(results: list) -> list[Alert]:  # type: ignore[type-arg]
    out = []
    for r in results:
        assert isinstance(r, list), r
        out += r
    return out


async def count(es: AsyncElasticsearch, index: str, query: dict | None = None) -> int:  # type: ignore[type-arg]
    await es.indices.refresh(index=index)
    return (await es.count(index=index, query=query or {"match_all": {}}))["count"]


async def test_published_twice_and_reparsed_one_document_one_alert(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    await ix.rules.add(Rule(name="rocket", query='"rocket attack"'))
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    first = rocket_article(parsed_at=t0)
    # The feed announced it twice (two parses of the same canonical URL), then it was re-parsed with an edit.
    second = rocket_article(parsed_at=t0 + timedelta(seconds=30))
    edited = rocket_article(parsed_at=t0 + timedelta(minutes=3), title="Militia rift grows (updated)")

    fired = alerts_of(await ix.handle_batch([first]))
    fired += alerts_of(await ix.handle_batch([second]))
    fired += alerts_of(await ix.handle_batch([edited]))
    # ... and the oldest parse delivered once more, late: refused as older, fires nothing.
    fired += alerts_of(await ix.handle_batch([rocket_article(parsed_at=t0 - timedelta(minutes=1))]))

    assert len(fired) == 1 and fired[0].alert_id == alert_id(rule_id("rocket"), first.article_id)
    # When it became searchable, for the notifier's indexed-to-delivered latency.
    assert fired[0].indexed_at is not None and fired[0].indexed_at >= fired[0].matched_at - timedelta(seconds=30)
    assert await count(ready_es, "news") == 1
    doc = await ready_es.get(index="news-000001", id=first.article_id)
    assert doc["_source"]["title"] == "Militia rift grows (updated)"
    assert doc["_version"] == int(edited.parsed_at.timestamp() * 1000)
    assert await count(ready_es, "newsflow-alerts", {"term": {"kind": "article"}}) == 1


async def test_redelivered_message_reemits_its_alert_only_if_it_never_reached_the_stream(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings, redis: aioredis.Redis
) -> None:
    """A crash between recording an alert and publishing it must not lose it, nor repeat a published one."""
    ix = Indexer(ready_es, idx_settings, redis=redis)
    await ix.rules.add(Rule(name="rocket", query="rocket attack"))
    msg = rocket_article()
    a1 = alerts_of(await ix.handle_batch([msg]))
    assert len(a1) == 1
    # Crash before publishing: the redelivered message produces the same alert again.
    a2 = alerts_of(await ix.handle_batch([msg]))
    assert [a.alert_id for a in a2] == [a1[0].alert_id]
    # Published, then a crash before the ack: the redelivery finds it on news.alerts and stays quiet.
    await redis.xadd(streams.ALERTS, encode(a2[0]))
    assert alerts_of(await ix.handle_batch([msg])) == []
    assert await count(ready_es, "newsflow-alerts", {"term": {"kind": "article"}}) == 1


async def test_syndicated_copies_alert_once_with_the_copies_attached(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    await ix.rules.add(Rule(name="rocket", query="rocket attack"))
    await ix.rules.add(Rule(name="port", query="Qasr"))
    t = datetime.now(UTC) - timedelta(hours=1)
    original = make_article("https://wire.example.com/story/1", ROCKET_TEXT, simhash="0f0f0f0f12345678", published_at=t)
    copy_a = make_article(
        "https://paper-a.example.net/world/port",
        ROCKET_TEXT + "\nCopyright Paper A.",
        simhash="0f0f0f0f12345678",
        published_at=t + timedelta(minutes=20),
    )
    copy_b = make_article(
        "https://paper-b.example.net/p/77",
        ROCKET_TEXT,
        simhash="0f0f0f0f12345678",
        published_at=t + timedelta(minutes=40),
    )
    fired = alerts_of(await ix.handle_batch([copy_a, original]))
    assert sorted(a.rule_name for a in fired) == ["port", "rocket"]
    assert {a.url for a in fired} == {original.url}  # the earliest publication alerts
    assert all(a.duplicates == [copy_a.url] for a in fired)
    # A later copy, in another batch, attaches to the alert instead of firing.
    assert alerts_of(await ix.handle_batch([copy_b])) == []
    await ready_es.indices.refresh(index="newsflow-alerts")
    rec = await ready_es.get(index="newsflow-alerts", id=alert_id(rule_id("rocket"), copy_b.article_id))
    assert rec["_source"]["duplicate_of"] == alert_id(rule_id("rocket"), original.article_id)
    assert await count(ready_es, "news") == 3  # copies are separate documents; only their alerts merge


async def test_rule_filters_and_a_broken_rule_do_not_stop_the_others(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    await ix.rules.add(Rule(name="fr-only", query="rocket", filters={"language": ["fr"]}))
    await ix.rules.add(
        Rule(name="this-domain", query="rocket", filters={"domain": "news.example.org", "section": "Politics"})
    )
    await ix.rules.add(Rule(name="other-feed", query="rocket", filters={"feed": "https://elsewhere.example/rss"}))
    # Saved around validation, as a hand-edited index could hold it: Elasticsearch refuses it at evaluation.
    await ix.rules.add(Rule(name="broken", query="rocket AND ("), validate=False)
    fired = alerts_of(await ix.handle_batch([rocket_article()]))
    assert [a.rule_name for a in fired] == ["this-domain"]


async def test_the_service_publishes_a_batchs_alerts_before_it_returns_and_a_redelivery_adds_none(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings, redis: aioredis.Redis
) -> None:
    """With the runtime's publisher, alerts are on news.alerts as soon as the batch is recorded (not published
    by each article's handler later); several rules matching one article each fire, found in one search."""
    publisher = Publisher("indexer", redis, max_lag=1000, dedup_ttl_s=3600)
    ix = Indexer(ready_es, idx_settings, redis=redis, publish=lambda a: publisher.publish(streams.ALERTS, a))
    for name, query in (("rocket", "rocket attack"), ("port", "Qasr"), ("budget", "budget"), ("none", "zebra")):
        await ix.rules.add(Rule(name=name, query=query))
    rocket = rocket_article()
    budget = make_article("https://city.example.com/budget", BUDGET_TEXT)

    async def on_stream() -> list[tuple[str, str]]:
        entries = await redis.xrange(streams.ALERTS)
        return sorted((json.loads(f[DATA_FIELD])["rule_name"], json.loads(f[DATA_FIELD])["url"]) for _i, f in entries)

    assert await ix.handle_batch([rocket, budget]) == [[], []]
    expected = [("budget", budget.url), ("port", rocket.url), ("rocket", rocket.url)]
    assert await on_stream() == expected
    # What is on the stream is found by search at once: the web page's list and article view search for it.
    found = await fired.recent(ready_es, idx_settings.alerts_index)
    assert sorted((r.alert.rule_name, r.alert.url) for r in found) == expected
    # The same messages again (a crash after publishing, before the ack): recorded already, published already.
    assert await ix.handle_batch([rocket, budget]) == [[], []]
    assert await on_stream() == expected
