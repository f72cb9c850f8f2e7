"""Waiting for a condition, for every test folder (tests/ is on the path through its conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_until(
    cond: Callable[[], Any],
    within: float = 20.0,
    what: str = "the condition",
    every: float = 0.05,
    describe: Callable[[], Awaitable[object]] | None = None,
) -> float:
    """Check `cond` (a plain or an async callable) every `every` seconds until it gives something true; return
    the seconds that took. An exception counts as "not yet": servers are restarted on purpose and raise for a
    while. After `within` seconds it fails with `what`, what the probe last raised and, given `describe`, the
    state it was waiting on."""
    started = time.monotonic()
    last_error: BaseException | None = None
    while True:
        try:
            result = cond()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return time.monotonic() - started
            last_error = None
        except Exception as e:
            last_error = e
        if time.monotonic() - started > within:
            detail = f"; the probe last raised {type(last_error).__name__}: {last_error}" if last_error else ""
            if describe is not None:
                with contextlib.suppress(Exception):
                    detail += f"; state: {await describe()}"
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(every)
