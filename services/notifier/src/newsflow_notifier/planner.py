"""From an alert to what is sent: which story it belongs to, and whether that story goes out now, waits for a
digest (the rule's own, or the storm guard's), or is snoozed.

Each decision is taken under its rule's lock (two replicas deciding two reports of one story at once would
otherwise both start it), and recorded with all its effects in one transaction before the messages are
returned; a redelivered alert finds its decision and returns the same messages, which the runtime
publishes at most once per (message, channel).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from elastic_transport import TransportError
from elasticsearch import ApiError

from newsflow_alerting.schedule import storm_starts
from newsflow_alerting.state import Decision, NotifierState, Route, k_lock
from newsflow_alerting.stories import StoryMatcher
from newsflow_notifier import metrics
from newsflow_notifier.rules import RuleCache
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.rules import Rule
from newsflow_shared.models import Alert, Notification

log = logging.getLogger("newsflow.notifier.planner")
# Long enough for one decision (a Redis round trip or two and one search); short enough that a replica
# killed while holding it delays its rule's next alert by seconds only.
LOCK_S = 15.0


class Planner:
    def __init__(
        self,
        redis: aioredis.Redis,
        state: NotifierState,
        rules: RuleCache,
        matcher: StoryMatcher,
        settings: NotifierSettings,
    ) -> None:
        self.redis = redis
        self.state = state
        self.rules = rules
        self.matcher = matcher
        self.window = timedelta(hours=settings.story_window_h)

    async def plan(self, alert: Alert) -> list[Notification]:
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
        async with self.redis.lock(k_lock(rule.id), timeout=LOCK_S, blocking_timeout=2 * LOCK_S):
            d = await self.state.decision(alert.alert_id)
            if d is None:
                d = await self._decide(rule, alert, datetime.now(UTC))
                await self.state.commit(alert, d)
                metrics.ALERTS.labels("also" if d.role == "also" else d.route).inc()
                log.info(
                    "alert %s of rule %r: %s",
                    alert.alert_id,
                    rule.name,
                    f"also reported, story {d.story_id}" if d.role == "also" else d.route,
                    extra={"article_id": alert.article_id, "url": alert.url, "rule": rule.name},
                )
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

    async def _decide(self, rule: Rule, alert: Alert, now: datetime) -> Decision:
        story = await self._open_story(rule, alert, now)
        if story is not None:
            return Decision(story_id=story, role="also", route="none", at=now)
        return Decision(story_id=alert.alert_id, role="story", route=await self._route(rule, now), at=now)

    async def _open_story(self, rule: Rule, alert: Alert, now: datetime) -> str | None:
        """The open story of the rule this article reports on, if any."""
        members = await self.state.open_members(rule.id, now - self.window)
        if not members:
            return None
        try:
            best = await self.matcher.most_alike(alert.article_id, list(members))
        except (ApiError, TransportError) as e:
            # Better a second message than none: the alert goes out as a story of its own.
            metrics.GROUPING_ERRORS.inc()
            log.warning("story look-up failed, alert %s stands alone: %s", alert.alert_id, e)
            return None
        return members.get(best) if best else None

    async def _route(self, rule: Rule, now: datetime) -> Route:
        if rule.snoozed(now):
            return "snoozed"
        if rule.mode == "digest":
            return "digest"
        if await self.state.storm_started(rule.id) is not None:
            return "storm"
        fires, _last = await self.state.fires_since(rule.id, now - timedelta(minutes=rule.storm_guard.within))
        return "storm" if storm_starts(fires + 1, rule) else "immediate"
