"""Redis with Sentinel from scripts/redis.sh --ha: kill -9 the primary, the replica takes over, clients follow.

A client here is redis-py's `redis.asyncio.sentinel.Sentinel`, given the Sentinel addresses the script
prints, as the services will be. Times are measured from just before the kill command.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from ha_servers import Figures, RedisHA
from redis.asyncio.sentinel import Sentinel
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# What the script's Sentinel settings promise on loopback: 2 s to SDOWN, the quorum, a leader elected, the
# replica promoted (about 3.5 s measured); the bound leaves room for a machine busy with other tests.
PROMOTION_WITHIN_S = 15.0
STREAM = "ha:probe"


@contextlib.asynccontextmanager
async def sentinel_client(ha: RedisHA) -> AsyncIterator[Sentinel]:
    sentinel = Sentinel(ha.sentinels, socket_timeout=1.0, socket_connect_timeout=0.5)
    try:
        yield sentinel
    finally:
        for s in sentinel.sentinels:
            await s.aclose()


@contextlib.asynccontextmanager
async def server(port: int) -> AsyncIterator[aioredis.Redis]:
    """One server or Sentinel, directly (not through Sentinel)."""
    client = aioredis.Redis(
        host="127.0.0.1", port=port, socket_timeout=10.0, socket_connect_timeout=2.0, decode_responses=True
    )
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class Writes:
    """What a writer through Sentinel saw: each entry's id and when a primary acknowledged it, and which
    entries WAIT confirmed the replica had too."""

    stream: str
    acked: dict[bytes, float] = field(default_factory=dict)
    replicated: set[bytes] = field(default_factory=set)
    errors: int = 0

    def since(self, t: float) -> set[bytes]:
        return {i for i, at in self.acked.items() if at > t}

    def until(self, t: float) -> set[bytes]:
        return {i for i, at in self.acked.items() if at <= t}


async def write_confirmed(master: aioredis.Redis, writes: Writes, stop: asyncio.Event) -> None:
    """One entry at a time, each followed by WAIT 1: acknowledged upstream only once the replica has it."""
    n = 0
    while not stop.is_set():
        try:
            entry = await master.xadd(writes.stream, {"n": n})
            writes.acked[entry] = time.monotonic()
            n += 1
            if await master.wait(1, 100) >= 1:
                writes.replicated.add(entry)
        except Exception:  # the primary is gone, or Sentinel still names it
            writes.errors += 1
        await asyncio.sleep(0.01)


async def write_fast(master: aioredis.Redis, writes: Writes, stop: asyncio.Event) -> None:
    """Pipelines of 50 entries, trusting asynchronous replication: no WAIT."""
    n = 0
    while not stop.is_set():
        try:
            pipe = master.pipeline(transaction=False)
            for k in range(50):
                pipe.xadd(writes.stream, {"n": n + k})
            entries = await pipe.execute()
            now = time.monotonic()
            writes.acked.update(dict.fromkeys(entries, now))
            n += 50
        except Exception:
            writes.errors += 1
        # Bounded (about 5,000 entries a second): enough to keep replication busy, not to starve the machine.
        await asyncio.sleep(0.01)


async def test_sentinels_watch_one_replicated_primary(healthy_redis_ha: RedisHA) -> None:
    ha = healthy_redis_ha
    assert len(ha.sentinels) == 3 and ha.master_name == "newsflow"
    primary = ha.master()
    replica = 3 - primary
    for _, port in ha.sentinels:
        async with server(port) as s:
            assert await s.sentinel_get_master_addr_by_name(ha.master_name) == ("127.0.0.1", ha.port(primary))
            assert (await s.execute_command("SENTINEL", "CKQUORUM", ha.master_name)).startswith("OK 3 usable")
            replicas = await s.sentinel_slaves(ha.master_name)
            assert [(r["port"], r["flags"]) for r in replicas] == [(ha.port(replica), "slave")], replicas
            state = await s.sentinel_master(ha.master_name)
            assert (state["quorum"], state["num-other-sentinels"], state["num-slaves"]) == (2, 2, 1), state
    async with sentinel_client(ha) as sentinel:
        master = sentinel.master_for(ha.master_name, socket_timeout=2.0)
        await master.delete("ha:k")
        await master.set("ha:k", "v")
        assert await master.wait(1, 2000) == 1
        async with server(ha.port(replica)) as r:
            assert await r.get("ha:k") == "v"
            assert (await r.info("replication"))["role"] == "slave"
            with pytest.raises(aioredis.ReadOnlyError):
                await r.set("ha:k", "w")
        await master.aclose()


def test_script_interface_on_a_running_set(healthy_redis_ha: RedisHA) -> None:
    ha = healthy_redis_ha
    code, lines = ha.status()
    assert code == 0, lines
    primary = ha.master()
    sentinels = ",".join(f"{h}:{p}" for h, p in ha.sentinels)
    assert lines[-1] == f"primary {primary} redis://127.0.0.1:{ha.port(primary)}/0; sentinel://{sentinels}/newsflow"
    assert f"server {primary} running redis://127.0.0.1:{ha.port(primary)}/0 pid {ha.pid(primary)} master" in lines
    assert any(ln.startswith(f"server {3 - primary} running") and ln.endswith("replica (link up)") for ln in lines)
    assert sum(ln.startswith("sentinel ") and " running 127.0.0.1:" in ln for ln in lines) == 3
    # Starting what runs changes nothing and answers as the first start did.
    assert ha.script("start", "--ha") == f"sentinel://{sentinels}/newsflow"
    assert ha.start_server(primary) == f"redis://127.0.0.1:{ha.port(primary)}/0"
    with pytest.raises(RuntimeError, match="needs a server number"):
        ha.script("kill-server", "3")


async def test_primary_killed_replica_promoted_client_follows_old_primary_rejoins(
    healthy_redis_ha: RedisHA, figures: Figures
) -> None:
    ha = healthy_redis_ha
    old = ha.master()
    new = 3 - old
    confirmed, fast, stop = Writes("ha:confirmed"), Writes("ha:fast"), asyncio.Event()
    async with sentinel_client(ha) as sentinel:
        master = sentinel.master_for(ha.master_name, socket_timeout=1.0, socket_connect_timeout=0.5)
        await master.delete(confirmed.stream, fast.stream)
        tasks = [
            asyncio.create_task(write_confirmed(master, confirmed, stop)),
            asyncio.create_task(write_fast(master, fast, stop)),
        ]
        await wait_until(lambda: _at_least(confirmed, 50), 30, "the first writes")

        t0 = time.monotonic()
        assert await asyncio.to_thread(ha.kill_primary) == old
        killed = time.monotonic()
        code, lines = await asyncio.to_thread(ha.status)
        assert code == 4 and f"server {old} stopped redis://127.0.0.1:{ha.port(old)}/0" in lines, lines

        async def promoted() -> bool:
            return (await sentinel.discover_master(ha.master_name))[1] == ha.port(new)

        await wait_until(promoted, PROMOTION_WITHIN_S, f"Sentinel to promote server {new}")
        promoted_s = time.monotonic() - t0
        await wait_until(lambda: _at_least(confirmed, 20, since=killed), 30, "writes on the new primary")
        first_write_s = min(confirmed.acked[i] for i in confirmed.since(killed)) - t0
        stop.set()
        await asyncio.gather(*tasks)

        async with server(ha.port(new)) as promoted_server:
            assert (await promoted_server.info("replication"))["role"] == "master"
            on_new = {
                w.stream: {e.encode() for e, _ in await promoted_server.xrange(w.stream)} for w in (confirmed, fast)
            }
        for w in (confirmed, fast):
            # The client followed: what it wrote after the kill is on the promoted server.
            assert w.since(killed) and w.since(killed) <= on_new[w.stream], w.stream
        # Nothing the replica had confirmed (WAIT) is lost. What only the dead primary held may be: counted.
        assert confirmed.replicated and confirmed.replicated & confirmed.until(killed) <= on_new[confirmed.stream]
        lost_confirmed = confirmed.until(killed) - on_new[confirmed.stream]
        lost_fast = fast.until(killed) - on_new[fast.stream]
        print(
            f"one at a time with WAIT 1: {len(confirmed.until(killed))} acknowledged before the kill, "
            f"{len(confirmed.replicated & confirmed.until(killed))} confirmed by the replica, "
            f"{len(lost_confirmed)} lost; pipelined without WAIT: {len(fast.until(killed))} acknowledged, "
            f"{len(lost_fast)} lost; client errors while no primary answered: {confirmed.errors + fast.errors}"
        )

        # The old primary comes back: as a replica of the promoted server, with what was written meanwhile.
        t1 = time.monotonic()
        await asyncio.to_thread(ha.start_server, old)  # returns once it is linked and Sentinel sees it healthy
        rejoin_s = time.monotonic() - t1
        assert ha.master() == new  # no fail-back: the promoted server stays the primary
        await master.set("ha:after-rejoin", "x")
        assert await master.wait(1, 5000) == 1
        async with server(ha.port(old)) as back:
            info = await back.info("replication")
            assert (info["role"], info["master_port"], info["master_link_status"]) == ("slave", ha.port(new), "up")
            # Its own unreplicated tail, if any, was dropped: it holds exactly what the new primary holds.
            assert await back.xlen(confirmed.stream) == len(on_new[confirmed.stream])
            assert await back.xlen(fast.stream) == len(on_new[fast.stream])
            assert await back.get("ha:after-rejoin") == "x"
        for _, port in ha.sentinels:
            async with server(port) as s:
                replicas = await s.sentinel_slaves(ha.master_name)
                assert [(r["port"], r["flags"]) for r in replicas] == [(ha.port(old), "slave")], replicas
        await master.aclose()
    figures.add("Redis kill -9 primary: Sentinel names the replica after", promoted_s)
    figures.add("Redis kill -9 primary: first write through Sentinel after", first_write_s)
    figures.add("Redis kill -9 primary: writes acknowledged without WAIT", len(fast.until(killed)), "writes")
    figures.add("Redis kill -9 primary: ... of which lost with the primary", len(lost_fast), "writes")
    figures.add("Redis old primary restarted: linked replica, Sentinels agree, after", rejoin_s)


async def _at_least(writes: Writes, n: int, since: float = 0.0) -> bool:
    return len(writes.since(since)) >= n
