"""Appending to streams: with backpressure, at most once per key where a message has one, capped where
nobody is obliged to read; and the two appends a consumer makes besides its outputs (dead letters and
deferred entries)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel

from newsflow_shared import metrics, streams
from newsflow_shared.errors import Stopping
from newsflow_shared.models import DeadLetter
from newsflow_shared.runtime.codec import DATA_FIELD, encode
from newsflow_shared.runtime.housekeeping import stream_backlog, text

log = logging.getLogger("newsflow.runtime")

# Mark the key and append in one step: a retry after a lost reply (a Redis restart, a crash between
# publish and ack followed by redelivery) finds the key set and appends nothing.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  if ARGV[2] == '0' then
    return redis.call('XADD', KEYS[2], '*', ARGV[4], ARGV[1])
  end
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', ARGV[4], ARGV[1])
end
return false
"""
BACKLOG_CACHE_S = 0.25
# After a WAIT that fewer replicas confirmed than asked (the replica is down, or being promoted after a
# failover), appends go on without waiting this long: a missing replica costs one timeout per period, not one
# per append, and Newsflow stays available with a single server rather than stopping (as
# `min-replicas-to-write` would).
WAIT_SUSPEND_S = 5.0


@dataclass(eq=False)
class Publisher:
    """What every stage and producer uses to write to streams."""

    service: str
    redis: aioredis.Redis
    _: KW_ONLY
    max_lag: int
    dedup_ttl_s: int
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Streams someone is obliged to read (pipeline stages): a producer waits while they are full.
    backpressure: set[str] = field(default_factory=set)
    wait_replicas: int = 0
    wait_timeout_ms: int = 200

    def __post_init__(self) -> None:
        self._wait_suspended_until = 0.0
        self._backlog_cache: dict[str, tuple[float, int]] = {}
        self._publish_once = self.redis.register_script(_PUBLISH_ONCE)

    async def _backlog(self, stream: str) -> int:
        now = time.monotonic()
        cached = self._backlog_cache.get(stream)
        if cached and now - cached[0] < BACKLOG_CACHE_S:
            return cached[1]
        value = await stream_backlog(self.redis, stream)
        self._backlog_cache[stream] = (now, value)
        return value

    async def wait_for_room(self, stream: str) -> None:
        """Return once `stream` has at most `max_lag` unprocessed entries; `Stopping` on shutdown."""
        if await self._backlog(stream) <= self.max_lag:
            return
        started = time.monotonic()
        log.info("backpressure: waiting for %s to drain below %d", stream, self.max_lag)
        delay = 0.05
        while await self._backlog(stream) > self.max_lag:
            if self.stopping.is_set():
                raise Stopping(f"shutting down while {stream} is full")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        metrics.BACKPRESSURE_SECONDS.labels(self.service, stream).inc(time.monotonic() - started)

    async def publish(self, stream: str, model: BaseModel) -> str:
        """Append `model` to `stream`; returns the entry id, or "" when its key was published before.

        A model with an `idempotency_key` (an alert) is published at most once per key. Streams in
        `streams.MAXLEN` (nobody is obliged to read them) are capped on every append; pipeline streams
        never are (see `safe_trim`). With `wait_replicas`, the append returns once that many replicas have
        it (or the timeout passed): if the primary dies first, the client's retry appends it again on the
        promoted replica, so an acknowledged append is not lost with the primary.
        """
        if stream in self.backpressure:
            await self.wait_for_room(stream)
        maxlen = streams.MAXLEN.get(stream)
        fields = encode(model)
        key = getattr(model, "idempotency_key", None)
        if self.wait_replicas > 0 and time.monotonic() >= self._wait_suspended_until:
            mid = await self._append_and_wait(stream, fields, key, maxlen)
        elif key is not None:
            mid = await self._append_once(stream, fields, key, maxlen)
        else:
            mid = await self.redis.xadd(stream, fields, maxlen=maxlen, approximate=maxlen is not None)
        if mid is None:
            log.info("not published again: %s %s is already on %s", type(model).__name__, key, stream)
            return ""
        if (cached := self._backlog_cache.get(stream)) is not None:
            # Count our own writes until the next measurement, so a burst cannot overshoot the limit.
            self._backlog_cache[stream] = (cached[0], cached[1] + 1)
        return text(mid)

    async def _append_once(
        self, stream: str, fields: dict[bytes, bytes], key: str, maxlen: int | None, client: Any = None
    ) -> Any:
        """`_PUBLISH_ONCE` for `key`: the entry id, or None when the key was published before. Given a
        pipeline as `client`, the script is queued on it instead."""
        return await self._publish_once(
            keys=[f"{streams.PUBLISHED_PREFIX}{stream}:{key}", stream],
            args=[fields[DATA_FIELD], maxlen or 0, self.dedup_ttl_s, DATA_FIELD],
            client=client,
        )

    async def _append_and_wait(
        self, stream: str, fields: dict[bytes, bytes], key: str | None, maxlen: int | None
    ) -> Any:
        """The append and a WAIT on one connection: WAIT counts the replicas that have this connection's
        writes, so on another pooled connection it would confirm nothing about this append. A connection
        lost before the WAIT answers makes the client retry both, on the promoted replica."""
        async with self.redis.pipeline(transaction=False) as pipe:
            if key is not None:
                await self._append_once(stream, fields, key, maxlen, client=pipe)
            else:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=maxlen is not None)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            mid, replicas = await pipe.execute()
        if int(replicas) < self.wait_replicas:
            self._unreplicated(stream, int(replicas))
        return mid

    def _unreplicated(self, stream: str, replicas: int) -> None:
        metrics.UNREPLICATED.labels(self.service, stream).inc()
        self._wait_suspended_until = time.monotonic() + WAIT_SUSPEND_S
        log.warning(
            "%d of %d replicas confirmed an append to %s within %d ms: appending without waiting for %.0f s",
            replicas,
            self.wait_replicas,
            stream,
            self.wait_timeout_ms,
            WAIT_SUSPEND_S,
        )

    async def dead_letter(
        self,
        stream: str,
        original: dict[Any, Any],
        *,
        reason: str,
        error_type: str,
        error: str,
        attempts: int = 1,
        group: str | None = None,
        message_id: str | None = None,
        first_failure_at: datetime | None = None,
    ) -> None:
        now = datetime.now(UTC)
        record = DeadLetter(
            stream=stream,
            group=group,
            message_id=message_id,
            original={text(k): text(v) for k, v in original.items()},
            reason=reason,
            error_type=error_type,
            error=error,
            service=self.service,
            attempts=max(1, attempts),
            first_failure_at=first_failure_at or now,
            last_failure_at=now,
        )
        await self.redis.xadd(streams.dlq(stream), encode(record))
        metrics.DEAD_LETTERS.labels(stream, reason).inc()

    async def requeue(self, stream: str, group: str, message_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Move an entry to the end of its stream: the copy and the acknowledgement in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, fields)
            pipe.xack(stream, group, message_id)
            await pipe.execute()
