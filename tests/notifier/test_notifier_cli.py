"""The operator's commands, through the installed CLI against the real servers: rules with modes, snooze,
`rules test` counting the messages a rule would have sent, `alerts list|show|tail`."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from notifier_helpers import (
    NEWSFLOW,
    Receiver,
    add_rules,
    article,
    cli,
    notifier_settings,
    publish_alerts,
    running_notifier,
)
from waiting import wait_until

from newsflow_indexer.handler import Indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.documents import to_document
from newsflow_search.rules import Rule, RuleStore

pytestmark = pytest.mark.integration


async def test_rules_with_modes_from_the_cli_and_a_file_and_one_line_errors(ready, settings, tmp_path: Path) -> None:
    es, _redis = ready
    out = await cli("rules", "add", "ports", "harbour", "--digest", "08:00 Europe/Berlin", "--no-log",
                    "--email", "desk@example.org")  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = await cli("rules", "add", "storms", "rocket", "--storm-guard", "10/15m", "--slack",
                    "https://hooks.slack.example/services/T/B/x")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rules = {r.name: r for r in await RuleStore(es).all()}
    assert rules["ports"].mode == "digest" and rules["ports"].digest.at == "08:00"  # type: ignore[union-attr]
    assert rules["ports"].digest.timezone == "Europe/Berlin" and rules["ports"].channels[0].to == ["desk@example.org"]  # type: ignore[union-attr]
    assert (rules["storms"].storm_guard.max, rules["storms"].storm_guard.within) == (10, 15)
    listed = await cli("rules", "list")
    assert "digest daily at 08:00 Europe/Berlin" in listed.stdout and "more than 10 in 15m" in listed.stdout
    # Secrets never printed: a signed webhook's secret is masked in the JSON listing too.
    f = tmp_path / "rules.yaml"
    f.write_text(
        "rules:\n"
        "  - name: signed\n    query: rocket\n"
        "    channels: [{webhook: 'https://hooks.example.org/n', secret: 'very-secret-value'},\n"
        "               {telegram: {chat_id: '-1001', token: '123456:ABCDEFGHIJKLMNOP'}}]\n"
    )
    assert (await cli("rules", "add", "--file", str(f))).returncode == 0
    js = await cli("rules", "list", "--json")
    assert "very-secret-value" not in js.stdout and "ABCDEFGHIJKLMNOP" not in js.stdout and '"***"' in js.stdout
    # Every mistake is one line naming the rule and the field (more cases: test_notifier_unit.py).
    f.write_text("rules:\n  - name: broken\n    query: rocket\n    digest: {at: '08:00', timezone: Mars/Base}\n")
    out = await cli("rules", "add", "--file", str(f))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert "rule 'broken'" in lines[0] and "unknown time zone 'Mars/Base'" in lines[0]


async def test_snooze_and_unsnooze(ready, settings) -> None:
    es, _redis = ready
    await add_rules(es, Rule(name="noisy", query="rocket"))
    out = await cli("rules", "snooze", "noisy", "2h")
    assert out.returncode == 0 and "snoozed until" in out.stdout, out.stderr
    rule = await RuleStore(es).get("noisy")
    assert (
        rule is not None and rule.snoozed() and rule.snoozed_until < datetime.now(UTC) + timedelta(hours=2, minutes=1)
    )  # type: ignore[operator]
    assert "snoozed until" in (await cli("rules", "list")).stdout
    # A rules file seeding the same rule again (the indexer's start) keeps the operator's snooze.
    await RuleStore(es).seed([Rule(name="noisy", query="rocket")])
    assert (await RuleStore(es).get("noisy")).snoozed()  # type: ignore[union-attr]
    assert (await cli("rules", "unsnooze", "noisy")).returncode == 0
    assert not (await RuleStore(es).get("noisy")).snoozed()  # type: ignore[union-attr]
    bad = await cli("rules", "snooze", "noisy", "soon")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert (await cli("rules", "snooze", "nope", "1h")).returncode == 1


async def _index_at(es, arts_times) -> None:  # type: ignore[no-untyped-def]
    ops: list[dict] = []
    for a, t in arts_times:
        ops += [{"index": {"_index": "news", "_id": a.article_id}}, to_document(a, indexed_at=t)]
    assert not (await es.bulk(operations=ops, refresh=True))["errors"]


def _event(n: int, outlet: str, words: int = 0):  # type: ignore[no-untyped-def]
    town = ["Brenmouth", "Asterby", "Malvik", "Velden", "Noria", "Corrin", "Tollby", "Glenfar", "Eskdale"][n]
    if words == 0:
        text = f"Rockets struck {town} harbour, master Ilse Varga{n} said. {n + 40} workers went home."
        return article(f"https://{outlet}/{n}", f"Rockets strike the harbour of {town}", text)
    return article(f"https://{outlet}/{n}b", f"{town} harbour hit by rockets",
                   f"Master Ilse Varga{n} said {n + 40} workers left {town} after the rocket strike.")  # fmt: skip


async def test_rules_test_counts_the_messages_each_mode_would_have_sent(ready, settings) -> None:
    es, _redis = ready
    t0 = datetime.now(UTC) - timedelta(days=2)
    # Event 0 reported by two outlets an hour apart: one story. Then a burst of 8 stories in 8 minutes.
    arts = [(_event(0, "a.example"), t0), (_event(0, "b.example", words=1), t0 + timedelta(hours=1))]
    arts += [(_event(n, "a.example"), t0 + timedelta(hours=5, minutes=n)) for n in range(1, 9)]
    await _index_at(es, arts)
    await add_rules(
        es,
        Rule(name="immediate", query="rocket*", storm_guard="off"),
        Rule(name="guarded", query="rocket*", storm_guard={"max": 3, "within": "10m"}),
        Rule(name="daily", query="rocket*", digest={"at": "06:00"}),
    )
    out = await cli("rules", "test", "immediate")
    assert out.returncode == 0, out.stderr
    assert (
        "10 article(s)" in out.stdout
        and "would have sent 9 message(s) per channel (9 at once) for 9 stories" in out.stdout
    )
    guarded = (await cli("rules", "test", "guarded")).stdout
    # 1, then the burst: 3 at once, the rest in storm digests until quiet.
    assert "would have sent 6 message(s) per channel (4 at once, 2 storm digests)" in guarded or (
        "would have sent 5 message(s) per channel (4 at once, 1 storm digests)" in guarded
    ), guarded
    daily = (await cli("rules", "test", "daily")).stdout
    assert "message(s) per channel (" in daily and "digests)" in daily and "for 9 stories" in daily


async def test_alerts_list_show_and_tail(ready, settings, receiver: Receiver, redis_url: str, es_url: str) -> None:
    es, redis = ready
    rule = Rule(name="harbours", query="rocket*", channels=[f"{receiver.url}/h", "log"])
    await add_rules(es, rule)
    ix = Indexer(es, IndexerSettings(redis_url=redis_url, elasticsearch_url=es_url), redis=redis)
    arts = [_event(1, "a.example"), _event(1, "b.example", words=1), _event(2, "a.example")]
    fired = []
    for a in arts:  # one batch each, as they would arrive
        (alerts,) = await ix.handle_batch([a])
        fired += alerts  # type: ignore[operator]
    assert len(fired) == 3
    pipe, env = asyncio.subprocess.PIPE, {**os.environ, "NEWSFLOW_REDIS_URL": redis_url}
    tail = await asyncio.create_subprocess_exec(
        NEWSFLOW, "alerts", "tail", "--count", "3", "--timeout", "60", stdout=pipe, stderr=pipe, env=env
    )
    assert tail.stderr is not None and b"following" in await asyncio.wait_for(tail.stderr.readline(), 60)
    async with running_notifier(notifier_settings(redis_url, es_url)):
        await publish_alerts(redis, fired)
        await wait_until(lambda: len(receiver.requests) == 2, what="two messages: two stories")
        out, _err = await asyncio.wait_for(tail.communicate(), 30)
    followed = out.decode().strip().splitlines()
    assert tail.returncode == 0 and len(followed) == 3, followed
    assert all("harbours" in line for line in followed)
    listed = await cli("alerts", "list", "--json")
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    by_url = {r["alert"]["url"]: r for r in rows}
    # The two outlets' reports of event 1 are one story: whichever the notifier decided first (they are
    # decided concurrently) was sent, the other joined it.
    first, second = sorted(fired[:2], key=lambda a: by_url[a.url]["status"] != "sent 2/2")
    assert by_url[first.url]["status"] == "sent 2/2"
    assert by_url[second.url]["status"] == "also reported" and first.alert_id in by_url[second.url]["detail"]
    assert by_url[arts[2].url]["status"] == "sent 2/2"
    table = (await cli("alerts", "list", "--rule", "harbours")).stdout
    assert "also reported" in table and "sent 2/2" in table
    shown = await cli("alerts", "show", first.alert_id[:10])
    assert shown.returncode == 0, shown.stderr
    assert f"also reported by {second.domain}" in shown.stdout and "delivered after 1 attempt(s)" in shown.stdout
    assert "after indexing" in shown.stdout
    assert (await cli("alerts", "show", "0000nothing")).returncode == 1
