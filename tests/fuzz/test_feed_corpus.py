"""The feed parser over a corpus of real-world-shaped and malformed feeds (tests/fixtures/feeds, all
written for this project): nothing but FeedParseError escapes, every good item survives, every item
that cannot be an article is skipped, and whatever comes out gets through the poller's steps."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from feed_checks import publish_all

from newsflow_fetcher.feedparse import parse_feed
from newsflow_fetcher.feedtypes import FeedParseError, ParsedFeed

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
SITE = "https://corpus.test"


def ok(*paths: str) -> frozenset[str]:
    return frozenset(p if p.startswith("http") else f"{SITE}/ok/{p}" for p in paths)


@dataclass(frozen=True)
class Expect:
    urls: frozenset[str] = frozenset()  # exactly the canonical article URLs that come out
    error: bool = False  # the document as a whole is a FeedParseError
    content_type: str = ""
    media: dict[str, list[str]] | None = None  # canonical URL -> its media URLs, in order
    check: Callable[[ParsedFeed], bool] | None = None


def titled(**by_path: str) -> Callable[[ParsedFeed], bool]:
    def check(feed: ParsedFeed) -> bool:
        titles = {e.link.rsplit("/", 1)[-1]: e.title for e in feed.entries}
        return all(titles.get(path) == title for path, title in by_path.items())

    return check


EXPECTED: dict[str, Expect] = {
    "rss2-bad-ipv6-guid.xml": Expect(ok("tides", "kept-despite-guid", "ferry")),
    "rss2-links.xml": Expect(
        ok(
            "relative",
            f"{SITE}/feeds/ok/no-slash",
            "https://cdn.corpus.test/ok/protocol-relative",
            "padded",
            "shouting",
            "caf%C3%A9%20menu",
            "tracked?id=3",
            "guid-permalink",
            "https://xn--bcher-kva.corpus.test/ok/punycode",
            "last",
        )
    ),
    "rss2-dates.xml": Expect(
        ok(
            "rfc822",
            "yy",
            "iso",
            "huge-year",
            "edge-year",
            "year-one",
            "negative",
            "epoch",
            "huge-epoch",
            "feb30",
            "hour99",
            "offset",
            "garbled",
            "empty-date",
            "space-date",
            "localised",
            "korean",
            "greek",
            "hungarian",
            "w3dtf",
            "perl",
            "digits",
        ),
        check=lambda f: (
            f.entries[0].published is not None and f.entries[0].published.isoformat().startswith("2025-06-10T04")
        ),
    ),
    "rss2-entities.xml": Expect(
        ok(
            "cdata",
            "double",
            "html-entities",
            "undefined-entity",
            "lone-surrogate",
            "pair",
            "beyond",
            "control-refs",
            "in-link%EF%BF%BD",
            "bare-amp?a=1&b=2",
            "bare-lt",
            "last",
        ),
        check=titled(pair="Emoji as a UTF-16 pair \U0001f600", **{"lone-surrogate": "Lone surrogate \ufffd here"}),
    ),
    "rss2-control-chars.xml": Expect(ok("control", "escape", "nul", "after-control")),
    "rss2-namespaces.xml": Expect(
        ok("media-no-slash", "media-https", "undeclared", "atom-link-only"),
        media={f"{SITE}/ok/media-no-slash": [f"{SITE}/img/a.jpg"]},
    ),
    "rss10-rdf.xml": Expect(ok("rdf-1", "rdf-3")),
    "atom-xml-base.xml": Expect(
        ok(
            f"{SITE}/news/ok/base-feed",
            "https://other.corpus.test/ok/base-entry",
            f"{SITE}/news/ok/broken-base",  # an xml:base that is no URL is ignored: the feed's base applies
            "alternate-last",
            "id-only",
            "xhtml-title",
        ),
        # The enclosure is relative to its entry's xml:base, not to the feed's URL.
        media={"https://other.corpus.test/ok/base-entry": ["https://other.corpus.test/section/img/photo.jpg"]},
    ),
    "atom03.xml": Expect(ok("atom03")),
    "atom-truncated.xml": Expect(ok("atom-whole")),
    "rss2-truncated.xml": Expect(ok("complete-1", "complete-2", "half")),
    "rss2-duplicates.xml": Expect(
        ok("dup-1", "dup-2", "dup-3", "dup-4", "dup-5"),
        media={f"{SITE}/ok/dup-1": [f"{SITE}/img/dup-1.jpg"], f"{SITE}/ok/dup-2": [f"{SITE}/img/dup-2.jpg"]},
    ),
    "rss2-media.xml": Expect(
        ok("sizes", "bad-media", "mime", "caption"),
        media={
            f"{SITE}/ok/sizes": [f"{SITE}/img/{n}.jpg" for n in (1, 2, 3)] + [f"{SITE}/img/relative-thumb.jpg"],
            f"{SITE}/ok/bad-media": [f"{SITE}/img/group-ok.jpg"],
            f"{SITE}/ok/mime": [f"{SITE}/a.bin", f"{SITE}/b.bin", f"{SITE}/c.bin"],
        },
    ),
    "rss2-structure.xml": Expect(
        ok("before-channel", "outer", "inner", "first-link", "nested-title", "second-channel")
    ),
    "rss2-entity-bomb.xml": Expect(
        ok("bomb", "external-entity", "after-bomb"),
        check=lambda f: all("root:" not in (e.title or "") and len(e.title or "") <= 1000 for e in f.entries),
    ),
    "rss091-doctype.xml": Expect(ok("rss091"), check=titled(rss091="Café & crème")),
    "rss2-bom.xml": Expect(ok("bom"), check=titled(bom="Café with a BOM")),
    "rss2-utf16.xml": Expect(ok("utf16"), check=titled(utf16="Café in UTF-16")),
    "rss2-declared-utf8-is-latin1.xml": Expect(ok("latin1-1", "latin1-2"), check=titled(**{"latin1-2": "Straße"})),
    "rss2-unknown-encoding.xml": Expect(ok("klingon")),
    "rss2-windows-1252.xml": Expect(ok("cp1252"), check=titled(cp1252="\u201cQuoted\u201d \u2013 dash \u20ac")),
    "jsonfeed-wrong-types.json": Expect(
        ok(
            "json-1",
            "float-id",
            "bool-id",
            "tags-string",
            "tags-dict",
            "dates",
            "date-min",
            "attachments",
            "big-number",
            "surrogates%EF%BF%BD",
            "https://\ufffd@corpus.test/ok/userinfo",
            "json-last",
        ),
        media={f"{SITE}/ok/attachments": [f"{SITE}/rel.mp3"]},
    ),
    "jsonfeed-1.0.json": Expect(
        ok("external", "id-is-url", "json-relative", "https://cdn.corpus.test/ok/json-protocol-relative")
    ),
    "jsonfeed-bom.json": Expect(ok("json-bom"), check=titled(**{"json-bom": "Café"})),
    "jsonfeed-latin1.json": Expect(ok("json-latin1"), check=titled(**{"json-latin1": "Café"})),
    "jsonfeed-truncated.json": Expect(error=True),
    "jsonfeed-not-a-feed.json": Expect(error=True),
    "not-a-feed.html": Expect(error=True, content_type="text/html"),
    "empty.xml": Expect(error=True),
}


def parse(body: bytes, name: str, content_type: str = "") -> tuple[ParsedFeed, list[Any], str]:
    """Parse as the poller does (with the feed's URL) and publish; anything but FeedParseError fails."""
    feed_url = f"{SITE}/feeds/{name}"
    parsed = parse_feed(body, content_type, feed_url)
    return parsed, publish_all(parsed, feed_url), feed_url


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_feed(name: str, caplog: Any) -> None:
    expect = EXPECTED[name]
    body = (CORPUS / name).read_bytes()
    if expect.error:
        with pytest.raises(FeedParseError):
            parse(body, name, expect.content_type)
        return
    with caplog.at_level(logging.WARNING):
        parsed, published, feed_url = parse(body, name, expect.content_type)
    assert {e.url for e in published} == expect.urls
    for url, media in (expect.media or {}).items():
        assert [m.url for m in next(e for e in published if e.url == url).media] == media
    if expect.check is not None:
        assert expect.check(parsed)
    # A skipped item is logged once per feed, with the feed's URL.
    skip_logs = [r for r in caplog.records if "skipped" in r.getMessage() and feed_url in r.getMessage()]
    assert len(skip_logs) == (1 if parsed.skipped else 0)


def test_ten_thousand_items_with_a_bad_one_in_every_hundred(caplog: Any) -> None:
    items = []
    for n in range(10_000):
        link = "http://[::1/x" if n % 100 == 50 else f"{SITE}/ok/item-{n}"
        items.append(f"<item><title>Item {n}</title><link>{link}</link><guid>{link}</guid></item>")
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Big</title><link>{SITE}/</link>'
        + "".join(items)
        + "</channel></rss>"
    ).encode()
    with caplog.at_level(logging.WARNING):
        parsed, published, _ = parse(body, "big.xml")
    assert len(published) == 9_900 and parsed.skipped == 100
    assert {e.url for e in published} == {f"{SITE}/ok/item-{n}" for n in range(10_000) if n % 100 != 50}
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert sum(len(w) for w in parsed.warnings) < 2000  # a few examples, not 100 reasons


def test_huge_fields_are_clipped_and_the_item_kept() -> None:
    huge = "word " * 200_000  # 1 MB
    tags = "".join(f"<category>tag {n}</category>" for n in range(5_000))
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Huge</title><link>{SITE}/</link>'
        f"<item><title>{huge}</title><description>{huge}</description><author>{huge}</author>{tags}"
        f"<link>{SITE}/ok/huge</link></item>"
        f"<item><title>Link too long</title><link>{SITE}/bad/{'x' * 5000}</link></item>"
        "</channel></rss>"
    ).encode()
    _parsed, published, _ = parse(body, "huge.xml")
    (entry,) = published
    assert entry.url == f"{SITE}/ok/huge"
    assert len(entry.title or "") <= 1000 and len(entry.summary or "") <= 10_000
    assert len(entry.tags) <= 50 and all(len(a) <= 300 for a in entry.authors)
    assert len(entry.model_dump_json()) < 100_000


def test_json_nested_too_deep_is_a_feed_error() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    body = (
        '{"version": "https://jsonfeed.org/version/1.1", "items": ['
        f'{{"id": "1", "url": "{SITE}/bad/deep", "x": {deep}}}]}}'
    ).encode()
    with pytest.raises(FeedParseError):
        parse(body, "deep.json", "application/feed+json")


def test_json_feed_of_ten_thousand_items() -> None:
    items = [{"id": str(n), "url": f"{SITE}/ok/j-{n}" if n % 100 else f"javascript:{n}"} for n in range(10_000)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    parsed, published, _ = parse(body, "big.json", "application/feed+json")
    assert len(published) == 9_900 and parsed.skipped == 100
