"""Harness for end-to-end and fault runs: the real services as separate processes, as in compose,
against the session's real Redis and Elasticsearch, fed by the demo feed server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from waiting import wait_until

from newsflow_cli.infra import initialise
from newsflow_devtools.processes import SERVICES, Pipeline
from newsflow_feeds.registry import FeedRegistry
from newsflow_search.rules import Rule, RuleStore
from newsflow_shared import streams
from newsflow_shared.runtime import DATA_FIELD
from newsflow_shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m e2e` / `-m "not e2e"` select the whole-pipeline runs without naming paths.
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


# Short timings so that a fault is recovered from within seconds, not the production minute.
FAST = {
    "NEWSFLOW_CLAIM_IDLE_MS": "4000",
    "NEWSFLOW_CLAIM_INTERVAL_S": "1",
    "NEWSFLOW_MAX_DELIVERIES": "3",
    "NEWSFLOW_GRACEFUL_TIMEOUT_S": "10",
    "NEWSFLOW_MIN_POLL_INTERVAL_S": "1",
    "NEWSFLOW_MAX_POLL_INTERVAL_S": "5",
    "NEWSFLOW_FEED_LEASE_S": "5",
    "NEWSFLOW_PER_HOST_DELAY_S": "0",
    "NEWSFLOW_PER_HOST_CONCURRENCY": "16",
    "NEWSFLOW_ALLOWED_NETWORKS": "127.0.0.0/8",
    "NEWSFLOW_DOWNLOAD_RETRIES": "1",
    "NEWSFLOW_RETRY_BACKOFF_S": "0.2",
    "NEWSFLOW_STREAM_TRIM_INTERVAL_S": "2",
    "NEWSFLOW_LOG_LEVEL": "INFO",
}


@pytest.fixture
def pipeline_env(settings: CommonSettings, tmp_path: Path) -> dict[str, str]:
    return {
        "NEWSFLOW_REDIS_URL": settings.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
        # The fetcher's WARC archive in the test's own directory, not the working tree's .state/.
        "NEWSFLOW_ARCHIVE_DIR": str(tmp_path / "archive"),
        **FAST,
    }


@pytest.fixture
async def initialised(settings: CommonSettings, redis: aioredis.Redis, es: AsyncElasticsearch) -> CommonSettings:
    await initialise(settings)
    return settings


async def add_feeds(redis: aioredis.Redis, urls: list[str], interval: float = 1.0) -> None:
    reg = FeedRegistry(redis)
    for url in urls:
        await reg.add(url, interval=interval)


async def add_rule(es: AsyncElasticsearch, name: str, query: str, **kw: Any) -> Rule:
    rule = Rule(name=name, query=query, **kw)
    await RuleStore(es).add(rule)
    return rule


async def doc_count(es: AsyncElasticsearch) -> int:
    await es.indices.refresh(index="news")
    return int((await es.count(index="news"))["count"])


async def at_least(es: AsyncElasticsearch, n: int) -> bool:
    return await doc_count(es) >= n


async def backlog(redis: aioredis.Redis) -> dict[str, dict[str, int]]:
    """Per pipeline stream:group, what is still unread (lag) or unacknowledged (pending)."""
    out = {}
    for stream in (streams.ENTRIES, streams.RAW, streams.PARSED):
        for g in await redis.xinfo_groups(stream):
            lag, pending = int(g.get("lag") or 0), int(g.get("pending") or 0)
            if lag or pending:
                out[f"{stream}:{g['name'].decode()}"] = {"lag": lag, "pending": pending}
    return out


async def drained(redis: aioredis.Redis) -> bool:
    """No pipeline group has anything unread or unacknowledged."""
    return not await backlog(redis)


# The pipeline's probes (backlogs, counts over the index) cost more than a single server's: every half second.
wait_for = functools.partial(wait_until, every=0.5)


async def alert_ids(redis: aioredis.Redis) -> list[str]:
    from newsflow_shared.models import Alert

    return [Alert.model_validate_json(f[DATA_FIELD]).alert_id for _, f in await redis.xrange(streams.ALERTS)]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


StartPipeline = Callable[..., contextlib.AbstractAsyncContextManager[Pipeline]]


@pytest.fixture
def pipeline(initialised: CommonSettings, pipeline_env: dict[str, str], log_dir: Path) -> StartPipeline:
    """`async with pipeline() as p`: the services as processes against the initialised Redis and Elasticsearch
    (`replicas=`, `services=` as for `running`)."""
    return functools.partial(running, pipeline_env, log_dir)


@contextlib.asynccontextmanager
async def running(
    env: dict[str, str],
    log_dir: Path,
    replicas: dict[str, int] | None = None,
    services: tuple[str, ...] = SERVICES,
) -> AsyncIterator[Pipeline]:
    """The pipeline's processes, started and stopped off the event loop: the demo feed server runs on
    this loop and must keep answering while processes start and stop."""
    p = Pipeline(env, log_dir, replicas, services)
    await asyncio.to_thread(p.start)
    try:
        yield p
    finally:
        await asyncio.to_thread(p.stop)


async def sh(*cmd: str) -> None:
    await asyncio.to_thread(subprocess.run, list(cmd), cwd=ROOT, check=True, capture_output=True)
