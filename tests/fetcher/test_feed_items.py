"""Per-item isolation in the feed parsers (issue 14, defect 8): one unusable item is skipped with a
warning that names the feed and the reason, and every other item of the feed still comes out."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from newsflow_fetcher.feedparse import parse_feed
from newsflow_fetcher.feedtypes import FeedParseError
from newsflow_shared.models import MediaItem

pytestmark = pytest.mark.unit

FEED_URL = "https://paper.test/rss"
BAD_URL = "http://[::1/x"  # an unterminated IPv6 literal: urllib raises ValueError on it


def rss(middle: str, ns: str = "") -> bytes:
    """An RSS 2.0 feed with two good items around `middle`."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {ns}><channel><title>Paper</title>'
        "<link>https://paper.test/</link>"
        "<item><title>Before</title><link>https://paper.test/before</link>"
        '<guid isPermaLink="false">before-1</guid></item>'
        f"{middle}"
        "<item><title>After</title><link>https://paper.test/after</link><guid>https://paper.test/after</guid></item>"
        "</channel></rss>"
    ).encode()


def json_feed(middle: str) -> bytes:
    return (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "Paper", "items": ['
        '{"id": "before-1", "url": "https://paper.test/before", "title": "Before"}, '
        f"{middle}, "
        '{"id": "after-1", "url": "https://paper.test/after", "title": "After"}]}'
    ).encode()


def skip_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and FEED_URL in r.getMessage()]


def test_item_whose_permalink_guid_is_an_invalid_ipv6_url_is_skipped_alone(caplog: Any) -> None:
    """The defect as reported: `parse_feed` raised ValueError and the poller lost the whole feed."""
    body = rss(f'<item><title>Broken</title><guid isPermaLink="true">{BAD_URL}</guid></item>')
    with caplog.at_level(logging.WARNING):
        feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [(e.title, e.link) for e in feed.entries] == [
        ("Before", "https://paper.test/before"),
        ("After", "https://paper.test/after"),
    ]
    assert any(BAD_URL in w for w in feed.warnings)
    (record,) = skip_records(caplog)
    assert BAD_URL in record.getMessage() and "IPv6" in record.getMessage()


def test_a_bad_guid_does_not_cost_an_item_that_has_a_good_link() -> None:
    body = rss(
        f'<item><title>Kept</title><link>https://paper.test/kept</link><guid isPermaLink="true">{BAD_URL}</guid></item>'
    )
    feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.link for e in feed.entries] == [
        "https://paper.test/before",
        "https://paper.test/kept",
        "https://paper.test/after",
    ]
    assert feed.entries[1].guid == BAD_URL  # as an identifier it is still what the feed said


@pytest.mark.parametrize(
    "link",
    [
        BAD_URL,
        "http://paper.test:99999/port",  # out-of-range port
        "javascript:alert(1)",
        "data:text/html,<b>hi</b>",
        "mailto:desk@paper.test",
        "https://:443/no-host",
    ],
)
def test_items_whose_link_cannot_become_an_article_url_are_skipped_with_a_warning(link: str, caplog: Any) -> None:
    from xml.sax.saxutils import escape

    body = rss(f"<item><title>Broken</title><link>{escape(link)}</link></item>")
    with caplog.at_level(logging.WARNING):
        feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.link for e in feed.entries] == ["https://paper.test/before", "https://paper.test/after"]
    assert len(skip_records(caplog)) == 1


def test_relative_and_protocol_relative_links_are_kept() -> None:
    body = rss(
        "<item><title>Rel</title><link>/news/rel</link></item>"
        "<item><title>Proto</title><link>//cdn.paper.test/news/proto</link></item>"
    )
    feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.link for e in feed.entries] == [
        "https://paper.test/before",
        "https://paper.test/news/rel",
        "https://cdn.paper.test/news/proto",
        "https://paper.test/after",
    ]


MEDIA_NS = 'xmlns:media="http://search.yahoo.com/mrss/"'


@pytest.mark.parametrize(
    "media",
    [
        f'<media:content url="{BAD_URL}" medium="image"/>',
        f'<media:thumbnail url="{BAD_URL}"/>',
        f'<media:group><media:content url="{BAD_URL}"/></media:group>',
        f'<enclosure url="{BAD_URL}" type="image/jpeg" length="1"/>',
        '<media:content url="javascript:alert(1)"/>',
        '<media:content url="data:image/png;base64,iVBORw0KGgo="/>',
    ],
)
def test_an_unusable_media_url_drops_that_media_item_only(media: str) -> None:
    """The poller resolved every media URL with urljoin outside its per-entry guard, so one of these
    took the whole feed down as an internal error."""
    good = '<media:content url="/img/ok.jpg" medium="image"><media:description>Ok</media:description></media:content>'
    body = rss(f"<item><title>Pictured</title><link>https://paper.test/pic</link>{media}{good}</item>", MEDIA_NS)
    feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.link for e in feed.entries] == [
        "https://paper.test/before",
        "https://paper.test/pic",
        "https://paper.test/after",
    ]
    assert [(m.url, m.caption) for m in feed.entries[1].media] == [("https://paper.test/img/ok.jpg", "Ok")]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("&#xD800;", "\ufffd"),  # a lone surrogate
        ("&#56320;", "\ufffd"),
        ("&#xD83D;&#xDE00;", "\U0001f600"),  # an emoji written as its UTF-16 pair, as some CMSes do
        ("&#x110000;", "\ufffd"),  # beyond Unicode
        ("&#99999999999999999999;", "\ufffd"),
    ],
)
def test_invalid_character_references_in_one_item_do_not_lose_the_feed(ref: str, expected: str) -> None:
    """feedparser's fallback parser raised UnicodeEncodeError / ValueError on these (from `chr()`),
    which made the whole document unreadable."""
    body = rss(f"<item><title>Smile {ref}</title><link>https://paper.test/smile</link></item>")
    feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.title for e in feed.entries] == ["Before", f"Smile {expected}", "After"]


def test_duplicate_guids_do_not_swap_media_between_items() -> None:
    body = rss(
        '<item><title>One</title><link>https://paper.test/1</link><guid isPermaLink="false">same</guid>'
        '<media:content url="https://paper.test/1.jpg"/></item>'
        '<item><title>Two</title><link>https://paper.test/2</link><guid isPermaLink="false">same</guid>'
        '<media:content url="https://paper.test/2.jpg"/></item>',
        MEDIA_NS,
    )
    feed = parse_feed(body, "application/rss+xml", FEED_URL)
    media = {e.link: [m.url for m in e.media] for e in feed.entries}
    assert media["https://paper.test/1"] == ["https://paper.test/1.jpg"]
    assert media["https://paper.test/2"] == ["https://paper.test/2.jpg"]


def test_publisher_hints_are_finite() -> None:
    body = rss("").replace(b"<channel>", b"<channel><ttl>1e400</ttl>")
    assert parse_feed(body, "application/rss+xml", FEED_URL).ttl_s is None


# --- JSON Feed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        f'{{"id": "x", "url": "{BAD_URL}"}}',
        f'{{"id": "{BAD_URL}"}}',
        '{"id": "x", "url": "javascript:alert(1)"}',
        '{"id": "x", "url": "http://paper.test:70000/x"}',
        '{"id": "x", "url": ["https://paper.test/in-a-list"]}',
        '"not an object"',
    ],
)
def test_json_feed_item_without_a_usable_url_is_skipped_with_a_warning(item: str, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING):
        feed = parse_feed(json_feed(item), "application/feed+json", FEED_URL)
    assert [e.link for e in feed.entries] == ["https://paper.test/before", "https://paper.test/after"]
    assert len(skip_records(caplog)) == 1


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ('"tags": 5', lambda e: e.tags == []),  # TypeError: 'int' object is not iterable
        ('"tags": "politics"', lambda e: e.tags == ["politics"]),  # one tag, not a list of characters
        ('"title": "Smile \\ud83d\\ude00"', lambda e: e.title == "Smile \U0001f600"),
        ('"title": "lone \\ud800"', lambda e: e.title == "lone \ufffd"),
        ('"authors": [{"name": "\\udfff"}]', lambda e: e.authors == ["\ufffd"]),
        ('"image": "' + BAD_URL + '"', lambda e: e.media == []),
        ('"attachments": [{"url": "' + BAD_URL + '"}, {"url": "/a.mp3"}]', lambda e: len(e.media) == 1),
        pytest.param('"views": ' + "9" * 5000, lambda e: e.title == "Mid", id="int-of-5000-digits"),  # ValueError
        ('"date_published": "9999-12-31T23:59:59-14:00"', lambda e: e.published is None),  # not in UTC range
        ('"date_published": "0001-01-01T00:00:00+14:00"', lambda e: e.published is None),
        ('"date_published": "2025-06-10T04:00:00+02:00"', lambda e: e.published.isoformat().endswith("+02:00")),
    ],
)
def test_json_feed_item_with_a_hostile_field_keeps_the_item(fields: str, check: Any) -> None:
    body = json_feed(f'{{"id": "mid", "url": "https://paper.test/mid", "title": "Mid", {fields}}}')
    feed = parse_feed(body, "application/feed+json", FEED_URL)
    assert [e.link for e in feed.entries] == [
        "https://paper.test/before",
        "https://paper.test/mid",
        "https://paper.test/after",
    ]
    assert check(feed.entries[1])
    for e in feed.entries:  # everything in an entry must be serialisable into a stream message
        json.dumps([e.link, e.guid, e.title, e.summary, e.authors, e.tags, e.language]).encode()
        for m in e.media:
            MediaItem.model_validate(m.model_dump()).model_dump_json()


def test_json_nested_too_deep_is_a_feed_error_not_a_recursion_error() -> None:
    body = json_feed('{"url": "https://paper.test/deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FeedParseError):
        parse_feed(body, "application/feed+json", FEED_URL)


def test_rss_served_as_json_is_still_read() -> None:
    feed = parse_feed(rss(""), "application/json", FEED_URL)
    assert [e.link for e in feed.entries] == ["https://paper.test/before", "https://paper.test/after"]


# --- what no rule foresaw ---------------------------------------------------------------------------


def test_an_unforeseen_failure_in_items_costs_those_items_and_logs_one_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Stands in for a bug not found yet: a date conversion that raises for some items."""
    from newsflow_fetcher import feedparse

    real_dt = feedparse._dt

    def broken_dt(t: Any) -> Any:
        if t and t.tm_year == 2001:
            raise RuntimeError("a bug in date handling")
        return real_dt(t)

    monkeypatch.setattr(feedparse, "_dt", broken_dt)
    bad = (
        "<item><title>Odd {n}</title><link>https://paper.test/odd-{n}</link>"
        "<pubDate>Mon, 01 Jan 2001 00:00:00 GMT</pubDate></item>"
    )
    body = rss(bad.format(n=1) + bad.format(n=2))
    with caplog.at_level(logging.WARNING):
        feed = parse_feed(body, "application/rss+xml", FEED_URL)
    assert [e.link for e in feed.entries] == ["https://paper.test/before", "https://paper.test/after"]
    assert feed.skipped == 2 and any("RuntimeError: a bug in date handling" in w for w in feed.warnings)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and FEED_URL in tracebacks[0].getMessage()
    assert len(skip_records(caplog)) == 2  # the traceback and the feed's one summary line


def test_an_unforeseen_failure_in_a_json_feed_item_costs_that_item(monkeypatch: pytest.MonkeyPatch) -> None:
    from newsflow_fetcher import jsonfeed

    real_parse_date = jsonfeed.parse_date

    def broken_parse_date(v: Any) -> Any:
        if v == "2001-01-01T00:00:00Z":
            raise RuntimeError("a bug in date handling")
        return real_parse_date(v)

    monkeypatch.setattr(jsonfeed, "parse_date", broken_parse_date)
    body = json_feed('{"id": "odd", "url": "https://paper.test/odd", "date_published": "2001-01-01T00:00:00Z"}')
    feed = parse_feed(body, "application/feed+json", FEED_URL)
    assert [e.link for e in feed.entries] == ["https://paper.test/before", "https://paper.test/after"]
    assert feed.skipped == 1


def test_the_quick_test_for_bad_references_misses_none() -> None:
    """fix_char_refs skips documents its quick regex finds clean: it must flag every reference that
    the rewrite would change, in every spelling (hex, decimal, leading zeros)."""
    from newsflow_fetcher.feedparse import _SUSPECT_REF, _fix_ref_run

    points = [*range(0, 0x11_0010, 97), *range(0xD7F0, 0xE010), 0x10FFFF, 0x110000, 10**9, 10**25]
    changed = 0
    for cp in points:
        for ref in (f"&#x{cp:X};", f"&#x{cp:08x};", f"&#{cp};", f"&#000{cp};"):
            if _fix_ref_run(ref) != ref:
                changed += 1
                assert _SUSPECT_REF.search(ref.encode()), ref
    assert changed > 2000  # the surrogates and beyond-Unicode values above, in four spellings
