"""Delivery status per channel of an alert, as the alerts page shows it.

One small interface, so the page does not care where the status is kept: today the indexer writes each
webhook's outcome on the alert's record in the alerts index (`deliveries.<channel position>`); the log
channel is written at once and has no outcome to wait for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from elasticsearch import AsyncElasticsearch

from newsflow_search.rules import Rule
from newsflow_shared.models import Alert

# Statuses that will not change any more: the page stops asking for them.
FINAL = frozenset({"delivered", "failed", "dropped", "logged"})


@dataclass
class ChannelStatus:
    channel: str  # the channel's label, without secrets
    status: str  # pending, sending, delivered, failed, dropped, logged
    attempts: int = 0
    detail: str = ""
    at: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


class DeliverySource(Protocol):
    async def statuses(self, alerts: list[Alert], rules: dict[str, Rule]) -> dict[str, list[ChannelStatus]]: ...


class AlertRecordDeliveries:
    """Outcomes the indexer records on the alert's record (`deliveries`, keyed by channel position)."""

    def __init__(self, es: AsyncElasticsearch, index: str) -> None:
        self.es = es
        self.index = index

    async def statuses(self, alerts: list[Alert], rules: dict[str, Rule]) -> dict[str, list[ChannelStatus]]:
        if not alerts:
            return {}
        resp = await self.es.options(ignore_status=404).mget(
            index=self.index, ids=[a.alert_id for a in alerts], source=["deliveries"]
        )
        records = {d["_id"]: d.get("_source", {}) for d in resp.get("docs", []) if d.get("found")}
        out: dict[str, list[ChannelStatus]] = {}
        for a in alerts:
            rule = rules.get(a.rule_id)
            done: dict[str, Any] = (records.get(a.alert_id) or {}).get("deliveries") or {}
            channels = rule.channels if rule is not None else []
            out[a.alert_id] = [
                _status(slot, ch.label(), ch.type, done.get(str(slot))) for slot, ch in enumerate(channels)
            ]
        return out


def _status(slot: int, label: str, kind: str, outcome: dict[str, Any] | None) -> ChannelStatus:
    if kind == "log":
        return ChannelStatus(label, "logged")
    if not outcome:
        return ChannelStatus(label, "pending")
    return ChannelStatus(
        label,
        str(outcome.get("status", "pending")),
        int(outcome.get("attempts") or 0),
        str(outcome.get("detail") or ""),
        outcome.get("at"),
    )
