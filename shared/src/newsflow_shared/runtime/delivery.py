"""What happens to one message: decode, hand to the handler, publish its outputs, then settle it.

FastStream reads the entry and acknowledges it once everything below returned without error (ack policy
`NACK_ON_ERROR`: on Redis a nack leaves the entry pending). This module adds what FastStream does not do:

- outputs are published before the acknowledgement, routed by model type to the streams the consumer
  declared, with backpressure and at-most-once publishing (`Publisher`);
- a `PermanentError` (or an undecodable entry) is dead-lettered with its reason and acknowledged;
- a `Deferred` entry is moved to the end of its stream (copy and ack in one transaction);
- any other error is recorded (first and last failure) and the entry left pending: the claim subscriber
  takes it over after `claim_idle_ms`, and once it was delivered more than `max_deliveries` times it is
  dead-lettered with the recorded error instead of being handled again;
- while a handler holds an entry, a heartbeat re-claims it with JUSTID (not a delivery), so that no
  replica's claimer steals live work however long the handler takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from faststream import BaseMiddleware
from faststream.exceptions import AckMessage, NackMessage
from pydantic import BaseModel

from newsflow_shared import metrics, streams
from newsflow_shared.errors import Deferred, PermanentError, Stopping
from newsflow_shared.runtime.housekeeping import text
from newsflow_shared.runtime.publisher import Publisher

log = logging.getLogger("newsflow.runtime")
HEARTBEAT_CHUNK = 500


class Settle(enum.Enum):
    ACK = "ok"
    DEAD_LETTER = "dead_letter"
    REQUEUE = "deferred"
    RETRY = "retry"
    LEAVE = "stopping"


def settle_for(outcome: BaseException | None) -> Settle:
    """The decision for a handler's outcome (None: it returned and its outputs are published)."""
    if outcome is None:
        return Settle.ACK
    if isinstance(outcome, PermanentError):
        return Settle.DEAD_LETTER
    if isinstance(outcome, Deferred):
        return Settle.REQUEUE
    if isinstance(outcome, Stopping | asyncio.CancelledError):
        return Settle.LEAVE
    return Settle.RETRY


def delivered_too_often(times_delivered: int, max_deliveries: int) -> bool:
    """A claimed entry's delivery count includes the claim itself: `max_deliveries` handlings, then out."""
    return times_delivered > max_deliveries


def route(result: Any, routes: Mapping[type[BaseModel], str]) -> list[tuple[str, BaseModel]]:
    """A handler's return value (a model, None, or several) as (stream, model) pairs."""
    if result is None:
        return []
    items = result if isinstance(result, list | tuple) else [result]
    out = []
    for item in items:
        stream = routes.get(type(item))
        if stream is None:
            raise TypeError(f"the handler returned a {type(item).__name__}, which no declared output carries")
        out.append((stream, item))
    return out


def describe(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc) or repr(exc)


def article_fields(model: Any) -> dict[str, Any]:
    """The `article_id` and `url` of a message, for log lines that must be traceable across services."""
    out: dict[str, Any] = {}
    for name in ("article_id", "url"):
        value = getattr(model, name, None)
        if value is None and hasattr(model, "entry"):
            value = getattr(model.entry, name, None)
        if value is not None:
            out[name] = value
    return out


class Holdings:
    """Keeps this consumer's live entries its own, and lets go of the others.

    Each beat re-claims to this consumer (JUSTID, not a delivery) the entries of its pending list that
    are live: in a handler now, or read and waiting for a free worker in FastStream's memory (not seen
    by a handler yet, for at most `grace_s`). An entry a handler finished with that is still pending
    (its handling failed, or its acknowledgement was lost in a Redis restart) is let go: it goes idle,
    and a claimer, of this replica or another, takes it over after `claim_idle_ms`. So no entry is kept
    pending forever by a consumer that will not handle it.
    """

    def __init__(
        self, redis: aioredis.Redis, stream: str, group: str, consumer: str, interval_s: float, grace_s: float
    ) -> None:
        self.redis, self.stream, self.group, self.consumer = redis, stream, group, consumer
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._active: dict[bytes, int] = {}
        self._finished: set[bytes] = set()
        self._waiting_since: dict[bytes, float] = {}

    @contextlib.contextmanager
    def hold(self, mid: bytes) -> Iterator[None]:
        self._active[mid] = self._active.get(mid, 0) + 1
        self._finished.discard(mid)
        self._waiting_since.pop(mid, None)
        try:
            yield
        finally:
            left = self._active.pop(mid) - 1
            if left:
                self._active[mid] = left
            else:
                self._finished.add(mid)

    def live(self, pending: list[bytes], now: float) -> list[bytes]:
        """Which of this consumer's pending entries to keep; forgets what is no longer pending."""
        keep = [mid for mid in pending if mid in self._active or self._waiting(mid, now)]
        still = set(pending)
        self._finished &= still
        self._waiting_since = {m: t for m, t in self._waiting_since.items() if m in still}
        return keep

    def _waiting(self, mid: bytes, now: float) -> bool:
        if mid in self._finished:
            return False
        return now - self._waiting_since.setdefault(mid, now) < self.grace_s

    async def beat(self) -> int:
        rows = await self.redis.xpending_range(
            self.stream, self.group, min="-", max="+", count=100_000, consumername=self.consumer
        )
        ids = self.live([r["message_id"] for r in rows], time.monotonic())
        for i in range(0, len(ids), HEARTBEAT_CHUNK):
            await self.redis.xclaim(
                self.stream, self.group, self.consumer, 0, ids[i : i + HEARTBEAT_CHUNK], justid=True
            )
        return len(ids)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval_s)
            try:
                await self.beat()
            except Exception as e:  # a missed beat is retried next time; the claim idle time is 3 beats
                log.warning("heartbeat on %s failed: %s", self.stream, e)


@dataclass
class Delivery:
    """One consumer's settling machinery, shared by its reading and its claiming subscriber."""

    service: str
    holdings: Holdings  # its stream, group and consumer are this one's
    publisher: Publisher
    routes: Mapping[type[BaseModel], str]
    max_deliveries: int
    retry_after_ms: int
    failures_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.failures_key = f"{streams.FAILURES_PREFIX}{self.stream}:{self.group}"

    @property
    def stream(self) -> str:
        return self.holdings.stream

    @property
    def group(self) -> str:
        return self.holdings.group

    @property
    def redis(self) -> aioredis.Redis:
        return self.publisher.redis

    async def handle(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any, *, claimed: bool) -> None:
        """Run one entry through its handler and settle it; raises FastStream's Ack/Nack to say which."""
        mid: bytes = msg.raw_message["message_ids"][0]
        fields: dict[bytes, bytes] = msg.raw_message["data"]
        if claimed:
            metrics.RECLAIMED.labels(self.service, self.stream).inc()
            times = await self._times_delivered(mid)
            if delivered_too_often(times, self.max_deliveries):
                await self._give_up(mid, fields, times - 1)
                raise AckMessage()
        started = time.perf_counter()
        outcome: BaseException | None = None
        model: Any = None
        with self.holdings.hold(mid):
            try:
                model = await msg.decode()
                result = await call_next(msg)
                for out_stream, out in route(result, self.routes):
                    await self.publisher.publish(out_stream, out)
            except asyncio.CancelledError as e:
                outcome = e
            except Exception as e:
                outcome = e
        metrics.HANDLER_SECONDS.labels(self.service, self.stream).observe(time.perf_counter() - started)
        await self._settle(settle_for(outcome), outcome, mid, fields, model, claimed)

    async def _settle(
        self,
        action: Settle,
        outcome: BaseException | None,
        mid: bytes,
        fields: dict[bytes, bytes],
        model: Any,
        claimed: bool,
    ) -> None:
        where = {"stream": self.stream, "message_id": text(mid), **article_fields(model)}
        metrics.MESSAGES.labels(self.service, self.stream, action.value).inc()
        if action is Settle.ACK:
            if claimed:
                await self.redis.hdel(self.failures_key, mid)
            return  # FastStream acknowledges
        assert outcome is not None
        if action is Settle.DEAD_LETTER:
            assert isinstance(outcome, PermanentError)
            log.warning("dead-lettered (%s): %s", outcome.reason, outcome, extra=where)
            attempts = await self._times_delivered(mid) if claimed else 1
            await self._dead_letter(mid, fields, outcome.reason, *describe(outcome), attempts=attempts)
            raise AckMessage()
        if action is Settle.REQUEUE:
            log.debug("deferred to the end of %s: %s", self.stream, outcome, extra=where)
            await self.publisher.requeue(self.stream, self.group, mid, fields)
            raise AckMessage()
        if action is Settle.LEAVE:
            log.info("shutting down: left pending for redelivery", extra=where)
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            raise NackMessage()
        await self._record_failure(mid, outcome)
        etype, etext = describe(outcome)
        log.warning("handler failed, will retry after %d ms: %s: %s", self.retry_after_ms, etype, etext, extra=where)
        raise NackMessage()

    async def _times_delivered(self, mid: bytes) -> int:
        rows = await self.redis.xpending_range(self.stream, self.group, min=mid, max=mid, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _record_failure(self, mid: bytes, exc: BaseException) -> None:
        """Remember the first and last failure so that a dead letter can say what kept going wrong."""
        with contextlib.suppress(Exception):
            now = datetime.now(UTC).isoformat()
            prev = await self.redis.hget(self.failures_key, mid)
            first = json.loads(prev)["first"] if prev else now
            etype, etext = describe(exc)
            record = {"first": first, "type": etype, "error": etext[:2000]}
            await self.redis.hset(self.failures_key, mid, json.dumps(record))

    async def _give_up(self, mid: bytes, fields: dict[bytes, bytes], attempts: int) -> None:
        log.error(
            "giving up on %s after %d attempts",
            text(mid),
            attempts,
            extra={"stream": self.stream, "message_id": text(mid)},
        )
        metrics.MESSAGES.labels(self.service, self.stream, Settle.DEAD_LETTER.value).inc()
        await self._dead_letter(mid, fields, "max-deliveries", None, None, attempts=attempts)

    async def _dead_letter(
        self,
        mid: bytes,
        fields: dict[bytes, bytes],
        reason: str,
        etype: str | None,
        etext: str | None,
        *,
        attempts: int,
    ) -> None:
        prev = await self.redis.hget(self.failures_key, mid)
        info = json.loads(prev) if prev else {}
        first = datetime.fromisoformat(info["first"]) if info else None
        await self.publisher.dead_letter(
            self.stream,
            fields,
            reason=reason,
            error_type=etype or info.get("type", "Error"),
            error=etext or info.get("error", reason),
            attempts=attempts,
            group=self.group,
            message_id=text(mid),
            first_failure_at=first,
        )
        await self.redis.hdel(self.failures_key, mid)


def middleware_for(deliveries: Mapping[int, tuple[Delivery, bool]]) -> type[BaseMiddleware]:
    """The broker middleware that hands each message to its consumer's `Delivery`.

    FastStream 0.7 has middlewares per broker only; the subscriber in the message's context says which
    consumer (and whether its reading or its claiming subscriber) the message came from.
    """

    class DeliveryMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            found = deliveries.get(id(self.context.get("handler_")))
            if found is None:  # not a Newsflow consumer
                return await call_next(msg)
            delivery, claimed = found
            await delivery.handle(call_next, msg, claimed=claimed)
            return None

    return DeliveryMiddleware
