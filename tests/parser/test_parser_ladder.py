"""The fallback ladder (issue 16): own extraction -> plain trafilatura -> trafilatura's recall mode.

A page is refused only when no path finds a sentence of text in it, and every article says which path
produced its text (`extraction_method`), so that an operator can count and search them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from newsflow_extract import extract as extraction
from newsflow_extract.errors import ExtractionError
from newsflow_extract.extract import extract
from newsflow_parser.service import PageHandler
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, ParsedArticle, RawPage
from newsflow_shared.runtime import PermanentError

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"
URL = "https://harbour.example/2024/02/11/marsh-in-pictures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_a_page_the_own_extraction_accepts_says_so() -> None:
    a = extract(fixture("cms_politics.html"), "https://news.example/politics/1")
    assert a.extraction_method == "own"


def test_a_photo_story_whose_only_text_is_its_captions_is_kept_by_the_fallback() -> None:
    # The own extraction moves caption text to `captions` and finds no body; trafilatura prints it.
    a = extract(fixture("photo_story.html"), URL)
    assert a.extraction_method == "trafilatura"
    assert "Volunteers from the village count the overwintering geese" in a.text
    assert len(a.captions) == 3
    # metadata still comes from the page, whichever path produced the text
    assert a.title == "A winter on the salt marsh, in pictures" and a.authors == ["Ines Calloway"]
    assert a.published_at is not None and a.published_source == "meta"


def test_every_refusal_of_the_own_extraction_goes_down_the_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise ExtractionError("no-content", "stubbed refusal")

    monkeypatch.setattr(extraction, "_own_blocks", refuse)
    a = extract(fixture("cms_politics.html"), "https://news.example/politics/1")
    assert a.extraction_method == "trafilatura"
    assert "Commanders go their own way" in a.text
    # the own line filters still apply to a fallback's text: the page chrome stays out
    assert "Do you like this article" not in a.text


def test_recall_mode_is_the_last_rung(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    real = extraction._trafilatura_body

    def plain_finds_nothing(html: str, url: str, recall: bool) -> object:
        calls.append(recall)
        return real(html, url, recall) if recall else None

    monkeypatch.setattr(extraction, "_trafilatura_body", plain_finds_nothing)
    a = extract(fixture("photo_story.html"), URL)
    assert calls == [False, True]
    assert a.extraction_method == "trafilatura-recall"
    assert "oyster shed" in a.text


def test_a_short_notice_is_an_article_but_a_row_of_link_labels_is_not() -> None:
    notice = (
        "<html><body><p>The ferry to the islands is cancelled today because of the storm warning.</p></body></html>"
    )
    a = extract(notice, "https://harbour.example/notices/ferry")
    assert a.word_count == 13 and "ferry to the islands" in a.text
    links = "<html><body>" + "<div><a href='/x'>Home</a></div>" * 5 + "</body></html>"
    with pytest.raises(ExtractionError) as err:
        extract(links, "https://harbour.example/")
    assert err.value.reason == "not-an-article"
    assert "every path" in err.value.message


def raw_page(html: str, url: str) -> RawPage:
    entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="https://harbour.example/feed")
    return RawPage.with_html(html, entry=entry, url=url, final_url=url, status=200, content_type="text/html")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_pages_per_path_and_refusals_per_reason(handler: PageHandler) -> None:
    before = {m: sample("newsflow_parser_pages_total", method=m) for m in ("own", "trafilatura", "trafilatura-recall")}
    refused = sample("newsflow_parser_failed_total", reason="not-an-article")
    own = await handler.handle(raw_page(fixture("cms_politics.html"), "https://news.example/politics/1"))
    fallback = await handler.handle(raw_page(fixture("photo_story.html"), URL))
    links = "<html><body>" + "<div><a href='/x'>Home</a></div>" * 5 + "</body></html>"
    with pytest.raises(PermanentError) as err:
        await handler.handle(raw_page(links, "https://harbour.example/"))
    assert isinstance(own, ParsedArticle) and isinstance(fallback, ParsedArticle)
    assert (own.extraction_method, fallback.extraction_method) == ("own", "trafilatura")
    assert err.value.reason == "not-an-article"
    assert sample("newsflow_parser_pages_total", method="own") == before["own"] + 1
    assert sample("newsflow_parser_pages_total", method="trafilatura") == before["trafilatura"] + 1
    assert sample("newsflow_parser_pages_total", method="trafilatura-recall") == before["trafilatura-recall"]
    assert sample("newsflow_parser_failed_total", reason="not-an-article") == refused + 1
