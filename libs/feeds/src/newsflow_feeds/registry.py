"""Feeds in Redis: what operators configured, what the pollers learned, and when each is due.

Three structures, all keyed by the feed URL:

- `FEEDS_CONFIG_KEY` (hash -> FeedConfig JSON): written by operators (CLI, YAML/OPML seeding);
- `FEEDS_KEY` (hash -> FeedState JSON): written only by the poller holding the feed's lease;
- `FEEDS_DUE_KEY` (sorted set, score = next due unix time): the schedule.

Claiming is one Lua script: take the due feeds, set a lease per feed (`FEED_LEASE_PREFIX + url`,
with a random token and a TTL) and push the feed's score to the lease's expiry. So N replicas never
poll one feed at once, and a feed whose poller died becomes due again when its lease runs out.
Completing checks the token, so a poller whose lease expired cannot overwrite a newer poll's state.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
import yaml
from pydantic import BaseModel, ConfigDict, Field

from newsflow_feeds import opml
from newsflow_shared import streams
from newsflow_shared.urls import canonicalize

SourceKind = Literal["feed", "sitemap"]
SOURCE_KINDS: tuple[str, ...] = ("feed", "sitemap")


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    # What the operator added: a feed (RSS, Atom, JSON Feed) or a sitemap (news, plain, index, gzipped).
    # The poller also recognises a sitemap by its root element, so a sitemap added as a feed still works.
    kind: SourceKind = "feed"
    interval_s: float | None = None  # fixed polling interval; None: adaptive
    title: str | None = None
    added_at: float = Field(default_factory=time.time)


class ChildState(BaseModel):
    """A child sitemap of a sitemap index: its own conditional GET."""

    model_config = ConfigDict(extra="ignore")

    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    urls: int = 0


class FeedState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    title: str | None = None  # from the feed itself
    format: str | None = None
    final_url: str | None = None
    # Conditional GET
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None  # sha256 of the last 200 body
    validators_trusted: bool = True
    polls_since_check: int = 0
    # Counters
    polls: int = 0
    not_modified: int = 0
    unchanged: int = 0
    items_seen: int = 0  # new entries published from this feed, ever
    last_new_items: int = 0
    last_status: int | None = None
    # Health
    last_polled_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    failing_since: float | None = None
    unhealthy: bool = False
    # Schedule
    current_interval_s: float | None = None  # the adaptive interval (errors do not change it)
    publisher_hint_s: float | None = None  # the feed's own <ttl> / sy:updatePeriod, kept across 304s
    next_due_at: float | None = None
    # Sitemaps: the children of an index (by URL) and how many URLs the source listed at the last poll.
    children: dict[str, ChildState] = Field(default_factory=dict)
    sitemap_urls: int | None = None


class FeedInfo(BaseModel):
    """A feed as `feeds list` shows it."""

    config: FeedConfig
    state: FeedState
    due_at: float | None = None
    leased: bool = False

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def health(self) -> str:
        """new, ok, failing (errors lately) or unhealthy (failing for long)."""
        if self.state.unhealthy:
            return "unhealthy"
        if self.state.consecutive_failures:
            return "failing"
        return "new" if self.state.last_success_at is None else "ok"


_CLAIM = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local token = ARGV[4]
local prefix = ARGV[5]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, url in ipairs(due) do
  if redis.call('SET', prefix .. url, token, 'PX', lease_ms, 'NX') then
    redis.call('ZADD', KEYS[1], now + lease_ms / 1000, url)
    table.insert(out, url)
  else
    -- leased but due (a renewal was missed): wait for the lease to end
    local left = redis.call('PTTL', prefix .. url)
    if left < 0 then left = lease_ms end
    redis.call('ZADD', KEYS[1], now + left / 1000, url)
  end
end
return out
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4])
return 1
"""

# KEYS: lease, due, state, config, unhealthy. ARGV: token, url, state json, next due, unhealthy flag
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[3])
return 1
"""

_COMPLETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 0 then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
if ARGV[5] == '1' then redis.call('SADD', KEYS[5], ARGV[2]) else redis.call('SREM', KEYS[5], ARGV[2]) end
return 1
"""


def normalise_feed_url(url: str) -> str:
    return canonicalize(url)


class FeedRegistry:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)

    # --- operator side ----------------------------------------------------------------------------

    async def add(
        self,
        url: str,
        *,
        interval: float | None = None,
        title: str | None = None,
        due_at: float | None = None,
        kind: str | None = None,
    ) -> tuple[FeedConfig, bool]:
        """Add a feed or sitemap, or update its interval/title/kind. Returns (config, created)."""
        url = normalise_feed_url(url)
        if interval is not None and interval <= 0:
            raise ValueError("interval must be positive")
        if kind is not None and kind not in SOURCE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}")
        raw = await self.redis.hget(streams.FEEDS_CONFIG_KEY, url)
        if raw:
            cfg = FeedConfig.model_validate_json(raw)
            if interval is not None:
                cfg.interval_s = interval
            if title:
                cfg.title = title
            if kind is not None:
                cfg.kind = kind  # type: ignore[assignment]
            await self.redis.hset(streams.FEEDS_CONFIG_KEY, url, cfg.model_dump_json())
            return cfg, False
        cfg = FeedConfig(url=url, interval_s=interval, title=title, kind=kind or "feed")  # type: ignore[arg-type]
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(streams.FEEDS_CONFIG_KEY, url, cfg.model_dump_json())
            p.hsetnx(streams.FEEDS_KEY, url, FeedState(url=url).model_dump_json())
            p.zadd(streams.FEEDS_DUE_KEY, {url: due_at if due_at is not None else time.time()}, nx=True)
            await p.execute()
        return cfg, True

    async def remove(self, url: str) -> bool:
        with contextlib.suppress(ValueError):
            url = normalise_feed_url(url)
        async with self.redis.pipeline(transaction=True) as p:
            p.hdel(streams.FEEDS_CONFIG_KEY, url)
            p.hdel(streams.FEEDS_KEY, url)
            p.zrem(streams.FEEDS_DUE_KEY, url)
            p.srem(streams.FEEDS_UNHEALTHY_KEY, url)
            res = await p.execute()
        return bool(res[0])

    async def get(self, url: str) -> FeedInfo | None:
        url = normalise_feed_url(url)
        async with self.redis.pipeline(transaction=False) as p:
            p.hget(streams.FEEDS_CONFIG_KEY, url)
            p.hget(streams.FEEDS_KEY, url)
            p.zscore(streams.FEEDS_DUE_KEY, url)
            p.exists(streams.FEED_LEASE_PREFIX + url)
            cfg, st, due, leased = await p.execute()
        if not cfg:
            return None
        return FeedInfo(
            config=FeedConfig.model_validate_json(cfg),
            state=FeedState.model_validate_json(st) if st else FeedState(url=url),
            due_at=due,
            leased=bool(leased),
        )

    async def list(self) -> list[FeedInfo]:
        configs = await self.redis.hgetall(streams.FEEDS_CONFIG_KEY)
        states = await self.redis.hgetall(streams.FEEDS_KEY)
        due = dict(await self.redis.zrange(streams.FEEDS_DUE_KEY, 0, -1, withscores=True))
        out = []
        for key, raw in configs.items():
            cfg = FeedConfig.model_validate_json(raw)
            st = states.get(key)
            out.append(
                FeedInfo(
                    config=cfg,
                    state=FeedState.model_validate_json(st) if st else FeedState(url=cfg.url),
                    due_at=due.get(key),
                )
            )
        return sorted(out, key=lambda f: f.url)

    async def count(self) -> int:
        return int(await self.redis.hlen(streams.FEEDS_CONFIG_KEY))

    async def unhealthy_count(self) -> int:
        return int(await self.redis.scard(streams.FEEDS_UNHEALTHY_KEY))

    async def add_many(self, feeds: list[dict[str, Any]]) -> tuple[int, int]:
        """Seed from a list of {url, interval?, title?}; existing feeds keep their state. (added, updated)"""
        added = updated = 0
        for f in feeds:
            _, created = await self.add(f["url"], interval=f.get("interval"), title=f.get("title"), kind=f.get("kind"))
            added += created
            updated += not created
        return added, updated

    async def import_opml(self, text: str | bytes) -> tuple[int, int]:
        return await self.add_many(opml.parse_opml(text))

    async def export_opml(self, title: str = "Newsflow feeds") -> str:
        return opml.write_opml([self._export_row(f) for f in await self.list()], title=title)

    async def export_yaml(self) -> str:
        rows = [self._export_row(f) for f in await self.list()]
        return yaml.safe_dump([{k: v for k, v in r.items() if v is not None} for r in rows], sort_keys=False)

    @staticmethod
    def _export_row(f: FeedInfo) -> dict[str, Any]:
        interval = f.config.interval_s
        if interval is not None and float(interval).is_integer():
            interval = int(interval)
        row = {"url": f.url, "title": f.config.title or f.state.title, "interval": interval}
        if f.config.kind != "feed":
            row["kind"] = f.config.kind
        return row

    # --- poller side ------------------------------------------------------------------------------

    async def claim_due(self, limit: int, lease_s: float, token: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        res = await self._claim(
            keys=[streams.FEEDS_DUE_KEY],
            args=[now, limit, int(lease_s * 1000), token, streams.FEED_LEASE_PREFIX],
        )
        return [u.decode() if isinstance(u, bytes) else u for u in res]

    async def next_due_at(self) -> float | None:
        first = await self.redis.zrange(streams.FEEDS_DUE_KEY, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def renew(self, url: str, token: str, lease_s: float) -> bool:
        res = await self._renew(
            keys=[streams.FEED_LEASE_PREFIX + url, streams.FEEDS_DUE_KEY],
            args=[token, int(lease_s * 1000), time.time() + lease_s, url],
        )
        return bool(res)

    async def release(self, url: str, token: str) -> bool:
        """Give a claimed feed back without polling it (shutdown): due again now."""
        res = await self._release(
            keys=[streams.FEED_LEASE_PREFIX + url, streams.FEEDS_DUE_KEY], args=[token, time.time(), url]
        )
        return bool(res)

    async def complete(self, url: str, token: str, state: FeedState, next_due: float) -> int:
        """Store a poll's outcome and schedule the next one. 1: done, 0: lease lost, -1: feed removed."""
        res = await self._complete(
            keys=[
                streams.FEED_LEASE_PREFIX + url,
                streams.FEEDS_DUE_KEY,
                streams.FEEDS_KEY,
                streams.FEEDS_CONFIG_KEY,
                streams.FEEDS_UNHEALTHY_KEY,
            ],
            args=[token, url, state.model_dump_json(), next_due, "1" if state.unhealthy else "0"],
        )
        return int(res)

    async def load(self, url: str) -> tuple[FeedConfig | None, FeedState]:
        async with self.redis.pipeline(transaction=False) as p:
            p.hget(streams.FEEDS_CONFIG_KEY, url)
            p.hget(streams.FEEDS_KEY, url)
            cfg, st = await p.execute()
        return (
            FeedConfig.model_validate_json(cfg) if cfg else None,
            FeedState.model_validate_json(st) if st else FeedState(url=url),
        )


def load_feeds_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a feeds YAML file: a list of {url, interval?, title?, kind?} (or of plain URL strings),
    optionally under a top-level `feeds:` key. OPML files are accepted too, by extension."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".opml", ".xml"):
        return opml.parse_opml(text)
    doc = yaml.safe_load(text)
    if isinstance(doc, dict):
        doc = doc.get("feeds")
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise ValueError(f"{p}: expected a list of feeds")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(doc):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ValueError(f"{p}: feed #{i + 1} needs a url")
        interval = item.get("interval")
        if interval is not None and (not isinstance(interval, int | float) or interval <= 0):
            raise ValueError(f"{p}: feed #{i + 1}: interval must be a positive number of seconds")
        kind = item.get("kind")
        if kind is not None and kind not in SOURCE_KINDS:
            raise ValueError(f"{p}: feed #{i + 1}: kind must be one of {', '.join(SOURCE_KINDS)}")
        row = {"url": item["url"], "interval": interval, "title": item.get("title")}
        out.append(row | {"kind": kind} if kind else row)
    return out


__all__ = ["ChildState", "FeedConfig", "FeedInfo", "FeedRegistry", "FeedState", "SourceKind", "load_feeds_file"]
