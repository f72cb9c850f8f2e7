"""Pure logic of the web page: a search read from its URL, cursors, exports' names and cells, highlights,
security checks that need no server."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from newsflow_search.explore import (
    MARK_CLOSE,
    MARK_OPEN,
    Search,
    SearchError,
    decode_cursor,
    encode_cursor,
    interval_for,
)
from newsflow_web.app import ago, marked
from newsflow_web.pages import _cell, export_name
from newsflow_web.params import MAX_WINDOW, parse

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
AID = "0123456789abcdef0123456789abcdef"


def read(**args: list[str] | str):
    multi = {k: v if isinstance(v, list) else [v] for k, v in args.items()}
    return parse(multi, max_query_chars=100, page_size=20, max_page_size=50, now=NOW)


def test_a_search_url_round_trips() -> None:
    req = read(q='"rocket attack"', domain=["a.example", "b.example"], section="Politics", sort="newest", since="7d")
    assert req.problems == []
    assert req.search.filters == {"domain": ("a.example", "b.example"), "section": ("Politics",)}
    again = parse(
        {k: [v for kk, v in req.params() if kk == k] for k, _ in req.params()},
        max_query_chars=100,
        page_size=20,
        max_page_size=50,
        now=NOW,
    )
    assert again.search == req.search


def test_toggling_a_facet_adds_then_removes_it_and_resets_paging() -> None:
    req = read(q="port", page="3", domain="a.example")
    url = req.toggled("section", "World")
    assert "section=World" in url and "domain=a.example" in url and "page=" not in url
    assert "domain=" not in read(q="port", domain="a.example").toggled("domain", "a.example")


def test_limits_are_applied_and_said() -> None:
    req = read(q="x" * 150, size="5000", page="-1")
    assert len(req.search.q) == 100
    assert req.search.size == 50
    assert any("150 characters" in p for p in req.problems)
    assert any("Results per page" in p for p in req.problems)
    assert any("Page must be a whole number" in p for p in req.problems)


def test_a_huge_page_number_is_a_message_not_an_error() -> None:
    req = read(q="x", page="99999")
    assert req.page == 1 and req.offset == 0
    assert any(f"{MAX_WINDOW:,}" in p for p in req.problems)
    ok = read(q="x", page="3")
    assert ok.offset == 40 and ok.problems == []


def test_dates_inclusive_days_swapped_when_reversed() -> None:
    req = read(**{"from": "2026-03-10", "to": "2026-03-01"})
    assert req.start == date(2026, 3, 1) and req.end == date(2026, 3, 10)
    assert req.search.gte == datetime(2026, 3, 1, tzinfo=UTC)
    assert req.search.lt == datetime(2026, 3, 11, tzinfo=UTC)
    assert any("swapped" in p for p in req.problems)
    bad = read(**{"from": "yesterday"})
    assert bad.search.gte is None and any("not a date" in p for p in bad.problems)
    preset = read(since="24h")
    assert preset.search.gte == NOW - timedelta(hours=24)


def test_cursor_round_trip_and_tampering() -> None:
    values = [1.234, AID]
    assert decode_cursor(encode_cursor(values)) == values
    for token in ("!!!", encode_cursor([1, "not-an-id"]), encode_cursor([1, AID, 3]), "e30"):
        with pytest.raises(SearchError):
            decode_cursor(token)
    req = read(q="x", after="garbage", page="4")
    assert req.after is None and req.page == 1 and req.problems


def test_empty_query_sorts_newest_and_has_no_text_clause() -> None:
    s = Search(q="  ")
    assert s.effective_sort == "newest"
    assert s.text_query()["bool"]["must"] == []
    assert "highlight" not in s.page_body()


def test_facets_count_under_every_filter_but_their_own() -> None:
    s = Search(q="port", filters={"domain": ("a.example",), "section": ("World",)})
    body = s.page_body()
    assert body["post_filter"]["bool"]["filter"] == [
        {"terms": {"domain": ["a.example"]}},
        {"terms": {"section": ["World"]}},
    ]
    domain_agg = body["aggs"]["facet_domain"]["filter"]["bool"]["filter"]
    assert domain_agg == [{"terms": {"section": ["World"]}}]
    assert len(body["aggs"]["over_time"]["filter"]["bool"]["filter"]) == 2


def test_rule_query_keeps_rule_filters_and_turns_authors_into_syntax() -> None:
    s = Search(q="port strike", filters={"author": ('Dana "D" Whitfield',), "language": ("en",)})
    assert s.rule_query() == '(port strike) AND authors:("Dana \\"D\\" Whitfield")'
    assert s.rule_filters() == {"language": ["en"]}
    assert Search(q="x").rule_query() == "x"


def test_histogram_interval_follows_the_range() -> None:
    assert interval_for(timedelta(days=30)) == "day"
    assert interval_for(timedelta(days=365)) == "week"
    assert interval_for(timedelta(days=3000)) == "month"
    s = Search(q="x", gte=datetime(2026, 3, 1, tzinfo=UTC), lt=datetime(2026, 3, 8, tzinfo=UTC))
    agg = s.page_body()["aggs"]["over_time"]["aggs"]["buckets"]["date_histogram"]
    assert agg["calendar_interval"] == "day"
    assert agg["extended_bounds"]["max"].startswith("2026-03-07T23:59:59.999")
    # "The last 30 days" ends today: still one request, bars up to the end of today.
    since = Search(q="x", gte=datetime.now(UTC) - timedelta(days=30)).page_body()["aggs"]["over_time"]["aggs"]
    bounds = since["buckets"]["date_histogram"]["extended_bounds"]
    assert bounds["max"].startswith(datetime.now(UTC).date().isoformat() + "T23:59:59.999")
    # Without a start the span is not known yet: the histogram is a second request (see explore.run).
    assert "buckets" not in Search(q="x").page_body()["aggs"]["over_time"]["aggs"]


def test_highlights_are_escaped_before_marking() -> None:
    html = str(marked(f"<script>x</script> {MARK_OPEN}rocket{MARK_CLOSE} « attack »"))
    assert html == "&lt;script&gt;x&lt;/script&gt; <mark>rocket</mark> « attack »"


def test_export_file_name_has_query_and_time() -> None:
    req = read(q='"rocket attack" OR drone*')
    assert export_name(req, "csv", NOW) == "newsflow-rocket-attack-or-drone-20260314T120000Z.csv"
    assert export_name(read(), "jsonl", NOW) == "newsflow-all-20260314T120000Z.jsonl"


def test_csv_cells_never_start_a_formula() -> None:
    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell(["A", "B"]) == "A; B"
    assert _cell(None) == ""


def test_ago() -> None:
    assert ago(NOW - timedelta(minutes=5), now=NOW) == "5 min ago"
    assert ago((NOW - timedelta(days=2)).isoformat(), now=NOW) == "2 d ago"


def test_vendored_scripts_are_the_published_ones() -> None:
    # The manifest names each vendored file's npm package, version and sha256; a silent edit fails here.
    root = Path(__file__).resolve().parents[2]
    manifest = json.loads((root / "services/web/src/newsflow_web/static/vendor/VENDORED.json").read_text())
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert (root / entry["licence"]).is_file()


def test_an_alerts_fate_per_channel_and_when_the_page_asks_again() -> None:
    from newsflow_search.rules import Rule
    from newsflow_shared.models import Alert
    from newsflow_web.deliveries import describe

    rule = Rule(name="r", query="x", channels=["log", "https://hooks.example.org/a"])
    log, hook = (c.key for c in rule.channels)
    alert = Alert(alert_id=AID, rule_id=rule.id, rule_name="r", query="x", article_id=AID, url="https://a.example/1")
    at = alert.matched_at

    def delivered(label: str) -> dict[str, object]:
        return {"status": "delivered", "channel": label, "attempts": 1}

    waiting = describe({"status": "waiting"}, alert, rule, at)
    assert [c.status for c in waiting.channels] == ["waiting", "waiting"] and waiting.watch and waiting.poll_s == 2
    assert not describe({"status": "waiting"}, alert, rule, at + timedelta(hours=7)).watch  # given up on
    assert describe({"status": "waiting"}, alert, rule, at + timedelta(minutes=5)).poll_s == 30
    digest = describe({"status": "digest pending", "route": "digest", "role": "story"}, alert, rule, at)
    assert {c.status for c in digest.channels} == {"in digest"} and digest.watch and digest.poll_s == 30
    joined = describe({"status": "also reported", "route": "immediate", "role": "also"}, alert, rule, at)
    assert {c.status for c in joined.channels} == {"in story"} and not joined.watch
    half = describe({"status": "sent 1/1", "role": "story", "deliveries": {log: delivered("log")}}, alert, rule, at)
    assert [(c.channel, c.status) for c in half.channels] == [
        ("log", "delivered"),
        (rule.channels[1].label(), "queued"),
    ]
    assert half.watch
    # A channel the rule no longer has is still listed with its outcome; all settled: not asked again.
    gone = {log: delivered("log"), hook: delivered("webhook"), "slack-0123": delivered("slack:old")}
    done = describe({"status": "sent 3/3", "role": "story", "deliveries": gone}, alert, rule, at)
    assert [c.channel for c in done.channels] == ["log", "webhook", "slack:old"] and not done.watch


def test_the_alerts_page_adds_stream_alerts_the_index_does_not_find_yet_newest_first() -> None:
    from newsflow_search.fired import FiredRecord
    from newsflow_shared.models import Alert
    from newsflow_web.live import Arrival
    from newsflow_web.watch import with_unsearchable

    t0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def alert(n: int, minutes: int) -> Alert:
        return Alert(
            alert_id=f"{n:032x}",
            rule_id="r",
            rule_name="r",
            query="q",
            article_id=f"{n:032x}",
            url=f"https://x.example/{n}",
            title=str(n),
            matched_at=t0 + timedelta(minutes=minutes),
        )

    indexed = [FiredRecord(alert(1, 1), t0 + timedelta(minutes=1), {"fired": True})]
    on_stream = [Arrival("3-0", alert(3, 3)), Arrival("2-0", alert(1, 1))]
    merged = with_unsearchable(indexed, on_stream, shown=50)
    assert [r.alert.title for r in merged] == ["3", "1"]
    assert merged[1].record == {"fired": True}  # the index's record wins over the stream's copy
    assert [r.alert.title for r in with_unsearchable(indexed, on_stream, shown=1)] == ["3"]
