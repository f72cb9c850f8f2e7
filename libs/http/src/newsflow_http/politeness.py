"""Per-host politeness: at most N requests in flight to one host, and a minimum gap between starts.

The per-host slot is taken before the global one, so a host that makes us wait does not hold a
global slot idle while it does. A caller may bound how long it waits for a host's slot: the article
downloader does, so that a slow host's pages give way to other hosts' instead of queueing behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class HostBusy(Exception):
    """Every slot of a host stayed taken for the whole wait: try its page again later."""

    def __init__(self, host: str, waited_s: float) -> None:
        super().__init__(f"{host} is busy: no free slot within {waited_s:g} s")
        self.host = host


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
    async def slot(self, host: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold one of `host`'s slots; `HostBusy` when none came free within `wait_s` (None: wait)."""
        h = self._hosts.get(host)
        if h is None:
            if len(self._hosts) >= 1024:
                self._sweep()
            h = self._hosts[host] = _Host(self.per_host_concurrency)
        h.users += 1
        try:
            try:
                async with asyncio.timeout(wait_s):
                    await self._acquire(h)
            except TimeoutError:
                raise HostBusy(host, wait_s or 0.0) from None
            try:
                async with self.global_sem:
                    yield
            finally:
                h.sem.release()
        finally:
            h.users -= 1
            # Forget hosts nobody waits for once their gap has passed: the map stays as small as
            # the set of hosts being fetched right now.
            if h.users == 0 and h.next_start <= time.monotonic():
                self._hosts.pop(host, None)

    async def _acquire(self, h: _Host) -> None:
        await h.sem.acquire()
        try:
            if self.delay > 0:
                async with h.lock:
                    wait = h.next_start - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    h.next_start = time.monotonic() + self.delay
        except BaseException:
            h.sem.release()
            raise

    def _sweep(self) -> None:
        now = time.monotonic()
        for name in [n for n, h in self._hosts.items() if h.users == 0 and h.next_start <= now]:
            del self._hosts[name]

    def __len__(self) -> int:
        return len(self._hosts)
