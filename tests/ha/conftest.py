"""Session fixtures for the HA tests: a 3-node Elasticsearch cluster and Redis with Sentinel.

Each is started once per session by its script, only when a test asks for it, and stopped at the end.
Tests that use them are marked `slow` and `integration` here, so `-m "not slow"` never starts them.
The figures the tests measure are printed after the run (and with -s, as they are taken).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from e2e.conftest import FAST  # the end-to-end harness's short fault-recovery timings
from elasticsearch import AsyncElasticsearch
from ha_pipeline import NO_REDIS, HaRun
from ha_servers import EsCluster, Figures, RedisHA, run_script

from newsflow_cli.common import CliSettings
from newsflow_cli.infra import initialise
from newsflow_shared.runtime import make_redis

FIGURES = Figures()
_HA_FIXTURES = {"es_cluster", "redis_ha", "healthy_es_cluster", "healthy_redis_ha", "ha_run"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.rows:
        return
    terminalreporter.section("HA figures (this machine)")
    width = max(len(what) for what, _ in FIGURES.rows)
    for what, value in FIGURES.rows:
        terminalreporter.write_line(f"{what:<{width}}  {value}")


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


@pytest.fixture(scope="session")
def es_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EsCluster]:
    home = tmp_path_factory.mktemp("es-cluster")
    started = time.monotonic()
    line = run_script(["scripts/elasticsearch.sh", "start", "--nodes", "3", "--home", str(home)], timeout=400)
    cluster = EsCluster(home=Path(home), urls=line.split(","), start_s=time.monotonic() - started)
    FIGURES.add("Elasticsearch: 3 nodes started, green", cluster.start_s)
    try:
        yield cluster
    finally:
        run_script(["scripts/elasticsearch.sh", "stop", "--home", str(home)], timeout=120)


@pytest.fixture(scope="session")
def redis_ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHA]:
    directory = tmp_path_factory.mktemp("redis-ha")
    started = time.monotonic()
    line = run_script(["scripts/redis.sh", "start", "--ha", "--dir", str(directory)], timeout=120)
    sentinels, name = RedisHA.parse(line)
    ha = RedisHA(dir=Path(directory), sentinels=sentinels, master_name=name, start_s=time.monotonic() - started)
    FIGURES.add("Redis: primary, replica and 3 Sentinels ready", ha.start_s)
    try:
        yield ha
    finally:
        run_script(["scripts/redis.sh", "stop", "--dir", str(directory)], timeout=120)


@pytest.fixture
def healthy_es_cluster(es_cluster: EsCluster) -> EsCluster:
    """The session's cluster with every node running, whatever an earlier test left behind."""
    es_cluster.heal()
    return es_cluster


@pytest.fixture
def healthy_redis_ha(redis_ha: RedisHA) -> RedisHA:
    redis_ha.heal()
    return redis_ha


@pytest.fixture
async def ha_run(
    healthy_es_cluster: EsCluster, healthy_redis_ha: RedisHA, figures: Figures, tmp_path: Path
) -> AsyncIterator[HaRun]:
    """Empty Redis and Elasticsearch, initialised; the environment that points the services at them.

    Three shards of the news index, so that with one replica each node holds two copies and any node's
    loss takes primaries with it. The services get no Redis URL they could reach: only the Sentinels.
    """
    sentinels = ",".join(f"{h}:{p}" for h, p in healthy_redis_ha.sentinels)
    env = {
        **FAST,
        "NEWSFLOW_REDIS_URL": NO_REDIS,
        "NEWSFLOW_REDIS_SENTINELS": sentinels,
        "NEWSFLOW_REDIS_SENTINEL_MASTER": healthy_redis_ha.master_name,
        "NEWSFLOW_ELASTICSEARCH_URL": ",".join(healthy_es_cluster.urls),
        "NEWSFLOW_INDEX_SHARDS": "3",
        "NEWSFLOW_ARCHIVE_DIR": str(tmp_path / "archive"),
        # No story grouping across outlets: every alert is a message of its own, so that every alert's
        # delivery can be counted at the receiver.
        "NEWSFLOW_STORY_MIN_SHARED": "1000000",
    }
    settings = CliSettings(
        redis_url=NO_REDIS,
        redis_sentinels=sentinels,
        redis_sentinel_master=healthy_redis_ha.master_name,
        elasticsearch_url=env["NEWSFLOW_ELASTICSEARCH_URL"],
        index_shards=3,
    )
    redis = make_redis(settings)
    es = AsyncElasticsearch(healthy_es_cluster.urls, request_timeout=30, max_retries=5, retry_on_timeout=True)
    await _empty(redis, es)
    await initialise(settings)
    run = HaRun(env, redis, es, tmp_path / "logs", healthy_es_cluster, healthy_redis_ha, figures)
    try:
        yield run
    finally:
        await _empty(redis, es)
        await redis.aclose()
        await es.close()


async def _empty(redis: object, es: AsyncElasticsearch) -> None:
    await redis.flushdb()  # type: ignore[attr-defined]
    await es.options(ignore_status=404).indices.delete(index="*", expand_wildcards="open,closed,hidden")
    for t in (await es.indices.get_index_template()).get("index_templates", []):
        await es.indices.delete_index_template(name=t["name"])
