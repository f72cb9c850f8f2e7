"""The indexer service: `news.parsed` -> Elasticsearch in bulk, alert rules evaluated on every indexed
batch, alerts recorded and published on `news.alerts` (the notifier delivers them)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from elasticsearch import AsyncElasticsearch

from newsflow_indexer.batcher import Batcher
from newsflow_indexer.handler import Indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.es import elasticsearch_ready, is_unavailable, make_client, wait_until_healthy
from newsflow_search.index_setup import ensure_index
from newsflow_search.rules import load_rules_file
from newsflow_shared import streams
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.retry import retrying
from newsflow_shared.runtime import Context, Runtime, Service

log = logging.getLogger("newsflow.indexer")

service = Service("indexer", IndexerSettings)
ArticleBatcher = Batcher[ParsedArticle, list[Alert]]


@service.lifespan
async def elasticsearch(runtime: Runtime) -> AsyncIterator[dict[str, object]]:
    s: IndexerSettings = runtime.settings
    # The transport logs every failed attempt with a traceback; the retry's one line says it once.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    es = make_client(s)
    try:
        await _prepare(es, s, runtime)
        indexer = Indexer(
            es,
            s,
            stopping=runtime.stopping,
            redis=runtime.redis,
            publish=lambda alert: runtime.publish(streams.ALERTS, alert),
        )
        batcher: ArticleBatcher = Batcher(indexer.handle_batch, s.batch_size, s.batch_linger_s, s.bulk_max_in_flight)
        yield {"es": es, "batcher": batcher}
        await batcher.aclose()
    finally:
        await es.close()


async def _prepare(es: AsyncElasticsearch, s: IndexerSettings, runtime: Runtime) -> None:
    """Wait for Elasticsearch, then the index and the rules file: an index still starting is ridden out."""
    await wait_until_healthy(es, s, runtime.stopping, log)
    await retrying(
        lambda: ensure_index(es, s), what="index setup", retry_on=is_unavailable, stopping=runtime.stopping, logger=log
    )
    if s.rules_file is not None:
        rules = load_rules_file(s.rules_file)
        changed = await Indexer(es, s).rules.seed(rules, source=str(s.rules_file))
        log.info("rules: %d in %s, %d added or changed", len(rules), s.rules_file, changed)


@service.consumer(
    streams.PARSED, group=streams.INDEXER_GROUP, publishes=streams.ALERTS, concurrency=lambda s: s.batch_size
)
async def index(article: ParsedArticle, batcher: Annotated[ArticleBatcher, Context("batcher")]) -> list[Alert]:
    return await batcher.submit(article)


service.health_check("elasticsearch")(elasticsearch_ready)
