"""`newsflow parse FILE --url URL`, from a file and from stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsflow_cli.main import app

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


def test_parse_a_file_prints_the_article() -> None:
    result = CliRunner().invoke(
        app,
        ["parse", str(FIXTURES / "cms_politics.html"), "--url", "https://coastline-monitor.example/a?utm_source=rss"],
    )
    assert result.exit_code == 0, result.output
    article = json.loads(result.stdout)
    assert article["url"] == "https://coastline-monitor.example/a"  # canonical: tracking parameter gone
    assert article["authors"] == ["Nadia el-Sayegh"]
    assert len(article["captions"]) == 2
    assert "Comment Policy" not in article["text"]


def test_parse_reads_stdin() -> None:
    html = (FIXTURES / "arabic.html").read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["parse", "-", "--url", "https://sahil-news.example/x", "--compact"], input=html)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1
    assert json.loads(result.stdout)["language"] == "ar"


def test_parse_reports_why_a_page_is_not_an_article() -> None:
    result = CliRunner().invoke(app, ["parse", str(FIXTURES / "broken.html"), "--url", "https://news.example/b"])
    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"] == "broken-html"
