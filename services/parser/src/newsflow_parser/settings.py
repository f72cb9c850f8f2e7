"""The parser's own settings (env prefix NEWSFLOW_, e.g. NEWSFLOW_PARSER_WORKERS)."""

from __future__ import annotations

import os

from pydantic import Field

from newsflow_extract.extract import MIN_ARTICLE_WORDS
from newsflow_shared.settings import CommonSettings


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ParserSettings(CommonSettings):
    # Extraction is CPU-bound: one worker process per core, and as many pages in flight.
    parser_workers: int = Field(default_factory=_cpus, ge=1, description="extraction worker processes")
    parser_timeout_s: float = Field(20.0, gt=0, description="a page taking longer is dead-lettered (timeout)")
    parser_max_bytes: int = Field(10_000_000, ge=1024, description="larger pages are dead-lettered (too-large)")
    parser_min_words: int = Field(MIN_ARTICLE_WORDS, ge=0, description="fewer words: not-an-article")
    # A worker is replaced after this many pages: bounds what lxml's and trafilatura's caches can grow to.
    parser_max_tasks_per_worker: int = Field(500, ge=0, description="0 = never recycle workers")
