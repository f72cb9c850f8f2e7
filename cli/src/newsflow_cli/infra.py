"""`newsflow init`: the one-shot step that prepares Redis and Elasticsearch before any worker starts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import typer

from newsflow_cli.common import CliSettings, load_settings, run
from newsflow_shared import streams
from newsflow_shared.retry import retrying
from newsflow_shared.runtime import ensure_groups, make_redis


async def _wait(what: str, probe: Callable[[], Awaitable[Any]], deadline: float) -> None:
    await retrying(
        probe,
        what=f"waiting for {what}",
        retry_on=lambda e: isinstance(e, Exception),
        max_s=5,
        within_s=max(deadline - time.monotonic(), 0.0),
    )


async def initialise(settings: CliSettings, wait_s: float = 0.0) -> dict[str, Any]:
    """Create every consumer group at position 0 and the index templates, alias and rules index.

    Groups come first and at 0: a group created later at `$` would never see entries that producers
    wrote before it existed. Idempotent: running it again changes nothing.
    """
    from newsflow_search.es import make_client
    from newsflow_search.index_setup import ensure_index

    deadline = time.monotonic() + wait_s
    redis = make_redis(settings)
    try:
        await _wait("Redis", redis.ping, deadline)
        created = await ensure_groups(redis, streams.GROUPS)
    finally:
        await redis.aclose()
    es = make_client(settings)
    try:
        await _wait("Elasticsearch", lambda: es.cluster.health(wait_for_status="yellow", timeout="5s"), deadline)
        index = await ensure_index(es, settings)
    finally:
        await es.close()
    return {"groups_created": created, "index": index}


def init(
    wait: float = typer.Option(0.0, "--wait", help="seconds to wait for Redis and Elasticsearch to come up"),
) -> None:
    """Create consumer groups (at position 0) and Elasticsearch templates, alias and rules index."""
    settings = load_settings()
    result = run(initialise(settings, wait), settings)
    groups = result["groups_created"]
    typer.echo(f"init: consumer groups ready ({len(groups)} created: {', '.join(groups) or 'all existed'})")
    typer.echo(f"init: Elasticsearch ready ({result['index']})")
