"""Redis housekeeping for streams: clients, consumer groups, backlog, safe trimming, stale consumers.

Plain functions over a Redis client: the services' maintenance loop, `newsflow init`, `newsflow status`
and the tests all use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from newsflow_shared import streams
from newsflow_shared.settings import CommonSettings

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def make_redis(settings: CommonSettings, *, decode_responses: bool = False) -> aioredis.Redis:
    """A client that rides out a Redis restart or failover: commands retry with backoff, and with Sentinels
    every new connection goes to the primary they name now."""
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 15,
        "socket_connect_timeout": 5,
    }
    if not settings.redis_sentinels:
        return aioredis.Redis.from_url(settings.redis_url, **options)
    url = urlsplit(settings.redis_url)
    db = int(url.path.strip("/") or 0)
    sentinel = Sentinel(settings.sentinel_addresses, socket_connect_timeout=2, socket_timeout=2)
    return sentinel.master_for(
        settings.redis_sentinel_master, db=db, password=url.password, username=url.username or None, **options
    )


async def ensure_groups(redis: aioredis.Redis, groups: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Create the consumer groups at position 0 (MKSTREAM) where missing; return the ones created.

    Position 0, not `$`: a group created after producers started must still see their entries.
    """
    created = []
    for stream, names in (groups if groups is not None else streams.GROUPS).items():
        for group in names:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
                created.append(f"{stream}:{group}")
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
    return created


async def stream_backlog(redis: aioredis.Redis, stream: str) -> int:
    """Entries of `stream` that some group has not finished: unread (lag) plus read-but-unacked."""
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0
    worst = 0
    length = None
    for g in infos:
        lag = g.get("lag")
        if lag is None:  # Redis cannot tell after arbitrary deletions: assume everything is unread
            length = length if length is not None else await redis.xlen(stream)
            lag = length
        worst = max(worst, int(lag) + int(g.get("pending", 0)))
    return worst


def _id_tuple(mid: bytes | str) -> tuple[int, int]:
    s = mid.decode() if isinstance(mid, bytes) else mid
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


async def safe_trim(redis: aioredis.Redis, stream: str) -> int:
    """Trim entries every group has acknowledged, and nothing else. Returns entries removed.

    The minimum id still needed is, over all groups, the oldest pending entry or the first entry after the
    group's last-delivered id; a stream in `streams.RETAIN` also keeps its newest entries. A stream without
    groups is left alone (nobody has said what it needs).
    """
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError:
        return 0
    needed: list[tuple[int, int]] = []
    for g in infos:
        if int(g.get("pending", 0)) > 0:
            summary = await redis.xpending(stream, g["name"])
            needed.append(_id_tuple(summary["min"]))
        else:
            ms, seq = _id_tuple(g["last-delivered-id"])
            needed.append((ms, seq + 1))
    if not needed:
        return 0
    keep = streams.RETAIN.get(stream, 0)
    if keep:
        # The newest `keep` entries stay even once acknowledged: readers without a group (a live page that
        # catches up, `newsflow status`) see the recent ones. Only the minimum moves back, never forward.
        newest = await redis.xrevrange(stream, count=keep)
        if len(newest) == keep:
            needed.append(_id_tuple(newest[-1][0]))
        else:
            return 0
    ms, seq = min(needed)
    return int(await redis.xtrim(stream, minid=f"{ms}-{seq}", approximate=False))


async def remove_stale_consumers(redis: aioredis.Redis, stream: str, group: str, idle_s: float) -> list[str]:
    """Delete consumers idle longer than `idle_s` that hold nothing pending (so nothing can be lost)."""
    removed = []
    for c in await redis.xinfo_consumers(stream, group):
        if int(c.get("pending", 0)) == 0 and int(c.get("idle", 0)) >= idle_s * 1000:
            await redis.xgroup_delconsumer(stream, group, c["name"])
            removed.append(text(c["name"]))
    return removed


def text(v: Any) -> Any:
    """Redis replies are bytes; logs, records and tables want text."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v
