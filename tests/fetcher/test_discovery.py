"""Discovery against a site served on loopback: `newsflow feeds add SITE` and OPML import of a site,
with the real Redis behind the CLI and the guarded HTTP client in front of it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis as sync_redis
from typer.testing import CliRunner

from newsflow_cli.main import app
from newsflow_feeds.discovery import feed_links, is_site_url

NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
HOME = """<!doctype html><html><head><title>Harbour Daily</title>
<link rel="alternate" type="application/rss+xml" title="Top stories" href="/feeds/top.rss">
<link rel="alternate" type="application/atom+xml" href="/feeds/all.atom">
<link rel="alternate" type="application/feed+json" href="/feed.json">
<link rel="alternate" type="text/html" hreflang="de" href="/de/">
<link rel="stylesheet" type="text/css" href="/s.css">
</head><body>Welcome</body></html>"""
RSS = '<?xml version="1.0"?><rss version="2.0"><channel><title>Top</title></channel></rss>'
ATOM = '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>All</title></feed>'
NEWS = (
    '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
    'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>https://h.test/a</loc>'
    "<news:news><news:publication><news:name>H</news:name><news:language>en</news:language></news:publication>"
    f"<news:publication_date>{NOW}</news:publication_date><news:title>A</news:title></news:news></url></urlset>"
)
PLAIN = '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://h.test/p</loc></url></urlset>'


@pytest.fixture
def site() -> Iterator[str]:
    pages = {
        "/": ("text/html", HOME),
        "/feeds/top.rss": ("application/rss+xml", RSS),
        "/feeds/all.atom": ("application/atom+xml", ATOM),
        "/feed.json": (
            "application/feed+json",
            json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": []}),
        ),
        "/robots.txt": (
            "text/plain",
            "User-agent: *\nDisallow: /private\nSitemap: /news-sitemap.xml\nSitemap: /sitemap.xml\n",
        ),
        "/news-sitemap.xml": ("application/xml", NEWS),
        "/sitemap.xml": ("application/xml", PLAIN),
        "/plain/": ("text/html", "<html><head><title>No feeds here</title></head><body>hi</body></html>"),
    }

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ctype, body = pages.get(self.path, ("text/plain", ""))
            data = body.encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSFLOW_PER_HOST_DELAY_S", "0")
    monkeypatch.setenv("COLUMNS", "220")
    r = sync_redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return CliRunner()


def sources(cli: CliRunner) -> dict[str, str]:
    res = cli.invoke(app, ["feeds", "list", "--json"])
    assert res.exit_code == 0, res.output
    return {row["url"]: row["kind"] for row in map(json.loads, res.stdout.splitlines())}


@pytest.mark.unit
def test_feed_links_and_site_urls() -> None:
    found = feed_links(HOME.encode(), "https://h.test/")
    assert [(f.url, f.what, f.title) for f in found] == [
        ("https://h.test/feeds/top.rss", "rss", "Top stories"),
        ("https://h.test/feeds/all.atom", "atom", None),
        ("https://h.test/feed.json", "json", None),
    ]
    assert is_site_url("https://h.test/") and is_site_url("https://h.test")
    assert not is_site_url("https://h.test/rss") and not is_site_url("https://h.test/?feed=rss2")


@pytest.mark.integration
def test_add_site_discovers_feeds_and_news_sitemaps(cli: CliRunner, site: str) -> None:
    res = cli.invoke(app, ["feeds", "add", site + "/", "--all"])
    assert res.exit_code == 0, res.output
    assert "news sitemap" in res.stdout and "robots.txt" in res.stdout
    assert sources(cli) == {
        f"{site}/feeds/top.rss": "feed",
        f"{site}/feeds/all.atom": "feed",
        f"{site}/feed.json": "feed",
        f"{site}/news-sitemap.xml": "sitemap",
    }
    # The plain sitemap was shown (number 5) but is added only when picked.
    res = cli.invoke(app, ["feeds", "add", site + "/", "--pick", "5"])
    assert res.exit_code == 0, res.output
    assert sources(cli)[f"{site}/sitemap.xml"] == "sitemap"
    # Without --all or --pick, and no terminal to ask on, nothing is added. (A page without feed links
    # still has the site's robots.txt sitemaps.)
    res = cli.invoke(app, ["feeds", "add", site + "/plain/", "--discover"])
    assert res.exit_code == 0 and "nothing added" in res.output and len(sources(cli)) == 5


@pytest.mark.integration
def test_opml_import_discovers_sites(cli: CliRunner, site: str, tmp_path: Path) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body>'
        '<outline text="Coast" xmlUrl="https://coast.test/rss"/>'
        f'<outline text="Harbour, a site" htmlUrl="{site}/"/>'
        '<outline text="A folder"/></body></opml>'
    )
    res = cli.invoke(app, ["feeds", "import", str(opml)])
    assert res.exit_code == 0, res.output
    assert "discovered on 1 site(s): 4 added" in res.stdout
    found = sources(cli)
    assert found["https://coast.test/rss"] == "feed" and found[f"{site}/news-sitemap.xml"] == "sitemap"
    assert len(found) == 5


@pytest.mark.integration
def test_discovery_goes_through_the_ssrf_guard(cli: CliRunner, site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSFLOW_ALLOWED_NETWORKS")
    res = cli.invoke(app, ["feeds", "add", site + "/", "--all"])
    assert res.exit_code == 0
    assert "ssrf" in res.stdout and sources(cli) == {}
