"""The Elasticsearch client, made in one place from the settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, AsyncElasticsearch

from newsflow_search.settings import SearchSettings
from newsflow_shared.redact import redact
from newsflow_shared.retry import retrying
from newsflow_shared.runtime import Context


def make_client(settings: SearchSettings, request_timeout: float | None = None) -> AsyncElasticsearch:
    """An AsyncElasticsearch for `settings.elasticsearch_url` with basic auth or an API key and a CA."""
    kwargs: dict = {
        "request_timeout": request_timeout or settings.request_timeout_s,
        # The transport retries only to move a request to another node of a cluster; waiting out an
        # outage is the callers' one retry layer (newsflow_shared.retry), which watches for shutdown.
        "max_retries": max(1, len(settings.elasticsearch_nodes) - 1),
        "retry_on_timeout": False,
    }
    if settings.elasticsearch_api_key is not None:
        kwargs["api_key"] = settings.elasticsearch_api_key.get_secret_value()
    elif settings.elasticsearch_username:
        password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else ""
        kwargs["basic_auth"] = (settings.elasticsearch_username, password)
    if settings.elasticsearch_ca_certs is not None:
        kwargs["ca_certs"] = str(settings.elasticsearch_ca_certs)
    return AsyncElasticsearch(settings.elasticsearch_nodes, **kwargs)


def is_unavailable(exc: BaseException) -> bool:
    """True when Elasticsearch could not be reached or is not ready: worth retrying the whole batch."""
    if isinstance(exc, TransportConnectionError | ConnectionTimeout):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in (408, 429, 502, 503, 504)
    return isinstance(exc, TransportError)


async def is_healthy(es: AsyncElasticsearch) -> bool:
    """Readiness: the cluster answers `_cluster/health` with yellow or green."""
    try:
        health = await es.options(request_timeout=5).cluster.health()
    except Exception:
        return False
    return health.get("status") in ("yellow", "green")


async def elasticsearch_ready(es: Annotated[AsyncElasticsearch, Context("es")]) -> bool:
    """The health check of a service whose lifespan provides its client as "es"."""
    return await is_healthy(es)


async def wait_until_healthy(
    es: AsyncElasticsearch, settings: SearchSettings, stopping: asyncio.Event, logger: logging.Logger
) -> None:
    """Block a service's start-up until Elasticsearch is ready, logging the wait, or until shutdown."""

    async def ready() -> None:
        if not await is_healthy(es):
            raise ConnectionError(
                f"Elasticsearch at {redact(settings.elasticsearch_url)} is not reachable or not ready"
            )

    await retrying(
        ready,
        what="waiting for Elasticsearch",
        retry_on=lambda e: isinstance(e, ConnectionError),
        stopping=stopping,
        logger=logger,
    )
