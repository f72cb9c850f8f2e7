"""What every command shares: settings, clients, and one clear line instead of a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from newsflow_shared.settings import CommonSettings

T = TypeVar("T")


def load_settings() -> CommonSettings:
    try:
        return CommonSettings()
    except ValidationError as e:
        first = e.errors()[0]
        fail(f"bad configuration: {first['msg']} ({'.'.join(map(str, first['loc']))})")
        raise  # unreachable, for type checkers


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"newsflow: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T], settings: CommonSettings | None = None) -> T:
    """Run a command's coroutine, turning unreachable servers into one actionable line."""
    from elastic_transport import ConnectionError as ESConnectionError

    s = settings or load_settings()
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
