"""The indexer's batch handler: write the batch, evaluate the rules on it, return the alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_indexer import metrics
from newsflow_indexer.alerts import AlertEngine
from newsflow_indexer.documents import doc_version
from newsflow_indexer.es import is_unavailable
from newsflow_indexer.rules import RuleStore
from newsflow_indexer.settings import IndexerSettings
from newsflow_indexer.webhooks import WebhookDispatcher
from newsflow_indexer.writer import BulkWriter, Outcome, TransientBulkError
from newsflow_shared import streams
from newsflow_shared.models import Alert, Message, ParsedArticle
from newsflow_shared.runtime import PermanentError

log = logging.getLogger("newsflow.indexer")

Result = list[tuple[str, Message]] | BaseException


class Indexer:
    def __init__(
        self,
        es: AsyncElasticsearch,
        settings: IndexerSettings,
        dispatcher: WebhookDispatcher | None = None,
        stopping: asyncio.Event | None = None,
        redis: aioredis.Redis | None = None,
    ) -> None:
        self.es = es
        self.settings = settings
        self.writer = BulkWriter(es, settings)
        self.rules = RuleStore(es, settings.rules_index, settings.index_alias)
        self.alerts = AlertEngine(es, settings, redis)
        self.dispatcher = dispatcher
        self.stopping = stopping or asyncio.Event()

    async def handle_batch(self, msgs: list[ParsedArticle]) -> list[Result]:
        """One result per message: alerts to publish, or PermanentError("mapping") for a refused document.

        While Elasticsearch is unreachable the batch is retried here with backoff, so consumption
        pauses by itself and nothing is lost; on shutdown the batch is left pending for redelivery.
        """
        delay = 0.5
        while True:
            try:
                return await self._once(msgs)
            except Exception as e:
                if not (is_unavailable(e) or isinstance(e, TransientBulkError)):
                    raise
                metrics.BATCH_RETRIES.inc()
                if self.stopping.is_set():
                    raise
                log.warning(
                    "Elasticsearch unavailable (%s: %s); retrying %d articles in %.1f s",
                    type(e).__name__,
                    e,
                    len(msgs),
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.stopping.is_set():
                    raise
                delay = min(delay * 2, self.settings.unavailable_max_backoff_s)

    async def _once(self, msgs: list[ParsedArticle]) -> list[Result]:
        outcomes = await self.writer.write(msgs, stopping=self.stopping.is_set)
        searchable = [m for m in msgs if outcomes[m.article_id].searchable]
        self._observe_latency(m for m in msgs if outcomes[m.article_id].status == "indexed")
        fired: dict[str, list[Alert]] = {}
        if searchable:
            rules = await self.rules.cached(self.settings.rules_refresh_s)
            fired = await self.alerts.evaluate(rules, _unique(searchable))
            if self.dispatcher is not None and fired:
                by_id = {r.id: r for r in rules}
                for alerts in fired.values():
                    for a in alerts:
                        self.dispatcher.submit(by_id[a.rule_id], a)
        results: list[Result] = []
        given: set[str] = set()
        for m in msgs:
            o: Outcome = outcomes[m.article_id]
            where = {"article_id": m.article_id, "url": m.url}
            if o.status == "mapping":
                log.error("document refused by the mapping: %s", o.error, extra=where)
                results.append(PermanentError("mapping", o.error or "mapping error"))
            elif o.status == "failed":
                results.append(RuntimeError(f"bulk item failed: {o.error}"))
            else:
                # An article twice in one batch: its alerts go out with the first copy only.
                out = [] if m.article_id in given else [(streams.ALERTS, a) for a in fired.get(m.article_id, [])]
                given.add(m.article_id)
                results.append(out)
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
