"""Extraction in worker processes, with a time limit per page.

A pathological page (a regex that backtracks for minutes, a tree lxml chews on forever) only costs
one worker: pebble kills the process at the deadline and starts a fresh one, and the consumer's
event loop never runs extraction code itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

T = TypeVar("T")


class WorkerCrashed(Exception):
    """The worker died while on a page (out of memory, a crash in C code): worth one more try."""


def _init_worker() -> None:
    from newsflow_extract.extract import warm_up

    warm_up()


class ExtractionPool:
    def __init__(self, workers: int, timeout_s: float, max_tasks: int = 0) -> None:
        # forkserver: workers start from a clean single-threaded process, not a fork of the service
        # with its event loop, Redis sockets and metrics thread.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["newsflow_extract.extract"])
        self.timeout_s = timeout_s
        self.workers = workers
        self._pool = ProcessPool(max_workers=workers, max_tasks=max_tasks, context=ctx, initializer=_init_worker)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker; TimeoutError past the deadline, WorkerCrashed if the worker died,
        and the function's own exception otherwise."""
        future = self._pool.schedule(fn, args=args, timeout=self.timeout_s)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout as exc:
            raise TimeoutError(f"no result after {self.timeout_s:g} s") from exc
        except ProcessExpired as exc:
            raise WorkerCrashed(f"worker exited with code {exc.exitcode}") from exc
        except asyncio.CancelledError:
            future.cancel()  # pebble stops the worker that was running it
            raise

    def close(self, wait_s: float = 5.0) -> None:
        self._pool.stop()
        self._pool.join(timeout=wait_s)
