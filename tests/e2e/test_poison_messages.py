"""Poison messages of several kinds mixed into a stream of valid ones, in every pipeline stream: every valid
message arrives, and each poison is dead-lettered alone with its reason (issue 14, defect 2).

Each service runs in-process on the real runtime against the real Redis and Elasticsearch of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from newsflow_fetcher.main import service as fetcher
from newsflow_fetcher.settings import FetcherSettings
from newsflow_indexer.main import service as indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_parser.main import service as parser
from newsflow_parser.settings import ParserSettings
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import DeadLetter, FeedEntry, ParsedArticle, RawPage
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY, Instance, encode
from newsflow_shared.runtime.housekeeping import ensure_groups

from .conftest import wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"
FAST = dict(claim_idle_ms=1000, claim_interval_s=0.2, max_deliveries=2, graceful_timeout_s=5, metrics_port=0)
LONG_ID = "f" * 600  # Elasticsearch refuses an _id over 512 bytes for the whole bulk request


@contextlib.asynccontextmanager
async def serving(instance: Instance[Any]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(instance.serve(stop))
    await asyncio.wait_for(instance.ready.wait(), 60)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def entry(url: str) -> FeedEntry:
    return FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="http://feed.test/f.xml")


def with_long_id(model: Any) -> dict[bytes, bytes]:
    """A message that passes everything but the identifier bounds: the _id Elasticsearch would refuse."""
    doc = json.loads(model.model_dump_json())
    doc.get("entry", doc)["article_id"] = LONG_ID  # a RawPage carries its id in its entry
    return {DATA_FIELD: json.dumps(doc).encode()}


async def dead_letters(redis: aioredis.Redis, stream: str) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.dlq(stream))]


async def append_with_poison(
    redis: aioredis.Redis, stream: str, group: str, valid: list[Any], poison: dict[str, Any], after: int
) -> None:
    """The consuming group on `stream`, then the valid messages with every poison one right after valid[after]."""
    await ensure_groups(redis, {stream: (group,)})
    for i, message in enumerate(valid):
        await redis.xadd(stream, encode(message))
        if i == after:
            for fields in poison.values():
                await redis.xadd(stream, fields)


async def settled(redis: aioredis.Redis, stream: str, group: str) -> bool:
    (info,) = [g for g in await redis.xinfo_groups(stream) if g["name"] == group.encode()]
    return int(info["pending"]) == 0 and int(info["lag"] or 0) == 0


async def test_news_parsed_poison_goes_alone_and_its_batch_is_indexed(
    redis: aioredis.Redis, redis_url: str, es: AsyncElasticsearch, es_url: str
) -> None:
    valid = [
        ParsedArticle(
            article_id=article_id(f"https://ok.example/{i}"),
            url=f"https://ok.example/{i}",
            domain="ok.example",
            title=f"Ordinary article {i}",
            text=f"Ordinary text number {i}.",
            content_hash="c" * 64,
            simhash=f"{i:016x}",
        )
        for i in range(50)
    ]
    out_of_range = valid[0].model_copy(
        update={"article_id": article_id("https://bad.example/1"), "url": "https://bad.example/1", "word_count": 2**40}
    )
    poison = {"not json": {DATA_FIELD: b"{not json"}, "long id": with_long_id(valid[1]),
              "mapping": encode(out_of_range)}  # fmt: skip
    # poison in the middle of what becomes one batch
    await append_with_poison(redis, streams.PARSED, streams.INDEXER_GROUP, valid, poison, after=25)
    settings = IndexerSettings(redis_url=redis_url, elasticsearch_url=es_url, batch_size=100, batch_linger_s=1.0,
                               **FAST)  # fmt: skip
    async with serving(indexer.instance(settings)):
        await wait_for(lambda: settled(redis, streams.PARSED, streams.INDEXER_GROUP), 60, "news.parsed settled")
    await es.indices.refresh(index="news")
    assert (await es.count(index="news"))["count"] == 50
    letters = await dead_letters(redis, streams.PARSED)
    assert sorted(d.reason for d in letters) == ["invalid-message", "invalid-message", "mapping"]
    assert {d.original[DATA_KEY].encode() for d in letters} == {f[DATA_FIELD] for f in poison.values()}
    assert all(d.attempts == 1 for d in letters), "each poison is refused at once, not after retries"


async def test_news_raw_poison_goes_alone_and_good_pages_are_parsed(redis: aioredis.Redis, redis_url: str) -> None:
    html = (FIXTURES / "cms_politics.html").read_text(encoding="utf-8")

    def page(url: str, body: str = html, ctype: str = "text/html") -> RawPage:
        return RawPage.with_html(body, entry=entry(url), url=url, final_url=url, status=200, content_type=ctype)

    valid = [page(f"https://news.example/politics/{i}") for i in range(10)]
    poison = {
        "not json": {DATA_FIELD: b"\xff\xfe garbage"},
        "long id": with_long_id(valid[0]),
        "binary": encode(page("https://news.example/photo.jpg", "\x89PNG\r\n\x1a\n" + "\x00" * 64, "image/png")),
    }
    await append_with_poison(redis, streams.RAW, streams.PARSER_GROUP, valid, poison, after=4)
    settings = ParserSettings(redis_url=redis_url, parser_workers=2, **FAST)
    async with serving(parser.instance(settings)):
        await wait_for(lambda: settled(redis, streams.RAW, streams.PARSER_GROUP), 90, "news.raw settled")
    parsed = [ParsedArticle.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.PARSED)]
    assert sorted(a.url for a in parsed) == sorted(p.url for p in valid)
    letters = await dead_letters(redis, streams.RAW)
    assert sorted(d.reason for d in letters) == ["binary", "invalid-message", "invalid-message"]
    assert all(d.attempts == 1 for d in letters)


async def test_news_entries_poison_goes_alone_and_good_articles_are_downloaded(
    redis: aioredis.Redis, redis_url: str
) -> None:
    async def article(request: web.Request) -> web.Response:
        if request.path.startswith("/missing"):
            raise web.HTTPNotFound()
        body = f"<html><head><title>{request.path}</title></head><body><p>Text of {request.path}.</p></body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", article)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        valid = [entry(f"{base}/news/{i}") for i in range(20)]
        poison = {
            "not json": {DATA_FIELD: b'{"url": '},
            "long id": with_long_id(valid[0]),
            "http-404": encode(entry(f"{base}/missing/1")),
            "bad-url": encode(entry("ftp://files.example/article.txt")),
        }
        await append_with_poison(redis, streams.ENTRIES, streams.FETCHER_GROUP, valid, poison, after=9)
        settings = FetcherSettings(redis_url=redis_url, allowed_networks=["127.0.0.0/8"], respect_robots=False,
                                   per_host_delay_s=0, per_host_concurrency=8, **FAST)  # fmt: skip
        async with serving(fetcher.instance(settings)):
            await wait_for(lambda: settled(redis, streams.ENTRIES, streams.FETCHER_GROUP), 60, "news.entries settled")
    finally:
        await runner.cleanup()
    pages = [RawPage.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.RAW)]
    assert sorted(p.url for p in pages) == sorted(e.url for e in valid)
    letters = await dead_letters(redis, streams.ENTRIES)
    assert sorted(d.reason for d in letters) == ["bad-url", "http-404", "invalid-message", "invalid-message"]
    assert all(d.attempts == 1 for d in letters)
