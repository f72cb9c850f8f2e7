"""The seen-set: each canonical URL is downloaded once, across feeds and replicas.

One Redis key per URL (`SEEN_PREFIX + article_id`), so memory is bounded by the TTL: a URL counts
as seen for `seen_ttl_days` after it was published, then the key expires. An article that comes
back in a feed after that is downloaded again (and re-indexed idempotently under the same id).

Marking is two-step so that a crash never loses an article and two replicas never publish one:
1. `claim`: SET NX with a short "pending" value (one winner among concurrent pollers);
2. the FeedEntry is published to the durable entries stream;
3. `confirm`: the key becomes "done" with the long TTL.
If the poller dies between 1 and 3, the pending mark expires (its TTL is the feed lease), the feed
is polled again and the entry is published then. A failed publish releases the mark at once.
"""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from newsflow_shared import streams
from newsflow_shared.ids import article_id

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_KEEP = """
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); n = n + 1 end
end
return n
"""


def seen_key(canonical_url: str) -> str:
    return streams.SEEN_PREFIX + article_id(canonical_url)


class SeenSet:
    def __init__(self, redis: aioredis.Redis, ttl_s: float, pending_ttl_s: float) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_s * 1000)
        self.pending_ms = int(pending_ttl_s * 1000)
        self.token = b"pending:" + uuid.uuid4().hex.encode()
        self._release = redis.register_script(_RELEASE)
        self._keep = redis.register_script(_KEEP)

    async def claim_many(self, urls: list[str]) -> list[bool]:
        """For each URL: True when this caller won it (not seen, not pending elsewhere)."""
        if not urls:
            return []
        async with self.redis.pipeline(transaction=False) as p:
            for u in urls:
                p.set(seen_key(u), self.token, nx=True, px=self.pending_ms)
            return [bool(r) for r in await p.execute()]

    async def pending_elsewhere(self, urls: list[str]) -> int:
        """How many of `urls` another poller has claimed but not yet confirmed as published."""
        if not urls:
            return 0
        values = await self.redis.mget([seen_key(u) for u in urls])
        return sum(1 for v in values if v is not None and v.startswith(b"pending:") and v != self.token)

    async def confirm(self, url: str) -> None:
        await self.redis.set(seen_key(url), b"1", px=self.ttl_ms)

    async def release(self, url: str) -> None:
        await self._release(keys=[seen_key(url)], args=[self.token])

    async def keep_pending(self, urls: list[str]) -> int:
        if not urls:
            return 0
        return int(await self._keep(keys=[seen_key(u) for u in urls], args=[self.token, self.pending_ms]))

    async def is_seen(self, url: str) -> bool:
        return bool(await self.redis.exists(seen_key(url)))
