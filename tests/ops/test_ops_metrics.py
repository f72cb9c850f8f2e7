"""/health and /metrics of the three services running as separate processes: counters move with the work."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from prometheus_client.parser import text_string_to_metric_families

from newsflow_cli.infra import initialise
from newsflow_devtools.demo import DemoFeedServer
from newsflow_devtools.processes import Pipeline, ServiceProcess
from newsflow_feeds.registry import FeedRegistry
from newsflow_shared import streams
from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
N = 40

ENV = {
    "NEWSFLOW_MIN_POLL_INTERVAL_S": "1",
    "NEWSFLOW_MAX_POLL_INTERVAL_S": "5",
    "NEWSFLOW_PER_HOST_DELAY_S": "0",
    "NEWSFLOW_PER_HOST_CONCURRENCY": "8",
    "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
    "NEWSFLOW_BATCH_LINGER_S": "0.3",
    "NEWSFLOW_RULES_REFRESH_S": "1",
    "NEWSFLOW_GRACEFUL_TIMEOUT_S": "10",
    "NEWSFLOW_RULES_FILE": str(ROOT / "rules.yaml"),
}


def scrape(p: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the service's /metrics, keyed by (name, sorted labels)."""
    status, body = p.get("/metrics")
    assert status == 200
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


async def test_health_and_metrics_follow_the_work(
    settings: CommonSettings, redis: aioredis.Redis, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    await initialise(settings)
    env = {"NEWSFLOW_REDIS_URL": settings.redis_url, "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url, **ENV}
    pipeline = Pipeline(env, tmp_path / "logs")
    async with DemoFeedServer(n_articles=N, seed=5) as srv:
        await asyncio.to_thread(pipeline.start)
        try:
            fetcher, indexer = pipeline["fetcher"][0], pipeline["indexer"][0]
            for p in pipeline:
                status, body = await asyncio.to_thread(p.get, "/health")
                health = json.loads(body)
                assert status == 200 and health["status"] == "ok", health
                assert health["service"] == p.service and health["checks"]["redis"] is True
            _, body = await asyncio.to_thread(indexer.get, "/health")
            assert json.loads(body)["checks"]["elasticsearch"] is True
            assert (await asyncio.to_thread(fetcher.get, "/nope"))[0] == 404

            before = {p.service: await asyncio.to_thread(scrape, p) for p in pipeline}
            assert total(before["fetcher"], "newsflow_fetcher_pages_fetched_total") == 0
            assert total(before["indexer"], "newsflow_indexer_documents_total", outcome="indexed") == 0

            reg = FeedRegistry(redis)
            for url in srv.feed_urls:
                await reg.add(url, interval=1.0)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                await es.indices.refresh(index="news")
                if (await es.count(index="news"))["count"] >= N and await redis.xlen(streams.ALERTS) >= 1:
                    break
                await asyncio.sleep(1)
            assert (await es.count(index="news"))["count"] == N
            # Feeds keep being polled: wait for some 304s, which the ETag support must produce.
            while time.monotonic() < deadline:
                after_f = await asyncio.to_thread(scrape, fetcher)
                if total(after_f, "newsflow_fetcher_feed_polls_total", outcome="not_modified") >= 1:
                    break
                await asyncio.sleep(1)

            after = {p.service: await asyncio.to_thread(scrape, p) for p in pipeline}
            f, pa, ix = after["fetcher"], after["parser"], after["indexer"]
            assert total(f, "newsflow_fetcher_entries_total", result="new") == N
            assert total(f, "newsflow_fetcher_pages_fetched_total") == N
            assert total(f, "newsflow_fetcher_feed_polls_total") >= len(srv.feed_urls)
            assert total(f, "newsflow_fetcher_feed_polls_total", outcome="not_modified") >= 1
            assert total(f, "newsflow_fetcher_fetch_seconds_count", kind="article") >= N  # retries count too
            assert total(pa, "newsflow_parser_articles_total") == N
            assert total(pa, "newsflow_parser_parse_seconds_count") >= N
            assert total(ix, "newsflow_indexer_documents_total", outcome="indexed") == N
            assert total(ix, "newsflow_alerts_fired_total") == 1
            assert total(ix, "newsflow_indexer_bulk_seconds_count") >= 1
            assert total(ix, "newsflow_searchable_latency_seconds_count", since="discovered") == N
            for svc, stream in (("fetcher", streams.ENTRIES), ("parser", streams.RAW), ("indexer", streams.PARSED)):
                assert total(after[svc], "newsflow_messages_total", stream=stream, outcome="ok") == N, svc
            assert sum(total(after[s], "newsflow_dead_letters_total") for s in after) == 0
            # The demo server saw the same polls the fetcher counted, and answered some with 304.
            assert sum(srv.not_modified[u.removeprefix(srv.base_url)] for u in srv.feed_urls) >= 1
        finally:
            codes = await asyncio.to_thread(pipeline.stop)
    assert all(c == 0 for c in codes.values()), codes
