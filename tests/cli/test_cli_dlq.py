"""`newsflow dlq` against a real Redis, through the installed CLI as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import DATA_FIELD, Publisher, encode

pytestmark = pytest.mark.integration

NEWSFLOW = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "newsflow")


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEWSFLOW_REDIS_URL": redis_url, "COLUMNS": "250"}
    return subprocess.run([NEWSFLOW, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_dead_letters_listed_replayed_and_dropped(redis: aioredis.Redis, redis_url: str) -> None:
    publisher = Publisher("fetcher", redis, max_lag=1000, dedup_ttl_s=3600)
    for n, reason in enumerate(["not-html", "http-404", "not-html"]):
        url = f"http://example.test/{n}"
        e = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="http://example.test/f")
        await publisher.dead_letter(
            streams.ENTRIES,
            {k.decode(): v for k, v in encode(e).items()},
            reason=reason,
            error_type="RuntimeError",
            error=f"failure {n}",
            attempts=2,
            message_id=f"1-{n}",
        )

    listed = cli(redis_url, "dlq", "list", "news.entries", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["reason"] for r in rows) == ["http-404", "not-html", "not-html"]
    assert all(r["stream"] == streams.ENTRIES and r["attempts"] == 2 for r in rows)

    table = cli(redis_url, "dlq", "list")
    assert table.returncode == 0 and "http-404" in table.stdout and "example.test/1" in table.stdout

    replayed = cli(redis_url, "dlq", "replay", "news.entries", "--reason", "not-html")
    assert replayed.returncode == 0, replayed.stderr
    back = [FeedEntry.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.ENTRIES)]
    assert sorted(e.url for e in back) == ["http://example.test/0", "http://example.test/2"]
    assert await redis.xlen(streams.dlq(streams.ENTRIES)) == 1

    (remaining,) = [json.loads(x) for x in cli(redis_url, "dlq", "list", "--json").stdout.splitlines()]
    # Ids and a reason narrow each other, in drop as in replay: the one left is not a not-html letter.
    narrowed = cli(redis_url, "dlq", "drop", "news.entries", "--id", remaining["id"], "--reason", "not-html")
    assert narrowed.returncode == 0 and "dropped 0" in narrowed.stdout
    dropped = cli(redis_url, "dlq", "drop", "news.entries", "--id", remaining["id"])
    assert dropped.returncode == 0 and "dropped 1" in dropped.stdout
    assert await redis.xlen(streams.dlq(streams.ENTRIES)) == 0


def test_unknown_stream_and_unreachable_redis_give_one_clear_line() -> None:
    bad = cli("redis://127.0.0.1:1/0", "dlq", "list", "news.nope")
    assert bad.returncode == 1 and "unknown stream" in bad.stderr and "Traceback" not in bad.stderr
    down = cli("redis://127.0.0.1:1/0", "dlq", "list")
    assert down.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in down.stderr and "Traceback" not in down.stderr
