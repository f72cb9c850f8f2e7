"""The parser's handler and worker pool: time limit, size cap, dead-letter reasons (no servers needed)."""

from __future__ import annotations

import asyncio
import base64
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from newsflow_extract.errors import ExtractionError
from newsflow_parser.pool import ExtractionPool
from newsflow_parser.service import PageHandler
from newsflow_parser.settings import ParserSettings
from newsflow_shared.ids import article_id
from newsflow_shared.models import BodyTooLarge, FeedEntry, ParsedArticle, RawPage
from newsflow_shared.runtime import PermanentError

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


def raw_page(html: str, url: str = "https://news.example/a/1", content_type: str = "text/html") -> RawPage:
    entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="https://news.example/feed")
    return RawPage.with_html(html, entry=entry, url=url, final_url=url, status=200, content_type=content_type)


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[ExtractionPool]:
    p = ExtractionPool(workers=2, timeout_s=1.5, max_tasks=50)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def handler(pool: ExtractionPool) -> PageHandler:
    return PageHandler(pool, ParserSettings(parser_workers=2, parser_timeout_s=1.5, parser_max_bytes=10_000_000))


async def test_pool_kills_a_task_past_its_deadline_and_keeps_working(pool: ExtractionPool) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await pool.run(time.sleep, 30)
    assert time.monotonic() - started < 20  # killed, not waited for
    # the worker was replaced: the pool still runs work, in parallel
    results = await asyncio.gather(pool.run(sum, [1, 2, 3]), pool.run(len, "abcd"))
    assert results == [6, 4]


async def test_extraction_errors_cross_the_process_boundary(pool: ExtractionPool) -> None:
    from newsflow_extract.extract import extract_payload

    with pytest.raises(ExtractionError) as err:
        await pool.run(extract_payload, "", "https://news.example/x", None, None, 25)
    assert err.value.reason == "no-content"


async def test_a_good_page_becomes_a_parsed_article(handler: PageHandler) -> None:
    html = (FIXTURES / "cms_politics.html").read_text(encoding="utf-8")
    raw = raw_page(html)
    article = await handler.handle(raw)
    assert isinstance(article, ParsedArticle)
    assert article.article_id == raw.entry.article_id
    assert article.fetched_at == raw.fetched_at
    assert article.feed_url == "https://news.example/feed"
    assert "Commanders go their own way" in article.text and len(article.captions) == 2


async def test_a_20_mb_page_is_too_large(handler: PageHandler) -> None:
    para = "<p>" + "A sentence that repeats to make the page enormous. " * 40 + "</p>\n"
    html = "<html><body><article>" + para * (20_000_000 // len(para) + 1) + "</article></body></html>"
    assert len(html.encode()) >= 20_000_000
    with pytest.raises(PermanentError) as err:
        await handler.handle(raw_page(html))
    assert err.value.reason == "too-large"


async def test_a_page_past_the_time_limit_times_out(handler: PageHandler) -> None:
    # about 6 MB of paragraphs: a minute of extraction, far past the 1.5 s limit
    row = "<div class='row'><p>Paragraph {i} of a very long page that keeps going with words for the test.</p></div>"
    html = "<html><body><article>" + "".join(row.format(i=i) for i in range(50_000)) + "</article></body></html>"
    with pytest.raises(PermanentError) as err:
        await handler.handle(raw_page(html))
    assert err.value.reason == "timeout"
    # and the next page is parsed normally
    good = (FIXTURES / "gallery.html").read_text(encoding="utf-8")
    assert isinstance(await handler.handle(raw_page(good)), ParsedArticle)


@pytest.mark.parametrize(
    ("name", "content_type", "reason"),
    [
        ("broken.html", "text/html", "broken-html"),
        ("empty.html", "text/html", "no-content"),
        ("binary.bin", "text/html", "binary"),
        ("binary.bin", "image/png", "binary"),
    ],
)
async def test_bad_pages_are_permanent_errors(handler: PageHandler, name: str, content_type: str, reason: str) -> None:
    body = (FIXTURES / name).read_bytes().decode("utf-8", errors="replace")
    with pytest.raises(PermanentError) as err:
        await handler.handle(raw_page(body, content_type=content_type))
    assert err.value.reason == reason


def _compressed_spaces(megabytes: int) -> str:
    """`megabytes` MB of spaces in an HTML page, zlib-compressed and base64-encoded, built in 1 MB steps."""
    z = zlib.compressobj(1)
    chunk = b" " * 1_000_000
    parts = [z.compress(b"<html><body><p>")] + [z.compress(chunk) for _ in range(megabytes)]
    parts.append(z.compress(b"</p></body></html>") + z.flush())
    return base64.b64encode(b"".join(parts)).decode("ascii")


async def test_a_compressed_bomb_is_refused_without_being_inflated(handler: PageHandler) -> None:
    # A producer's body_bytes is only a claim: this one says 2 kB for 300 MB of spaces in about 300 kB.
    url = "https://news.example/a/bomb"
    entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="https://news.example/feed")
    raw = RawPage(
        entry=entry,
        url=url,
        final_url=url,
        status=200,
        content_type="text/html",
        body=_compressed_spaces(300),
        body_encoding="zlib+base64",
        body_bytes=2048,
    )
    tracemalloc.start()
    try:
        with pytest.raises(PermanentError) as err:
            await handler.handle(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.reason == "too-large"
    # the 10 MB cap bounds what is inflated (plus the compressed body and its base64 decoding)
    assert peak < 40_000_000, f"{peak / 1e6:.0f} MB allocated to refuse a 300 MB page"


def test_a_compressed_body_within_the_cap_reads_back_whole() -> None:
    html = "<html><body>" + "<p>Paragraph of a long story, compressed in transit.</p>" * 2000 + "</body></html>"
    raw = raw_page(html)
    assert raw.body_encoding == "zlib+base64"
    assert raw.html(max_bytes=len(html.encode())) == html
    with pytest.raises(BodyTooLarge):
        raw.html(max_bytes=len(html.encode()) - 1)
