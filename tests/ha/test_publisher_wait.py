"""What `NEWSFLOW_REDIS_WAIT_REPLICAS` buys, on the real primary, replica and Sentinels (issue 21).

Replication is asynchronous. Here the replica is made to fall behind (SIGSTOP: it stops reading the
replication stream, as a replica across a slow or cut link does, and 24 MB fill what the kernel would still
buffer for it), one append is acknowledged without WAIT
and one is published with WAIT, then the primary is killed and the replica promoted. The append without
WAIT is gone: the primary acknowledged it and died with it. The one with WAIT never returned before the
kill; the client's retry appended it again on the promoted replica, so it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator

import redis.asyncio as aioredis
from ha_servers import Figures, RedisHA
from pydantic import BaseModel
from waiting import wait_until

from newsflow_shared import metrics
from newsflow_shared.runtime import DATA_FIELD, Publisher, decode, make_redis
from newsflow_shared.settings import CommonSettings

STREAM = "ha.wait"
# More than loopback's socket buffers hold (a few MB each way), less than a replica's output buffer limit (64 MB).
PADDING_MB = 24


class Probe(BaseModel):
    name: str


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _settings(ha: RedisHA) -> CommonSettings:
    return CommonSettings(
        redis_sentinels=",".join(f"{h}:{p}" for h, p in ha.sentinels), redis_sentinel_master=ha.master_name
    )


async def _names(redis: aioredis.Redis) -> list[str]:
    return [decode(Probe, f[DATA_FIELD]).name for _, f in await redis.xrange(STREAM)]


async def _publish_until_it_succeeds(pub: Publisher, model: Probe, within: float) -> float:
    """As the runtime does: a publish that failed (no primary yet) is tried again (a redelivery, a re-poll)."""
    started = time.monotonic()
    while True:
        try:
            await pub.publish(STREAM, model)
            return time.monotonic() - started
        except Exception:
            if time.monotonic() - started > within:
                raise
            await asyncio.sleep(0.2)


async def test_wait_keeps_an_append_that_the_primary_lost(healthy_redis_ha: RedisHA, figures: Figures) -> None:
    ha = healthy_redis_ha
    settings = _settings(ha)
    assert settings.wait_replicas == 1  # the default with Sentinels
    redis = make_redis(settings)
    try:
        await redis.delete(STREAM)
        plain = Publisher("t", redis, max_lag=1000, dedup_ttl_s=60, wait_replicas=0)
        # The longest WAIT the settings allow, so that it is still waiting when the kill lands. The retry on the
        # promoted replica waits it out once: that one has no replica yet.
        waiting = Publisher("t", redis, max_lag=1000, dedup_ttl_s=60, wait_replicas=1, wait_timeout_ms=1500)
        await waiting.publish(STREAM, Probe(name="before"))  # both servers have it
        primary = await asyncio.to_thread(ha.master)
        replica_pid, primary_pid = ha.pid(3 - primary), ha.pid(primary)
        assert replica_pid is not None and primary_pid is not None
        with stopped(replica_pid):
            # A stopped process still receives into its socket buffers (a killed primary loses nothing it had
            # handed to the kernel, docs/SCALING.md). Fill them, so that what follows stays in the primary's
            # own output buffer, as the unsent tail of the stream does on a slow link or a lost machine.
            for i in range(PADDING_MB):
                await redis.set(f"{STREAM}:pad:{i}", b"x" * 2**20)
            await plain.publish(STREAM, Probe(name="without-wait"))  # acknowledged by the primary alone
            task = asyncio.create_task(_publish_until_it_succeeds(waiting, Probe(name="with-wait"), 60))
            await asyncio.sleep(0.3)
            assert not task.done(), "WAIT returned although the replica could not have confirmed"
            # kill -9 at once (the script's kill-primary asks the Sentinels first, which takes too long here).
            os.kill(primary_pid, signal.SIGKILL)
            killed = time.monotonic()
        took = await asyncio.wait_for(task, 60)
        await wait_until(lambda: _promoted(ha, primary), 30, "the replica promoted")
        names = await _names(redis)
        # Lost: acknowledged by a primary that died before its replica had it. Kept: the append under WAIT.
        assert "without-wait" not in names, names
        assert names[0] == "before" and names.count("with-wait") == 1, names
        figures.add("Redis WAIT: publish under WAIT returned after the kill (re-appended on the new primary)", took)
        figures.rows.append(
            (
                "Redis WAIT: appends lost with a primary whose replica was behind",
                "without WAIT 1 of 1, with WAIT 0 of 1",
            )
        )
        assert time.monotonic() - killed < 60
    finally:
        await redis.delete(STREAM, *(f"{STREAM}:pad:{i}" for i in range(PADDING_MB)))
        await redis.aclose()


async def _promoted(ha: RedisHA, old: int) -> bool:
    return await asyncio.to_thread(ha.master) != old


async def test_a_missing_replica_costs_one_timeout_then_appends_go_on(healthy_redis_ha: RedisHA) -> None:
    """With the replica gone, WAIT times out once, then appends go on without waiting for a while: Newsflow
    stays available on one server rather than stopping all writes."""
    ha = healthy_redis_ha
    redis = make_redis(_settings(ha))
    try:
        await redis.delete(STREAM)
        pub = Publisher("t-missing", redis, max_lag=1000, dedup_ttl_s=60, wait_replicas=1, wait_timeout_ms=300)
        counter = metrics.UNREPLICATED.labels("t-missing", STREAM)
        before = counter._value.get()
        started = time.monotonic()
        await pub.publish(STREAM, Probe(name="confirmed"))
        assert time.monotonic() - started < 0.3 and counter._value.get() == before
        replica_pid = ha.pid(3 - await asyncio.to_thread(ha.master))
        assert replica_pid is not None
        with stopped(replica_pid):
            started = time.monotonic()
            await pub.publish(STREAM, Probe(name="unconfirmed"))
            first = time.monotonic() - started
            started = time.monotonic()
            for n in range(20):
                await pub.publish(STREAM, Probe(name=f"then-{n}"))
            then = time.monotonic() - started
        assert first >= 0.3 and counter._value.get() == before + 1, first
        assert then < 0.3, then  # 20 appends, none of them waited
        assert len(await _names(redis)) == 22
    finally:
        await redis.delete(STREAM)
        await redis.aclose()
