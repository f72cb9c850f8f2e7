"""`newsflow feeds` against a real Redis: add, list with health, remove, OPML/YAML import and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis as sync_redis
import yaml
from typer.testing import CliRunner

from newsflow_cli.main import app
from newsflow_shared import streams

pytestmark = pytest.mark.integration

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="Coast Gazette" title="Coast Gazette" xmlUrl="https://coast.test/rss"/>
      <outline type="rss" text="Valley Times" xmlUrl="https://valley.test/feed.xml" htmlUrl="https://valley.test/"/>
    </outline>
    <outline type="rss" text="Coast again" xmlUrl="https://coast.test/rss"/>
    <outline text="A folder without feeds"/>
  </body>
</opml>"""


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("COLUMNS", "220")  # rich would fold long URLs at 80
    r = sync_redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return CliRunner()


def rows(cli: CliRunner) -> list[dict]:
    res = cli.invoke(app, ["feeds", "list", "--json"])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def test_add_list_remove(cli: CliRunner) -> None:
    res = cli.invoke(app, ["feeds", "add", "https://Example.test/rss?utm_source=x", "--interval", "300"])
    assert res.exit_code == 0, res.output
    assert "added https://example.test/rss" in res.stdout
    res = cli.invoke(app, ["feeds", "add", "https://example.test/rss", "--interval", "600"])
    assert "updated" in res.stdout
    cli.invoke(app, ["feeds", "add", "https://other.test/atom"])
    (a, b) = rows(cli)
    assert a["url"] == "https://example.test/rss" and a["interval_s"] == 600 and a["fixed_interval"]
    assert a["health"] == "new" and a["items_seen"] == 0 and a["consecutive_failures"] == 0
    assert b["url"] == "https://other.test/atom" and not b["fixed_interval"]
    table = cli.invoke(app, ["feeds", "list"])
    assert table.exit_code == 0 and "example.test/rss" in table.stdout and "health" in table.stdout
    assert cli.invoke(app, ["feeds", "remove", "https://example.test/rss"]).exit_code == 0
    assert [r["url"] for r in rows(cli)] == ["https://other.test/atom"]
    missing = cli.invoke(app, ["feeds", "remove", "https://example.test/rss"])
    assert missing.exit_code == 1


def test_add_rejects_non_http(cli: CliRunner) -> None:
    res = cli.invoke(app, ["feeds", "add", "ftp://files.test/feed"])
    assert res.exit_code == 1
    assert rows(cli) == []


def test_list_shows_health(cli: CliRunner, redis_url: str) -> None:
    cli.invoke(app, ["feeds", "add", "https://sick.test/rss"])
    r = sync_redis.Redis.from_url(redis_url)
    state = json.loads(r.hget(streams.FEEDS_KEY, "https://sick.test/rss"))
    state.update(
        consecutive_failures=7,
        unhealthy=True,
        last_error="timeout: no answer",
        last_error_at=1.7e9,
        current_interval_s=3600,
        items_seen=12,
        last_success_at=1.6e9,
    )
    r.hset(streams.FEEDS_KEY, "https://sick.test/rss", json.dumps(state))
    r.close()
    (row,) = rows(cli)
    assert row["health"] == "unhealthy" and row["consecutive_failures"] == 7
    assert row["last_error"] == "timeout: no answer" and row["items_seen"] == 12 and row["interval_s"] == 3600
    assert row["last_success"].startswith("2020-09-13")
    res = cli.invoke(app, ["feeds", "list", "--unhealthy"])
    assert "unhealthy" in res.stdout and "timeout: no answer" in res.stdout


def test_opml_import_and_export(cli: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "subs.opml"
    f.write_text(OPML)
    res = cli.invoke(app, ["feeds", "import", str(f)])
    assert res.exit_code == 0, res.output
    assert "imported 2 new feeds (0 already known)" in res.stdout
    res = cli.invoke(app, ["feeds", "import", str(f)])
    assert "imported 0 new feeds (2 already known)" in res.stdout
    assert [r["url"] for r in rows(cli)] == ["https://coast.test/rss", "https://valley.test/feed.xml"]

    exported = cli.invoke(app, ["feeds", "export"])
    assert exported.exit_code == 0
    assert 'xmlUrl="https://coast.test/rss"' in exported.stdout and "Coast Gazette" in exported.stdout
    # round trip into an empty registry
    out = tmp_path / "back.opml"
    out.write_text(exported.stdout)
    cli.invoke(app, ["feeds", "remove", "https://coast.test/rss"])
    cli.invoke(app, ["feeds", "remove", "https://valley.test/feed.xml"])
    assert "imported 2 new feeds" in cli.invoke(app, ["feeds", "import", str(out)]).stdout

    as_yaml = yaml.safe_load(cli.invoke(app, ["feeds", "export", "--format", "yaml"]).stdout)
    assert as_yaml == [
        {"url": "https://coast.test/rss", "title": "Coast Gazette"},
        {"url": "https://valley.test/feed.xml", "title": "Valley Times"},
    ]


def test_yaml_import_and_bad_files(cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "feeds.yaml"
    good.write_text(yaml.safe_dump({"feeds": [{"url": "https://y.test/rss", "interval": 900}, "https://z.test/f"]}))
    res = cli.invoke(app, ["feeds", "import", str(good)])
    assert res.exit_code == 0 and "imported 2 new feeds" in res.stdout
    assert {r["url"]: r["interval_s"] for r in rows(cli)}["https://y.test/rss"] == 900
    bad = tmp_path / "bad.opml"
    bad.write_text("<html><body>not opml</body></html>")
    res = cli.invoke(app, ["feeds", "import", str(bad)])
    assert res.exit_code == 1
