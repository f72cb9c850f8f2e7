"""Messages are handled one at a time; Elasticsearch wants them in bulk. The batcher bridges the two.

Each handler call submits its article and waits for its own outcome. A batch is flushed when it holds
`size` articles, or `linger_s` after its first one arrived: under load batches fill at once; an article
arriving alone waits at most the linger. Every article gets the outcome of its own document, so one
refused document settles alone while the rest of its batch goes on.

At most `max_in_flight` flushes run at once. What arrives while they all run waits for the next free one
and goes out then, in one batch: under load, or while Elasticsearch is slow, batches grow instead of
bulks multiplying. (Without the bound, a cluster slowed by the loss of a node received a new bulk of a
few articles every linger, each refreshing its shards, until bulks took longer than the request timeout.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Batcher(Generic[T, R]):
    def __init__(self, flush: Flush[T, R], size: int, linger_s: float, max_in_flight: int = 2) -> None:
        self._flush = flush
        self.size = size
        self.linger_s = linger_s
        self.max_in_flight = max(1, max_in_flight)
        self._items: list[T] = []
        self._waiting: list[asyncio.Future[R]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._held = False  # items wait for a free flush, not for the linger

    async def submit(self, item: T) -> R:
        """The outcome of `item` once its batch is written; the batch's error if the whole flush failed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._waiting.append(future)
        if len(self._items) >= self.size:
            self._start_flush()
        elif self._timer is None and not self._held:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._start_flush)
        return await future

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items and len(self._running) < self.max_in_flight:
            items, waiting = self._items[: self.size], self._waiting[: self.size]
            del self._items[: self.size], self._waiting[: self.size]
            task = asyncio.create_task(self._run(items, waiting))
            self._running.add(task)
            task.add_done_callback(self._finished)
        self._held = bool(self._items)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._held:
            self._start_flush()

    async def _run(self, items: list[T], waiting: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(items)
            if len(results) != len(items):
                raise RuntimeError(f"flush returned {len(results)} outcomes for {len(items)} items")
        except BaseException as e:  # every waiter learns why, cancellation included
            for f in waiting:
                if not f.done():
                    f.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            if not isinstance(e, Exception):
                raise
            return
        for f, r in zip(waiting, results, strict=True):
            if f.done():
                continue
            if isinstance(r, BaseException):
                f.set_exception(r)
            else:
                f.set_result(r)

    async def aclose(self) -> None:
        """Flush what is waiting and let running flushes finish."""
        self._start_flush()
        while self._running:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._running, return_exceptions=True)
            await asyncio.sleep(0)  # let done callbacks start what was held
