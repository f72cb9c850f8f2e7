"""Alert delivery: the log at once, webhooks from a background queue with retries, backoff and timeout.

Delivery never blocks indexing: the batch handler only enqueues. Every outcome is recorded on the
alert's record in the alerts index (`deliveries`), so a failed webhook can be found and re-sent.
news.alerts (published by the runtime) stays the durable source of every alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from elasticsearch import AsyncElasticsearch

from newsflow_indexer import metrics
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.rules import Channel, Rule
from newsflow_shared.models import Alert

log = logging.getLogger("newsflow.indexer.webhooks")


def payload(alert: Alert, channel: Channel) -> dict[str, Any]:
    """The JSON body: the alert itself, or Slack's incoming-webhook `{"text": ...}` for slack channels."""
    if channel.slack:
        published = alert.published_at.astimezone(UTC) if alert.published_at else None  # pages keep their offset
        when = published.strftime("%Y-%m-%d %H:%M UTC") if published else "date unknown"
        title = (alert.title or alert.url).replace("|", "/").replace(">", "›")
        lines = [f"*{alert.rule_name}* (`{alert.query}`): <{alert.url}|{title}> — {when}"]
        if alert.snippet:
            lines.append("> " + alert.snippet.replace("«", "*").replace("»", "*"))
        if alert.duplicates:
            lines.append(f"also published at {len(alert.duplicates)} other URL(s)")
        return {"text": "\n".join(lines)}
    return {"type": "newsflow.alert", **alert.model_dump(mode="json")}


@dataclass
class Delivery:
    alert: Alert
    channel: Channel
    slot: int  # the channel's position in its rule: the key of its outcome on the record


class WebhookDispatcher:
    def __init__(self, settings: IndexerSettings, es: AsyncElasticsearch | None = None) -> None:
        self.settings = settings
        self.es = es
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=settings.webhook_queue_size)
        self._client: httpx.AsyncClient | None = None

    def submit(self, rule: Rule, alert: Alert) -> None:
        """Deliver `alert` to the rule's channels: the log now, webhooks in the background."""
        for slot, ch in enumerate(rule.channels):
            if ch.type == "log":
                log.warning(
                    "ALERT %s: %s",
                    rule.name,
                    alert.title or alert.url,
                    extra={
                        "article_id": alert.article_id,
                        "url": alert.url,
                        "rule": rule.name,
                        "alert_id": alert.alert_id,
                        "snippet": alert.snippet,
                        "duplicates": alert.duplicates,
                    },
                )
                continue
            try:
                self.queue.put_nowait(Delivery(alert, ch, slot))
            except asyncio.QueueFull:
                metrics.ALERTS_FAILED.labels(_kind(ch), "queue-full").inc()
                log.error(
                    "webhook queue full: alert %s not sent to %s",
                    alert.alert_id,
                    ch.url,
                    extra={"article_id": alert.article_id, "url": alert.url},
                )

    async def run(self, stopping: asyncio.Event) -> None:
        """Workers until `stopping`; what is still queued then is logged (news.alerts keeps every alert)."""
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s, follow_redirects=False) as client:
            self._client = client
            workers = [asyncio.create_task(self._worker(stopping)) for _ in range(self.settings.webhook_concurrency)]
            try:
                await stopping.wait()
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                self._client = None
                if self.queue.qsize():
                    log.warning("%d webhook deliveries not attempted at shutdown", self.queue.qsize())

    async def drain(self) -> None:
        """Wait until every queued delivery was attempted (tests and benchmarks)."""
        await self.queue.join()

    async def _worker(self, stopping: asyncio.Event) -> None:
        while True:
            d = await self.queue.get()
            try:
                await self.deliver(d, stopping)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery crashed")
            finally:
                self.queue.task_done()

    async def deliver(self, d: Delivery, stopping: asyncio.Event | None = None) -> bool:
        s = self.settings
        assert self._client is not None, "deliver() runs inside run()"
        body = payload(d.alert, d.channel)
        delay = s.webhook_initial_backoff_s
        error = ""
        attempt = 0
        for attempt in range(1, s.webhook_max_attempts + 1):
            try:
                resp = await self._client.post(d.channel.url or "", json=body)
                if resp.is_success:
                    metrics.ALERTS_DELIVERED.labels(_kind(d.channel)).inc()
                    await self._record(d, "delivered", attempt, f"HTTP {resp.status_code}")
                    return True
                error = f"HTTP {resp.status_code}"
                # 4xx other than 408/429: the receiver refuses this payload; retrying will not help.
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    break
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt < s.webhook_max_attempts:
                pause = delay * (0.5 + random.random())
                if stopping is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), pause)
                    if stopping.is_set():
                        error += " (shutting down)"
                        break
                else:
                    await asyncio.sleep(pause)
                delay = min(delay * 2, s.webhook_max_backoff_s)
        metrics.ALERTS_FAILED.labels(_kind(d.channel), error.split(":")[0].split(" (")[0][:40]).inc()
        log.error(
            "webhook delivery failed after %d attempts: %s -> %s: %s",
            attempt,
            d.alert.rule_name,
            d.channel.url,
            error,
            extra={"article_id": d.alert.article_id, "url": d.alert.url},
        )
        await self._record(d, "failed", attempt, error)
        return False

    async def _record(self, d: Delivery, status: str, attempts: int, detail: str) -> None:
        if self.es is None:
            return
        outcome = {
            "url": d.channel.url,
            "slack": d.channel.slack,
            "status": status,
            "attempts": attempts,
            "detail": detail[:500],
            "at": datetime.now(UTC).isoformat(),
        }
        try:
            await self.es.update(
                index=self.settings.alerts_index,
                id=d.alert.alert_id,
                doc={"deliveries": {str(d.slot): outcome}, "updated_at": outcome["at"]},
                retry_on_conflict=5,
            )
        except Exception as e:  # the record is a convenience; the log line above already says it all
            log.warning("could not record delivery of %s: %s", d.alert.alert_id, e)


def _kind(ch: Channel) -> str:
    return "slack" if ch.slack else "webhook"
