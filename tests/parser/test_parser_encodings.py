"""Pages whose bytes do not match what they declare still become articles (issue 14 defect 6, issue 16).

The bytes go the way they go in the pipeline: the fetcher's `decode_html` turns them into text, the text
travels in a RawPage, and the parser's handler turns it into an article or a dead-letter reason.
"""

from __future__ import annotations

import pytest

from newsflow_extract.extract import extract
from newsflow_fetcher.charset import decode_html
from newsflow_parser.service import PageHandler
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, ParsedArticle, RawPage
from newsflow_shared.runtime import PermanentError

pytestmark = pytest.mark.unit

URL = "https://zeitung.example/lokales/2024/03/05/brunnen"
STORY = (
    "Der Brunnen auf dem Marktplatz läuft wieder. Bürgermeisterin Jörg-Müller sagte am Dienstag, die Reparatur "
    "habe länger gedauert als geplant, weil die Pumpe aus Österreich geliefert werden musste. "
    "Die Anwohner freuen sich über das plätschernde Wasser und die schöne Aussicht im Frühling. "
    "„Endlich“, sagte eine Händlerin – sie verkauft seit dreißig Jahren Äpfel neben dem Brunnen."
)


def page(charset_meta: str | None = None, story: str = STORY) -> str:
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    paragraphs = "".join(f"<p>{s.strip()}.</p>" for s in story.split(".") if s.strip())
    return (
        f"<html lang='de'><head>{meta}<title>Der Brunnen läuft wieder</title></head><body><article>"
        f"<h1>Der Brunnen läuft wieder</h1>{paragraphs}</article></body></html>"
    )


def raw_page(html: str) -> RawPage:
    entry = FeedEntry(url=URL, link=URL, article_id=article_id(URL), feed_url="https://zeitung.example/feed")
    return RawPage.with_html(html, entry=entry, url=URL, final_url=URL, status=200, content_type="text/html")


async def parsed(handler: PageHandler, body: bytes, content_type: str) -> ParsedArticle:
    text, _, _ = decode_html(body, content_type)
    article = await handler.handle(raw_page(text))
    assert isinstance(article, ParsedArticle)
    return article


@pytest.mark.parametrize(
    ("content_type", "meta", "codec"),
    [
        ("text/html; charset=utf-8", None, "latin-1"),  # the header lies
        ("text/html", "utf-8", "latin-1"),  # the <meta> lies
        ("text/html; charset=UTF-8", "utf-8", "cp1252"),  # both lie, and the quotes are cp1252's
    ],
)
async def test_a_page_declared_utf8_but_written_in_latin1_is_decoded_by_evidence(
    handler: PageHandler, content_type: str, meta: str | None, codec: str
) -> None:
    html = page(meta)
    if codec == "latin-1":
        html = html.replace("„", '"').replace("“", '"').replace("–", "-")  # not in Latin-1
    article = await parsed(handler, html.encode(codec), content_type)
    assert "Bürgermeisterin Jörg-Müller" in article.text
    assert "\ufffd" not in article.text
    assert article.title == "Der Brunnen läuft wieder"
    if codec == "cp1252":
        assert "„Endlich“, sagte eine Händlerin – sie" in article.text


async def test_a_page_declared_latin1_but_written_in_utf8_is_not_garbled(handler: PageHandler) -> None:
    article = await parsed(handler, page("iso-8859-1").encode("utf-8"), "text/html; charset=iso-8859-1")
    assert "Bürgermeisterin Jörg-Müller" in article.text and "Ã¼" not in article.text


async def test_a_correctly_declared_legacy_page_keeps_its_charset(handler: PageHandler) -> None:
    # Latin-1 bytes that happen to be valid UTF-8 cannot occur in real text; ASCII-only pages decode alike.
    article = await parsed(handler, page("windows-1252").encode("cp1252"), "text/html; charset=windows-1252")
    assert "„Endlich“, sagte eine Händlerin" in article.text


async def test_a_utf8_page_with_a_few_nul_bytes_is_an_article(handler: PageHandler) -> None:
    # A CMS that pads a template field with NUL: the page is still text, not a binary file.
    html = page("utf-8").replace("<p>Die Anwohner", "<p>\x00Die Anwohner").replace("</article>", "\x00\x00</article>")
    article = await parsed(handler, html.encode("utf-8"), "text/html; charset=utf-8")
    assert "Die Anwohner freuen sich" in article.text and "\x00" not in article.text


@pytest.mark.parametrize(
    "body",
    [
        bytes(range(256)) * 64,  # every byte value: no text
        b"<html><body><p>" + bytes([0, 1, 2, 3, 0, 255, 254, 7]) * 800 + b"</p></body></html>",
    ],
)
async def test_binary_bodies_are_still_refused_as_binary(handler: PageHandler, body: bytes) -> None:
    text, _, _ = decode_html(body, "text/html; charset=utf-8")
    with pytest.raises(PermanentError) as err:
        await handler.handle(raw_page(text))
    assert err.value.reason == "binary"


def test_nul_bytes_do_not_reach_the_article_text() -> None:
    html = page().replace("Marktplatz läuft", "Marktplatz\x00 läuft")
    assert "\x00" in html
    a = extract(html, URL)
    assert "Marktplatz läuft wieder" in a.text and "\x00" not in a.text
