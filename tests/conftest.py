"""Session fixtures: a real Redis and a real Elasticsearch node.

When NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL are set, the suite runs against those servers
(and cleans them between tests: point it only at servers meant for testing). Otherwise it starts
both itself with scripts/redis.sh and scripts/elasticsearch.sh on free loopback ports and stops them
at the end. Servers start only when a test asks for them, so `pytest -m unit` needs none.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_cli.common import CliSettings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _start(cmd: list[str]) -> str:
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Where the session's own Redis keeps its AOF (None when the suite uses an external Redis)."""
    return None if os.environ.get("NEWSFLOW_REDIS_URL") else tmp_path_factory.mktemp("redis")


def _own_server(script: str, *where: str) -> Iterator[str]:
    """The URL of the server `script` starts with its data at `where` (its option and a path); stopped after."""
    url = _start([script, "start", *where])
    try:
        yield url
    finally:
        subprocess.run([script, "stop", *where], cwd=ROOT, check=False)


@pytest.fixture(scope="session")
def redis_url(redis_dir: Path | None) -> Iterator[str]:
    if redis_dir is None:
        yield os.environ["NEWSFLOW_REDIS_URL"]
    else:
        yield from _own_server("scripts/redis.sh", "--dir", str(redis_dir))


@pytest.fixture(scope="session")
def es_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("elasticsearch")


@pytest.fixture(scope="session")
def es_url(es_home: Path) -> Iterator[str]:
    if url := os.environ.get("NEWSFLOW_ELASTICSEARCH_URL"):
        yield url
    else:
        yield from _own_server("scripts/elasticsearch.sh", "--home", str(es_home))


@pytest.fixture
def settings(redis_url: str, es_url: str, monkeypatch: pytest.MonkeyPatch) -> CliSettings:
    """Settings pointing at the test servers, also exported so that subprocesses inherit them."""
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_URL", es_url)
    return CliSettings(redis_url=redis_url, elasticsearch_url=es_url)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=False)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


async def _wipe_es(client: AsyncElasticsearch) -> None:
    # Only what tests create: data streams and system indices are not touched.
    await client.options(ignore_status=404).indices.delete(index="*", expand_wildcards="open,closed,hidden")
    templates = await client.indices.get_index_template()
    for t in templates.get("index_templates", []):
        await client.indices.delete_index_template(name=t["name"])


@pytest.fixture
async def es(es_url: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(es_url, request_timeout=30)
    await _wipe_es(client)
    try:
        yield client
    finally:
        await client.close()
