"""Fixtures the parser test files share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from newsflow_parser.pool import ExtractionPool
from newsflow_parser.service import PageHandler
from newsflow_parser.settings import ParserSettings


@pytest.fixture(scope="module")
async def handler() -> AsyncIterator[PageHandler]:
    """The parser's page handler with one worker and a generous time limit (test_parser_handler.py, which
    tests the limits, has its own)."""
    pool = ExtractionPool(workers=1, timeout_s=10, max_tasks=50)
    try:
        yield PageHandler(pool, ParserSettings(parser_workers=1, parser_timeout_s=10))
    finally:
        pool.close()
