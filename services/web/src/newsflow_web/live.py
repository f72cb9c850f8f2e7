"""Alerts as they arrive: one reader of `news.alerts` per process, fanned out to every open alerts page over
server-sent events.

The reader is not a consumer group: it acknowledges nothing and takes nothing from the notifier, which owns
delivery; it only tails the stream. A page passes the last stream id it has seen (in its URL, then in the
browser's `Last-Event-ID` on a reconnect), and gets what it missed before the live alerts, so a page never
has a gap, whichever replica serves the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from newsflow_shared import streams
from newsflow_shared.errors import InvalidMessage
from newsflow_shared.models import Alert
from newsflow_shared.runtime import DATA_FIELD, decode

log = logging.getLogger("newsflow.web.live")
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True)
class Arrival:
    stream_id: str
    alert: Alert


def stream_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def valid_id(value: str | None) -> str | None:
    return value if value and STREAM_ID.match(value) else None


class AlertFeed:
    def __init__(self, redis: aioredis.Redis, block_ms: int = 5000, catch_up: int = 200, queue_size: int = 100):
        self.redis = redis
        self.block_ms = block_ms
        self.catch_up = catch_up
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Arrival | None]] = set()

    async def last_id(self) -> str:
        """The id of the newest entry now ("0-0" for an empty stream): where a freshly rendered page starts."""
        newest = await self.redis.xrevrange(streams.ALERTS, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def newest(self, count: int) -> list[Arrival]:
        """The newest `count` alerts on the stream, newest first."""
        entries = await self.redis.xrevrange(streams.ALERTS, count=count)
        return [a for a in map(_arrival, entries) if a is not None]

    async def since(self, after: str) -> list[Arrival]:
        """What a page that last saw `after` missed (the newest `catch_up` of it)."""
        entries = await self.redis.xrevrange(streams.ALERTS, min=f"({after}", count=self.catch_up)
        return [a for a in map(_arrival, reversed(entries)) if a is not None]

    def subscribe(self) -> asyncio.Queue[Arrival | None]:
        q: asyncio.Queue[Arrival | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Arrival | None]) -> None:
        self._subscribers.discard(q)

    async def run(self) -> None:
        """Tail the stream until cancelled. Redis going away pauses the pages; it never ends them."""
        last = await self._start_id()
        while True:
            try:
                resp = await self.redis.xread({streams.ALERTS: last}, block=self.block_ms, count=100)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("reading %s failed, retrying: %s", streams.ALERTS, e)
                await asyncio.sleep(1.0)
                continue
            for _stream, entries in resp or []:
                for entry in entries:
                    last = entry[0].decode()
                    arrival = _arrival(entry)
                    if arrival is not None:
                        self._publish(arrival)

    async def _start_id(self) -> str:
        while True:
            try:
                return await self.last_id()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("Redis not reachable yet for %s: %s", streams.ALERTS, e)
                await asyncio.sleep(1.0)

    def _publish(self, arrival: Arrival) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(arrival)
            except asyncio.QueueFull:
                # A page that stopped reading: end its stream; the browser reconnects with Last-Event-ID and
                # catches up from there.
                self._subscribers.discard(q)
                with contextlib.suppress(asyncio.QueueFull):
                    q.get_nowait()
                    q.put_nowait(None)

    def close(self) -> None:
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self._subscribers.clear()


def _arrival(entry: tuple[bytes, dict[bytes, Any]]) -> Arrival | None:
    mid, fields = entry
    body = fields.get(DATA_FIELD)
    if body is None:
        return None
    try:
        return Arrival(mid.decode(), decode(Alert, body))
    except InvalidMessage as e:
        log.warning("skipping entry %s of %s: %s", mid, streams.ALERTS, e)
        return None
