"""What became of each alert, as the alerts page shows it: the notifier's decision (sent at once, into a
digest, joined another outlet's story, snoozed) and the delivery status per channel of the rule.

Read through `newsflow_alerting` (the notifier's state in Redis, as `newsflow alerts list|show` reads it);
the web app never imports the notifier service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from newsflow_alerting.fate import fate
from newsflow_alerting.state import NotifierState
from newsflow_search.rules import Rule
from newsflow_shared.models import Alert

# Channel statuses that will not change any more.
SETTLED = frozenset({"delivered", "failed", "dropped", "snoozed", "in story", "no rule"})
# An alert still unsettled after this long is shown as it is, without asking again: its state expired,
# or no notifier runs (the page says "waiting").
WATCH_FOR = timedelta(hours=6)
SOON = timedelta(minutes=2)


@dataclass
class ChannelStatus:
    channel: str  # the channel's label, without secrets
    status: str  # queued, sending, delivered, failed, dropped, in digest, snoozed, in story, waiting, no rule
    attempts: int = 0
    detail: str = ""
    at: datetime | None = None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


@dataclass
class AlertFate:
    summary: str  # fate's one line: "sent 2/2", "digest pending", "also reported", "snoozed", "waiting"
    detail: str = ""
    channels: list[ChannelStatus] = field(default_factory=list)
    digest: bool = False  # waits for a digest: nothing changes before the rule's next period ends
    watch: bool = False  # the page asks again until this is False
    poll_s: int = 2  # how soon it asks again

    @property
    def settled(self) -> bool:
        return not self.watch


class NotifierDeliveries:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.state = NotifierState(redis)

    async def fates(self, alerts: list[Alert], rules: dict[str, Rule]) -> dict[str, AlertFate]:
        now = datetime.now(UTC)
        return {a.alert_id: await self.fate(a, rules.get(a.rule_id), now) for a in alerts}

    async def fate(self, alert: Alert, rule: Rule | None, now: datetime | None = None) -> AlertFate:
        f = await fate(self.state, alert.alert_id)
        return describe(f, alert, rule, now or datetime.now(UTC))


def describe(f: dict[str, Any], alert: Alert, rule: Rule | None, now: datetime) -> AlertFate:
    """One alert's fate, per channel of its rule (the rule's channels now; a delivery to a channel the rule
    no longer has is still listed)."""
    status = str(f.get("status") or "waiting")
    done: dict[str, dict[str, Any]] = f.get("deliveries") or {}
    route, role = f.get("route"), f.get("role")
    if role == "also":
        pending = "in story"
    elif route == "snoozed":
        pending = "snoozed"
    elif status.endswith("pending"):
        pending = "in digest"
    elif status == "waiting":
        pending = "waiting"
    else:
        pending = "queued"
    channels: list[ChannelStatus] = []
    keys = [c.key for c in rule.channels] if rule is not None else []
    labels = {c.key: c.label() for c in rule.channels} if rule is not None else {}
    for key in [*keys, *(k for k in done if k not in keys)]:
        d = done.get(key)
        if d is None:
            channels.append(ChannelStatus(labels.get(key, key), pending))
        else:
            at = d.get("last_at")
            channels.append(
                ChannelStatus(
                    str(d.get("channel") or labels.get(key, key)),
                    str(d.get("status") or "queued"),
                    int(d.get("attempts") or 0),
                    str(d.get("detail") or ""),
                    datetime.fromisoformat(at) if isinstance(at, str) else None,
                )
            )
    if rule is None and not channels:
        channels.append(ChannelStatus("(rule deleted)", "no rule"))
    digest = pending == "in digest"
    age = now - alert.matched_at
    watch = age < WATCH_FOR and any(not c.settled for c in channels)
    # A delivery takes a second or two; one still unsettled minutes later waits for a digest, for retries
    # with backoff or for a notifier to start: asking every 30 s is soon enough then.
    poll_s = 2 if age < SOON and not digest else 30
    return AlertFate(
        summary=status,
        detail=str(f.get("detail") or ""),
        channels=channels,
        digest=digest,
        watch=watch,
        poll_s=poll_s,
    )
