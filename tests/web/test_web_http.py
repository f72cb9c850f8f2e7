"""The web app over HTTP, as its own process against the real Redis and Elasticsearch: what each page shows,
that bad input is a message and never a 500, and that writing needs the token, a session and a CSRF token."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_shared import streams
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.runtime import encode

from .conftest import TOKEN, WebProcess, run_async

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
    # Same story elsewhere: the other outlet's own words, found by title and standfirst; the copy is not repeated.
    other = seeded["articles"][-1]
    coverage = r.text.split('id="coverage-h"')[1].split("</section>")[0]
    assert f"/articles/{other.article_id}" in coverage and f"/articles/{copy.article_id}" not in coverage


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
        # Two matches in 7 days, but the copy has the same text: one story, one alert, one message (the log).
        assert number(form.text, "preview-matches") == 2 and number(form.text, "preview-alerts") == 1
        assert number(form.text, "preview-messages") == 1
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


def number(html: str, element_id: str) -> int:
    return int(re.search(rf'id="{element_id}">([\d,]+)<', html)[1].replace(",", ""))


def test_a_digest_rule_with_its_channels_previewed_saved_snoozed_and_unsnoozed(web: WebProcess) -> None:
    client, csrf = signed_in(web)
    search = {"q": "council", "section": "Local"}
    digest = {"mode": "digest", "digest_kind": "every", "digest_every": "1d", "storm": "1"}
    channels = {"log": "1", "webhook": "https://hooks.example.org/nf", "email": "desk@example.org, ed@example.org"}
    with closing(client):
        # Council meetings published 1 to 8 days ago: six in the last 7 days, six stories (their facts differ).
        # All were indexed in the same second, as a burst: more than 5 within 10 minutes wakes the storm guard,
        # which sends the sixth in a storm digest; without the guard, six messages at once.
        guarded = client.get("/rules/preview", params={**search, "log": "1", "storm": "1"}).text
        assert number(guarded, "preview-matches") == 6 and number(guarded, "preview-alerts") == 6
        assert number(guarded, "preview-messages") == 6 and "(5 at once, 1 storm digest)" in guarded
        unguarded = client.get("/rules/preview", params={**search, "log": "1"}).text
        assert number(unguarded, "preview-messages") == 6 and "(6 at once)" in unguarded
        # A daily digest: the burst is one message per channel; three channels.
        daily = client.get("/rules/preview", params={**search, **digest, **channels}).text
        assert number(daily, "preview-messages") == 3 and "every 1d" in daily and "to 3 channels" in daily
        wrong = client.get("/rules/preview", params={**search, **digest, "digest_every": "soon"}).text
        assert 'id="preview-error"' in wrong and "duration such as 30m" in wrong
        # Saved with its mode, storm guard and channels; the webhook's secret never comes back to the page.
        data = {"csrf_token": csrf, **search, **digest, **channels, "name": "council digest"}
        refused = client.post("/rules", data={**data, "email": "not-an-address", "webhook_secret": "s3cret-value"})
        assert refused.status_code == 400 and "not an e-mail address" in refused.text
        assert "s3cret-value" not in refused.text and 'value="1d"' in refused.text  # the rest is kept
        assert client.post("/rules", data={**data, "webhook_secret": "s3cret-value"}).status_code == 303
        rules = client.get("/rules").text
        row = re.search(r'<tr id="rule-([0-9a-f]+)"[^>]*>(?:(?!</tr>).)*council digest.*?</tr>', rules, re.S)
        assert row and "Digest every 1d" in row[0] and "s3cret-value" not in rules
        assert "webhook:https://hooks.example.org/nf (signed)" in row[0]
        assert "email:desk@example.org,ed@example.org" in row[0] and ">log<" in row[0]
        rule_id = row[1]
        hx = {"HX-Request": "true"}
        snoozed = client.post(f"/rules/{rule_id}/snooze", data={"csrf_token": csrf, "for": "4h"}, headers=hx)
        assert snoozed.status_code == 200 and "Snoozed" in snoozed.text and "Un-snooze" in snoozed.text
        assert "Snoozed" in client.get("/rules").text  # kept in the rules index, as `newsflow rules snooze` does
        odd = client.post(f"/rules/{rule_id}/snooze", data={"csrf_token": csrf, "for": "99y"}, headers=hx)
        assert "Snooze for one of" in odd.text
        woke = client.post(f"/rules/{rule_id}/unsnooze", data={"csrf_token": csrf}, headers=hx)
        assert woke.status_code == 200 and "Snoozed" not in woke.text and ">Snooze<" in woke.text
        assert client.post(f"/rules/{rule_id}/delete", data={"csrf_token": csrf}).status_code == 303


def test_alerts_show_what_the_notifier_made_of_them_per_channel(web: WebProcess, seeded: dict[str, Any]) -> None:
    """The alerts page reads the notifier's state (newsflow_alerting, as `newsflow alerts list` does): sent,
    failed with its reason, still sending (asked again), joined another outlet's story."""
    from newsflow_alerting.state import Decision, Delivery, NotifierState
    from newsflow_search.rules import Rule, RuleStore

    sent_art, copy_art = seeded["articles"][0], seeded["articles"][3]
    rule = Rule(name="fates", query="rocket", channels=["log", "https://hooks.example.org/a"])
    log_key, hook_key = (c.key for c in rule.channels)
    now = datetime.now(UTC)

    def fate(alert_id: str, art: ParsedArticle, title: str) -> Alert:
        return Alert(alert_id=alert_id, rule_id=rule.id, rule_name=rule.name, query=rule.query,
                     article_id=art.article_id, url=art.url, title=title, matched_at=now)  # fmt: skip

    one, two = fate("a" * 32, sent_art, "Fate one"), fate("b" * 32, copy_art, "Fate two")

    def delivery(status: str, channel: str, detail: str = "") -> Delivery:
        return Delivery(
            status=status,
            channel=channel,
            kind="alert",
            rule_name=rule.name,
            attempts=3 if detail else 1,
            detail=detail,
            first_at=now,
            last_at=now,
        )

    async def prepare() -> None:
        es = AsyncElasticsearch(seeded["es_url"])
        r = aioredis.Redis.from_url(seeded["redis_url"])
        try:
            await RuleStore(es).add(rule, validate=False)
            # What the indexer records for an alert that fired (the story's claim with the alert in it).
            for a in (one, two):
                doc = {
                    "kind": "fingerprint",
                    "fired": True,
                    "alert_id": a.alert_id,
                    "rule_id": rule.id,
                    "rule_name": rule.name,
                    "article_id": a.article_id,
                    "url": a.url,
                    "alert": a.model_dump(mode="json"),
                    "created_at": now.isoformat(),
                }
                await es.index(index="newsflow-alerts", id="fp-" + a.alert_id, document=doc, refresh=True)
            # What the notifier recorded: the first sent to the log, failed at the webhook; the second still sending.
            state = NotifierState(r)
            await state.commit(one, Decision(story_id=one.alert_id, role="story", route="immediate", at=now))
            await state.record(one.alert_id, log_key, delivery("delivered", "log"))
            await state.record(
                one.alert_id,
                hook_key,
                delivery("failed", "webhook:https://hooks.example.org/a", "http-500: the receiver answered 500"),
            )
            await state.commit(two, Decision(story_id=two.alert_id, role="story", route="immediate", at=now))
            await state.record(two.alert_id, hook_key, delivery("sending", "webhook:https://hooks.example.org/a"))
        finally:
            await es.close()
            await r.aclose()

    run_async(prepare())
    with httpx.Client(base_url=web.url, timeout=30) as c:
        page = c.get("/alerts").text
        first = page[page.index('id="alert-' + one.alert_id) :]
        first = re.split(r'<li class="alert-row|</ol>', first)[0]  # this alert's row only
        assert "sent 1/2, 1 failed" in first
        assert re.search(
            r'status-delivered"[^>]*>\s*<span class="channel">log</span> <span class="status">delivered', first
        )
        assert "the receiver answered 500" in first  # the reason of a failure is on the page, not in a tooltip only
        assert 'hx-get="/alerts/' + one.alert_id not in first  # settled: not asked again
        pending = c.get(f"/alerts/{two.alert_id}/deliveries").text
        assert f'hx-get="/alerts/{two.alert_id}/deliveries"' in pending  # still sending: the page asks again
        assert re.search(r'<span class="channel">log</span> <span class="status">queued', pending)
        assert re.search(r'hooks\.example\.org/a</span> <span class="status">sending', pending)
    run_async(_settle(seeded, two, hook_key, delivery("delivered", "webhook:https://hooks.example.org/a"), log_key))
    with httpx.Client(base_url=web.url, timeout=30) as c:
        done = c.get(f"/alerts/{two.alert_id}/deliveries").text
        assert "sent 2/2" in done and "hx-get" not in done
        assert "unknown" in c.get(f"/alerts/{'c' * 32}/deliveries").text


async def _settle(seeded: dict[str, Any], alert: Alert, hook_key: str, d: Any, log_key: str) -> None:
    from newsflow_alerting.state import NotifierState

    r = aioredis.Redis.from_url(seeded["redis_url"])
    try:
        state = NotifierState(r)
        await state.record(alert.alert_id, hook_key, d)
        await state.record(alert.alert_id, log_key, d.model_copy(update={"channel": "log"}))
    finally:
        await r.aclose()


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


def test_an_alert_on_the_stream_is_listed_before_the_alerts_index_finds_it(
    web: WebProcess, seeded: dict[str, Any]
) -> None:
    # The indexer records an alert (no refresh) and puts it on the stream at once: a page loaded within the
    # index's next refresh must list it all the same. Here the record never becomes searchable at all.
    r = redis.Redis.from_url(seeded["redis_url"])
    art = seeded["articles"][0]
    alert = Alert(
        alert_id="d" * 32,
        rule_id="r1",
        rule_name="port strikes",
        query="x",
        article_id=art.article_id,
        url=art.url,
        title="Not searchable yet",
    )
    r.xadd(streams.ALERTS, encode(alert))
    r.close()
    with httpx.Client(base_url=web.url, timeout=30) as c:
        page = c.get("/alerts").text
    assert f'id="alert-{alert.alert_id}' in page and "Not searchable yet" in page
