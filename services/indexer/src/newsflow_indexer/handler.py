"""The indexer's batch handler: write the batch, evaluate the rules on it, return the alerts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_indexer import metrics
from newsflow_indexer.alerts import AlertEngine
from newsflow_indexer.settings import IndexerSettings
from newsflow_indexer.writer import BulkWriter, Outcome, TransientBulkError
from newsflow_search.documents import doc_version
from newsflow_search.es import is_unavailable
from newsflow_search.rules import RuleStore
from newsflow_shared.errors import PermanentError
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.retry import retrying

log = logging.getLogger("newsflow.indexer")

Result = list[Alert] | BaseException


class Indexer:
    def __init__(
        self,
        es: AsyncElasticsearch,
        settings: IndexerSettings,
        stopping: asyncio.Event | None = None,
        redis: aioredis.Redis | None = None,
    ) -> None:
        self.es = es
        self.settings = settings
        self.writer = BulkWriter(es, settings)
        self.rules = RuleStore(es, settings.rules_index, settings.index_alias)
        self.alerts = AlertEngine(es, settings, redis)
        self.stopping = stopping or asyncio.Event()

    async def handle_batch(self, msgs: list[ParsedArticle]) -> list[Result]:
        """One result per message: its alerts to publish, or the error that settles it.

        While Elasticsearch is unreachable or overloaded the batch is retried here, with backoff, as a
        whole: this is the one layer that waits out an outage (writes are idempotent, alert records too).
        Consumption pauses meanwhile, since every handler waits for its batch; on shutdown the wait ends
        with `Stopping` and the messages stay pending for redelivery.
        """
        return await retrying(
            lambda: self._once(msgs),
            what=f"indexing {len(msgs)} articles",
            retry_on=lambda e: is_unavailable(e) or isinstance(e, TransientBulkError),
            initial_s=self.settings.bulk_initial_backoff_s,
            max_s=self.settings.unavailable_max_backoff_s,
            stopping=self.stopping,
            logger=log,
            on_retry=lambda _e: metrics.BATCH_RETRIES.inc(),
        )

    async def _once(self, msgs: list[ParsedArticle]) -> list[Result]:
        outcomes = await self.writer.write(msgs)
        indexed_at = datetime.now(UTC)
        searchable = [m for m in msgs if outcomes[m.article_id].searchable]
        self._observe_latency(m for m in msgs if outcomes[m.article_id].status == "indexed")
        fired: dict[str, list[Alert]] = {}
        # A backfill indexes without alerts unless asked to (RawPage.alerts, carried onto the article).
        alerting = [m for m in searchable if m.alerts]
        if alerting:
            rules = await self.rules.cached(self.settings.rules_refresh_s)
            # Only recorded and returned: the runtime publishes them on news.alerts, the notifier delivers.
            fired = await self.alerts.evaluate(rules, _unique(alerting), indexed_at)
        results: list[Result] = []
        given: set[str] = set()
        for m in msgs:
            o: Outcome = outcomes[m.article_id]
            where = {"article_id": m.article_id, "url": m.url}
            if o.status in ("mapping", "rejected"):
                log.error("document refused (%s): %s", o.status, o.error, extra=where)
                results.append(PermanentError(o.status, o.error or o.status))
            elif o.status == "failed":
                results.append(RuntimeError(f"bulk item failed: {o.error}"))
            else:
                # An article twice in one batch: its alerts go out with the first copy only.
                results.append([] if m.article_id in given else fired.get(m.article_id, []))
                given.add(m.article_id)
        return results

    def _observe_latency(self, articles: Iterable[ParsedArticle]) -> None:
        now = datetime.now(UTC)
        for a in articles:
            for label, when in (("published", a.published_at), ("discovered", a.discovered_at)):
                if when is not None:
                    when = when if when.tzinfo else when.replace(tzinfo=UTC)
                    metrics.SEARCHABLE_LATENCY.labels(label).observe(max(0.0, (now - when).total_seconds()))


def _unique(msgs: list[ParsedArticle]) -> list[ParsedArticle]:
    """One message per article: the newest parse, the one the writer kept."""
    seen: dict[str, ParsedArticle] = {}
    for m in msgs:
        cur = seen.get(m.article_id)
        if cur is None or doc_version(m) > doc_version(cur):
            seen[m.article_id] = m
    return list(seen.values())
