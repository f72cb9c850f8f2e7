"""End to end: feeds on a loopback server -> fetcher -> parser -> indexer -> Elasticsearch and alerts,
with the three services as separate processes."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_devtools.demo.server import DemoFeedServer
from newsflow_shared.ids import article_id
from newsflow_shared.urls import canonicalize

from .conftest import StartPipeline, add_feeds, add_rule, alert_ids, at_least, backlog, doc_count, drained, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

N = 300


async def test_300_articles_searchable_once_and_rule_fires_once(
    redis: aioredis.Redis, es: AsyncElasticsearch, pipeline: StartPipeline
) -> None:
    await add_rule(es, "rocket attack", '"rocket attack"')
    await add_rule(es, "chemical weapons", '"chemical weapons"')
    async with DemoFeedServer(n_articles=N, seed=7) as srv:
        started = time.monotonic()
        await add_feeds(redis, srv.feed_urls)
        async with pipeline():
            took = await wait_for(lambda: at_least(es, N), within=300, what=f"{N} documents")
            # Settle: redeliveries or late duplicates would show up now.
            await wait_for(
                lambda: drained(redis), within=60, what="all streams drained", describe=lambda: backlog(redis)
            )
            # Trimming policy: once every group has acknowledged everything, the streams empty out.
            await wait_for(lambda: _trimmed(redis), within=30, what="acknowledged entries trimmed")
        elapsed = time.monotonic() - started
        print(
            f"\n{N} articles: last one searchable {took:.1f} s after the pipeline started "
            f"({elapsed:.1f} s including start-up and shutdown)"
        )

        assert await doc_count(es) == N
        expected_ids = {article_id(canonicalize(u)) for u in srv.article_urls}
        found = await es.search(index="news", size=N, source=False, query={"match_all": {}})
        assert {h["_id"] for h in found["hits"]["hits"]} == expected_ids

    hits = await es.search(index="news", query={"query_string": {"query": '"rocket attack"', "fields": ["text"]}})
    assert hits["hits"]["total"]["value"] == 1
    ids = await alert_ids(redis)
    assert len(ids) == len(set(ids)) == 1, ids
    assert await redis.xlen("news.entries.dlq") == 0
    assert await redis.xlen("news.raw.dlq") == 0
    assert await redis.xlen("news.parsed.dlq") == 0


async def _trimmed(redis: aioredis.Redis) -> bool:
    return all([await redis.xlen(s) == 0 for s in ("news.entries", "news.raw", "news.parsed")])
