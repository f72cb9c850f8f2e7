"""Fixtures every fetcher test file shares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fetcher_helpers import WebServer


@pytest.fixture
async def site() -> AsyncIterator[WebServer]:
    """A scriptable HTTP server on 127.0.0.1 for one test."""
    server = await WebServer().start()
    try:
        yield server
    finally:
        await server.stop()
