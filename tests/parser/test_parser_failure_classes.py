"""The failure classes of issue 16, each on a small page of the project's own writing.

Each is fixed in the own extraction (method "own"), not rescued by the fallback ladder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from newsflow_parser.extract import extract
from newsflow_shared.models import ParsedArticle

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


def page(name: str, url: str = "https://news.example/2024/05/02/story") -> ParsedArticle:
    return extract((FIXTURES / name).read_text(encoding="utf-8"), url)


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
