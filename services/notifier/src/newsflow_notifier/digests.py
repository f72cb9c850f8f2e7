"""Sealing digests when they are due: the rule's own schedule, the storm guard's, and leftovers.

Every replica runs this loop; sealing is one Lua script per period that refuses a boundary already sealed
(`NotifierState.seal`), so a digest goes out once whatever the number of replicas or restarts, and a
restart after a long outage seals the stories of every missed period into one digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from newsflow_alerting.schedule import SEAL_GRACE_S, period_end, schedule_of, storm_is_over
from newsflow_alerting.state import DigestMeta, NotifierState, digest_id, k_lock
from newsflow_notifier import metrics
from newsflow_notifier.planner import LOCK_S
from newsflow_notifier.rules import RuleCache
from newsflow_search.rules import Rule

log = logging.getLogger("newsflow.notifier.digests")


class DigestScheduler:
    def __init__(self, redis: aioredis.Redis, state: NotifierState, rules: RuleCache, tick_s: float) -> None:
        self.redis = redis
        self.state = state
        self.rules = rules
        self.tick_s = tick_s

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.tick(datetime.now(UTC))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.tick_s)

    async def tick(self, now: datetime) -> int:
        """Seal what is due at `now`; returns the number of stories sealed."""
        rules = await self.rules.all()
        ids = await self.state.active_rules() | {r.id for r in rules.values() if r.mode == "digest"}
        sealed = storms = 0
        for rid in sorted(ids):
            rule = rules.get(rid)
            if rule is None or rule.snoozed(now):
                continue  # a snoozed rule's stories wait for the snooze to end
            sealed += await self.consider(rule, now)
            storms += await self.state.storm_started(rid) is not None
        metrics.STORMS.set(storms)
        return sealed

    async def consider(self, rule: Rule, now: datetime) -> int:
        if not await self._maybe_due(rule, now):
            return 0
        # The rule's lock: a storm must not end between the planner's look at it and its adding a story.
        async with self.redis.lock(k_lock(rule.id), timeout=LOCK_S, blocking_timeout=2 * LOCK_S):
            storm = await self.state.storm_started(rule.id)
            schedule = schedule_of(rule, storm is not None)
            last = await self.state.last_sealed(rule.id)
            cutoff = now - timedelta(seconds=SEAL_GRACE_S)
            if schedule is None:
                # Leftovers of a storm that ended or a digest switched off: sent now, not stranded.
                if await self.state.pending_count(rule.id) == 0:
                    await self.state.seal(self._meta(rule, last, cutoff), [], end_storm=False)
                    return 0
                end, over = cutoff, False
            else:
                end = period_end(schedule, cutoff)
                if last is not None and end <= last:
                    return 0
                over = False
                if storm is not None:
                    _n, last_fire = await self.state.fires_since(
                        rule.id, end - timedelta(minutes=rule.storm_guard.within)
                    )
                    over = storm_is_over(last_fire, end, rule)
            meta = self._meta(rule, last, end, storm=storm is not None, over=over)
            n = await self.state.seal(meta, [c.key for c in rule.channels], end_storm=over)
        if n > 0:
            metrics.DIGESTS.labels("storm" if meta.storm else "digest").inc()
            log.info("rule %r: digest %s with %d stories", rule.name, meta.digest_id, n, extra={"rule": rule.name})
        if over:
            log.info("rule %r: quiet again, storm guard off", rule.name, extra={"rule": rule.name})
        return max(n, 0)

    async def _maybe_due(self, rule: Rule, now: datetime) -> bool:
        """A look without the lock (most ticks find nothing due): the decision is taken again under it."""
        storm = await self.state.storm_started(rule.id)
        schedule = schedule_of(rule, storm is not None)
        if schedule is None:
            return True  # leftovers, or a rule to drop from the active set
        last = await self.state.last_sealed(rule.id)
        return last is None or period_end(schedule, now - timedelta(seconds=SEAL_GRACE_S)) > last

    @staticmethod
    def _meta(rule: Rule, last: datetime | None, end: datetime, storm: bool = False, over: bool = False) -> DigestMeta:
        return DigestMeta(
            digest_id=digest_id(rule.id, end),
            rule_id=rule.id,
            rule_name=rule.name,
            start=last,
            end=end,
            storm=storm,
            storm_over=over,
            storm_max=rule.storm_guard.max,
            storm_within=rule.storm_guard.within,
        )
