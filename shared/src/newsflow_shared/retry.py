"""One way to retry, used everywhere Newsflow waits for something to come back.

Exponential backoff with jitter (so replicas that failed together do not retry together), capped, and
interruptible: when the service is stopping the wait ends at once with `Stopping`, so a SIGTERM never
waits out a backoff. Built on tenacity; callers say what is worth retrying and for how long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from newsflow_shared.errors import Stopping

T = TypeVar("T")
log = logging.getLogger("newsflow.retry")


async def retrying(
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: Callable[[BaseException], bool],
    initial_s: float = 0.5,
    max_s: float = 10.0,
    attempts: int | None = None,
    within_s: float | None = None,
    stopping: asyncio.Event | None = None,
    logger: logging.Logger = log,
    on_retry: Callable[[BaseException], object] | None = None,
) -> T:
    """`await fn()` until it succeeds, retrying the errors `retry_on` accepts.

    Gives up after `attempts` tries or once `within_s` seconds have passed (re-raising the last error),
    never when both are None. Raises
    `Stopping` instead of sleeping once `stopping` is set. `on_retry` hears of each retried error (a metric).
    """

    async def sleep(seconds: float) -> None:
        if stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        if stopping.is_set():
            raise Stopping(f"shutting down while retrying {what}")

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if on_retry is not None and exc is not None:
            on_retry(exc)
        logger.warning(
            "%s failed (%s: %s); retry %d in %.1f s", what, type(exc).__name__, exc, state.attempt_number, delay
        )

    policy = AsyncRetrying(
        retry=retry_if_exception(retry_on),
        wait=wait_exponential_jitter(initial=initial_s, max=max_s, jitter=initial_s),
        stop=_stop(attempts, within_s),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # Awaited here, not handed to tenacity as is: a plain function returning a coroutine
        # (redis-py's commands) would count as synchronous there, and its coroutine would never run.
        return await fn()

    return await policy(attempt)


def _stop(attempts: int | None, within_s: float | None) -> stop_base:
    stop: stop_base = stop_never
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)
    if within_s is not None:
        stop = stop | stop_after_delay(within_s)
    return stop
