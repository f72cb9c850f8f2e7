"""The real indexer service as a subprocess: dead letters for mapping failures, Elasticsearch outages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from indexer_helpers import make_article, rocket_article

from newsflow_shared import streams
from newsflow_shared.models import Alert, DeadLetter, ParsedArticle
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY, encode

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INDEXER = str(Path(sys.executable).with_name("newsflow-indexer"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def indexer_process(tmp_path: Path, redis_url: str, es_url: str, **env: str) -> AsyncIterator[int]:
    """Run `newsflow-indexer`; yields its metrics/health port. SIGTERM at the end, exit code checked."""
    port = free_port()
    full_env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": es_url,
        "NEWSFLOW_METRICS_HOST": "127.0.0.1",
        "NEWSFLOW_METRICS_PORT": str(port),
        "NEWSFLOW_BATCH_SIZE": "50",
        "NEWSFLOW_BATCH_LINGER_S": "0.2",
        "NEWSFLOW_RULES_REFRESH_S": "0.5",
        "NEWSFLOW_UNAVAILABLE_MAX_BACKOFF_S": "2",
        "NEWSFLOW_REQUEST_TIMEOUT_S": "5",
        "NEWSFLOW_CLAIM_IDLE_MS": "5000",
        "NEWSFLOW_CLAIM_INTERVAL_S": "1",
        "NEWSFLOW_GRACEFUL_TIMEOUT_S": "10",
        "NEWSFLOW_LOG_FORMAT": "text",
        **env,
    }
    log = tmp_path / f"indexer-{port}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(INDEXER, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            await wait_for(lambda: _healthy(port), 60, "indexer healthy", log)
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
            print(_tail(log))
    assert code == 0, f"indexer exited with {code}"


def _tail(log: Path | None) -> str:
    return log.read_text()[-3000:] if log is not None and log.exists() else ""


async def _healthy(port: int) -> bool:
    def get() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return bool(json.load(r)["checks"]["elasticsearch"])
        except OSError:
            return False

    return await asyncio.to_thread(get)


async def wait_for(cond: Callable[[], Awaitable[Any]], within: float, what: str, log: Path | None = None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await cond():
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {within} s waiting for {what}\n{_tail(log)}")


async def publish(redis: aioredis.Redis, articles: list[ParsedArticle]) -> None:
    pipe = redis.pipeline()
    for a in articles:
        pipe.xadd(streams.PARSED, encode(a))
    await pipe.execute()


async def doc_count(es: AsyncElasticsearch) -> int:
    await es.indices.refresh(index="news")
    return int((await es.count(index="news"))["count"])


async def settled(redis: aioredis.Redis) -> bool:
    groups = await redis.xinfo_groups(streams.PARSED)
    g = next(g for g in groups if g["name"] == streams.INDEXER_GROUP.encode())
    return int(g.get("lag") or 0) == 0 and int(g.get("pending") or 0) == 0


async def test_service_indexes_alerts_and_dead_letters_a_mapping_failure(
    tmp_path: Path, redis: aioredis.Redis, es: AsyncElasticsearch, redis_url: str, es_url: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: rocket attack\n    query: '\"rocket attack\"'\n    channels: [log]\n")
    good = [
        make_article(f"https://site.example.org/story/{i}", f"Council meeting number {i} about parks.")
        for i in range(20)
    ]
    rocket = rocket_article()
    # word_count does not fit the integer field: Elasticsearch refuses this one document with 400.
    bad = make_article("https://site.example.org/broken", "A perfectly fine text.", word_count=2**40)
    async with indexer_process(tmp_path, redis_url, es_url, NEWSFLOW_RULES_FILE=str(rules)):
        await publish(redis, [*good[:10], bad, rocket, *good[10:]])
        await wait_for(lambda: settled(redis), 60, "news.parsed settled")
    assert await doc_count(es) == 21
    dead = [DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(streams.PARSED))]
    assert [d.reason for d in dead] == ["mapping"]
    assert json.loads(dead[0].original[DATA_KEY])["url"] == bad.url
    assert "word_count" in dead[0].error and dead[0].service == "indexer"
    alerts = [Alert.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.ALERTS)]
    assert [(a.rule_name, a.url) for a in alerts] == [("rocket attack", rocket.url)]


@pytest.mark.slow
async def test_elasticsearch_down_30s_mid_stream_all_500_indexed_none_twice(
    tmp_path: Path, redis: aioredis.Redis, es: AsyncElasticsearch, redis_url: str, es_url: str, es_home: Path
) -> None:
    n = 500
    port = es_url.rsplit(":", 1)[1]
    articles = [
        make_article(
            f"https://wire.example.com/item/{i}",
            f"Item {i}: a short dispatch about rocket attack number {i} near the border.",
        )
        for i in range(n)
    ]
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: dispatch\n    query: dispatch AND border\n")

    async def producer() -> None:
        for i in range(0, n, 10):  # ~35 s of steady arrivals, the outage in the middle
            await publish(redis, articles[i : i + 10])
            await asyncio.sleep(0.7)

    def sh(*args: str) -> None:
        subprocess.run(
            ["scripts/elasticsearch.sh", *args, "--home", str(es_home)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )

    async with indexer_process(tmp_path, redis_url, es_url, NEWSFLOW_RULES_FILE=str(rules)) as mport:
        feeding = asyncio.create_task(producer())
        await wait_for(lambda: _at_least(es, 50), 60, "the first documents")
        await asyncio.to_thread(sh, "stop")
        down_at = time.monotonic()
        await asyncio.sleep(30)
        assert not await _healthy(mport), "the indexer must report Elasticsearch as down"
        await asyncio.to_thread(sh, "start", "--port", port)
        print(f"Elasticsearch down for {time.monotonic() - down_at:.1f} s")
        await es.cluster.health(wait_for_status="yellow", timeout="60s")
        await feeding
        await wait_for(lambda: _at_least(es, n), 120, f"{n} documents")
        await wait_for(lambda: settled(redis), 60, "news.parsed settled")
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        )
    assert await doc_count(es) == n
    found = await es.search(index="news", size=n + 10, source=False, query={"match_all": {}})
    ids = [h["_id"] for h in found["hits"]["hits"]]
    assert len(ids) == len(set(ids)) == n and set(ids) == {a.article_id for a in articles}
    assert await redis.xlen(streams.dlq(streams.PARSED)) == 0
    alerts = [Alert.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.ALERTS)]
    assert len(alerts) == n and len({a.alert_id for a in alerts}) == n
    assert "newsflow_indexer_batch_retries_total" in metrics
    retries = [ln for ln in metrics.splitlines() if ln.startswith("newsflow_indexer_batch_retries_total")]
    assert float(retries[0].split()[-1]) > 0


async def _at_least(es: AsyncElasticsearch, n: int) -> bool:
    try:
        return await doc_count(es) >= n
    except Exception:
        return False
