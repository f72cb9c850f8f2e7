"""Fault runs: 1,000 articles each, ending with exactly 1,000 documents and no duplicate alerts,
whatever crashed in between. Services run as separate processes, as in compose."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from newsflow_devtools.demo.server import DemoFeedServer
from newsflow_search.rules import Rule
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import Alert, DeadLetter, FeedEntry
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY, encode
from newsflow_shared.urls import canonicalize

from .conftest import FAST, StartPipeline, add_feeds, add_rule, at_least, backlog, doc_count, drained, sh, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

N = 1000
ROOT = Path(__file__).resolve().parents[2]
RULES = {"rocket attack": '"rocket attack"', "markets": "market*", "storm": "storm OR flood"}


async def _finish(es: AsyncElasticsearch, redis: aioredis.Redis, within: float = 420) -> float:
    took = await wait_for(lambda: at_least(es, N), within=within, what=f"{N} documents")
    await wait_for(lambda: drained(redis), within=90, what="every stream drained", describe=lambda: backlog(redis))
    return took


async def _assert_exactly_once(es: AsyncElasticsearch, redis: aioredis.Redis, srv: DemoFeedServer) -> None:
    assert await doc_count(es) == N
    expected = {article_id(canonicalize(u)) for u in srv.article_urls}
    found = await es.search(index="news", size=N + 10, source=False, query={"match_all": {}})
    assert {h["_id"] for h in found["hits"]["hits"]} == expected

    alerts = [Alert.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.ALERTS)]
    ids = [a.alert_id for a in alerts]
    assert len(ids) == len(set(ids)), "duplicate alerts on news.alerts"
    pairs = [(a.rule_name, a.article_id) for a in alerts]
    assert len(pairs) == len(set(pairs))
    for name, query in RULES.items():
        # What an analyst's search for the same words finds: the rule must have fired for exactly those.
        matching = await es.count(index="news", query=Rule(name=name, query=query).es_query())
        fired = sum(1 for a in alerts if a.rule_name == name) + sum(
            len(a.duplicates) for a in alerts if a.rule_name == name
        )
        # One alert per matching article, or one per group of syndicated copies with the others attached.
        assert fired == matching["count"], (name, fired, matching["count"])
    assert sum(1 for a in alerts if a.rule_name == "rocket attack") == 1


class AlwaysFailing:
    """A host that answers 503 to every request: a message that fails on every delivery."""

    def __init__(self) -> None:
        self.hits = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> AlwaysFailing:
        async def fail(_: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(status=503, text="down for maintenance")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fail)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def _rules(es: AsyncElasticsearch) -> None:
    for name, query in RULES.items():
        await add_rule(es, name, query)


async def test_kill_9_each_service_in_turn_and_a_poison_message(
    redis: aioredis.Redis, es: AsyncElasticsearch, pipeline: StartPipeline
) -> None:
    seed = int(os.environ.get("NEWSFLOW_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nfault seed {seed} (NEWSFLOW_FAULT_SEED={seed} reproduces the kill moments)")
    await _rules(es)
    async with DemoFeedServer(n_articles=N, seed=11) as srv, AlwaysFailing() as bad:
        poison_url = f"http://127.0.0.1:{bad.port}/always-503"
        poison = FeedEntry(
            url=poison_url,
            link=poison_url,
            article_id=article_id(poison_url),
            feed_url=f"http://127.0.0.1:{bad.port}/feed",
            title="poison",
        )
        await redis.xadd(streams.ENTRIES, encode(poison))
        await add_feeds(redis, srv.feed_urls)
        async with pipeline() as p:
            thresholds = sorted(rng.sample(range(50, 800), 3))
            for service, threshold in zip(("fetcher", "parser", "indexer"), thresholds, strict=True):
                await wait_for(lambda t=threshold: at_least(es, t), within=300, what=f"{threshold} documents")
                await asyncio.sleep(rng.random())
                await asyncio.to_thread(p[service][0].kill)
                print(f"kill -9 {service} at {await doc_count(es)} documents")
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                await asyncio.to_thread(p[service][0].start)
            await _finish(es, redis)
            await wait_for(lambda: _dlq_has(redis, streams.ENTRIES, 1), within=60, what="the poison dead letter")
        await _assert_exactly_once(es, redis, srv)

    (letter,) = [
        DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(streams.ENTRIES))
    ]
    assert FeedEntry.model_validate_json(letter.original[DATA_KEY]).url == poison_url
    assert letter.reason == "max-deliveries" and letter.attempts == 3, letter
    assert "503" in letter.error
    assert await redis.xlen(streams.dlq(streams.RAW)) == 0
    assert await redis.xlen(streams.dlq(streams.PARSED)) == 0


async def _dlq_has(redis: aioredis.Redis, stream: str, n: int) -> bool:
    return await redis.xlen(streams.dlq(stream)) >= n


async def test_parser_replica_killed_for_good_redis_restarted_and_sigterm(
    redis: aioredis.Redis,
    es: AsyncElasticsearch,
    pipeline: StartPipeline,
    redis_dir: Path | None,
    redis_url: str,
) -> None:
    if redis_dir is None:
        pytest.skip("restarts Redis: needs the suite's own Redis (NEWSFLOW_REDIS_URL is set)")
    await _rules(es)
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    async with DemoFeedServer(n_articles=N, seed=12) as srv:
        await add_feeds(redis, srv.feed_urls)
        async with pipeline(replicas={"parser": 2}) as p:
            await wait_for(lambda: at_least(es, 150), within=300, what="150 documents")
            doomed = p["parser"][1]
            # For good: its pending entries must be taken over by the other replica.
            await asyncio.to_thread(doomed.kill)
            print(f"\nkill -9 parser-2 for good at {await doc_count(es)} documents")

            await wait_for(lambda: at_least(es, 450), within=300, what="450 documents")
            await sh("scripts/redis.sh", "stop", "--dir", str(redis_dir))
            await asyncio.sleep(2)
            await sh("scripts/redis.sh", "start", "--dir", str(redis_dir), "--port", port)
            print(f"Redis restarted at {await doc_count(es)} documents")

            await wait_for(lambda: at_least(es, 700), within=300, what="700 documents")
            indexer = p["indexer"][0]
            t0 = time.monotonic()
            code = await asyncio.to_thread(indexer.stop)
            stop_s = time.monotonic() - t0
            print(f"SIGTERM indexer: exit {code} after {stop_s:.1f} s")
            assert code == 0
            assert stop_s < float(FAST["NEWSFLOW_GRACEFUL_TIMEOUT_S"]) + 5
            await asyncio.to_thread(indexer.start)
            await _finish(es, redis)

            consumers = {c["name"].decode(): c for c in await redis.xinfo_consumers(streams.RAW, streams.PARSER_GROUP)}
            dead = [c for name, c in consumers.items() if name.startswith("parser-2-")]
            assert dead and all(c["pending"] == 0 for c in dead), consumers
            assert all(p.running for p in (p["fetcher"][0], p["parser"][0], indexer))
        await _assert_exactly_once(es, redis, srv)


async def test_elasticsearch_stopped_for_30_seconds(
    redis: aioredis.Redis,
    es: AsyncElasticsearch,
    pipeline: StartPipeline,
    es_home: Path,
    es_url: str,
) -> None:
    if not (es_home / "node.pid").exists():
        pytest.skip("stops Elasticsearch: needs the suite's own node (NEWSFLOW_ELASTICSEARCH_URL is set)")
    await _rules(es)
    port = es_url.rsplit(":", 1)[1]
    async with DemoFeedServer(n_articles=N, seed=13) as srv:
        await add_feeds(redis, srv.feed_urls)
        async with pipeline() as p:
            await wait_for(lambda: at_least(es, 250), within=300, what="250 documents")
            await sh("scripts/elasticsearch.sh", "stop", "--home", str(es_home))
            print("\nElasticsearch stopped")
            await asyncio.sleep(30)
            assert all(proc.running for proc in p), "a service died while Elasticsearch was down"
            await sh("scripts/elasticsearch.sh", "start", "--home", str(es_home), "--port", port)
            print(f"Elasticsearch back with {await doc_count(es)} documents")
            await _finish(es, redis)
        await _assert_exactly_once(es, redis, srv)
    assert await redis.xlen(streams.dlq(streams.PARSED)) == 0
