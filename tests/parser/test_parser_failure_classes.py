"""The failure classes of issue 16, each on a small page of the project's own writing.

Each is fixed in the own extraction (method "own"), not rescued by the fallback ladder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from newsflow_extract.extract import _blocks, extract
from newsflow_shared.models import ParsedArticle

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


def page(name: str, url: str = "https://news.example/2024/05/02/story") -> ParsedArticle:
    return extract((FIXTURES / name).read_text(encoding="utf-8"), url)


def own(name: str, url: str = "https://news.example/2024/05/02/story") -> ParsedArticle:
    """The page's article, found by the own extraction: these failure classes must not need the fallback."""
    a = page(name, url)
    assert a.extraction_method == "own"
    return a


@pytest.mark.parametrize(
    ("name", "opening", "further_on", "chrome", "title"),
    [
        # The markup starts mid-document: lxml roots the tree at a <div>.
        pytest.param(
            "fragment_no_body.html",
            "Night buses will run on the ring road again from Monday",
            "a second driver on the late services",
            ["More transport news"],
            "Night buses return to the ring road",
            id="document-without-a-body-element",
        ),
        # ASP.NET pages put the whole page in <form runat=server>: that form is the page, not a widget.
        pytest.param(
            "aspnet_form.html",
            "Dredging of the outer harbour will begin",
            "licensed site twelve miles offshore",
            ["Coastline Herald, 4 Quay Street"],
            "Harbour dredging to start in May",
            id="page-wrapped-in-one-form",
        ),
        # The element that wraps the article is named for the byline it also holds.
        pytest.param(
            "byline_wrapper.html",
            "Apple growers in the valley expect to lose",
            "emergency loans for the family farms",
            ["By Tove Lindqvist", "Share on Facebook"],
            "Orchard owners count the cost of the late frost",
            id="article-inside-an-element-named-byline",
        ),
    ],
)
def test_the_article_is_kept_whole_without_the_page_around_it(
    name: str, opening: str, further_on: str, chrome: list[str], title: str
) -> None:
    a = own(name)
    assert a.text.startswith(opening)
    assert further_on in a.text
    for text in chrome:
        assert text not in a.text
    assert a.title == title


def test_nested_layout_tables_print_the_article_once_without_navigation_or_teasers() -> None:
    a = own("layout_tables.html", "https://courier.example/local/mill.html")
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
    a = own("inline_blocks.html")
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


def title_of(head: str, body: str, url: str = "https://www.valleycourier.com/local/2024/05/02/mill") -> str | None:
    html = f"<html><head>{head}</head><body>{body}<p>{'The mill reopened on Thursday. ' * 12}</p></body></html>"
    from lxml.html import document_fromstring

    from newsflow_extract.metadata import extract_metadata

    return extract_metadata(document_fromstring(html), url).title


@pytest.mark.parametrize(
    ("head", "body"),
    [
        # "… - SiteName.com": the domain names the site
        ("<title>Mill reopens after the flood - ValleyCourier.com</title>", ""),
        ("<title>Mill reopens after the flood | Valley Courier</title>", ""),
        # "Site - Section - Headline": og:site_name and article:section name the first two
        (
            '<meta property="og:site_name" content="The Courier"><meta property="article:section" content="Local">'
            "<title>The Courier - Local - Mill reopens after the flood</title>",
            "",
        ),
        # the logo's <h1> and a menu label are not the headline; the page's own <h1> is
        (
            "<title>Mill reopens after the flood – Valley Courier</title>",
            "<h1 class='menu-toggle'>Menu</h1><h1 class='site-title'><a href='/' rel='home'>Valley Courier</a></h1>"
            "<h1 class='entry-title'>Mill reopens after the flood</h1>",
        ),
        # the site's name in <title> is not the title when the page has a headline
        ("<title>Valley Courier</title>", "<header><a href='/'>Valley Courier</a></header><h1>Mill reopens</h1>"),
    ],
)
def test_titles_lose_the_site_and_section_names(head: str, body: str) -> None:
    expected = "Mill reopens" if "<h1>Mill reopens</h1>" in body else "Mill reopens after the flood"
    assert title_of(head, body) == expected


def test_the_site_description_is_not_the_title() -> None:
    head = (
        "<title>News and events from the valley</title>"
        '<meta name="description" content="News and events from the valley">'
    )
    assert title_of(head, "<h1>Mill reopens after the flood</h1>") == "Mill reopens after the flood"


def test_a_headline_and_its_sub_headline_stay_joined_where_the_page_joins_them() -> None:
    head = '<meta property="og:title" content="Mill reopens after the flood: two hundred jobs saved">'
    body = "<header><h1>Mill reopens after the flood</h1><p class='standfirst'>Two hundred jobs saved</p></header>"
    assert title_of(head, body) == "Mill reopens after the flood: two hundred jobs saved"
    # and a sub-headline the SEO title does not carry is not added
    assert title_of("<title>Mill reopens after the flood</title>", body) == "Mill reopens after the flood"


def test_a_title_that_goes_on_after_a_dash_keeps_its_second_part() -> None:
    head = "<title>Dog chases burglars away – police appeal for witnesses – Valley Courier</title>"
    body = "<h1>Dog chases burglars away – police appeal for witnesses</h1>"
    assert title_of(head, body) == "Dog chases burglars away – police appeal for witnesses"


def test_the_captions_field_holds_captions_only() -> None:
    # Teaser headlines, logos, player labels, credits alone, times and consent notices are not captions.
    a = page("caption_junk.html", "https://www.valleytimes.example/sport/2024/05/02/river-race")
    assert [(c.text, c.credit) for c in a.captions] == [
        ("The Harlow crew crosses the finish line under the old stone bridge.", "Ana Ruiz")
    ]
    assert "Council delays the vote" not in a.text and "Play Video" not in a.text
