"""Small pieces of the extraction: dates, bylines, captions' credits, chrome lines, fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml.html import document_fromstring

from newsflow_extract.captions import split_credit
from newsflow_extract.chrome import is_chrome_line, terminal_index
from newsflow_extract.dates import date_from_url, parse_date
from newsflow_extract.metadata import clean_authors, extract_metadata, language_code
from newsflow_extract.textutil import content_hash, hamming, simhash
from newsflow_extract.titles import Site, strip_site

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-02-01T09:30:00+03:00", datetime(2022, 2, 1, 6, 30, tzinfo=UTC)),
        ("Sun, 07 Apr 2024 12:00:00 CEST", datetime(2024, 4, 7, 10, 0, tzinfo=UTC)),
        ("April 7, 2024 9:30 am EDT", datetime(2024, 4, 7, 13, 30, tzinfo=UTC)),
        ("2024-04-07 12:00", datetime(2024, 4, 7, 12, 0, tzinfo=UTC)),  # naive: taken as UTC
        ("1712491200", datetime(2024, 4, 7, 12, 0, tzinfo=UTC)),
        ("2999-01-01T00:00:00Z", None),  # in the future
        ("1970-01-01", None),  # a template default
        ("not a date at all", None),
        ("", None),
    ],
)
def test_parse_date(value: str, expected: datetime | None) -> None:
    assert parse_date(value) == expected


def test_date_from_url() -> None:
    assert date_from_url("https://x.example/news/2021/11/04/story") == datetime(2021, 11, 4, tzinfo=UTC)
    assert date_from_url("https://x.example/story-20211104-abc.html") == datetime(2021, 11, 4, tzinfo=UTC)
    assert date_from_url("https://x.example/news/2021/13/40/story") is None
    assert date_from_url("https://x.example/about") is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["By Faris al-Omran"], ["Faris al-Omran"]),
        (["By Jane Doe and John Roe | Updated 3 hours ago"], ["Jane Doe", "John Roe"]),
        (["Von Anna Schmidt und Peter Müller"], ["Anna Schmidt", "Peter Müller"]),
        (["By Carla Mendes, Staff Writer"], ["Carla Mendes"]),
        (["Elena Oberholzer (obe), Oliver Maksan (oma)"], ["Elena Oberholzer", "Oliver Maksan"]),
        (["https://www.facebook.com/somepage"], []),
        (["Jane Doe", "jane doe", "JANE DOE"], ["Jane Doe"]),
        (["بقلم سلمى الحداد"], ["سلمى الحداد"]),
        (["Jane Doe", "Image: Getty Images"], ["Jane Doe"]),
        (["Jane Doe, 4 March 2024"], ["Jane Doe"]),
        # bylines as blogs and CMSs print them
        (["Post author By Helge Brandner"], ["Helge Brandner"]),
        (["Veröffentlicht von Chris Jung"], ["Chris Jung"]),
        (["Eingestellt von der Michel"], ["der Michel"]),
        (["SHOW ALL ARTICLES OF Heike Sauer"], ["Heike Sauer"]),
        (["VON MORITZ GATHMANN am 21. April 2020"], ["MORITZ GATHMANN"]),
        (["Tomas Spahn Fr, 3. Mai 2021"], ["Tomas Spahn"]),
        (["Christoph Hein Chefredakteur"], ["Christoph Hein"]),
        (["Maria Fr. Schmidt"], ["Maria Fr. Schmidt"]),
        (["Jessie", "Archiv anzeigen →", "View my complete profile", "Ver biografía"], ["Jessie"]),
        (["Auteurs"], []),
    ],
)
def test_clean_authors(values: list[str], expected: list[str]) -> None:
    assert clean_authors(values) == expected


def test_a_newsroom_credit_is_an_author_only_when_nobody_is_named() -> None:
    assert clean_authors(["Redaktion"]) == []
    assert clean_authors(["Redaktion"], roles=True) == ["Redaktion"]


@pytest.mark.parametrize(
    # Not `page`: that is pytest-playwright's fixture, and a parameter of that name pulls its session-scoped
    # browser into this test's fixtures (pytest then ran the browser tests here, and their event loop broke
    # every asyncio test after them).
    ("html", "expected"),
    [
        # a newsroom's credit is the author of a page that names nobody
        pytest.param(
            "<html><body><h1>Road closed</h1><span class='author'>Redaktion</span><p>The road is closed.</p>"
            "</body></html>",
            ["Redaktion"],
            id="newsroom-credit-alone",
        ),
        # Yoast's graph: the article names its author by @id, the Person object carries the name
        pytest.param(
            '<html><head><script type="application/ld+json">{"@graph": ['
            '{"@type": "Article", "headline": "Road closed", "author": {"@id": "https://news.example/#/person/7"}},'
            '{"@type": "Person", "@id": "https://news.example/#/person/7", "name": "Lena Brandt"}]}</script>'
            "</head><body><h1>Road closed</h1><p>The road is closed.</p></body></html>",
            ["Lena Brandt"],
            id="json-ld-author-by-reference",
        ),
        # the byline is the first one and never a commenter's
        pytest.param(
            "<html><body><h1>Road closed</h1><p class='byline'>By Lena Brandt</p><p>The road is closed.</p>"
            "<div class='comments'><span class='author'>Karl</span><p>About time!</p>"
            "<span class='author-name'>Mo Reyes</span><p>Finally.</p></div>"
            "<aside class='related'><span class='byline'>By Other Writer</span></aside></body></html>",
            ["Lena Brandt"],
            id="first-byline-not-commenters",
        ),
    ],
)
def test_authors_of_a_page(html: str, expected: list[str]) -> None:
    assert extract_metadata(document_fromstring(html), "https://news.example/road").authors == expected


def test_publisher_beside_people_is_not_an_author() -> None:
    assert clean_authors(["Jane Doe", "Metro Daily"], site_name="Metro Daily") == ["Jane Doe"]
    assert clean_authors(["Metro Daily"], site_name="Metro Daily") == ["Metro Daily"]


def test_site_name_stripped_from_title_and_language_code() -> None:
    metro = Site()
    metro.add("Metro Daily")
    assert strip_site("Budget talks resume | Metro Daily", metro) == "Budget talks resume"
    assert strip_site("Metro Daily - Budget talks resume", metro) == "Budget talks resume"
    assert strip_site("Budget talks resume", Site()) == "Budget talks resume"
    assert [language_code(v) for v in ("en-US", "pt_BR", "AR", "und", "", None, "x-klingon")] == [
        "en",
        "pt",
        "ar",
        None,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("caption", "text", "credit"),
    [
        ("Smoke rises over the depot. [Port Authority]", "Smoke rises over the depot.", "Port Authority"),
        ("Smoke rises over the depot. (AP Photo/Jane Roe)", "Smoke rises over the depot.", "AP Photo/Jane Roe"),
        ("Smoke rises over the depot. Photo: Jane Roe", "Smoke rises over the depot.", "Jane Roe"),
        ("Smoke rises over the depot (left) near the quay", "Smoke rises over the depot (left) near the quay", None),
    ],
)
def test_split_credit(caption: str, text: str, credit: str | None) -> None:
    assert split_credit(caption) == (text, credit)


def test_chrome_lines() -> None:
    for line in (
        "Do you like this article?",
        "0 Comment(s)",
        "Comment Policy",
        "* Denotes Required Field",
        "1500 / 1500",
        "Share this article",
        "Related Articles",
        "© 2024 Metro Daily",
        "Copyright 2024 Valley Ledger Media. All rights reserved.",
        "Advertisement",
        "Sign up for our free newsletter to get the news in your inbox",
    ):
        assert is_chrome_line(line), line
    for line in (
        "The council shared the costs with the province.",
        "Comments from residents were mostly positive, the mayor said on Tuesday.",
        "He accepted all cookies offered at the bake sale, the volunteers joked.",
    ):
        assert not is_chrome_line(line), line
    lines = ["Long paragraph " * 10, "Another long paragraph " * 10, "Related Articles", "Teaser one", "Teaser two"]
    assert terminal_index(lines) == 2
    lines[3] = "A real paragraph that continues the story after the heading, long enough to be prose " * 2
    assert terminal_index(lines) is None


def test_fingerprints() -> None:
    text = " ".join(f"word{i}" for i in range(300))
    assert content_hash(text) == content_hash("  " + text.upper().replace(" ", "\n  "))
    assert len(simhash(text)) == 16 and simhash(text) == simhash(text)
    near = hamming(simhash(text), simhash(text + " and one more sentence at the end"))
    far = hamming(simhash(text), simhash(" ".join(f"other{i}" for i in range(300))))
    assert near <= 8 < 20 <= far
    assert simhash("") == "0" * 16


def test_a_date_keeps_the_offset_the_page_gave() -> None:
    # The same instant as in UTC, but its day is the day the page prints (and a reader means).
    d = parse_date("2020-04-07T20:10:46-04:00")
    assert d == datetime(2020, 4, 8, 0, 10, 46, tzinfo=UTC)
    assert d is not None and d.date().isoformat() == "2020-04-07"
    assert d.isoformat() == "2020-04-07T20:10:46-04:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.12.2022, 07:00:03", datetime(2022, 12, 10, 7, 0, 3, tzinfo=UTC)),
        ("01.11.2023 10:29", datetime(2023, 11, 1, 10, 29, tzinfo=UTC)),
        ("3.5.2021", datetime(2021, 5, 3, tzinfo=UTC)),
        ("01-11-2023 10:29", datetime(2023, 11, 1, 10, 29, tzinfo=UTC)),
    ],
)
def test_dates_written_with_dots_are_day_first(value: str, expected: datetime) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize("value", ["2006", "2017/01", "1999-12"])
def test_a_year_or_a_month_is_not_a_date(value: str) -> None:
    # dateutil would fill the missing day from today's date
    assert parse_date(value) is None


def test_the_article_date_is_the_time_element_by_its_headline_not_a_teasers() -> None:
    from lxml.html import document_fromstring

    from newsflow_extract.metadata import extract_metadata

    teaser = '<li><a href="/old">An older story</a> <time class="published" datetime="{d}">{d}</time></li>'
    html = (
        "<html><body><aside><ul>"
        + teaser.format(d="2019-03-01 08:00")
        + teaser.format(d="2018-07-09 10:00")
        + "</ul></aside>\n<article>\n<h1>Ferry timetable changes from June</h1>\n"
        + '<time class="published" datetime="2024-05-02 09:15">2 May 2024</time>\n'
        + "<p>The ferry company will run fewer crossings on weekday evenings from June.</p></article>\n"
        + "<footer>"
        + teaser.format(d="2017-01-01 00:00")
        + "</footer>"
        + '<div class="related-inner"><p class="post-date"><time class="published" datetime="2024-05-01 09:00">'
        + "1 May</time></p></div></body></html>"
    )
    md = extract_metadata(document_fromstring(html), "https://news.example/ferry")
    assert md.published is not None and md.published.value == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)


def test_a_utc_date_takes_the_offset_another_source_gives_for_the_same_instant() -> None:
    from lxml.html import document_fromstring

    from newsflow_extract.metadata import extract_metadata

    html = (
        '<html><head><meta property="article:published_time" content="2022-05-04T00:25:56Z">'
        '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Late vote in the senate",'
        ' "datePublished": "2022-05-03T21:25:56-03:00"}</script></head>'
        "<body><h1>Late vote in the senate</h1><p>The senate voted after midnight.</p></body></html>"
    )
    md = extract_metadata(document_fromstring(html), "https://news.example/senate")
    assert md.published is not None and md.published.source == "meta"
    assert md.published.value.isoformat() == "2022-05-03T21:25:56-03:00"
