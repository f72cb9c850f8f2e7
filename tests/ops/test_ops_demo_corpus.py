"""The demo corpus: bundled articles, generated ones, and what the rendered pages and feeds contain."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import feedparser
import pytest
from lxml import html as lxml_html

from newsflow_devtools.demo import render
from newsflow_devtools.demo.corpus import (
    ALERT_PHRASE,
    ALERT_WORDS_RE,
    FEEDS,
    alert_articles,
    build_corpus,
    bundled_count,
)

pytestmark = pytest.mark.unit

BASE = datetime(2026, 3, 15, 12, tzinfo=UTC)
URL = "http://127.0.0.1:8765"


def test_bundled_corpus_has_thirty_articles_in_three_languages() -> None:
    corpus = build_corpus(bundled_count(), base_time=BASE)
    assert len(corpus) == 30
    langs = [a.lang for a in corpus]
    assert langs.count("ar") == 1 and langs.count("fr") == 1
    assert all(not a.generated for a in corpus)
    assert len({a.slug for a in corpus}) == 30


@pytest.mark.parametrize("n", [1, 30, 300, 2000])
def test_exactly_one_article_carries_the_alert_words(n: int) -> None:
    corpus = build_corpus(n, seed=7, base_time=BASE)
    hits = [a.slug for a in corpus if ALERT_WORDS_RE.search(a.all_text())]
    assert hits == ["dalmar-airport-militia-rift"]
    assert [a.slug for a in alert_articles(corpus)] == hits
    assert ALERT_PHRASE in corpus[0].body_text.lower()


def test_generated_articles_are_distinct_and_deterministic() -> None:
    a = build_corpus(1000, seed=3, base_time=BASE)
    b = build_corpus(1000, seed=3, base_time=BASE)
    assert [x.body_text for x in a] == [x.body_text for x in b]
    assert len({x.path for x in a}) == 1000
    assert len({x.body_text for x in a}) == 1000
    # A smaller corpus is a prefix of a larger one: article i never depends on n.
    assert [x.path for x in build_corpus(300, seed=3, base_time=BASE)] == [x.path for x in a[:300]]
    other = build_corpus(300, seed=4, base_time=BASE)
    assert sum(x.body_text != y.body_text for x, y in zip(a[30:300], other[30:], strict=True)) == 270


def test_generated_articles_are_not_near_duplicates() -> None:
    corpus = build_corpus(400, seed=0, base_time=BASE)[30:]

    def shingles(text: str) -> set[str]:
        words = re.findall(r"\w+", text.lower())
        return {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}

    sets = [shingles(a.body_text) for a in corpus]
    worst = max(
        len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i in range(len(sets)) for j in range(i + 1, len(sets))
    )
    assert worst < 0.6, worst


def test_dates_are_in_the_past_and_updates_follow_publication() -> None:
    for a in build_corpus(500, base_time=BASE):
        assert a.published < BASE
        assert a.updated is None or a.published <= a.updated <= BASE


def test_article_page_has_the_chrome_and_the_metadata() -> None:
    corpus = build_corpus(40, base_time=BASE)
    seed_like = corpus[0]
    page = render.render_page(seed_like, corpus, URL)
    doc = lxml_html.fromstring(page)
    assert doc.xpath("string(//h1)") == seed_like.title
    assert doc.xpath("//link[@rel='canonical']/@href") == [URL + seed_like.path]
    assert doc.xpath("//meta[@property='article:published_time']/@content") == [render.iso(seed_like.published)]
    ld = json.loads(doc.xpath("//script[@type='application/ld+json']/text()")[0])
    assert ld["@type"] == "NewsArticle" and ld["datePublished"] == render.iso(seed_like.published)
    assert ld["author"][0]["name"] == "Samir Haddad"
    # Every caption is shown twice, as the image's alt text and as its figcaption.
    for fig in seed_like.figures:
        assert doc.xpath("//img[@alt=$c]", c=fig.caption)
        assert fig.caption in doc.xpath("string(//figcaption[.//span[@class='caption'][.=$c]])", c=fig.caption)
    text = doc.text_content()
    for chrome in (
        "Do you like this article?",
        "0 Comment(s)",
        "Comment Policy",
        "* Denotes Required Field",
        "1500 / 1500",
        "Accept all",
        "Share this article",
        "Related stories",
        "All rights reserved",
    ):
        assert chrome in text
    assert [h.text_content() for h in doc.xpath("//article//h2")] == [
        "Militias go their own way",
        "A widening gap",
        "Election aftermath",
    ]


def test_arabic_and_french_pages_declare_their_language() -> None:
    corpus = build_corpus(30, base_time=BASE)
    by_lang = {a.lang: a for a in corpus}
    ar = lxml_html.fromstring(render.render_page(by_lang["ar"], corpus, URL))
    assert ar.get("lang") == "ar" and ar.get("dir") == "rtl"
    assert "هل أعجبك هذا المقال؟" in ar.text_content()
    fr = lxml_html.fromstring(render.render_page(by_lang["fr"], corpus, URL))
    assert fr.get("lang") == "fr" and "Vous avez aimé cet article ?" in fr.text_content()


def test_feeds_split_the_corpus_and_parse() -> None:
    corpus = build_corpus(120, base_time=BASE)
    seen: list[str] = []
    for feed in FEEDS:
        items = [a for a in corpus if a.feed.key == feed.key]
        body = render.render_feed(feed, items, URL, BASE)
        if feed.kind == "json":
            data = json.loads(body)
            assert data["version"] == "https://jsonfeed.org/version/1.1"
            links = [i["url"] for i in data["items"]]
            assert all(i["attachments"] == [] or i["attachments"][0]["title"] for i in data["items"])
        else:
            ET.fromstring(body)  # well-formed XML
            parsed = feedparser.parse(body)
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert parsed.version == ("atom10" if feed.kind == "atom" else "rss20")
            links = [e.link for e in parsed.entries]
            with_media = [e for e in parsed.entries if e.get("media_content")]
            assert with_media
        assert len(links) == len(items) == 30
        seen += links
    assert sorted(seen) == sorted(URL + a.path for a in corpus)


def test_rss_carries_media_captions() -> None:
    corpus = build_corpus(4, base_time=BASE)
    body = render.render_feed(FEEDS[0], [corpus[0]], URL, BASE)
    parsed = feedparser.parse(body)
    (entry,) = parsed.entries
    assert entry.media_content[0]["url"] == f"{URL}/images/kesh-commander-rally.png"
    assert corpus[0].figures[0].caption in body
    assert "<media:credit>Kesh Brigades press office</media:credit>" in body
