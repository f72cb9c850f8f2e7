"""What every command shares: settings, clients, and one clear line instead of a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from newsflow_archive.settings import ArchiveSettings
from newsflow_http.settings import HttpSettings
from newsflow_search.settings import SearchSettings
from newsflow_shared.redact import redact
from newsflow_shared.settings import CommonSettings

T = TypeVar("T")


class CliSettings(CommonSettings, SearchSettings, HttpSettings, ArchiveSettings):
    """The CLI talks to Redis and Elasticsearch, fetches sites when it discovers feeds, and reads the
    archive when it reparses."""


def load_settings() -> CliSettings:
    try:
        return CliSettings()
    except ValidationError as e:
        first = e.errors()[0]
        var = "NEWSFLOW_" + "_".join(str(p) for p in first["loc"]).upper()
        fail(f"bad configuration: {var}: {redact(first['msg'])}")
        raise  # unreachable, for type checkers


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"newsflow: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T], settings: CliSettings | None = None) -> T:
    """Run a command's coroutine, turning unreachable servers into one actionable line."""
    from elastic_transport import ConnectionError as ESConnectionError

    try:
        s = settings or load_settings()
    except typer.Exit:
        coro.close()  # never started: closing it keeps Python from warning that it was never awaited
        raise
    try:
        return asyncio.run(coro)
    except (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError) as e:
        fail(f"cannot reach Redis at {s.redis_url} ({e}). Is it running? Set NEWSFLOW_REDIS_URL.")
    except ESConnectionError as e:
        fail(
            f"cannot reach Elasticsearch at {s.elasticsearch_url} ({e.message if hasattr(e, 'message') else e}). "
            "Is it running? Set NEWSFLOW_ELASTICSEARCH_URL."
        )
    raise AssertionError("unreachable")
