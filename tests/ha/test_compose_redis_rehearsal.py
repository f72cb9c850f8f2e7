"""docker-compose.ha.yml's Redis, rehearsed without Docker: docker/redis/newsflow-redis.sh starts two servers
and three Sentinels as real processes on loopback, addressed by host name as containers are ("localhost"
with distinct ports in place of service names), with hostname resolution and announcement on as there.
Then the primary is killed, and the script restarts it: it must ask the Sentinels and come back a replica.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from ha_servers import ROOT, Figures
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SCRIPT = ROOT / "docker" / "redis" / "newsflow-redis.sh"
# Loopback in both families: "localhost" may resolve to ::1 first.
BIND = ("--bind", "127.0.0.1", "-::1")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Member:
    role: str
    port: int
    data: Path
    proc: subprocess.Popen | None = None


class Rehearsal:
    def __init__(self, tmp: Path) -> None:
        ports = free_ports(5)
        self.servers = [Member("server", p, tmp / f"redis-{i + 1}") for i, p in enumerate(ports[:2])]
        self.sentinels = [Member("sentinel", p, tmp / f"sentinel-{i + 1}") for i, p in enumerate(ports[2:])]
        self.env = {
            "PATH": os.environ["PATH"],
            "NEWSFLOW_REDIS_SELF": "localhost",
            "NEWSFLOW_REDIS_SENTINELS": ",".join(f"localhost:{m.port}" for m in self.sentinels),
            "NEWSFLOW_REDIS_SENTINEL_MASTER": "newsflow",
            "NEWSFLOW_REDIS_INITIAL_PRIMARY": f"localhost:{self.servers[0].port}",
            # The loopback timings of scripts/redis.sh, so the rehearsal takes seconds.
            "NEWSFLOW_SENTINEL_DOWN_AFTER_MS": "2000",
            "NEWSFLOW_SENTINEL_FAILOVER_TIMEOUT_MS": "10000",
            "NEWSFLOW_REDIS_SENTINEL_WAIT_S": "10",
        }

    def start(self, m: Member) -> None:
        m.data.mkdir(exist_ok=True)
        env = {**self.env, "NEWSFLOW_REDIS_DATA": str(m.data)}
        env["NEWSFLOW_REDIS_PORT" if m.role == "server" else "NEWSFLOW_SENTINEL_PORT"] = str(m.port)
        log = (m.data / "out.log").open("a")
        m.proc = subprocess.Popen(
            ["sh", str(SCRIPT), m.role, *BIND], env=env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    def log(self, m: Member) -> str:
        return (m.data / "out.log").read_text()

    def stop_all(self) -> None:
        for m in (*self.sentinels, *self.servers):
            if m.proc and m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(10)


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    r = Rehearsal(tmp_path)
    try:
        yield r
    finally:
        r.stop_all()


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
    try:
        yield c
    finally:
        await c.aclose()


async def master_of(sentinel_port: int) -> tuple[str, int]:
    async with client(sentinel_port) as s:
        return await s.sentinel_get_master_addr_by_name("newsflow")


async def ready(r: Rehearsal, replica: Member) -> bool:
    async with client(replica.port) as c:
        if (await c.info("replication"))["master_link_status"] != "up":
            return False
    for m in r.sentinels:
        async with client(m.port) as s:
            if not (await s.execute_command("SENTINEL", "CKQUORUM", "newsflow")).startswith("OK 3 usable"):
                return False
            if [x["flags"] for x in await s.sentinel_slaves("newsflow")] != ["slave"]:
                return False
    return True


async def test_compose_start_script_fails_over_and_rejoins(rehearsal: Rehearsal, figures: Figures) -> None:
    r = rehearsal
    first, second = r.servers
    for m in (*r.sentinels, first, second):
        r.start(m)
    await wait_until(lambda: ready(r, second), 60, "the rehearsal's replica and Sentinels", every=0.2)
    assert "starting as the primary" in r.log(first)
    assert f"starting as a replica of localhost:{first.port}" in r.log(second)
    for m in r.sentinels:
        # Announced and resolved by name, as service names are in the stack.
        assert await master_of(m.port) == ("localhost", first.port)
    async with client(first.port) as c:
        await c.set("rehearsal", "before")
        assert await c.wait(1, 2000) == 1

    t0 = time.monotonic()
    assert first.proc is not None
    first.proc.kill()
    first.proc.wait(10)

    async def promoted() -> bool:
        return await master_of(r.sentinels[0].port) == ("localhost", second.port)

    await wait_until(promoted, 20, "the Sentinels to promote the replica")
    figures.add("Compose Redis script (rehearsal): replica promoted after kill -9", time.monotonic() - t0)
    async with client(second.port) as c:
        await c.set("rehearsal", "after")

    # The container restarts with the same command: the script must ask, and follow the new primary.
    t1 = time.monotonic()
    r.start(first)
    await wait_until(lambda: ready(r, first), 60, "the old primary to rejoin", every=0.2)
    figures.add("Compose Redis script (rehearsal): old primary back as a replica after", time.monotonic() - t1)
    assert f"starting as a replica of localhost:{second.port}" in r.log(first)
    async with client(first.port) as c:
        info = await c.info("replication")
        assert (info["role"], info["master_port"]) == ("slave", second.port)
        assert await c.get("rehearsal") == "after"

    # A Sentinel restarted on its volume keeps what it learnt (its config is written once, then its own).
    s1 = r.sentinels[0]
    assert s1.proc is not None
    s1.proc.kill()
    s1.proc.wait(10)
    r.start(s1)
    await wait_until(lambda: ready(r, first), 60, "the restarted Sentinel", every=0.2)
    assert await master_of(s1.port) == ("localhost", second.port)
    assert r.log(s1).count("monitoring newsflow") == 1  # the first start wrote it; the restart read it
