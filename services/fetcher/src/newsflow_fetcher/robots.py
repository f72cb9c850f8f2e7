"""robots.txt for article pages, cached per origin in memory and in Redis (shared by replicas).

RFC 9309 semantics: a robots.txt that answers 4xx allows everything; one that cannot be fetched
(5xx, timeout) blocks the origin for now, which the downloader reports as a transient failure so
the article is retried later instead of being fetched against the site's wishes or given up.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from protego import Protego

from newsflow_fetcher import metrics
from newsflow_http.httpclient import FetchError, HttpClient
from newsflow_shared import streams

ROBOTS_MAX_BYTES = 512 * 1024  # what the large crawlers read at most
UNAVAILABLE_TTL_S = 60.0
MEMORY_ENTRIES = 10_000
_ALLOW_ALL = b"\x00allow-all"


def origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc.lower()}"


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against ("NewsflowBot" of "NewsflowBot/0.1 (...)")."""
    return user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"


class RobotsCache:
    def __init__(self, http: HttpClient, redis: aioredis.Redis, user_agent: str, ttl_s: float) -> None:
        self.http = http
        self.redis = redis
        self.agent = agent_token(user_agent)
        self.ttl_s = ttl_s
        self._memory: OrderedDict[str, tuple[float, Protego | None]] = OrderedDict()
        self._unavailable: dict[str, tuple[float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: str) -> bool:
        rules = await self._rules(origin_of(url))
        return True if rules is None else bool(rules.can_fetch(url, self.agent))

    async def _rules(self, origin: str) -> Protego | None:
        now = time.monotonic()
        hit = self._memory.get(origin)
        if hit and hit[0] > now:
            self._memory.move_to_end(origin)
            return hit[1]
        if len(self._locks) > 1000:
            self._prune()
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:  # one fetch per origin, however many articles wait for it
            hit = self._memory.get(origin)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            down = self._unavailable.get(origin)
            if down and down[0] > time.monotonic():
                raise FetchError("robots-unavailable", down[1], origin)
            text = await self.redis.get(streams.ROBOTS_PREFIX + origin)
            if text is None:
                text = await self._fetch(origin)
                await self.redis.set(streams.ROBOTS_PREFIX + origin, text, ex=int(self.ttl_s))
            rules = None if text == _ALLOW_ALL else Protego.parse(text.decode("utf-8", errors="replace"))
            self._remember(origin, rules)
            return rules

    def _prune(self) -> None:
        now = time.monotonic()
        for origin in [o for o, lk in self._locks.items() if not lk.locked()]:
            del self._locks[origin]
        for origin in [o for o, (until, _) in self._unavailable.items() if until <= now]:
            del self._unavailable[origin]

    def _remember(self, origin: str, rules: Protego | None) -> None:
        self._memory[origin] = (time.monotonic() + self.ttl_s, rules)
        self._memory.move_to_end(origin)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

    async def _fetch(self, origin: str) -> bytes:
        started = time.monotonic()
        try:
            resp = await self.http.get(
                origin + "/robots.txt", {"Accept": "text/plain, */*;q=0.5"}, max_bytes=ROBOTS_MAX_BYTES
            )
        except FetchError as e:
            if e.permanent and e.reason == "too-large":
                return _ALLOW_ALL  # an absurd robots.txt is treated as none
            if e.permanent:
                raise
            self._unavailable[origin] = (time.monotonic() + UNAVAILABLE_TTL_S, f"robots.txt unreachable: {e}")
            raise FetchError("robots-unavailable", f"robots.txt of {origin} unreachable: {e}", origin) from e
        finally:
            metrics.FETCH_SECONDS.labels("robots").observe(time.monotonic() - started)
        if 200 <= resp.status < 300:
            return resp.body or _ALLOW_ALL
        if 400 <= resp.status < 500 and resp.status != 429:
            return _ALLOW_ALL
        msg = f"robots.txt of {origin} answered HTTP {resp.status}"
        self._unavailable[origin] = (time.monotonic() + UNAVAILABLE_TTL_S, msg)
        raise FetchError("robots-unavailable", msg, origin)
