"""A rule's lock rides with the reads of its state and is let go by the decision's commit (one round trip
each way): against a real Redis, including one that has not loaded the release script yet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from newsflow_alerting.state import Decision, NotifierState, RuleLock, k_facts, k_open, ms
from newsflow_shared.models import Alert

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _alert(n: int, rule_id: str = "r1") -> Alert:
    return Alert(
        alert_id=f"a{n}",
        rule_id=rule_id,
        rule_name="rocket attack",
        query="rocket attack",
        article_id=_aid(n),
        url=f"https://example.org/{n}",
        title=f"Report {n}",
    )


def _aid(n: int) -> str:
    return f"{n:032x}"


def _story(a: Alert) -> Decision:
    return Decision(story_id=a.alert_id, role="story", route="immediate", at=NOW)


async def test_a_held_lock_keeps_others_out_until_the_commit_lets_go(redis: aioredis.Redis) -> None:
    state = NotifierState(redis)
    one, two = RuleLock.of("r1", 15), RuleLock.of("r1", 15)
    await redis.script_flush()  # the first release finds no script: the commit must still let go

    seen = await state.take("r1", one, NOW - timedelta(hours=24), NOW - timedelta(minutes=10), "a1")
    assert seen is not None and seen.decision is None and seen.members == []
    assert await state.take("r1", two, NOW - timedelta(hours=24), NOW - timedelta(minutes=10), "a2") is None

    first = _alert(1)
    await state.commit(first, _story(first), frozenset({"kyiv", "rocket"}), lock=one)
    assert await redis.get(one.key) is None

    seen = await state.take("r1", two, NOW - timedelta(hours=24), NOW - timedelta(minutes=10), "a1")
    assert seen is not None
    assert seen.decision == _story(first)  # a redelivery reads its decision with the lock
    assert seen.members == [(_aid(1), "a1", frozenset({"kyiv", "rocket"}))]
    assert seen.fires == 1
    await state.release(two)
    assert await redis.get(two.key) is None


async def test_a_commit_never_lets_go_of_a_lock_it_no_longer_holds(redis: aioredis.Redis) -> None:
    state = NotifierState(redis)
    mine = RuleLock.of("r1", 15)
    assert await state.take("r1", mine, NOW - timedelta(hours=24), NOW, "a1") is not None
    # Our lock expired during a long decision and another replica took it.
    theirs = RuleLock.of("r1", 15)
    await redis.set(mine.key, theirs.token)

    a = _alert(1)
    await state.commit(a, _story(a), lock=mine)
    assert await redis.get(mine.key) == theirs.token.encode()


async def test_the_facts_of_reports_out_of_the_window_are_forgotten_by_the_next_commit(
    redis: aioredis.Redis,
) -> None:
    state = NotifierState(redis)
    old = NOW - timedelta(hours=30)
    await redis.zadd(k_open("r1"), {f"{_aid(0)}|a0": ms(old)})
    await redis.hset(k_facts("r1"), _aid(0), json.dumps(["old"]))

    lock = RuleLock.of("r1", 15)
    seen = await state.take("r1", lock, NOW - timedelta(hours=24), NOW - timedelta(minutes=10), "a1")
    assert seen is not None
    assert seen.members == [] and seen.stale == [_aid(0).encode()]
    a = _alert(1)
    await state.commit(a, _story(a), frozenset({"new"}), stale=seen.stale, lock=lock)
    assert await redis.hkeys(k_facts("r1")) == [_aid(1).encode()]
