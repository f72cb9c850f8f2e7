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


def plain(i: int) -> int:
    import trafilatura

    page = _PAGES[i % len(_PAGES)]
    text = trafilatura.extract(variant(page, i).decode("utf-8"), url=url_for(page, i))
    return len(text or "")


def ours(i: int) -> int:
    from newsflow_parser.errors import ExtractionError
    from newsflow_parser.extract import MIN_ARTICLE_WORDS, extract_payload
    from newsflow_shared.ids import article_id
    from newsflow_shared.models import FeedEntry

    page = _PAGES[i % len(_PAGES)]
    url = url_for(page, i)
    entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url=f"{LOOPBACK}/feeds/0.xml")
    try:
        return len(extract_payload(variant(page, i).decode("utf-8"), url, entry.model_dump(mode="json"), url,
                                   MIN_ARTICLE_WORDS))
    except ExtractionError:
        return -1


@dataclass
class PoolResult:
    name: str
    pages: int
    seconds: float
    workers: int
    failed: int

    @property
    def rate(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0


def run_pool(name: str, fn: Callable[[int], int], pages: list[BasePage], numbers: Sequence[int],
             workers: int) -> tuple[PoolResult, list[int]]:
    """fn over `numbers` on `workers` processes; workers are started and warmed up before the clock starts."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(pages,)) as pool:
        list(pool.map(fn, range(workers)))  # imports and first-call caches, outside the timing
        t0 = time.perf_counter()
        out = list(pool.map(fn, numbers, chunksize=4))
        took = time.perf_counter() - t0
    return PoolResult(name, len(numbers), took, workers, sum(1 for v in out if v <= 0)), out


def single_core(fn: Callable[[int], int], pages: list[BasePage], numbers: Sequence[int]) -> PoolResult:
    _init(pages)
    fn(0)
    t0 = time.perf_counter()
    out = [fn(i) for i in numbers]
    return PoolResult(fn.__name__, len(numbers), time.perf_counter() - t0, 1, sum(1 for v in out if v <= 0))
