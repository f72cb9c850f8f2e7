"""From an alert to what is sent: which story it belongs to, and whether that story goes out now, waits for a
digest (the rule's own, or the storm guard's), or is snoozed.

Each decision is taken under its rule's lock (two replicas deciding two reports of one story at once would
otherwise both start it), and recorded with all its effects in one transaction before the messages are
returned; a redelivered alert finds its decision and returns the same messages, which the runtime
publishes at most once per (message, channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from elastic_transport import TransportError
from elasticsearch import ApiError, AsyncElasticsearch
from redis.exceptions import LockError, RedisError

from newsflow_alerting.schedule import storm_starts
from newsflow_alerting.state import Decision, NotifierState, Outlook, Route, RuleLock
from newsflow_alerting.stories import Grouping, fingerprint, most_alike, sources
from newsflow_notifier import metrics
from newsflow_notifier.rules import RuleCache
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.rules import Rule
from newsflow_shared.models import Alert, Notification

log = logging.getLogger("newsflow.notifier.planner")
# Long enough for one decision (a Redis round trip or two and one search); short enough that a replica
# killed while holding it delays its rule's next alert by seconds only.
LOCK_S = 15.0
# How often a replica polls for a rule's Redis lock that another replica holds.
LOCK_POLL_S = 0.01


class Planner:
    def __init__(
        self, state: NotifierState, rules: RuleCache, es: AsyncElasticsearch, settings: NotifierSettings
    ) -> None:
        self.state = state
        self.rules = rules
        self.es = es
        self.alias = settings.index_alias
        self.grouping = Grouping(settings.story_threshold, settings.story_min_shared)
        self.window = timedelta(hours=settings.story_window_h)
        self._local: dict[str, asyncio.Lock] = {}

    async def plan(self, alert: Alert, now: datetime | None = None) -> list[Notification]:
        """The messages to send for `alert` now (none when it waits for a digest or joins a story).

        `now`: the decision's clock (tests move it; the service uses the real one)."""
        rule = await self.rules.get(alert.rule_id)
        if rule is None:
            metrics.ALERTS.labels("dropped").inc()
            log.warning(
                "alert %s: rule %r no longer exists; nothing sent",
                alert.alert_id,
                alert.rule_name,
                extra={"article_id": alert.article_id, "url": alert.url, "rule": alert.rule_name},
            )
            return []
        # The decisions of one rule in this replica queue here and never poll Redis (redis-py's default of
        # 0.1 s per poll cost a burst's decisions a tenth of a second each time two alerts of a rule met).
        async with self._local.setdefault(rule.id, asyncio.Lock()):
            lock = RuleLock.of(rule.id, LOCK_S)
            now, seen = await self._take(rule, lock, alert.alert_id, now)
            if seen.decision is not None:  # a redelivered alert: decided before, read with the rule's state
                await self.state.release(lock)
                d = seen.decision
            else:
                try:
                    d = await self._decide_and_commit(rule, alert, seen, now, lock)
                except BaseException:
                    with contextlib.suppress(RedisError):  # else it expires after LOCK_S
                        await self.state.release(lock)
                    raise
        if d.role == "story" and d.route == "immediate":
            return [
                Notification(
                    notification_id=alert.alert_id,
                    kind="alert",
                    rule_id=rule.id,
                    rule_name=rule.name,
                    channel=ch.key,
                    alert=alert,
                )
                for ch in rule.channels
            ]
        return []

    async def _take(self, rule: Rule, lock: RuleLock, alert_id: str, now: datetime | None) -> tuple[datetime, Outlook]:
        """The rule's lock across replicas, with its state as of the decision's clock."""
        give_up = time.monotonic() + 2 * LOCK_S
        within = timedelta(minutes=rule.storm_guard.within)
        while True:
            at = now or datetime.now(UTC)
            seen = await self.state.take(rule.id, lock, at - self.window, at - within, alert_id)
            if seen is not None:
                return at, seen
            if time.monotonic() > give_up:
                raise LockError(f"rule {rule.name!r}: its lock stayed taken for {2 * LOCK_S:.0f} s")
            await asyncio.sleep(LOCK_POLL_S)

    async def _decide_and_commit(
        self, rule: Rule, alert: Alert, seen: Outlook, now: datetime, lock: RuleLock
    ) -> Decision:
        fp = await self._fingerprint(alert)
        d = self._decide(rule, alert, fp, seen, now)
        await self.state.commit(alert, d, fp, stale=seen.stale, lock=lock)
        metrics.ALERTS.labels("also" if d.role == "also" else d.route).inc()
        log.info(
            "alert %s of rule %r: %s",
            alert.alert_id,
            rule.name,
            f"also reported, story {d.story_id}" if d.role == "also" else d.route,
            extra={"article_id": alert.article_id, "url": alert.url, "rule": rule.name},
        )
        return d

    def _decide(self, rule: Rule, alert: Alert, fp: frozenset[str], seen: Outlook, now: datetime) -> Decision:
        others = ((a, f) for a, _s, f in seen.members if a != alert.article_id)
        best, _similarity = most_alike(fp, others, self.grouping)
        if best is not None:
            story = next(s for a, s, _f in seen.members if a == best)
            return Decision(story_id=story, role="also", route="none", at=now)
        return Decision(story_id=alert.alert_id, role="story", route=_route(rule, now, seen.storm, seen.fires), at=now)

    async def _fingerprint(self, alert: Alert) -> frozenset[str]:
        """The article's facts: carried by the alert (the indexer computes them), else from its document."""
        if alert.facts is not None:
            return frozenset(alert.facts)
        try:
            found = await sources(self.es, self.alias, [alert.article_id])
        except (ApiError, TransportError) as e:
            # Better a second message than none: without its text the alert is a story of its own.
            metrics.GROUPING_ERRORS.inc()
            log.warning("story look-up failed, alert %s stands alone: %s", alert.alert_id, e)
            return frozenset()
        return fingerprint(found.get(alert.article_id, {"title": alert.title}))


def _route(rule: Rule, now: datetime, storm: datetime | None, fires: int) -> Route:
    """Where a new story goes: snoozed, the rule's digest, the storm guard's digest, or out at once."""
    if rule.snoozed(now):
        return "snoozed"
    if rule.mode == "digest":
        return "digest"
    if storm is not None:
        return "storm"
    return "storm" if storm_starts(fires + 1, rule) else "immediate"
