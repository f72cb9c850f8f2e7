"""Small pieces of the extraction: dates, bylines, captions' credits, chrome lines, fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsflow_parser.captions import split_credit
from newsflow_parser.chrome import is_chrome_line, terminal_index
from newsflow_parser.dates import date_from_url, parse_date
from newsflow_parser.metadata import clean_authors, clean_title, language_code
from newsflow_parser.textutil import content_hash, hamming, simhash

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
    ],
)
def test_clean_authors(values: list[str], expected: list[str]) -> None:
    assert clean_authors(values) == expected


def test_publisher_beside_people_is_not_an_author() -> None:
    assert clean_authors(["Jane Doe", "Metro Daily"], site_name="Metro Daily") == ["Jane Doe"]
    assert clean_authors(["Metro Daily"], site_name="Metro Daily") == ["Metro Daily"]


def test_clean_title_and_language_code() -> None:
    assert clean_title("Budget talks resume | Metro Daily", "Metro Daily") == "Budget talks resume"
    assert clean_title("Metro Daily - Budget talks resume", "Metro Daily") == "Budget talks resume"
    assert clean_title("Budget talks resume", None) == "Budget talks resume"
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
