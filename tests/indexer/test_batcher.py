"""The indexer's batcher: per-article handlers in, bulks out, at most `max_in_flight` bulks at once."""

from __future__ import annotations

import asyncio

import pytest

from newsflow_indexer.batcher import Batcher

pytestmark = pytest.mark.unit


class SlowFlush:
    """A bulk that takes as long as the test says: each flush waits for `release`."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return [i * 10 for i in items]


async def _until(cond: object, within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_while_bulks_run_the_next_batch_grows_instead_of_another_bulk_starting() -> None:
    flush = SlowFlush()
    batcher: Batcher[int, int] = Batcher(flush, size=100, linger_s=0.01, max_in_flight=2)
    first = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await _until(lambda: len(flush.batches) == 1)
    second = [asyncio.create_task(batcher.submit(i)) for i in range(3, 5)]
    await _until(lambda: len(flush.batches) == 2)
    # Both flushes busy: these arrive one by one, many lingers apart, and must all wait for one batch.
    held = []
    for i in range(5, 25):
        held.append(asyncio.create_task(batcher.submit(i)))
        await asyncio.sleep(0.005)
    assert len(flush.batches) == 2 and batcher.in_flight == 2
    flush.release.set()
    results = await asyncio.gather(*first, *second, *held)
    assert results == [i * 10 for i in range(25)]  # each article its own outcome
    assert flush.batches == [[0, 1, 2], [3, 4], list(range(5, 25))]
    assert flush.most_at_once == 2


async def test_held_articles_go_out_in_batches_of_at_most_size() -> None:
    flush = SlowFlush()
    batcher: Batcher[int, int] = Batcher(flush, size=4, linger_s=0.01, max_in_flight=1)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(11)]
    await _until(lambda: len(flush.batches) == 1)
    flush.release.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(11)]
    assert flush.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert flush.most_at_once == 1


async def test_an_article_alone_waits_only_the_linger() -> None:
    flush = SlowFlush()
    flush.release.set()
    batcher: Batcher[int, int] = Batcher(flush, size=100, linger_s=0.05)
    started = asyncio.get_running_loop().time()
    assert await batcher.submit(7) == 70
    assert asyncio.get_running_loop().time() - started < 1.0
    assert flush.batches == [[7]]


async def test_a_failed_flush_fails_its_own_articles_and_the_held_ones_still_go_out() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            await gate.wait()
            raise ConnectionError("Elasticsearch went away")
        return items

    batcher: Batcher[int, int] = Batcher(flush, size=100, linger_s=0.01, max_in_flight=1)
    doomed = asyncio.create_task(batcher.submit(1))
    await _until(lambda: len(calls) == 1)
    later = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(ConnectionError):
        await doomed
    assert await later == 2
    assert calls == [[1], [2]]


async def test_aclose_writes_what_is_held() -> None:
    flush = SlowFlush()
    batcher: Batcher[int, int] = Batcher(flush, size=100, linger_s=10.0, max_in_flight=1)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(batcher.aclose())
    await _until(lambda: len(flush.batches) == 1)
    tasks.append(asyncio.create_task(batcher.submit(3)))
    await asyncio.sleep(0.01)
    flush.release.set()
    await closing
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30]
    assert flush.batches == [[0, 1, 2], [3]]
