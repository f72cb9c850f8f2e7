"""Sitemaps as sources: the parser on its own (unit), then the real poller against sitemaps served by a
loopback server, with the real Redis: a news sitemap growing between polls, an index with a gzipped
child, first polls of undated sitemaps, malformed and hostile documents."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import pytest
from aiohttp import web
from fetcher_helpers import Sink, WebServer, fetcher_settings, poll

from newsflow_feeds.registry import FeedRegistry
from newsflow_feeds.sitemaps import SitemapError, looks_like_sitemap, parse_sitemap
from newsflow_fetcher.poller import Poller
from newsflow_http.httpclient import HttpClient
from newsflow_shared.urls import canonicalize

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'


def iso(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def news_sitemap(items: list[tuple[str, str, datetime]], lang: str = "en") -> str:
    """A Google News sitemap of (url, title, publication date)."""
    body = "".join(
        f"<url><loc>{escape(u)}</loc><news:news><news:publication><news:name>Harbour Daily</news:name>"
        f"<news:language>{lang}</news:language></news:publication>"
        f"<news:publication_date>{iso(d)}</news:publication_date><news:title>{escape(t)}</news:title>"
        f"<news:keywords>ports, shipping</news:keywords></news:news></url>"
        for u, t, d in items
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{body}</urlset>'


def plain_sitemap(items: list[tuple[str, datetime | None]]) -> str:
    body = "".join(f"<url><loc>{escape(u)}</loc>{f'<lastmod>{iso(d)}</lastmod>' if d else ''}</url>" for u, d in items)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'


def index(children: list[str]) -> str:
    body = "".join(f"<sitemap><loc>{escape(c)}</loc></sitemap>" for c in children)
    return (
        f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>'
    )


NOW = datetime.now(UTC)


# --- the parser on its own -----------------------------------------------------------------------------


@pytest.mark.unit
def test_news_sitemap_fields_and_gzip() -> None:
    doc = news_sitemap([("https://harbour.test/a/1?utm_source=x", "Ferry & tide", NOW)], lang="de").encode()
    for body in (doc, gzip.compress(doc)):
        sm = parse_sitemap(body, "https://harbour.test/news.xml")
        assert sm.kind == "urlset" and sm.news and not sm.malformed
        (u,) = sm.urls
        assert u.url == "https://harbour.test/a/1?utm_source=x"
        assert u.title == "Ferry & tide" and u.language == "de" and u.publication == "Harbour Daily"
        assert u.keywords == ["ports", "shipping"]
        assert u.published is not None and abs((u.published - NOW).total_seconds()) < 1
    assert looks_like_sitemap(gzip.compress(doc)) and not looks_like_sitemap(b"<rss version='2.0'/>")


@pytest.mark.unit
def test_malformed_and_hostile_documents() -> None:
    doc = news_sitemap([(f"https://harbour.test/a/{i}", f"T{i}", NOW) for i in range(10)]).encode()
    cut = parse_sitemap(doc[: len(doc) // 2], "https://harbour.test/news.xml")
    # What was readable before the break is kept, and the break is reported.
    assert cut.malformed and 0 < len(cut.urls) < 10
    assert "https://harbour.test/news.xml" in cut.warnings[0]
    bad = {
        b"<html><body>a web page</body></html>": "root element 'html'",
        b"\x1f\x8b\x08\x00broken": "gzip",
        # An entity declaration (billion laughs and the like) is refused outright.
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>': "DOCTYPE",
        b"just some words": "not a sitemap",
    }
    for body, why in bad.items():
        with pytest.raises(SitemapError, match=why):
            parse_sitemap(body, "https://harbour.test/x.xml")
    relative = plain_sitemap([("/a/1", None), ("https://harbour.test/a/2", None)]).encode()
    sm = parse_sitemap(relative)
    assert [u.url for u in sm.urls] == ["https://harbour.test/a/2"] and sm.skipped == 1


@pytest.mark.unit
def test_compression_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    with pytest.raises(SitemapError, match="over 1000000 bytes"):
        parse_sitemap(bomb, "https://x.test/s.xml.gz", limit=1_000_000)


# --- the real poller -------------------------------------------------------------------------------------


@pytest.fixture
async def rig(redis: Any, redis_url: str) -> AsyncIterator[tuple[Poller, Sink, FeedRegistry]]:
    settings = fetcher_settings(redis_url, validator_check_every=0)
    http = HttpClient(settings)
    sink = Sink(redis)
    try:
        yield Poller(redis, http, settings, sink), sink, FeedRegistry(redis)
    finally:
        await http.aclose()


def etagged(site: WebServer, path: str, doc: dict[str, bytes], ctype: str = "application/xml") -> None:
    """Serve doc["body"] at `path` with an ETag of its hash, answering If-None-Match with 304."""

    async def h(request: web.Request) -> web.StreamResponse:
        tag = '"' + hashlib.sha256(doc["body"]).hexdigest()[:12] + '"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.Response(body=doc["body"], headers={"Content-Type": ctype, "ETag": tag})

    site.routes[path] = h


@pytest.mark.integration
async def test_news_sitemap_only_new_urls_between_polls(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    items = [(f"https://harbour.test/news/{i}", f"Story {i}", NOW - timedelta(hours=i)) for i in range(3)]
    doc = {"body": news_sitemap(items).encode()}
    etagged(site, "/news-sitemap.xml", doc)
    await reg.add(site.url("/news-sitemap.xml"), kind="sitemap")

    first = await poll(p, reg, site.url("/news-sitemap.xml"))
    assert first.outcome == "new" and first.new_entries == 3
    e = next(x for x in sink.take() if x.url == "https://harbour.test/news/1")
    assert e.title == "Story 1" and e.language == "en" and e.tags == ["ports", "shipping"]
    assert e.feed_url == canonicalize(site.url("/news-sitemap.xml")) and e.feed_title == "Harbour Daily"
    assert e.published_at is not None and abs((e.published_at - items[1][2]).total_seconds()) < 1

    # Two stories appear, the oldest one drops out of the two-day window of the sitemap.
    items = [(f"https://harbour.test/news/{i}", f"Story {i}", NOW - timedelta(minutes=i)) for i in (10, 11)] + items[:2]
    doc["body"] = news_sitemap(items).encode()
    second = await poll(p, reg, site.url("/news-sitemap.xml"))
    assert second.new_entries == 2
    assert sorted(x.url for x in sink.take()) == ["https://harbour.test/news/10", "https://harbour.test/news/11"]

    third = await poll(p, reg, site.url("/news-sitemap.xml"))
    assert third.outcome == "not_modified" and sink.take() == []
    info = await reg.get(site.url("/news-sitemap.xml"))
    assert info is not None and info.state.format == "sitemap-news" and info.state.items_seen == 5


@pytest.mark.integration
async def test_first_poll_of_a_plain_sitemap_takes_only_recent_urls(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    old = [(f"https://archive.test/2019/{i}", NOW - timedelta(days=2000)) for i in range(50)]
    undated = [(f"https://archive.test/page/{i}", None) for i in range(50)]
    fresh = [("https://archive.test/today/1", NOW - timedelta(hours=3))]
    doc = {"body": plain_sitemap(old + undated + fresh).encode()}
    etagged(site, "/sitemap.xml", doc)
    await reg.add(site.url("/sitemap.xml"))  # added as a feed: recognised by its root element

    first = await poll(p, reg, site.url("/sitemap.xml"))
    assert first.new_entries == 1 and [e.url for e in sink.take()] == ["https://archive.test/today/1"]
    # Later, any new URL is news, dated or not; old ones stay known.
    doc["body"] = plain_sitemap([*old, *undated, *fresh, ("https://archive.test/page/new", None)]).encode()
    second = await poll(p, reg, site.url("/sitemap.xml"))
    assert second.new_entries == 1 and [e.url for e in sink.take()] == ["https://archive.test/page/new"]
    info = await reg.get(site.url("/sitemap.xml"))
    assert info is not None and info.state.sitemap_urls == 102 and info.state.format == "sitemap"


@pytest.mark.integration
async def test_sitemap_index_with_gzipped_child(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    a = {"body": news_sitemap([("https://port.test/a/1", "A1", NOW)]).encode()}
    b = {"body": gzip.compress(news_sitemap([("https://port.test/b/1", "B1", NOW)]).encode())}
    idx = {"body": index([site.url("/s/a.xml"), site.url("/s/b.xml.gz"), site.url("/s/missing.xml")]).encode()}
    etagged(site, "/s/a.xml", a)
    etagged(site, "/s/b.xml.gz", b, "application/x-gzip")
    etagged(site, "/sitemap_index.xml", idx)
    await reg.add(site.url("/sitemap_index.xml"), kind="sitemap")

    first = await poll(p, reg, site.url("/sitemap_index.xml"))
    # A missing child costs only itself.
    assert first.outcome == "new" and sorted(e.url for e in sink.take()) == [
        "https://port.test/a/1",
        "https://port.test/b/1",
    ]
    b["body"] = gzip.compress(
        news_sitemap([("https://port.test/b/1", "B1", NOW), ("https://port.test/b/2", "B2", NOW)]).encode()
    )
    idx["body"] += b" "  # the index changes too, so that it is parsed and its children checked
    second = await poll(p, reg, site.url("/sitemap_index.xml"))
    assert second.new_entries == 1 and [e.url for e in sink.take()] == ["https://port.test/b/2"]
    # The unchanged child was asked conditionally and answered 304.
    assert site.hits_for("/s/a.xml")[-1].headers.get("If-None-Match")
    info = await reg.get(site.url("/sitemap_index.xml"))
    assert info is not None and info.state.format == "sitemap-index"
    assert set(info.state.children) == {site.url("/s/a.xml"), site.url("/s/b.xml.gz"), site.url("/s/missing.xml")}


@pytest.mark.integration
async def test_malformed_sitemap_gives_its_readable_part_and_garbage_fails_alone(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    full = news_sitemap([(f"https://cut.test/{i}", f"T{i}", NOW) for i in range(20)])
    site.static("/cut.xml", full[: len(full) // 2], "application/xml")
    garbage_doc = f"<urlset><url><loc>https://g.test/1</loc><lastmod>{iso(NOW)}</lastmod></url><<<&&&"
    site.static("/garbage.xml", garbage_doc, "application/xml")
    site.static("/page.xml", "<html><body>Not found, but 200</body></html>", "text/html")
    for path in ("/cut.xml", "/garbage.xml", "/page.xml"):
        await reg.add(site.url(path), kind="sitemap")

    cut = await poll(p, reg, site.url("/cut.xml"))
    assert cut.outcome == "new" and 0 < cut.new_entries < 20
    assert all(e.url.startswith("https://cut.test/") for e in sink.take())
    page = await poll(p, reg, site.url("/page.xml"))
    assert page.outcome == "error" and page.error and "root element 'html'" in page.error
    info = await reg.get(site.url("/page.xml"))
    assert info is not None and info.state.consecutive_failures == 1 and "parse-error" in (info.state.last_error or "")
    # The garbage document is no namespaced sitemap, but what it held before the break is read.
    garbage = await poll(p, reg, site.url("/garbage.xml"))
    assert garbage.outcome == "new" and [e.url for e in sink.take()] == ["https://g.test/1"]
    assert (await reg.get(site.url("/cut.xml"))).state.consecutive_failures == 0  # type: ignore[union-attr]
