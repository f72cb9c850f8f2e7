"""The web app over HTTP, as its own process against the real Redis and Elasticsearch: what each page shows,
that bad input is a message and never a 500, and that writing needs the token, a session and a CSRF token."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from contextlib import closing
from typing import Any

import httpx
import pytest
import redis

from newsflow_shared import streams
from newsflow_shared.models import Alert
from newsflow_shared.runtime import encode

from .conftest import TOKEN, WebProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def http(web: WebProcess) -> httpx.Client:
    with httpx.Client(base_url=web.url, timeout=30) as client:
        yield client


def hit_ids(html: str) -> list[str]:
    return re.findall(r'<li class="hit">\s*<h3[^>]*><a href="/articles/([0-9a-f]{32})"', html)


def signed_in(web: WebProcess) -> tuple[httpx.Client, str]:
    """A browser-like client after signing in; returns it with the CSRF token its pages carry."""
    client = httpx.Client(base_url=web.url, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)[1]
    resp = client.post("/login", data={"token": TOKEN, "csrf_token": token})
    assert resp.status_code == 303
    return client, token


def test_search_shows_facets_histogram_and_highlights(http: httpx.Client, seeded: dict[str, Any]) -> None:
    r = http.get("/search", params={"q": "rocket attack"})
    assert r.status_code == 200
    assert len(hit_ids(r.text)) == 2  # the article and its syndicated copy; the French one says "roquette"
    assert "<mark>rocket</mark>" in r.text.lower() or "<mark>Rocket</mark>" in r.text
    assert re.search(
        r"gulf-times\.example</span>\s*(?:<span[^>]*>[^<]*</span>\s*)?<span class=\"count\">1</span>", r.text
    )
    assert 'class="bars"' in r.text and "<rect" in r.text
    narrowed = http.get("/search", params={"q": "rocket attack", "domain": "wire.example"})
    assert len(hit_ids(narrowed.text)) == 1
    # The other source still shows its count: a facet counts under every filter but its own.
    assert "gulf-times.example" in narrowed.text


def test_deep_paging_with_search_after_visits_every_match_once(http: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = "/search?q=council&size=3&sort=newest"
    while url:
        page = http.get(url.replace("&amp;", "&"))
        seen += hit_ids(page.text)
        nxt = re.search(r'<a class="button" href="([^"]+)" rel="next"', page.text)
        url = nxt[1] if nxt else None
    assert len(seen) == 8 and len(set(seen)) == 8
    assert "after=" in http.get("/search?q=council&size=3").text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "rocket AND ("}, "ends too early"),
        ({"q": "foo) bar"}, "unexpected &#39;)&#39;"),
        ({"q": "x", "page": "9999"}, "past the first 10,000 results"),
        ({"q": "x", "page": "99999999"}, "Page must be between"),
        ({"q": "x", "after": "bm90LWEtY3Vyc29y"}, "damaged"),
        ({"q": "x", "size": "100000"}, "Results per page"),
        ({"q": "x" * 2000}, "2,000 characters"),
        ({"from": "2026-13-45"}, "not a date"),
    ],
)
def test_bad_input_is_a_message_next_to_the_box(http: httpx.Client, params: dict[str, str], message: str) -> None:
    r = http.get("/search", params=params)
    assert r.status_code == 200
    assert message in r.text


def test_missing_articles_and_pages_are_404_pages(http: httpx.Client) -> None:
    for path in ("/articles/0123456789abcdef0123456789abcdef", "/articles/not-an-id", "/nothing-here"):
        r = http.get(path)
        assert r.status_code == 404 and "<h1>" in r.text, path


def test_article_page_shows_structure_provenance_and_copies(http: httpx.Client, seeded: dict[str, Any]) -> None:
    article = seeded["articles"][0]
    r = http.get(f"/articles/{article.article_id}")
    assert r.status_code == 200
    assert "<h2>Loading suspended</h2>" in r.text  # a sub-heading, from the stored block kinds
    assert "Cranes at Umm Qasr after the strike." in r.text and "Credit: Port authority" in r.text
    assert "Dana Whitfield" in r.text and article.url in r.text
    copy = seeded["articles"][1]
    copies = r.text.split('id="copies-h"')[1].split("</section>")[0]
    assert f"/articles/{copy.article_id}" in copies


def test_security_headers_and_no_inline_script(http: httpx.Client) -> None:
    r = http.get("/search")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)  # every script is a file of this origin
    assert " style=" not in r.text and "<style" not in r.text


def test_writes_need_token_session_and_csrf(web: WebProcess, http: httpx.Client) -> None:
    url = "https://feeds.example.org/rss.xml"
    assert http.post("/feeds", data={"url": url}).status_code == 403  # no CSRF token
    client, csrf = signed_in(web)
    with closing(client):
        assert client.post("/feeds", data={"url": url}).status_code == 403  # signed in, but no CSRF token
        assert client.post("/feeds", data={"url": url, "csrf_token": "0" * 64}).status_code == 403
        evil = client.post("/feeds", data={"url": url, "csrf_token": csrf}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        ok = client.post("/feeds", data={"url": url, "csrf_token": csrf})
        assert ok.status_code == 303
        assert url in client.get("/feeds").text
    # Without a session, a valid CSRF token is not enough.
    anon = httpx.Client(base_url=web.url)
    page = anon.get("/feeds")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', anon.get("/login").text)[1]
    assert page.status_code == 200
    assert anon.post("/feeds", data={"url": url, "csrf_token": token}).status_code == 401
    wrong = anon.post("/login", data={"token": "not-the-token", "csrf_token": token})
    assert wrong.status_code == 401 and "not the token" in wrong.text
    # Scripts use the token as a bearer, with no cookie to ride on and so no CSRF token.
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert anon.post("/feeds/remove", data={"url": url}, headers=bearer).status_code == 303
    assert url not in anon.get("/feeds").text
    anon.close()


def test_opml_import(web: WebProcess) -> None:
    opml = (
        '<?xml version="1.0"?><opml version="2.0"><body><outline text="World">'
        '<outline text="A" xmlUrl="https://a.example/feed.xml"/><outline text="B" xmlUrl="https://b.example/atom"/>'
        "</outline></body></opml>"
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=web.url) as c:
        r = c.post("/feeds/import", files={"opml": ("list.opml", opml, "text/xml")}, headers=bearer)
        assert r.status_code == 303 and "n=2" in r.headers["location"]
        page = c.get(r.headers["location"]).text
        assert "Imported 2 new feeds" in page and "https://b.example/atom" in page
        bad = c.post("/feeds/import", files={"opml": ("x.opml", "not xml at all", "text/xml")}, headers=bearer)
        assert bad.status_code == 400 and "Cannot import" in bad.text


def test_save_as_alert_previews_then_creates_the_rule(web: WebProcess) -> None:
    client, csrf = signed_in(web)
    with closing(client):
        form = client.get("/rules/new", params={"q": '"rocket attack"', "language": "en"})
        assert form.status_code == 200
        # Two matches in 7 days, but the copy has the same text: one alert.
        assert re.search(r'id="preview-matches">2<', form.text) and re.search(r'id="preview-alerts">1<', form.text)
        data = {"csrf_token": csrf, "q": '"rocket attack"', "language": "en", "name": "port strikes", "log": "1"}
        created = client.post("/rules", data=data)
        assert created.status_code == 303, created.text[-500:]
        rules = client.get("/rules").text
        assert "port strikes" in rules and "&#34;rocket attack&#34;" in rules and "language: en" in rules
        again = client.post("/rules", data=data)
        assert again.status_code == 400 and "exists already" in again.text
        bad = client.post("/rules", data={**data, "name": "broken", "q": "rocket AND ("})
        assert bad.status_code == 400 and "invalid query" in bad.text
        rule_id = re.search(r'id="rule-([0-9a-f]+)"', rules)[1]
        off = client.post(f"/rules/{rule_id}/disable", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
        assert off.status_code == 200 and "Disabled" in off.text and f'id="rule-{rule_id}"' in off.text
        assert client.post(f"/rules/{rule_id}/delete", data={"csrf_token": csrf}).status_code == 303
        assert "port strikes" not in client.get("/rules").text


def test_exports_are_streamed_capped_and_named(http: httpx.Client) -> None:
    r = http.get("/export.csv", params={"q": "council"})
    assert r.status_code == 200
    assert re.match(r'attachment; filename="newsflow-council-\d{8}T\d{6}Z\.csv"', r.headers["content-disposition"])
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["published_at", "title", "url"]
    assert len(rows) == 1 + 5 + 1 and rows[-1][0].startswith("# stopped at 5")  # NEWSFLOW_WEB_EXPORT_MAX=5
    lines = http.get("/export.jsonl", params={"q": '"rocket attack"'}).text.splitlines()
    docs = [json.loads(x) for x in lines]
    assert len(docs) == 2 and {d["domain"] for d in docs} == {"gulf-times.example", "wire.example"}
    bad = http.get("/export.csv", params={"q": "rocket AND ("})
    assert bad.status_code == 400 and "ends too early" in bad.text


def test_alert_stream_catches_up_from_the_last_id_then_goes_live(web: WebProcess, seeded: dict[str, Any]) -> None:
    r = redis.Redis.from_url(seeded["redis_url"])
    art = seeded["articles"][0]

    def alert(n: int) -> dict[bytes, bytes]:
        a = Alert(
            alert_id=f"{n:032x}",
            rule_id="r1",
            rule_name="port strikes",
            query="x",
            article_id=art.article_id,
            url=art.url,
            title=f"Alert number {n}",
        )
        return encode(a)

    first = r.xadd(streams.ALERTS, alert(1)).decode()
    r.xadd(streams.ALERTS, alert(2))
    got: list[str] = []
    done = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{web.url}/alerts/stream", params={"after": first}, timeout=30) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data:") and "Alert number" in line:
                    got.append(re.search(r"Alert number \d", line)[0])
                if len(got) == 2:
                    done.set()
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    threading.Timer(1.0, lambda: r.xadd(streams.ALERTS, alert(3))).start()
    assert done.wait(20), got
    assert got == ["Alert number 2", "Alert number 3"]  # 1 was seen already; 2 caught up; 3 arrived live
    r.close()
