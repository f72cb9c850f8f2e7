"""The real parser service (its entry point, as a subprocess) against a real Redis.

Good pages come out on news.parsed; broken, empty, 20 MB, binary and too-slow pages each end in a
dead-letter record on news.raw.dlq with their reason, and the parser keeps consuming.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import DeadLetter, FeedEntry, ParsedArticle, RawPage
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY, encode

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"
ENTRY_POINT = Path(sys.executable).parent / "newsflow-parser"


def raw_page(name: str, html: str, content_type: str = "text/html; charset=utf-8") -> RawPage:
    url = f"https://news.example/articles/{name}"
    entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="https://news.example/feed.xml")
    return RawPage.with_html(html, entry=entry, url=url, final_url=url, status=200, content_type=content_type)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8", errors="replace")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(ENTRY_POINT)], env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_for(redis: aioredis.Redis, parsed: int, dead: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(900):
        if await redis.xlen(streams.PARSED) >= parsed and await redis.xlen(streams.dlq(streams.RAW)) >= dead:
            return
        assert proc.poll() is None, f"parser exited with {proc.returncode}:\n{tail(log)}"
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"parsed={await redis.xlen(streams.PARSED)} dead={await redis.xlen(streams.dlq(streams.RAW))}\n" + tail(log)
    )


async def test_service_parses_good_pages_and_dead_letters_bad_ones(
    redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    para = "<p>" + "A sentence that repeats to make the page enormous. " * 40 + "</p>\n"
    huge = "<html><body><article>" + para * (20_000_000 // len(para) + 1) + "</article></body></html>"
    row = "<div class='row'><p>Paragraph {i} of a very long page that keeps going with words for the test.</p></div>"
    slow = "<html><body><article>" + "".join(row.format(i=i) for i in range(50_000)) + "</article></body></html>"
    good = [
        raw_page("seed-like", fixture("cms_politics.html")),
        raw_page("gallery", fixture("gallery.html")),
        raw_page("arabic", fixture("arabic.html")),
        # refused by the own extraction, published by the fallback ladder (issue 16)
        raw_page("photo-story", fixture("photo_story.html")),
    ]
    bad = {
        "broken-html": raw_page("broken", fixture("broken.html")),
        "no-content": raw_page("empty", fixture("empty.html")),
        "too-large": raw_page("huge", huge),
        "binary": raw_page("binary", fixture("binary.bin"), "application/octet-stream"),
        "timeout": raw_page("slow", slow),
    }
    # bad pages first and in between: the good ones behind them must still get through
    queue = [bad["broken-html"], bad["timeout"], good[0], bad["no-content"], bad["too-large"], good[1], bad["binary"]]
    queue.append(good[3])
    for page in queue:
        await redis.xadd(streams.RAW, encode(page))

    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": redis_url,
        "NEWSFLOW_PARSER_WORKERS": "2",
        "NEWSFLOW_PARSER_TIMEOUT_S": "3",
        "NEWSFLOW_METRICS_HOST": "127.0.0.1",
        "NEWSFLOW_METRICS_PORT": "0",
        "NEWSFLOW_LOG_FORMAT": "text",
        "NEWSFLOW_CONSUMER_NAME": "parser-test",
    }
    log = tmp_path / "parser.log"
    proc = start(env, log)
    try:
        await wait_for(redis, parsed=3, dead=5, proc=proc, log=log)
        # still consuming after five failures
        await redis.xadd(streams.RAW, encode(good[2]))
        await wait_for(redis, parsed=4, dead=5, proc=proc, log=log)

        parsed = [ParsedArticle.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.PARSED)]
        assert sorted(a.article_id for a in parsed) == sorted(p.entry.article_id for p in good)
        by_id = {a.article_id: a for a in parsed}
        seed = by_id[good[0].entry.article_id]
        assert "Commanders go their own way" in seed.text and "Do you like this article" not in seed.text
        assert by_id[good[2].entry.article_id].language == "ar"
        assert seed.extraction_method == "own"
        assert by_id[good[3].entry.article_id].extraction_method == "trafilatura"

        records = [
            DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(streams.RAW))
        ]
        assert len(records) == 5
        reasons = {RawPage.model_validate_json(r.original[DATA_KEY]).url: r.reason for r in records}
        assert reasons == {page.url: reason for reason, page in bad.items()}
        for r in records:
            assert r.stream == streams.RAW and r.service == "parser" and r.error
        # every input acknowledged: nothing left pending for a redelivery
        pending = await redis.xpending(streams.RAW, streams.PARSER_GROUP)
        assert pending["pending"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, tail(log)
