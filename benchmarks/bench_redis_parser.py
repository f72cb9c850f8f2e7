"""CPU per Redis command with redis-py's pure-Python reply parser against hiredis (the C parser that redis-py
picks when the `hiredis` package is installed, as Newsflow's lock file has it), side by side in one run on
one Redis server, for the replies the services get: a small one, a rule's facts (a hash of 40 fields), a
read of 50 stream entries of 2 kB (a parser's batch) and a 6-command transaction.

    .venv/bin/python benchmarks/bench_redis_parser.py                  # a Redis of its own (scripts/redis.sh)
    NEWSFLOW_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/bench_redis_parser.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3


async def cpu_us(op: Callable[[], Awaitable[object]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await op()
    return (time.process_time() - started) / n * 1e6


async def measure(url: str) -> None:
    clients = {
        "python": aioredis.Redis.from_url(url, parser_class=_AsyncRESP2Parser),
        "hiredis": aioredis.Redis.from_url(url, parser_class=_AsyncHiredisParser),
    }
    setup = clients["python"]
    await setup.set("bench:k", "v")
    await setup.hset("bench:facts", mapping={f"{i:032x}": '["kyiv", "rocket", "12"]' * 3 for i in range(40)})
    await setup.delete("bench:s")
    for _ in range(50):
        await setup.xadd("bench:s", {"data": "x" * 2000})

    async def tx(c: aioredis.Redis) -> None:
        async with c.pipeline(transaction=True) as p:
            for i in range(6):
                p.hset("bench:h", f"f{i}", "x")
            await p.execute()

    ops: dict[str, tuple[Callable[[aioredis.Redis], Awaitable[object]], int]] = {
        "GET (small reply)": (lambda c: c.get("bench:k"), 4000),
        "HGETALL, 40 fields": (lambda c: c.hgetall("bench:facts"), 2000),
        "XRANGE, 50 entries of 2 kB": (lambda c: c.xrange("bench:s", count=50), 500),
        "MULTI of 6 HSET": (tx, 2000),
    }
    print(
        f"{'command':<28} {'python parser':>14} {'hiredis':>10} {'ratio':>7}   (CPU µs per command, best of {ROUNDS})"
    )
    for name, (op, n) in ops.items():
        best: dict[str, float] = {}
        for _ in range(ROUNDS):  # alternated, so that both see the same machine
            for label, c in clients.items():
                v = await cpu_us(lambda c=c, op=op: op(c), n)
                best[label] = min(best.get(label, v), v)
        print(f"{name:<28} {best['python']:>14.1f} {best['hiredis']:>10.1f} {best['python'] / best['hiredis']:>6.2f}x")
    await setup.delete("bench:k", "bench:facts", "bench:s", "bench:h")
    for c in clients.values():
        await c.aclose()


def main() -> None:
    url = os.environ.get("NEWSFLOW_REDIS_URL")
    if url:
        asyncio.run(measure(url))
        return
    with tempfile.TemporaryDirectory(prefix="nf-bench-redis-") as d:
        started = subprocess.run(
            ["scripts/redis.sh", "start", "--dir", d], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            sys.exit(f"could not start Redis: {started.stderr.strip()}")
        try:
            asyncio.run(measure(started.stdout.strip().splitlines()[-1]))
        finally:
            subprocess.run(["scripts/redis.sh", "stop", "--dir", d], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
