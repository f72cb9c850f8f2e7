"""The notifier's state in Redis: stories, what was decided for each alert, digests, storms, and the outcome
of every delivery per (message, channel). The notifier writes it; `newsflow alerts` and the web app read it.

Why Redis: every change the notifier makes is atomic with the others it depends on (one MULTI per alert
decision; one Lua script seals a digest and appends its messages to news.notifications), it is shared by
the replicas, and it is as durable as the streams themselves (AOF): a notifier killed at any point finds
its decisions, its sealed digests and its deliveries where it left them. Elasticsearch keeps what fired
(the alerts record index); this keeps what became of it. Everything expires after `ttl_s` (30 days).

Keys (prefix `newsflow:notifier:`):

- `alert:<alert id>`: the decision for an alert (its story, and whether it was sent, digested, snoozed);
- `story:<story id>`: the story's first alert and route; `story:<id>:also`: the other outlets' reports;
- `open:<rule id>`: zset of `<article id>|<story id>` by time: the rule's stories open for grouping;
  `facts:<rule id>`: hash, article id -> its fingerprint (`newsflow_alerting.stories.facts`);
- `storm:<rule id>:fires`: zset of the rule's new stories by time; `storm:<rule id>`: set while in a storm;
- `digest:<rule id>:pending`: zset of stories waiting for the rule's next digest; `digest:<rule id>:last`:
  the last boundary sealed; `digest:<digest id>`: a sealed digest; `digest:active`: rules to look at;
- `delivery:<message id>`: hash, channel key -> the outcome of that delivery.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import NoScriptError

from newsflow_shared import streams
from newsflow_shared.models import Alert, Notification
from newsflow_shared.runtime import DATA_FIELD, encode

P = streams.NOTIFIER_PREFIX
ACTIVE = P + "digest:active"
Route = Literal["immediate", "digest", "storm", "snoozed", "none"]


def k_decision(alert_id: str) -> str:
    return f"{P}alert:{alert_id}"


def k_story(story_id: str) -> str:
    return f"{P}story:{story_id}"


def k_also(story_id: str) -> str:
    return f"{P}story:{story_id}:also"


def k_open(rule_id: str) -> str:
    return f"{P}open:{rule_id}"


def k_facts(rule_id: str) -> str:
    return f"{P}facts:{rule_id}"


def k_fires(rule_id: str) -> str:
    return f"{P}storm:{rule_id}:fires"


def k_storm(rule_id: str) -> str:
    return f"{P}storm:{rule_id}"


def k_pending(rule_id: str) -> str:
    return f"{P}digest:{rule_id}:pending"


def k_last(rule_id: str) -> str:
    return f"{P}digest:{rule_id}:last"


def k_digest(digest_id: str) -> str:
    return f"{P}digest:{digest_id}"


def k_delivery(notification_id: str) -> str:
    return f"{P}delivery:{notification_id}"


def k_lock(rule_id: str) -> str:
    return f"{P}lock:{rule_id}"


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(v: Any) -> datetime:
    return datetime.fromtimestamp(int(v) / 1000, UTC)


def digest_id(rule_id: str, end: datetime) -> str:
    return "dg-" + hashlib.sha256(f"{rule_id}|{ms(end)}".encode()).hexdigest()[:24]


class Decision(BaseModel):
    """What the notifier made of one alert: a new story (sent, digested, snoozed) or a report of an open one."""

    story_id: str
    role: Literal["story", "also"]
    route: Route
    at: datetime


@dataclass
class Outlook:
    """A rule's state as one decision sees it (`NotifierState.take`)."""

    members: list[tuple[str, str, frozenset[str]]]  # (article id, story id, facts) of its open stories
    storm: datetime | None  # when its storm started; None: no storm
    fires: int  # its new stories within the storm guard's window
    decision: Decision | None = None  # the decision already taken for the alert asked about
    stale: list[bytes] = field(default_factory=list)  # facts of reports no longer open, to forget


MEMBER_FIELDS = {"alert_id", "article_id", "url", "domain", "title"}


class Member(BaseModel):
    """Another outlet's report of a story: "also reported by": its alert's `MEMBER_FIELDS`, and when."""

    alert_id: str
    article_id: str
    url: str
    domain: str | None = None
    title: str | None = None
    at: datetime


class Story(BaseModel):
    story_id: str
    rule_id: str
    alert: Alert
    route: Route
    first_at: datetime
    digest_id: str | None = None
    also: list[Member] = []

    @property
    def outlets(self) -> list[str]:
        seen = [self.alert.domain or ""]
        for m in self.also:
            if m.domain and m.domain not in seen:
                seen.append(m.domain)
        return [d for d in seen if d]


class DigestMeta(BaseModel):
    digest_id: str
    rule_id: str
    rule_name: str
    start: datetime | None
    end: datetime
    storm: bool = False  # sealed by the storm guard, not by the rule's own schedule
    storm_over: bool = False  # the last digest of a storm: the rule is quiet again
    storm_max: int = 0
    storm_within: int = 0  # minutes


class Delivery(BaseModel):
    """The outcome of one message on one channel, as the operator sees it."""

    status: Literal["sending", "delivered", "failed", "dropped"]
    channel: str  # the channel's label (no secrets)
    kind: Literal["alert", "digest"]
    rule_name: str
    attempts: int = 0
    detail: str = ""
    first_at: datetime
    last_at: datetime
    latency_s: float | None = None  # indexed -> delivered, for alerts


# Seal one period of a rule's digest: move its pending stories into the digest and append one message per
# channel to news.notifications, atomically; a boundary already sealed (another replica, a restart) is a
# no-op, so a digest is never sent twice nor lost.
_SEAL = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local end_ms = tonumber(ARGV[1])
if last >= end_ms then return -1 end
redis.call('SET', KEYS[2], ARGV[1])
if ARGV[5] == '1' then redis.call('DEL', KEYS[6]) end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', end_ms)
if #ids > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', end_ms)
  redis.call('HSET', KEYS[3], 'meta', ARGV[2], 'stories', cjson.encode(ids))
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  for _, id in ipairs(ids) do
    redis.call('HSET', ARGV[7] .. id, 'digest_id', ARGV[8])
  end
  local n = tonumber(ARGV[6])
  for i = 1, n do
    redis.call('XADD', KEYS[5], '*', ARGV[4], ARGV[8 + i])
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[9 + tonumber(ARGV[6])])
end
return #ids
"""


# redis-py's own lock's release: the digest scheduler takes the same lock with `redis.lock()`.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class RuleLock:
    """A rule's lock across replicas, as one decision takes it (`NotifierState.take`)."""

    key: str
    ttl_ms: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, rule_id: str, ttl_s: float) -> RuleLock:
        return cls(k_lock(rule_id), int(ttl_s * 1000))


def _facts(raw: bytes | None) -> frozenset[str]:
    return frozenset(json.loads(raw)) if raw else frozenset()


class NotifierState:
    def __init__(self, redis: aioredis.Redis, ttl_s: int = 30 * 86400) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._seal = redis.register_script(_SEAL)
        self._release = redis.register_script(_RELEASE)

    # -- decisions and stories ----------------------------------------------------------------------

    async def decision(self, alert_id: str) -> Decision | None:
        raw = await self.redis.get(k_decision(alert_id))
        return Decision.model_validate_json(raw) if raw else None

    async def take(
        self, rule_id: str, lock: RuleLock, open_since: datetime, fires_since: datetime, alert_id: str
    ) -> Outlook | None:
        """Take the rule's lock and read what a decision needs, in one round trip; None while another holds
        the lock (its reads are then discarded). A decision waits for its rule's lock and each round trip
        under it delays the rule's next alert too, so the lock rides with the reads and is let go with the
        commit (`commit(..., lock=)`; `release` when nothing is committed).

        Read: the rule's reports since `open_since` as (article id, story id, fingerprint), older ones
        forgotten; when its storm started (None: no storm); its new stories since `fires_since`; and the
        decision already taken for `alert_id` (a redelivered alert)."""
        key, fires = k_open(rule_id), k_fires(rule_id)
        async with self.redis.pipeline(transaction=False) as p:
            p.set(lock.key, lock.token, nx=True, px=lock.ttl_ms)
            p.zremrangebyscore(key, "-inf", f"({ms(open_since)}")
            p.zrange(key, 0, -1)
            # All the facts, not those of the open reports only: the ones of forgotten reports are found
            # (and deleted by the commit) without a second round trip.
            p.hgetall(k_facts(rule_id))
            p.get(k_storm(rule_id))
            p.zremrangebyscore(fires, "-inf", f"({ms(fires_since)}")
            p.zcard(fires)
            p.get(k_decision(alert_id))
            taken, _n, current, facts, storm, _m, count, decided = await p.execute()
        if not taken:
            return None
        members = [m.decode().partition("|") for m in current]
        opened = [(a, story, _facts(facts.get(a.encode()))) for a, _, story in members]
        open_ids = {a.encode() for a, _, _s in members}
        return Outlook(
            opened,
            from_ms(storm) if storm else None,
            int(count),
            Decision.model_validate_json(decided) if decided else None,
            stale=[a for a in facts if a not in open_ids],
        )

    async def release(self, lock: RuleLock) -> None:
        await self._release(keys=[lock.key], args=[lock.token])

    async def fires_since(self, rule_id: str, since: datetime) -> tuple[int, datetime | None]:
        """New stories of the rule since `since`, and the time of the last one."""
        key = k_fires(rule_id)
        await self.redis.zremrangebyscore(key, "-inf", f"({ms(since)}")
        last = await self.redis.zrange(key, -1, -1, withscores=True)
        return int(await self.redis.zcard(key)), (from_ms(last[0][1]) if last else None)

    async def storm_started(self, rule_id: str) -> datetime | None:
        raw = await self.redis.get(k_storm(rule_id))
        return from_ms(raw) if raw else None

    async def commit(
        self,
        alert: Alert,
        d: Decision,
        facts: frozenset[str] = frozenset(),
        *,
        stale: list[bytes] | None = None,
        lock: RuleLock | None = None,
    ) -> None:
        """Record the decision with all its effects in one transaction (a redelivery finds it whole), forget
        the `stale` facts, and let go of `lock` in the same round trip."""
        now = ms(d.at)
        rule = alert.rule_id
        async with self.redis.pipeline(transaction=True) as p:
            if stale:
                p.hdel(k_facts(rule), *stale)
            p.set(k_decision(alert.alert_id), d.model_dump_json(), ex=self.ttl_s)
            p.zadd(k_open(rule), {f"{alert.article_id}|{d.story_id}": now})
            p.hset(k_facts(rule), alert.article_id, json.dumps(sorted(facts)))
            p.expire(k_facts(rule), self.ttl_s)
            if d.role == "also":
                member = Member(**alert.model_dump(include=MEMBER_FIELDS), at=d.at)
                p.hset(k_also(d.story_id), alert.article_id, member.model_dump_json())
                p.expire(k_also(d.story_id), self.ttl_s)
            else:
                p.hset(
                    k_story(d.story_id),
                    mapping={"rule_id": rule, "alert": alert.model_dump_json(), "first_ms": now, "route": d.route},
                )
                p.expire(k_story(d.story_id), self.ttl_s)
                if d.route in ("immediate", "storm"):
                    p.zadd(k_fires(rule), {d.story_id: now}, nx=True)
                if d.route == "storm":
                    p.set(k_storm(rule), now, nx=True)
                if d.route in ("digest", "storm"):
                    p.zadd(k_pending(rule), {d.story_id: now}, nx=True)
                    p.sadd(ACTIVE, rule)
            if lock is not None:
                # By its digest: a Script object in a pipeline costs a SCRIPT EXISTS round trip on every
                # commit. The first release (or the first after a Redis restart) finds no script and is done
                # again below by the Script, which loads it.
                p.evalsha(self._release.sha, 1, lock.key, lock.token)
            replies = await p.execute(raise_on_error=False)
        if lock is not None and isinstance(replies[-1], NoScriptError):
            await self.release(lock)
        for r in replies:
            if isinstance(r, Exception) and not isinstance(r, NoScriptError):
                raise r

    async def story(self, story_id: str) -> Story | None:
        # One round trip for both (every immediate delivery reads its story).
        async with self.redis.pipeline(transaction=False) as p:
            p.hgetall(k_story(story_id))
            p.hgetall(k_also(story_id))
            raw, members = await p.execute()
        if not raw:
            return None
        also = [Member.model_validate_json(v) for v in members.values()]
        also.sort(key=lambda m: m.at)
        return Story(
            story_id=story_id,
            rule_id=raw[b"rule_id"].decode(),
            alert=Alert.model_validate_json(raw[b"alert"]),
            route=raw[b"route"].decode(),  # type: ignore[arg-type]
            first_at=from_ms(raw[b"first_ms"]),
            digest_id=raw[b"digest_id"].decode() if b"digest_id" in raw else None,
            also=also,
        )

    # -- digests ------------------------------------------------------------------------------------

    async def active_rules(self) -> set[str]:
        return {m.decode() for m in await self.redis.smembers(ACTIVE)}

    async def last_sealed(self, rule_id: str) -> datetime | None:
        raw = await self.redis.get(k_last(rule_id))
        return from_ms(raw) if raw else None

    async def pending_count(self, rule_id: str) -> int:
        return int(await self.redis.zcard(k_pending(rule_id)))

    async def seal(self, meta: DigestMeta, channels: list[str], *, end_storm: bool) -> int:
        """Seal the rule's pending stories up to `meta.end` into a digest with one message per channel.

        Returns the number of stories sealed (0: nothing was pending), or -1 when that boundary was
        sealed already.
        """
        payloads = [
            encode(
                Notification(
                    notification_id=meta.digest_id,
                    kind="digest",
                    rule_id=meta.rule_id,
                    rule_name=meta.rule_name,
                    channel=ch,
                )
            )[DATA_FIELD]
            for ch in channels
        ]
        return int(
            await self._seal(
                keys=[
                    k_pending(meta.rule_id),
                    k_last(meta.rule_id),
                    k_digest(meta.digest_id),
                    ACTIVE,
                    streams.NOTIFICATIONS,
                    k_storm(meta.rule_id),
                ],
                args=[
                    ms(meta.end),
                    meta.model_dump_json(),
                    self.ttl_s,
                    DATA_FIELD,
                    "1" if end_storm else "0",
                    len(payloads),
                    f"{P}story:",
                    meta.digest_id,
                    *payloads,
                    meta.rule_id,
                ],
            )
        )

    async def digest(self, digest_id: str) -> tuple[DigestMeta, list[Story]] | None:
        raw = await self.redis.hgetall(k_digest(digest_id))
        if not raw:
            return None
        meta = DigestMeta.model_validate_json(raw[b"meta"])
        stories = [s for sid in json.loads(raw[b"stories"]) if (s := await self.story(sid)) is not None]
        return meta, stories

    # -- deliveries ---------------------------------------------------------------------------------

    async def delivery(self, notification_id: str, channel: str) -> Delivery | None:
        raw = await self.redis.hget(k_delivery(notification_id), channel)
        return Delivery.model_validate_json(raw) if raw else None

    async def deliveries(self, notification_id: str) -> dict[str, Delivery]:
        raw = await self.redis.hgetall(k_delivery(notification_id))
        return {k.decode(): Delivery.model_validate_json(v) for k, v in raw.items()}

    async def record(self, notification_id: str, channel: str, d: Delivery) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(k_delivery(notification_id), channel, d.model_dump_json())
            p.expire(k_delivery(notification_id), self.ttl_s)
            await p.execute()
