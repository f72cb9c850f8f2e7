"""Session fixtures for the HA tests: a 3-node Elasticsearch cluster and Redis with Sentinel.

Each is started once per session by its script, only when a test asks for it, and stopped at the end.
Tests that use them are marked `slow` and `integration` here, so `-m "not slow"` never starts them.
The figures the tests measure are printed after the run (and with -s, as they are taken).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ha_servers import EsCluster, Figures, RedisHA, run_script

FIGURES = Figures()
_HA_FIXTURES = {"es_cluster", "redis_ha", "healthy_es_cluster", "healthy_redis_ha"}


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
