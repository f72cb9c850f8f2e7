"""Delivery modes against the real Redis and Elasticsearch, with the clock moved by the test: digests once
per period, newest first; the storm guard; snooze; another outlet's report updating the open story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import Parts, Receiver, add_rules, alert_for, article, index_articles

from newsflow_alerting.schedule import period_end
from newsflow_search.rules import DigestSchedule, Rule

pytestmark = pytest.mark.integration

TOWNS = ["Brenmouth", "Asterby", "Kellen Bay", "Port Ivo", "Malvik", "Harrowgate", "Lindholm", "Velden"]


def event(n: int, outlet: str = "courier.example", minutes_ago: float = 30, words: int = 0):  # type: ignore[no-untyped-def]
    """A distinct event per `n` (its own town, people and figures); `words` picks one of two wordings."""
    town = TOWNS[n % len(TOWNS)]
    if words == 0:
        title = f"Rockets strike the harbour of {town}"
        text = (
            f"Rockets struck the harbour of {town} on Tuesday night, harbour master Ilse Varga{n} said. "
            f"{n + 3} cranes were damaged and {n + 40} workers were sent home. Nobody claimed the attack."
        )
    else:
        title = f"{town} harbour hit: {n + 3} cranes damaged"
        text = (
            f"Harbour master Ilse Varga{n} said {n + 40} workers had been sent home from {town} after the "
            f"rocket attack on Tuesday night. The strike damaged {n + 3} cranes."
        )
    return article(f"https://{outlet}/{n}-{words}", title, text, minutes_ago=minutes_ago)


async def test_a_digest_goes_out_once_per_period_newest_first_and_a_restart_repeats_nothing(
    ready, parts: Parts, receiver: Receiver
) -> None:
    es, redis = ready
    rule = Rule(name="harbours", query="rocket", digest="30m", channels=[f"{receiver.url}/digest"])
    await add_rules(es, rule)
    arts = [event(n, minutes_ago=50 - 10 * n) for n in range(3)]  # published 50, 40, 30 minutes ago
    await index_articles(es, arts)
    t0 = datetime.now(UTC)
    for a in arts:
        assert await parts.planner.plan(alert_for(rule, a), now=t0) == []  # nothing at once in digest mode
    assert await parts.scheduler.tick(t0) == 0  # the current period is not over
    boundary = period_end(DigestSchedule(every=30), t0) + timedelta(minutes=30)
    assert await parts.scheduler.tick(boundary + timedelta(seconds=3)) == 3
    # A second replica, or a restart, at the same moment or later in the period: nothing sealed twice.
    assert await parts.scheduler.tick(boundary + timedelta(seconds=4)) == 0
    assert await parts.scheduler.tick(boundary + timedelta(minutes=29)) == 0
    (n,) = await parts.notifications(redis)
    assert n.kind == "digest" and n.channel == rule.channels[0].key
    await parts.deliverer.deliver(n)
    (req,) = receiver.on("/digest")
    body = req.json()
    assert body["type"] == "newsflow.digest" and req.headers["idempotency-key"] == f"{n.notification_id}:{n.channel}"
    assert [s["url"] for s in body["stories"]] == [a.url for a in reversed(arts)]  # newest first
    assert not body["storm"]
    # A story arriving in the next period goes into the next digest, and only it.
    late = event(5)
    await index_articles(es, [late])
    await parts.planner.plan(alert_for(rule, late), now=boundary + timedelta(minutes=1))
    assert await parts.scheduler.tick(boundary + timedelta(minutes=30, seconds=3)) == 1
    _first, second = await parts.notifications(redis)
    await parts.deliverer.deliver(second)
    body2 = receiver.on("/digest")[1].json()
    assert [s["url"] for s in body2["stories"]] == [late.url]
    assert body2["start"].startswith(boundary.strftime("%Y-%m-%dT%H:%M"))
    # Delivered once: a redelivery of the same message is not sent again.
    await parts.deliverer.deliver(second)
    assert len(receiver.on("/digest")) == 2


async def test_the_storm_guard_turns_a_burst_into_digests_and_back(ready, parts: Parts, receiver: Receiver) -> None:
    es, redis = ready
    rule = Rule(
        name="harbours", query="rocket", storm_guard={"max": 3, "within": "10m"}, channels=[f"{receiver.url}/s"]
    )
    await add_rules(es, rule)
    arts = [event(n) for n in range(7)]
    await index_articles(es, arts)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    sent = []
    for i, a in enumerate(arts):
        sent.append(len(await parts.planner.plan(alert_for(rule, a), now=t0 + timedelta(seconds=i))))
    assert sent == [1, 1, 1, 0, 0, 0, 0]  # the fourth story in 10 minutes starts the storm
    assert await parts.state.storm_started(rule.id) is not None
    b1 = period_end(DigestSchedule(every=10), t0) + timedelta(minutes=10)
    assert await parts.scheduler.tick(b1 + timedelta(seconds=3)) == 4
    storm_digest = (await parts.notifications(redis))[-1]
    await parts.deliverer.deliver(storm_digest)
    body = receiver.on("/s")[-1].json()
    assert body["storm"] and not body["storm_over"] and len(body["stories"]) == 4
    assert "Storm guard" in (await _text(parts, storm_digest))
    # Quiet for a whole window: the next boundary ends the storm, and stories go out one by one again.
    assert await parts.scheduler.tick(b1 + timedelta(minutes=10, seconds=3)) == 0
    assert await parts.state.storm_started(rule.id) is None
    later = event(7)
    await index_articles(es, [later])
    assert len(await parts.planner.plan(alert_for(rule, later), now=b1 + timedelta(minutes=21))) == 1
    # Immediate messages are returned for the runtime to publish; the storm digest was sealed onto the stream.
    assert [n.kind for n in await parts.notifications(redis)] == ["digest"]


async def _text(parts: Parts, n) -> str:  # type: ignore[no-untyped-def]
    from newsflow_notifier.channels import render

    meta, stories = await parts.state.digest(n.notification_id)
    return render.text(render.digest_content(meta, stories, "rocket"))


async def test_a_snoozed_rule_records_its_alerts_and_sends_nothing(ready, parts: Parts) -> None:
    es, _redis = ready
    until = datetime.now(UTC) + timedelta(hours=2)
    rule = Rule(name="harbours", query="rocket", channels=["log"], snoozed_until=until)
    await add_rules(es, rule)
    a = event(1)
    await index_articles(es, [a])
    alert = alert_for(rule, a)
    assert await parts.planner.plan(alert) == []
    d = await parts.state.decision(alert.alert_id)
    assert d is not None and d.route == "snoozed"
    # After the snooze, the next story goes out at once.
    b = event(2)
    await index_articles(es, [b])
    assert len(await parts.planner.plan(alert_for(rule, b), now=until + timedelta(minutes=1))) == 1


async def test_another_outlets_report_updates_the_open_story_instead_of_a_new_message(
    ready, parts: Parts, receiver: Receiver
) -> None:
    es, redis = ready
    rule = Rule(name="harbours", query="rocket", channels=[f"{receiver.url}/i"])
    digest_rule = Rule(name="harbours-digest", query="rocket", digest="1h", channels=[f"{receiver.url}/d"])
    await add_rules(es, rule, digest_rule)
    first = event(1, "courier.example", words=0)
    other_outlet = event(1, "ledger.example", words=1)  # the same event in other words
    same_words = event(2, "herald.example", words=0)  # another event in the first report's words
    await index_articles(es, [first, other_outlet, same_words])
    # All three reports fall in one digest period whatever the wall clock says (the third comes 6 min later).
    now = period_end(DigestSchedule(every=60), datetime.now(UTC)) + timedelta(minutes=1)
    for r in (rule, digest_rule):
        a1, a2, a3 = (alert_for(r, x) for x in (first, other_outlet, same_words))
        first_msgs = await parts.planner.plan(a1, now=now)
        assert await parts.planner.plan(a2, now=now + timedelta(minutes=5)) == []  # no new message, any mode
        third = await parts.planner.plan(a3, now=now + timedelta(minutes=6))
        assert (len(first_msgs), len(third)) == ((1, 1) if r is rule else (0, 0))
        d2 = await parts.state.decision(a2.alert_id)
        assert d2 is not None and d2.role == "also" and d2.story_id == a1.alert_id
        assert (await parts.state.decision(a3.alert_id)).story_id == a3.alert_id  # type: ignore[union-attr]
        story = await parts.state.story(a1.alert_id)
        assert story is not None and story.outlets == ["courier.example", "ledger.example"]
    # The digest lists the story once, with "also reported by".
    await parts.scheduler.tick(period_end(DigestSchedule(every=60), now) + timedelta(hours=1, seconds=3))
    digest = next(n for n in await parts.notifications(redis) if n.kind == "digest")
    await parts.deliverer.deliver(digest)
    body = receiver.on("/d")[0].json()
    assert [s["url"] for s in body["stories"]] == [same_words.url, first.url] or [
        s["url"] for s in body["stories"]
    ] == [first.url, same_words.url]
    story = next(s for s in body["stories"] if s["url"] == first.url)
    assert [m["domain"] for m in story["also_reported_by"]] == ["ledger.example"]
    assert "also reported by ledger.example" in await _text(parts, digest)
