"""Feed polling against real Redis and a local HTTP server: formats, conditional GET, lying
validators, errors and health, dedup across feeds."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from fetcher_helpers import Sink, WebServer, fetcher_settings, poll, rss, wait_for

from newsflow_feeds.registry import FeedRegistry
from newsflow_fetcher import poller as poller_mod
from newsflow_fetcher.poller import Poller
from newsflow_http.httpclient import HttpClient
from newsflow_shared import streams
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import DATA_FIELD
from newsflow_shared.urls import canonicalize

pytestmark = pytest.mark.integration


@pytest.fixture
async def rig(redis: Any, redis_url: str) -> AsyncIterator[tuple[Poller, Sink, FeedRegistry]]:
    settings = fetcher_settings(redis_url, validator_check_every=3, unhealthy_after_failures=3)
    http = HttpClient(settings)
    sink = Sink(redis)
    p = Poller(redis, http, settings, sink)
    try:
        yield p, sink, FeedRegistry(redis)
    finally:
        await http.aclose()


RSS_MEDIA = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Harbour News</title><link>http://harbour.test/</link><ttl>20</ttl>
<item>
  <title>Ferry returns to service</title>
  <link>/news/ferry?utm_source=rss&amp;id=7#top</link>
  <guid isPermaLink="false">ferry-7</guid>
  <description>The ferry is back.</description>
  <dc:creator>Ana Ruiz</dc:creator>
  <category>Transport</category><category>Local</category>
  <pubDate>Tue, 03 Jun 2025 08:30:00 GMT</pubDate>
  <media:content url="/img/ferry.jpg" medium="image" width="1200" height="800">
    <media:description>The ferry leaving the north pier at dawn.</media:description>
    <media:credit role="photographer">Lena Ortiz</media:credit>
  </media:content>
  <media:thumbnail url="http://harbour.test/img/ferry-small.jpg" width="120" height="80"/>
</item>
<item>
  <title>Podcast: the tide tables</title>
  <link>http://harbour.test/news/tides</link>
  <enclosure url="http://harbour.test/audio/tides.mp3" type="audio/mpeg" length="12345"/>
</item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
  <title>Bergblatt</title><id>urn:bergblatt</id><updated>2025-06-03T10:00:00Z</updated>
  <author><name>Redaktion</name></author>
  <entry>
    <title>Neue Seilbahn eröffnet</title>
    <link rel="alternate" href="https://bergblatt.test/artikel/seilbahn?fbclid=abc"/>
    <id>urn:bergblatt:1</id>
    <updated>2025-06-03T09:00:00Z</updated><published>2025-06-03T07:15:00+02:00</published>
    <summary>Die Bahn fährt wieder.</summary>
    <category term="Tourismus"/>
    <link rel="enclosure" href="https://bergblatt.test/bild.jpg" type="image/jpeg"/>
  </entry>
</feed>"""

JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Delta Daily",
    "home_page_url": "https://delta.test/",
    "language": "en",
    "items": [
        {
            "id": "d-1",
            "url": "https://delta.test/a/1?gclid=zz&page=2",
            "title": "Levee inspection finds cracks",
            "summary": "Inspectors found cracks.",
            "date_published": "2025-06-01T12:00:00Z",
            "authors": [{"name": "Sam Lee"}],
            "tags": ["flood", "infrastructure"],
            "image": "https://delta.test/levee.jpg",
            "attachments": [
                {"url": "https://delta.test/report.pdf", "mime_type": "application/pdf", "title": "Inspection report"}
            ],
        },
        {"id": "no-link", "title": "An item without any URL"},
    ],
}


async def test_rss_with_media_rss_and_enclosure(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    site.static("/rss", RSS_MEDIA, "application/rss+xml")
    await reg.add(site.url("/rss"))
    result = await poll(p, reg, site.url("/rss"))
    assert result.outcome == "new" and result.new_entries == 2
    ferry, tides = sink.entries
    assert ferry.url == f"http://127.0.0.1:{site.port}/news/ferry?id=7"
    assert ferry.link.endswith("/news/ferry?utm_source=rss&id=7#top")
    assert ferry.title == "Ferry returns to service"
    assert ferry.summary == "The ferry is back."
    assert ferry.authors == ["Ana Ruiz"]
    assert ferry.tags == ["Transport", "Local"]
    assert ferry.published_at is not None and ferry.published_at.isoformat() == "2025-06-03T08:30:00+00:00"
    assert ferry.feed_title == "Harbour News"
    image = next(m for m in ferry.media if not m.thumbnail)
    assert image.url == f"http://127.0.0.1:{site.port}/img/ferry.jpg"
    assert image.caption == "The ferry leaving the north pier at dawn."
    assert image.credit == "Lena Ortiz"
    assert (image.width, image.height) == (1200, 800)
    assert any(m.thumbnail and m.url.endswith("ferry-small.jpg") for m in ferry.media)
    assert [(m.url, m.mime_type, m.medium) for m in tides.media] == [
        ("http://harbour.test/audio/tides.mp3", "audio/mpeg", "audio")
    ]
    # <ttl>20</ttl> (minutes) is a floor on the interval, capped by our max (8 s in the tests)
    info = await reg.get(site.url("/rss"))
    assert info is not None and info.state.current_interval_s == pytest.approx(8.0)
    assert info.state.items_seen == 2 and info.state.last_success_at is not None
    assert await redis_entries(p.redis) == 2


async def redis_entries(redis: Any) -> int:
    return int(await redis.xlen(streams.ENTRIES))


async def test_atom_feed(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    site.static("/atom", ATOM, "application/atom+xml")
    await reg.add(site.url("/atom"))
    result = await poll(p, reg, site.url("/atom"))
    assert result.new_entries == 1
    (e,) = sink.entries
    assert e.url == "https://bergblatt.test/artikel/seilbahn"
    assert e.title == "Neue Seilbahn eröffnet"
    assert e.language == "de"
    assert e.authors == ["Redaktion"]
    assert e.tags == ["Tourismus"]
    assert e.published_at is not None and e.published_at.isoformat() == "2025-06-03T05:15:00+00:00"
    assert [m.url for m in e.media] == ["https://bergblatt.test/bild.jpg"]


async def test_json_feed(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    site.static("/feed.json", json.dumps(JSON_FEED), "application/feed+json")
    await reg.add(site.url("/feed.json"))
    result = await poll(p, reg, site.url("/feed.json"))
    assert result.new_entries == 1  # the item without a URL is skipped
    (e,) = sink.entries
    assert e.url == "https://delta.test/a/1?page=2"
    assert e.guid == "d-1"
    assert e.authors == ["Sam Lee"] and e.tags == ["flood", "infrastructure"] and e.language == "en"
    assert {(m.url, m.caption) for m in e.media} == {
        ("https://delta.test/levee.jpg", None),
        ("https://delta.test/report.pdf", "Inspection report"),
    }
    info = await reg.get(site.url("/feed.json"))
    assert info is not None and info.state.format == "json"


async def test_malformed_feed_yields_usable_entries(site: WebServer, rig: Any, caplog: Any) -> None:
    p, sink, reg = rig
    broken = rss([("http://x.test/a", "Fish & Chips"), ("http://x.test/b", "Second <b>bold")])
    site.static("/broken", broken, "application/rss+xml")
    await reg.add(site.url("/broken"))
    with caplog.at_level(logging.WARNING, logger="newsflow.fetcher.poller"):
        result = await poll(p, reg, site.url("/broken"))
    assert result.outcome == "new"
    assert {e.url for e in sink.entries} >= {"http://x.test/a"}
    assert any("malformed" in r.getMessage() for r in caplog.records)


async def test_feed_without_usable_entries_fails_alone(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    site.static("/not-a-feed", "<html><body>Sorry, moved</body></html>", "text/html")
    site.static("/good", rss([("http://y.test/1", "One")]), "application/rss+xml")
    await reg.add(site.url("/not-a-feed"))
    await reg.add(site.url("/good"))
    bad = await poll(p, reg, site.url("/not-a-feed"))
    good = await poll(p, reg, site.url("/good"))
    assert bad.outcome == "error" and bad.error and bad.error.startswith("parse-error")
    assert good.outcome == "new" and [e.url for e in sink.entries] == ["http://y.test/1"]
    info = await reg.get(site.url("/not-a-feed"))
    assert info is not None and info.state.consecutive_failures == 1


async def test_304_costs_no_parse_and_no_entry(site: WebServer, rig: Any, monkeypatch: Any) -> None:
    p, sink, reg = rig
    site.etagged("/cond", '"v1"', rss([("http://z.test/1", "One")]))
    await reg.add(site.url("/cond"))
    first = await poll(p, reg, site.url("/cond"))
    assert first.outcome == "new"

    parses: list[bytes] = []
    real_parse = poller_mod.parse_feed

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        parses.append(args[0])
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(poller_mod, "parse_feed", counting_parse)
    second = await poll(p, reg, site.url("/cond"))
    assert second.outcome == "not_modified" and second.status == 304
    assert parses == [] and len(sink.entries) == 1
    assert site.hits_for("/cond")[-1].headers.get("If-None-Match") == '"v1"'
    info = await reg.get(site.url("/cond"))
    assert info is not None and info.state.not_modified == 1 and info.state.validators_trusted


async def test_lying_etag_is_detected(site: WebServer, rig: Any) -> None:
    """The server keeps one ETag and answers 304 to it while its content changes."""
    p, _sink, reg = rig
    state = {"items": [("http://news.test/1", "One")]}
    site.etagged("/liar", '"forever"', lambda: rss(state["items"]))
    await reg.add(site.url("/liar"))
    assert (await poll(p, reg, site.url("/liar"))).outcome == "new"
    state["items"] = [("http://news.test/2", "Two"), *state["items"]]
    # validator_check_every=3: two conditional polls are believed, the third goes without validators
    r2 = await poll(p, reg, site.url("/liar"))
    r3 = await poll(p, reg, site.url("/liar"))
    assert (r2.outcome, r3.outcome) == ("not_modified", "not_modified")
    r4 = await poll(p, reg, site.url("/liar"))
    assert r4.lying_validators and r4.outcome == "new" and r4.entry_urls == ["http://news.test/2"]
    info = await reg.get(site.url("/liar"))
    assert info is not None and not info.state.validators_trusted and info.state.etag is None
    # From now on no validators are sent, so the next change is seen at the next poll.
    state["items"] = [("http://news.test/3", "Three"), *state["items"]]
    r5 = await poll(p, reg, site.url("/liar"))
    assert r5.entry_urls == ["http://news.test/3"]
    assert "If-None-Match" not in site.hits_for("/liar")[-1].headers


async def test_honest_server_keeps_trust_and_unchanged_body_is_not_parsed(site: WebServer, rig: Any) -> None:
    p, _sink, reg = rig
    site.etagged("/honest", '"h1"', rss([("http://h.test/1", "One")]))
    await reg.add(site.url("/honest"))
    outcomes = [(await poll(p, reg, site.url("/honest"))).outcome for _ in range(4)]
    # poll 4 is the verification poll: same ETag, same bytes -> unchanged, trust kept
    assert outcomes == ["new", "not_modified", "not_modified", "unchanged"]
    info = await reg.get(site.url("/honest"))
    assert info is not None and info.state.validators_trusted


async def test_errors_back_off_mark_unhealthy_and_keep_retrying(site: WebServer, rig: Any, redis: Any) -> None:
    p, _sink, reg = rig

    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="down", headers={"Retry-After": "3"})

    site.routes["/down"] = broken
    await reg.add(site.url("/down"))
    delays = []
    for _ in range(4):
        r = await poll(p, reg, site.url("/down"))
        assert r.outcome == "error" and r.error and r.error.startswith("http-503")
        info = await reg.get(site.url("/down"))
        assert info is not None and info.due_at is not None
        delays.append(info.due_at - info.state.last_polled_at)
    # min 1 s doubling (1, 2, 4, 8 capped at 8), never below Retry-After (3 s)
    assert delays == pytest.approx([3, 3, 4, 8], abs=0.05)
    info = await reg.get(site.url("/down"))
    assert info is not None and info.state.unhealthy and info.state.consecutive_failures == 4
    assert await redis.sismember(streams.FEEDS_UNHEALTHY_KEY, canonicalize(site.url("/down")))
    # Recovery clears the flag.
    site.static("/down", rss([("http://r.test/1", "Back")]), "application/rss+xml")
    r = await poll(p, reg, site.url("/down"))
    assert r.outcome == "new"
    info = await reg.get(site.url("/down"))
    assert info is not None and not info.state.unhealthy and info.state.consecutive_failures == 0
    assert not await redis.sismember(streams.FEEDS_UNHEALTHY_KEY, canonicalize(site.url("/down")))


async def test_adaptive_interval_shrinks_with_news_and_grows_without(site: WebServer, rig: Any) -> None:
    p, _sink, reg = rig
    items = [("http://a.test/0", "Zero")]

    async def feed(request: web.Request) -> web.StreamResponse:
        return web.Response(text=rss(items), content_type="application/rss+xml")

    site.routes["/adaptive"] = feed
    await reg.add(site.url("/adaptive"))
    intervals = []
    for i in range(5):
        if i == 3:
            items.insert(0, (f"http://a.test/{i}", "New"))
        else:
            # same items but a changed body, so it is parsed and found to hold nothing new
            items[-1] = (items[-1][0], f"Zero v{i}")
        await poll(p, reg, site.url("/adaptive"))
        info = await reg.get(site.url("/adaptive"))
        assert info is not None
        intervals.append(info.state.current_interval_s)
    # min 1 s, max 8 s: new -> halve, nothing new -> x1.5
    assert intervals == pytest.approx([1.0, 1.5, 2.25, 1.125, 1.6875])


async def test_same_article_in_three_feeds_is_published_once(site: WebServer, rig: Any) -> None:
    p, sink, reg = rig
    base = "https://paper.test/story/42"
    site.static("/f1", rss([(base + "?utm_source=feed1&utm_medium=rss", "Story")]), "application/rss+xml")
    site.static("/f2", rss([(base + "?fbclid=XYZ#comments", "Story")]), "application/rss+xml")
    site.static("/f3", rss([("HTTPS://Paper.test:443/story/42?mc_cid=1&mc_eid=2", "Story")]), "application/rss+xml")
    for f in ("/f1", "/f2", "/f3"):
        await reg.add(site.url(f))
    results = [await poll(p, reg, site.url(f)) for f in ("/f1", "/f2", "/f3")]
    assert [r.new_entries for r in results] == [1, 0, 0]
    assert [r.duplicates for r in results] == [0, 1, 1]
    assert [e.url for e in sink.entries] == [base]


async def test_feed_of_a_dead_poller_is_taken_over_after_its_lease(site: WebServer, rig: Any, redis: Any) -> None:
    p, sink, reg = rig
    site.static("/orphan", rss([("http://o.test/1", "One")]), "application/rss+xml")
    await reg.add(site.url("/orphan"))
    url = canonicalize(site.url("/orphan"))
    # Another replica claims the feed and dies without completing it.
    assert await reg.claim_due(10, 1.0, "dead-replica") == [url]
    assert await reg.claim_due(10, 15, p.token) == []  # leased: nobody else may take it
    stopping = asyncio.Event()
    runner = asyncio.create_task(p.run(stopping))
    try:

        async def polled() -> bool:
            info = await reg.get(url)
            return info is not None and info.state.polls == 1

        assert await wait_for(polled, 10)
    finally:
        stopping.set()
        await asyncio.wait_for(runner, 10)
    assert site.count("/orphan") == 1 and [e.url for e in sink.entries] == ["http://o.test/1"]
    # The dead replica's late completion is refused: its token no longer holds the lease.
    info = await reg.get(url)
    assert info is not None
    assert await reg.complete(url, "dead-replica", info.state, 0) == 0


async def test_removed_while_polling_is_not_rescheduled(site: WebServer, rig: Any, redis: Any) -> None:
    p, _sink, reg = rig
    site.static("/gone", rss([("http://g.test/1", "One")]), "application/rss+xml")
    await reg.add(site.url("/gone"))
    url = canonicalize(site.url("/gone"))
    assert await reg.claim_due(10, 15, p.token) == [url]
    _cfg, state = await reg.load(url)
    await reg.remove(url)
    assert await reg.complete(url, p.token, state, 0) == -1
    assert await redis.zscore(streams.FEEDS_DUE_KEY, url) is None
    assert await reg.get(url) is None


async def test_entry_claimed_by_a_poller_that_died_is_published_by_the_next(
    site: WebServer, redis: Any, redis_url: str
) -> None:
    settings = fetcher_settings(redis_url, feed_lease_s=2.0)
    site.static("/crash", rss([("http://c.test/story", "Story")]), "application/rss+xml")
    async with HttpClient(settings) as http:
        dead = Poller(redis, http, settings, Sink(redis))
        live_sink = Sink(redis)
        live = Poller(redis, http, settings, live_sink)
        await live.registry.add(site.url("/crash"))
        url = canonicalize(site.url("/crash"))
        # The first replica claims the feed and the article, then dies before publishing.
        assert await dead.registry.claim_due(10, settings.feed_lease_s, dead.token) == [url]
        assert await dead.seen.claim_many(["http://c.test/story"]) == [True]
        stopping = asyncio.Event()
        runner = asyncio.create_task(live.run(stopping))
        try:

            async def published() -> bool:
                return bool(live_sink.entries)

            assert await wait_for(published, 10)
        finally:
            stopping.set()
            await asyncio.wait_for(runner, 10)
    assert [e.url for e in live_sink.entries] == ["http://c.test/story"]
    assert await live.seen.is_seen("http://c.test/story")


async def test_registry_reads_through_a_decoding_client(redis: Any, redis_url: str) -> None:
    """`newsflow status` reads the registry with decode_responses=True; both kinds of client work."""
    import redis.asyncio as aioredis

    await FeedRegistry(redis).add("https://dec.test/rss", interval=120)
    text_client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        reg = FeedRegistry(text_client)
        (info,) = await reg.list()
        assert info.url == "https://dec.test/rss" and info.config.interval_s == 120 and info.due_at
        assert await reg.claim_due(5, 10, "tok") == ["https://dec.test/rss"]
    finally:
        await text_client.aclose()


async def test_unexpected_parser_failure_counts_against_the_feed(site: WebServer, rig: Any, monkeypatch: Any) -> None:
    p, _sink, reg = rig
    site.static("/boom", rss([("http://b.test/1", "One")]), "application/rss+xml")
    await reg.add(site.url("/boom"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(poller_mod, "parse_feed", broken)
    r = await poll(p, reg, site.url("/boom"))
    assert r.outcome == "error" and r.error == "internal-error: RuntimeError: parser bug"
    info = await reg.get(site.url("/boom"))
    assert info is not None and info.state.consecutive_failures == 1 and info.due_at is not None


async def test_entry_pending_in_a_dead_poller_is_not_hidden_behind_a_304(site: WebServer, rig: Any, redis: Any) -> None:
    """Another poller claimed an article and died: this feed must not be marked read (validators, hash),
    or an honest 304 would hide the article until the next verification poll."""
    from newsflow_fetcher.seen import seen_key

    p, sink, reg = rig
    site.etagged("/dead-claim", '"d1"', rss([("http://d.test/new", "New"), ("http://d.test/old", "Old")]))
    await reg.add(site.url("/dead-claim"))
    await redis.set(seen_key("http://d.test/new"), b"pending:a-poller-that-died", px=60_000)
    r1 = await poll(p, reg, site.url("/dead-claim"))
    assert r1.entry_urls == ["http://d.test/old"] and r1.deferred == 1
    info = await reg.get(site.url("/dead-claim"))
    assert info is not None and info.state.etag is None and info.state.content_hash is None
    # The dead poller's mark runs out; the next poll reads the feed in full and publishes the article.
    await redis.delete(seen_key("http://d.test/new"))
    r2 = await poll(p, reg, site.url("/dead-claim"))
    assert "If-None-Match" not in site.hits_for("/dead-claim")[-1].headers
    assert r2.entry_urls == ["http://d.test/new"] and r2.deferred == 0
    assert [e.url for e in sink.entries] == ["http://d.test/old", "http://d.test/new"]
    # Now it is read: validators are stored and the next poll is a cheap 304.
    assert (await poll(p, reg, site.url("/dead-claim"))).outcome == "not_modified"


BAD_ITEMS_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Mixed</title>
<link>http://mixed.test/</link>
<item><title>First</title><link>http://mixed.test/1</link><guid isPermaLink="false">m-1</guid></item>
<item><title>Broken guid</title><guid isPermaLink="true">http://[::1/x</guid></item>
<item><title>Broken picture</title><link>http://mixed.test/2</link>
  <media:content url="http://[::1/x"/><media:content url="http://mixed.test/2.jpg"/></item>
<item><title>Broken character</title><link>http://mixed.test/3</link><description>&#xD800;</description></item>
<item><title>Last</title><link>http://mixed.test/4</link></item>
</channel></rss>"""


async def test_unusable_items_are_skipped_and_the_rest_of_their_feed_published(
    site: WebServer, rig: Any, redis: Any, caplog: Any
) -> None:
    """Issue 14, defect 8: one item with a permalink guid that is no URL made every poll of its feed an
    internal error, so none of its articles was ever published."""
    p, _sink, reg = rig
    site.static("/mixed", BAD_ITEMS_RSS, "application/rss+xml")
    await reg.add(site.url("/mixed"))
    with caplog.at_level(logging.WARNING):
        result = await poll(p, reg, site.url("/mixed"))
    assert result.outcome == "new" and result.error is None
    published = [
        FeedEntry.model_validate_json(fields[DATA_FIELD]) for _id, fields in await redis.xrange(streams.ENTRIES)
    ]
    assert [e.url for e in published] == [f"http://mixed.test/{n}" for n in (1, 2, 3, 4)]
    assert [m.url for m in published[1].media] == ["http://mixed.test/2.jpg"]
    info = await reg.get(site.url("/mixed"))
    assert info is not None
    assert info.state.consecutive_failures == 0 and info.state.last_error is None and not info.state.unhealthy
    assert info.state.items_seen == 4
    feed_url = canonicalize(site.url("/mixed"))
    assert any(feed_url in r.getMessage() and "[::1/x" in r.getMessage() for r in caplog.records)
