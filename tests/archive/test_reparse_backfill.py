"""Reparse and backfill through the real parser and indexer services (in-process), the real Redis and
Elasticsearch, and the `newsflow` command as a subprocess: a newer extraction replaces an older one
without a duplicate or a second alert; a WARC file the test builds is backfilled with its filters, a
broken record and a resumed run."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsflow_archive.reader import iter_responses
from newsflow_archive.writer import Fetched, WarcArchive
from newsflow_cli.common import CliSettings
from newsflow_cli.infra import initialise
from newsflow_cli.pagefeed import Job
from newsflow_extract.version import PARSER_VERSION
from newsflow_indexer.main import service as indexer_service
from newsflow_indexer.settings import IndexerSettings
from newsflow_parser.main import service as parser_service
from newsflow_parser.settings import ParserSettings
from newsflow_search.rules import Rule, RuleStore
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, ParsedArticle
from newsflow_shared.runtime import DATA_FIELD
from newsflow_shared.urls import canonicalize

pytestmark = pytest.mark.integration
NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))
WORDS = (
    "Officials at the harbour said the damage was limited and that ferries would run again by the evening. "
    "Engineers inspected the cranes, the fuel depot and the pier through the afternoon while police kept "
    "the roads closed. Residents described a loud blast shortly after midnight and a long silence after it. "
)


def article_html(title: str, extra: str = "", lang: str = "en") -> bytes:
    body = f"<p>{extra}</p>" + "".join(f"<p>{WORDS}</p>" for _ in range(3))
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


@pytest.fixture
async def pipeline(settings: CliSettings, redis: aioredis.Redis, es: AsyncElasticsearch) -> AsyncIterator[CliSettings]:
    """Groups and index, then the parser and indexer services running until the test ends."""
    await initialise(settings)
    common: dict[str, Any] = dict(
        redis_url=settings.redis_url, claim_idle_ms=5000, graceful_timeout_s=5, metrics_port=0, log_format="text"
    )
    parser = parser_service.instance(ParserSettings(**common, parser_workers=1, consumer_name="p-test"))
    indexer = indexer_service.instance(
        IndexerSettings(
            **common,
            elasticsearch_url=settings.elasticsearch_url,
            batch_linger_s=0.05,
            rules_refresh_s=0.1,
            consumer_name="i-test",
        )
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(parser.serve(stop)), asyncio.create_task(indexer.serve(stop))]
    try:
        yield settings
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def newsflow(settings: CliSettings, *args: str, archive: Path | None = None) -> str:
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": settings.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
        "NEWSFLOW_ARCHIVE_DIR": str(archive or "/nonexistent"),
    }
    res = subprocess.run([NEWSFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


async def docs(es: AsyncElasticsearch, **query: Any) -> list[dict[str, Any]]:
    await es.indices.refresh(index="news")
    resp = await es.search(index="news", query=query or {"match_all": {}}, size=100, version=True)
    return [h["_source"] | {"_version": h["_version"]} for h in resp["hits"]["hits"]]


async def until(cond: Any, within: float = 60.0) -> None:
    for _ in range(int(within / 0.2)):
        if await cond():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_reparse_replaces_an_older_extraction_once_without_realerting(
    pipeline: CliSettings, es: AsyncElasticsearch, redis: aioredis.Redis, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    w = WarcArchive(archive, "fetcher-test")
    urls = [f"https://harbour.test/news/{i}" for i in range(3)]
    old_parse = datetime.now(UTC) - timedelta(days=2)
    indexer = await _old_extractions(pipeline, es, w, urls, old_parse)
    await RuleStore(es).add(Rule(name="rocket", query='"rocket attack"'))
    # Yesterday's parser extracted these; its alert for the rule fired then.
    fired = await indexer(old_parse)
    assert fired == 3 and await redis.xlen(streams.ALERTS) == 0  # (handled in-process, not published)

    # A stopped run: the first document (in article_id order) was already handed over.
    first = sorted(article_id(u) for u in urls)[0]
    job = Job(redis, "reparse", {"since": None, "query": None, "all": True, "outdated": False, "alerts": True})
    await job.load(False)
    job.state.update(cursor=first, counts={"queued": 1})
    await job.save(force=True)

    out = await asyncio.to_thread(newsflow, pipeline, "reparse", "--all", archive=archive)
    assert "reparse: 3 pages handed to the parser" in out  # 1 before the stop + 2 now

    async def reparsed() -> bool:
        return sum(d.get("parser_version") == PARSER_VERSION for d in await docs(es)) == 2

    await until(reparsed)
    by_id = {d["article_id"]: d for d in await docs(es)}
    assert len(by_id) == 3  # no duplicates: one document per URL
    for aid, d in by_id.items():
        if aid == first:
            assert d["parser_version"] == "0.0.1+old" and d["origin"] == "live"
            continue
        assert d["origin"] == "reparse" and "Engineers inspected the cranes" in d["text"]
        assert "old extraction" not in d["text"] and d["archive"]["file"].endswith(".warc.gz")
        assert d["_version"] > int(old_parse.timestamp() * 1000)
    # The rule matched before and after: no alert fires again.
    await asyncio.sleep(1.0)
    assert await redis.xlen(streams.ALERTS) == 0
    assert not await redis.exists(job.key)  # a finished job is forgotten


async def _old_extractions(
    settings: CliSettings, es: AsyncElasticsearch, w: WarcArchive, urls: list[str], when: datetime
) -> Any:
    """Archive each page as the fetcher would, and return a function indexing an 'old' extraction of
    each through the indexer's own batch handler (the alerts it fires are counted)."""
    from newsflow_indexer.handler import Indexer

    articles = []
    for i, url in enumerate(urls):
        entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="https://harbour.test/feed")
        ref = w.write(
            Fetched(
                url=url,
                status=200,
                reason="OK",
                http_version="HTTP/1.1",
                request_headers=[],
                response_headers=[("Content-Type", "text/html; charset=utf-8")],
                body=article_html(f"Rocket attack on the harbour, part {i}", "A rocket attack hit the port."),
                fetched_at=when,
                metadata={"entry": entry.model_dump(mode="json")},
            )
        )
        text = "old extraction: a rocket attack " + "word " * 30
        articles.append(
            ParsedArticle(
                article_id=entry.article_id,
                url=url,
                domain="harbour.test",
                text=text,
                content_hash=f"h{i}",
                simhash=f"{i:016x}",
                parsed_at=when,
                parser_version="0.0.1+old",
                archive=ref,
            )
        )
    w.close()
    s = IndexerSettings(
        redis_url=settings.redis_url, elasticsearch_url=settings.elasticsearch_url, rules_refresh_s=0.01
    )

    async def index(_when: datetime) -> int:
        results = await Indexer(es, s).handle_batch(articles)
        return sum(len(r) for r in results if isinstance(r, list))

    return index


def cc_news_warc(path: Path) -> None:
    """A WARC in the CC-NEWS layout (warcinfo, then response records with HTTP headers), with pages in
    two languages, a PDF, a 404 and one broken record in the middle."""
    records: list[bytes] = []

    def member(rec: Any) -> bytes:
        buf = io.BytesIO()
        WARCWriter(buf, gzip=True).write_record(rec)
        return buf.getvalue()

    w = WARCWriter(io.BytesIO(), gzip=True)
    records.append(member(w.create_warcinfo_record(path.name, {"software": "test"})))
    pages = [
        (
            "https://a.test/news/1",
            200,
            "text/html; charset=utf-8",
            article_html("Rocket attack in A", "A rocket attack."),
        ),
        ("https://a.test/news/2", 200, "text/html", article_html("Second story in A")),
        ("https://b.test/nachrichten/1", 200, "text/html", article_html("Eine Geschichte", lang="de")),
        ("https://a.test/doc.pdf", 200, "application/pdf", b"%PDF-1.4 not a page"),
        ("https://a.test/gone", 404, "text/html", b"<html>gone</html>"),
        ("https://c.test/news/3", 200, "text/html", article_html("Story on another site", "A rocket attack.")),
    ]
    for i, (url, status, ctype, body) in enumerate(pages):
        http = StatusAndHeaders(
            f"{status} X", [("Content-Type", ctype), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
        )
        rec = w.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http)
        records.append(member(rec))
        if i == 2:
            records.append(
                gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 999999\r\n\r\ntruncated")[:-8]
            )
    path.write_bytes(b"".join(records))


async def test_backfill_filters_skips_broken_records_and_resumes(
    pipeline: CliSettings, es: AsyncElasticsearch, redis: aioredis.Redis, tmp_path: Path
) -> None:
    warc = tmp_path / "CC-NEWS-20240501.warc.gz"
    cc_news_warc(warc)
    await RuleStore(es).add(Rule(name="rocket", query='"rocket attack"'))
    # A stopped run that had handed over everything up to the first page of a.test.
    first = next(p for p in iter_responses(warc) if not hasattr(p, "error"))
    params = {"domains": [], "since": None, "until": None, "languages": ["en"], "alerts": False, "replace": False}
    job = Job(redis, "backfill", {"file": str(warc.resolve()), "size": warc.stat().st_size, **params})
    await job.load(False)
    job.state.update(offset=first.ref.offset + first.ref.length, counts={"queued": 1})  # type: ignore[union-attr]
    await job.save(force=True)

    out = await asyncio.to_thread(newsflow, pipeline, "backfill", str(warc), "--language", "en")
    assert "3 pages handed to the parser" in out, out  # 1 before the stop, a.test/2 and c.test/3 now
    assert "filtered-language 1" in out and "not-html 1" in out and "http-404 1" in out
    assert "broken-record 1" in out and "CC-NEWS-20240501.warc.gz at byte" in out

    async def two() -> bool:
        return len(await docs(es)) == 2

    await until(two)
    found = {d["url"]: d for d in await docs(es)}
    assert set(found) == {"https://a.test/news/2", "https://c.test/news/3"}
    for d in found.values():
        assert d["origin"] == "backfill" and d["archive"]["file"] == str(warc.resolve())
        assert d["parser_version"] == PARSER_VERSION and d["feed_url"] == f"warc:{warc.name}"

    # A second, domain-filtered run from the start: the first page now, the others already indexed.
    out = await asyncio.to_thread(newsflow, pipeline, "backfill", str(warc), "--domain", "a.test", "--alerts")
    assert "1 pages handed to the parser" in out and "already-indexed 1" in out and "filtered-domain 2" in out

    async def three() -> bool:
        return len(await docs(es)) == 3

    await until(three)
    rocket = canonicalize("https://a.test/news/1")
    # --alerts: the backfilled article that matches the rule alerts (once); c.test/news/3 matches too, but
    # was backfilled without --alerts.
    await until(lambda: _alerted(redis, rocket))
    assert len({d["url"] for d in await docs(es)}) == 3


async def _alerted(redis: aioredis.Redis, url: str) -> bool:
    entries = await redis.xrange(streams.ALERTS)
    return [json.loads(f[DATA_FIELD])["url"] for _, f in entries] == [url]
