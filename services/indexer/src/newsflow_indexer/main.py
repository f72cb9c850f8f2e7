"""`newsflow-indexer`: news.parsed -> Elasticsearch, alert rules evaluated on every indexed batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from newsflow_indexer.es import is_healthy, is_unavailable, make_client
from newsflow_indexer.handler import Indexer
from newsflow_indexer.index_setup import ensure_index
from newsflow_indexer.rules import load_rules_file
from newsflow_indexer.settings import IndexerSettings
from newsflow_indexer.webhooks import WebhookDispatcher
from newsflow_shared import streams
from newsflow_shared.models import ParsedArticle
from newsflow_shared.runtime import Consumer, Service, ServiceContext, run_main

log = logging.getLogger("newsflow.indexer")


def build(settings: IndexerSettings | None = None) -> Service:
    settings = settings or IndexerSettings()
    svc = Service("indexer", settings)
    es = make_client(settings)
    dispatcher = WebhookDispatcher(settings, es)
    indexer = Indexer(es, settings, dispatcher)

    async def startup(ctx: ServiceContext) -> None:
        # The handler watches the service's own shutdown flag while it waits for Elasticsearch.
        indexer.stopping = ctx.stopping
        indexer.alerts.redis = ctx.redis
        await _wait_for_elasticsearch(indexer, ctx)
        if ctx.stopping.is_set():
            return
        await _retrying("index setup", lambda: ensure_index(es, settings), ctx)
        if settings.rules_file is not None:
            rules = load_rules_file(settings.rules_file)
            changed = await indexer.rules.seed(rules, source=str(settings.rules_file))
            log.info("rules: %d in %s, %d added or changed", len(rules), settings.rules_file, changed)

    async def webhooks(ctx: ServiceContext) -> None:
        await dispatcher.run(ctx.stopping)

    async def shutdown(ctx: ServiceContext) -> None:
        await es.close()

    async def es_health() -> bool:
        return await is_healthy(es)

    svc.on_startup(startup)
    svc.task(webhooks)
    svc.on_shutdown(shutdown)
    svc.health_check("elasticsearch", es_health)
    svc.consumer(
        Consumer(
            stream=streams.PARSED,
            group=streams.INDEXER_GROUP,
            model=ParsedArticle,
            handle_batch=indexer.handle_batch,
            batch_size=settings.batch_size,
            batch_linger_s=settings.batch_linger_s,
            # news.alerts is a notification stream that nobody is obliged to read: it must never
            # hold back indexing, so it is not declared for backpressure.
            output_streams=(),
        )
    )
    return svc


async def _wait_for_elasticsearch(indexer: Indexer, ctx: ServiceContext) -> None:
    delay = 0.5
    while not ctx.stopping.is_set():
        if await is_healthy(indexer.es):
            return
        log.error(
            "Elasticsearch at %s is not reachable or not ready; retrying in %.0f s",
            indexer.settings.elasticsearch_url,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), delay)
        delay = min(delay * 2, 10.0)


async def _retrying(what: str, fn: Callable[[], Awaitable[object]], ctx: ServiceContext) -> None:
    """Start-up steps ride out an Elasticsearch that is still starting instead of crashing the service."""
    delay = 1.0
    while True:
        try:
            await fn()
            return
        except Exception as e:
            if not is_unavailable(e) or ctx.stopping.is_set():
                raise
            log.warning("%s: Elasticsearch not ready (%s); retrying in %.0f s", what, e, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), delay)
        delay = min(delay * 2, 10.0)


def main() -> None:
    # The transport logs every failed attempt with a traceback; the handler's one line per retry says
    # the same thing once.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    run_main("indexer", IndexerSettings, build)


if __name__ == "__main__":
    main()
