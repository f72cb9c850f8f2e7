"""The physical limit: extraction alone over the benchmark's pages, on all cores (a process pool).

Two extractions are timed on the same article copies the pipeline gets: plain `trafilatura.extract` with
default settings (the issue's limit), and the parser's own `extract_payload` (trafilatura on a cleaned
tree plus metadata, captions and fingerprints, serialised as the pipeline sends it).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from benchmarks.pipeline.pages import BasePage, variant

LOOPBACK = "http://127.0.0.1:8000"
_PAGES: list[BasePage] = []


def url_for(page: BasePage, i: int, base: str = LOOPBACK) -> str:
    return f"{base}/news/{i}/{page.slug}.html"


def _init(pages: list[BasePage]) -> None:
    global _PAGES
    _PAGES = pages
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # trafilatura logs every page it finds little on


def plain(i: int) -> tuple[int, float]:
    """(characters of text, CPU seconds) for article i with plain trafilatura."""
    import trafilatura

    page = _PAGES[i % len(_PAGES)]
    cpu = time.process_time()
    text = trafilatura.extract(variant(page, i).decode("utf-8"), url=url_for(page, i))
    return len(text or ""), time.process_time() - cpu


def _payload(i: int) -> str | None:
    from newsflow_extract.errors import ExtractionError
    from newsflow_extract.extract import MIN_ARTICLE_WORDS, extract_payload
    from newsflow_shared.ids import article_id
    from newsflow_shared.models import FeedEntry

    page = _PAGES[i % len(_PAGES)]
    url = url_for(page, i)
    entry = FeedEntry(
        url=url,
        link=url,
        article_id=article_id(url),
        feed_url=f"{LOOPBACK}/feeds/0.xml",
        title=f"{page.slug.replace('-', ' ')} ({i})",
    )
    try:
        return extract_payload(
            variant(page, i).decode("utf-8"), url, entry.model_dump(mode="json"), url, MIN_ARTICLE_WORDS
        )
    except ExtractionError:
        return None


def ours(i: int) -> tuple[int, float]:
    """(characters of the payload, CPU seconds) for article i with the parser's own extraction."""
    cpu = time.process_time()
    payload = _payload(i)
    return (len(payload) if payload else 0), time.process_time() - cpu


def words(i: int) -> tuple[int, float]:
    """(words the parser finds, 0): the acceptance check."""
    import json

    payload = _payload(i)
    return (int(json.loads(payload)["word_count"]) if payload else 0), 0.0


@dataclass
class PoolResult:
    name: str
    pages: int
    seconds: float
    workers: int
    failed: int
    cpu_seconds: float = 0.0  # extraction CPU time summed over the pages

    @property
    def rate(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.pages if self.pages else 0.0


def run_pool(
    name: str, fn: Callable[[int], tuple[int, float]], pages: list[BasePage], numbers: Sequence[int], workers: int
) -> tuple[PoolResult, list[int]]:
    """fn over `numbers` on `workers` processes; workers are started and warmed up before the clock starts."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(pages,)) as pool:
        list(pool.map(fn, range(workers * 2)))  # imports and first-call caches, outside the timing
        t0 = time.perf_counter()
        out = list(pool.map(fn, numbers, chunksize=4))
        took = time.perf_counter() - t0
    sizes = [n for n, _ in out]
    return PoolResult(name, len(numbers), took, workers, sum(1 for v in sizes if v <= 0), sum(c for _, c in out)), sizes
