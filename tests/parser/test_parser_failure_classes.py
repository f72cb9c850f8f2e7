"""The failure classes of issue 16, each on a small page of the project's own writing.

Each is fixed in the own extraction (method "own"), not rescued by the fallback ladder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from newsflow_parser.extract import _blocks, extract
from newsflow_shared.models import ParsedArticle

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


def page(name: str, url: str = "https://news.example/2024/05/02/story") -> ParsedArticle:
    return extract((FIXTURES / name).read_text(encoding="utf-8"), url)


def test_a_document_without_a_body_element_is_an_article() -> None:
    # The markup starts mid-document: lxml roots the tree at a <div>.
    a = page("fragment_no_body.html")
    assert a.extraction_method == "own"
    assert a.text.startswith("Night buses will run on the ring road again from Monday")
    assert "a second driver on the late services" in a.text
    assert "More transport news" not in a.text
    assert a.title == "Night buses return to the ring road"


def test_a_page_wrapped_in_one_form_keeps_its_article() -> None:
    # ASP.NET pages put the whole page in <form runat=server>: that form is the page, not a widget.
    a = page("aspnet_form.html")
    assert a.extraction_method == "own"
    assert "Dredging of the outer harbour will begin" in a.text
    assert "licensed site twelve miles offshore" in a.text
    assert "Coastline Herald, 4 Quay Street" not in a.text
    assert a.title == "Harbour dredging to start in May"


def test_an_article_inside_an_element_named_byline_is_kept() -> None:
    a = page("byline_wrapper.html")
    assert a.extraction_method == "own"
    assert "Apple growers in the valley expect to lose" in a.text
    assert "emergency loans for the family farms" in a.text
    assert "By Tove Lindqvist" not in a.text and "Share on Facebook" not in a.text


def test_nested_layout_tables_print_the_article_once_without_navigation_or_teasers() -> None:
    a = page("layout_tables.html", "https://courier.example/local/mill.html")
    assert a.extraction_method == "own"
    blocks = [b.text for b in a.blocks]
    assert blocks[0].startswith("The Harlow paper mill started its machines again on Thursday")
    assert blocks[1].startswith("About two hundred workers were kept on the payroll")
    assert blocks[2].startswith('"We lost the spring orders')
    assert a.text.count("About two hundred workers") == 1
    for chrome in ("Home", "Local News", "Obituaries", "Council delays the bridge vote", "Regatta moved"):
        assert chrome not in a.text
    assert a.title == "Mill reopens after the flood"


def test_nested_tables_in_trafilaturas_output_are_read_once() -> None:
    body = etree.fromstring(
        "<body><table><row><cell>Left column</cell><cell><table><row><cell>"
        "<table><row><cell><p>Innermost paragraph of the story.</p><p>Its second paragraph.</p></cell></row></table>"
        "</cell></row></table></cell></row></table>"
        "<list><item>Outer item<list><item>Inner item</item></list></item></list></body>"
    )
    lines = [b.text for b in _blocks(body)]
    assert lines == [
        "Left column",
        "Innermost paragraph of the story.",
        "Its second paragraph.",
        "Outer item",
        "Inner item",
    ]


def test_words_are_not_glued_where_a_heading_or_quote_block_ends() -> None:
    a = page("inline_blocks.html")
    assert a.extraction_method == "own"
    lines = [b.text for b in a.blocks]
    assert "Riverside declares first" in lines
    assert "The sitting councillor held Riverside with a reduced majority after a recount of the postal votes." in lines
    assert "firstThe" not in a.text and "votersThe" not in a.text
    assert "midnight.We" not in a.text and "tonight.Her" not in a.text
    assert "We heard the town loud and clear tonight." in lines


def test_a_short_japanese_article_is_counted_in_words_not_in_runs_of_characters() -> None:
    # Chinese and Japanese write without spaces: one \w+ run is a whole clause, not a word.
    story = (
        "市の図書館は来月から開館時間を午後九時まで延長すると発表した。"
        "仕事帰りの利用者から要望が多く、試験的に半年間続ける。"
        "夜間は職員二人が受付を担当し、自習室も同じ時間まで使えるようになる。"
        "館長は「多くの人に本と出会う場所として使ってほしい」と話している。"
    )
    title = "図書館、開館時間を延長"
    html = (
        f"<html lang='ja'><head><title>{title}</title></head>"
        f"<body><article><h1>{title}</h1><p>{story}</p></article></body></html>"
    )
    a = extract(html, "https://news.example/ja/2024/05/02/library")
    assert a.extraction_method == "own"
    assert a.text == story
    assert 50 <= a.word_count <= 120  # about half its characters
