"""Per-host politeness: at most N requests in flight to one host, and a minimum gap between starts.

The per-host slot is taken before the global one, so a host that makes us wait does not hold a
global slot idle while it does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Host:
    __slots__ = ("lock", "next_start", "sem", "users")

    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.lock = asyncio.Lock()
        self.next_start = 0.0
        self.users = 0


class HostLimiter:
    def __init__(self, per_host_concurrency: int, per_host_delay_s: float, global_concurrency: int) -> None:
        self.per_host_concurrency = per_host_concurrency
        self.delay = per_host_delay_s
        self.global_sem = asyncio.Semaphore(global_concurrency)
        self._hosts: dict[str, _Host] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        h = self._hosts.get(host)
        if h is None:
            if len(self._hosts) >= 1024:
                self._sweep()
            h = self._hosts[host] = _Host(self.per_host_concurrency)
        h.users += 1
        try:
            async with h.sem:
                if self.delay > 0:
                    async with h.lock:
                        wait = h.next_start - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        h.next_start = time.monotonic() + self.delay
                async with self.global_sem:
                    yield
        finally:
            h.users -= 1
            # Forget hosts nobody waits for once their gap has passed: the map stays as small as
            # the set of hosts being fetched right now.
            if h.users == 0 and h.next_start <= time.monotonic():
                self._hosts.pop(host, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for name in [n for n, h in self._hosts.items() if h.users == 0 and h.next_start <= now]:
            del self._hosts[name]

    def __len__(self) -> int:
        return len(self._hosts)
