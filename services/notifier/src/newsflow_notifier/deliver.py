"""Deliver one message to one channel: at least once, never twice once it is known to be delivered.

The outcome per (message, channel) is recorded in Redis (`NotifierState.record`): a redelivered message
(a crash, a replay from the dead letters) that was delivered already is not sent again, so the only
repeats are the messages in flight when a replica died (sent, not yet recorded), and those carry the
same `Idempotency-Key`. Failures are retried with exponential backoff; a permanent one (4xx, a destination
the SSRF guard refuses) or the last attempt dead-letters the message with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsflow_alerting.state import Delivery, NotifierState
from newsflow_notifier import metrics
from newsflow_notifier.channels import render
from newsflow_notifier.channels.send import Sender, SendError
from newsflow_notifier.rules import RuleCache
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.rules import Channel, Rule
from newsflow_shared.errors import PermanentError
from newsflow_shared.models import Notification
from newsflow_shared.retry import retrying

log = logging.getLogger("newsflow.notifier.deliver")


@dataclass
class Deliverer:
    state: NotifierState
    rules: RuleCache
    sender: Sender
    settings: NotifierSettings
    stopping: asyncio.Event

    async def deliver(self, n: Notification) -> None:
        rule = await self.rules.get(n.rule_id)
        ch = rule.channel(n.channel) if rule else None
        # The outcome so far and the message's content are read at once: a message is rarely delivered
        # already, and a burst's deliveries wait on these round trips one after the other otherwise.
        prev, built = await asyncio.gather(
            self.state.delivery(n.notification_id, n.channel),
            self._content(n, rule) if rule is not None and ch is not None else _nothing(),
        )
        if prev is not None and prev.status == "delivered":
            metrics.DELIVERIES.labels(ch.type if ch else "unknown", "duplicate").inc()
            log.info("%s already delivered to %s: not sent again", n.idempotency_key, prev.channel)
            return
        if rule is None or ch is None:
            await self._drop(n, prev, "the rule or this channel of it was removed")
            return
        if built is None:
            await self._drop(n, prev, f"the {n.kind}'s state expired (NEWSFLOW_STATE_TTL_DAYS)", ch)
            return
        await self._send(n, ch, prev, *built)

    async def _send(
        self, n: Notification, ch: Channel, prev: Delivery | None, content: render.Content, body: dict[str, Any]
    ) -> None:
        now = datetime.now(UTC)
        record = Delivery(
            status="sending",
            channel=ch.label(),
            kind=n.kind,
            rule_name=n.rule_name,
            attempts=prev.attempts if prev else 0,
            first_at=prev.first_at if prev else now,
            last_at=now,
        )

        async def attempt() -> str:
            return await self._attempt(n, ch, record, content, body)

        s = self.settings
        try:
            detail = await retrying(
                attempt,
                what=f"delivering {n.idempotency_key} to {ch.label()}",
                retry_on=lambda e: isinstance(e, SendError) and not e.permanent,
                initial_s=s.delivery_initial_backoff_s,
                max_s=s.delivery_max_backoff_s,
                attempts=s.delivery_attempts,
                stopping=self.stopping,
                logger=log,
                on_retry=lambda _e: metrics.DELIVERIES.labels(ch.type, "retried").inc(),
            )
        except SendError as e:
            record.status, record.detail, record.last_at = "failed", f"{e.reason}: {e}"[:500], datetime.now(UTC)
            await self.state.record(n.notification_id, n.channel, record)
            metrics.DELIVERIES.labels(ch.type, "failed").inc()
            raise PermanentError(e.reason, f"{ch.label()}: {e} (after {record.attempts} attempts)") from e
        done = datetime.now(UTC)
        record.status, record.detail, record.last_at = "delivered", detail, done
        if n.alert is not None and n.alert.indexed_at is not None:
            record.latency_s = max(0.0, (done - n.alert.indexed_at).total_seconds())
            metrics.LATENCY.labels(ch.type).observe(record.latency_s)
        await self.state.record(n.notification_id, n.channel, record)
        metrics.DELIVERIES.labels(ch.type, "delivered").inc()

    async def _attempt(
        self, n: Notification, ch: Channel, record: Delivery, content: render.Content, body: dict[str, Any]
    ) -> str:
        record.attempts += 1
        record.last_at = datetime.now(UTC)
        # The attempt is recorded ("sending", with its number) while it is made, not before: the record is
        # for the operator and the next attempt's count, and a round trip before every message delayed each
        # delivery of a burst. Both are done before the attempt's outcome is recorded.
        marked, sent = await asyncio.gather(
            self.state.record(n.notification_id, n.channel, record.model_copy()),
            self._timed_send(ch, n, content, body),
            return_exceptions=True,
        )
        for outcome in (marked, sent):
            if isinstance(outcome, BaseException):
                raise outcome
        return str(sent)

    async def _timed_send(self, ch: Channel, n: Notification, content: render.Content, body: dict[str, Any]) -> str:
        with metrics.SEND_SECONDS.labels(ch.type).time():
            return await self.sender.send(ch, n.idempotency_key, content, body)

    async def _content(self, n: Notification, rule: Rule) -> tuple[render.Content, dict[str, Any]] | None:
        if n.kind == "alert":
            if n.alert is None:
                return None
            story = await self.state.story(n.notification_id)
            also = [
                m.model_dump(mode="json", include={"url", "domain", "title"}) for m in (story.also if story else [])
            ]
            body = {
                "type": "newsflow.alert",
                "idempotency_key": n.idempotency_key,
                **n.alert.model_dump(mode="json"),
                "also_reported_by": also,
            }
            return render.alert_content(n.alert, story), body
        found = await self.state.digest(n.notification_id)
        if found is None:
            return None
        meta, stories = found
        content = render.digest_content(meta, stories, rule.query)
        body = {
            "type": "newsflow.digest",
            "idempotency_key": n.idempotency_key,
            **meta.model_dump(mode="json"),
            "query": rule.query,
            "stories": [
                {
                    **s.alert.model_dump(mode="json"),
                    "also_reported_by": [m.model_dump(mode="json", include={"url", "domain", "title"}) for m in s.also],
                }
                for s in sorted(stories, key=lambda s: s.alert.published_at or s.first_at, reverse=True)
            ],
        }
        return content, body

    async def _drop(self, n: Notification, prev: Delivery | None, why: str, ch: Channel | None = None) -> None:
        now = datetime.now(UTC)
        await self.state.record(
            n.notification_id,
            n.channel,
            Delivery(
                status="dropped",
                channel=ch.label() if ch else n.channel,
                kind=n.kind,
                rule_name=n.rule_name,
                attempts=prev.attempts if prev else 0,
                detail=why,
                first_at=prev.first_at if prev else now,
                last_at=now,
            ),
        )
        metrics.DELIVERIES.labels(ch.type if ch else "unknown", "dropped").inc()
        log.warning("%s not sent: %s", n.idempotency_key, why, extra={"rule": n.rule_name})


async def _nothing() -> None:
    return None
