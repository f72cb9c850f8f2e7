"""The one retry policy: what it retries, when it gives up, and that shutdown ends a backoff at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from newsflow_shared.errors import Stopping
from newsflow_shared.retry import retrying

pytestmark = pytest.mark.unit


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return "ok"


def _connection(e: BaseException) -> bool:
    return isinstance(e, ConnectionError)


async def test_retries_what_it_is_told_until_it_succeeds() -> None:
    fn = Flaky(3)
    seen: list[BaseException] = []
    assert await retrying(fn, what="t", retry_on=_connection, initial_s=0.001, max_s=0.01, on_retry=seen.append) == "ok"
    assert fn.calls == 4 and len(seen) == 3


async def test_other_errors_are_raised_at_once() -> None:
    fn = Flaky(3, ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        await retrying(fn, what="t", retry_on=_connection, initial_s=0.001)
    assert fn.calls == 1


async def test_gives_up_after_attempts_or_time_with_the_last_error() -> None:
    fn = Flaky(100)
    with pytest.raises(ConnectionError, match="failure 3"):
        await retrying(fn, what="t", retry_on=_connection, initial_s=0.001, max_s=0.01, attempts=3)
    fn = Flaky(10_000)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        await retrying(fn, what="t", retry_on=_connection, initial_s=0.01, max_s=0.02, within_s=0.3)
    assert 0.3 <= time.monotonic() - started < 5 and fn.calls > 2
    fn = Flaky(1)
    with pytest.raises(ConnectionError):  # no time at all: one try
        await retrying(fn, what="t", retry_on=_connection, within_s=0)
    assert fn.calls == 1


async def test_shutdown_ends_the_backoff_at_once() -> None:
    stopping = asyncio.Event()
    fn = Flaky(10_000)
    asyncio.get_running_loop().call_later(0.2, stopping.set)
    started = time.monotonic()
    with pytest.raises(Stopping):
        await retrying(fn, what="t", retry_on=_connection, initial_s=30, max_s=60, stopping=stopping)
    assert time.monotonic() - started < 5
