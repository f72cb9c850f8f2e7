"""Fixtures of the indexer tests: settings on the test servers, an initialised index, articles."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from article_factory import parsed_article
from elasticsearch import AsyncElasticsearch

from newsflow_indexer.settings import IndexerSettings
from newsflow_search.index_setup import ensure_index
from newsflow_shared.models import Caption, ParsedArticle

# Written for these tests, modelled on the kind of page Newsflow exists for (a politics article with a
# byline, captions and a rocket attack); not taken from any real page.
ROCKET_TEXT = (
    "Militia rift grows after Basra port strike\n\n"
    "A rocket attack on the port of Umm Qasr on Tuesday damaged two cranes and a fuel depot, "
    "port officials said, the third such strike on civilian infrastructure this month.\n\n"
    "Four rockets landed inside the perimeter shortly after midnight. Nobody was hurt, a spokesman for "
    "the port authority told reporters, but loading was suspended for most of the day.\n\n"
    "No group claimed the attack. Analysts said the strike fitted a pattern of pressure by armed factions "
    "that have drifted away from their former patrons, using drones and short-range rockets to signal "
    "discontent without causing casualties.\n\n"
    "The interior ministry condemned what it called an attempt to frighten foreign shipping companies."
)
BUDGET_TEXT = (
    "City council approves a leaner budget\n\n"
    "The council voted nine to four on Monday for a budget that trims library opening hours and delays "
    "the renovation of two bridges. The mayor said the savings would protect bus services."
)
# Arabic, written for the tests: "the missile" (الصاروخ) and "at the airport" (بالمطار), so that
# the indefinite صاروخ or the plural مطارات only match through the stemmed field.
ARABIC_TEXT = (
    "سقط الصاروخ قرب المدرج الشرقي فجر الثلاثاء، وقالت السلطات إن الأضرار بالمطار كانت محدودة "
    "وإن الرحلات استؤنفت بعد ساعات من التوقف."
)


def simhash_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_article(
    url: str,
    text: str,
    title: str | None = None,
    language: str | None = "en",
    parsed_at: datetime | None = None,
    simhash: str | None = None,
    **kw: Any,
) -> ParsedArticle:
    now = datetime.now(UTC)
    kw.setdefault("published_at", now - timedelta(minutes=10))
    kw.setdefault("discovered_at", now - timedelta(minutes=2))
    title = title if title is not None else text.split("\n", 1)[0]
    return parsed_article(
        url, title, text, language=language, parsed_at=parsed_at or now, simhash=simhash or simhash_of(text), **kw
    )


def rocket_article(url: str = "https://news.example.org/politics/basra-port-strike", **kw: Any) -> ParsedArticle:
    return make_article(
        url,
        ROCKET_TEXT,
        section="Politics",
        authors=["Dana Whitfield"],
        feed_url="https://news.example.org/feed.xml",
        captions=[
            Caption(
                text="Cranes at the port of Umm Qasr after the strike.",
                image_url="https://news.example.org/img/cranes.jpg",
                source="figcaption",
            )
        ],
        **kw,
    )


@pytest.fixture
def idx_settings(settings: Any, redis_url: str, es_url: str) -> IndexerSettings:
    return IndexerSettings(
        redis_url=redis_url,
        elasticsearch_url=es_url,
        batch_size=100,
        batch_linger_s=0.2,
        rules_refresh_s=0.01,
        bulk_initial_backoff_s=0.05,
    )


@pytest.fixture
async def ready_es(es: AsyncElasticsearch, idx_settings: IndexerSettings) -> AsyncIterator[AsyncElasticsearch]:
    await ensure_index(es, idx_settings)
    yield es
