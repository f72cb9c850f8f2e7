"""Bulk writes of articles: one document per canonical URL, replaced only by a newer parse."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from elasticsearch import ApiError, AsyncElasticsearch

from newsflow_indexer import metrics
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.documents import doc_version, to_document
from newsflow_shared.models import ParsedArticle

log = logging.getLogger("newsflow.indexer.writer")

# Refusals of one document that no retry can fix: its own content does not fit the mapping.
MAPPING_ERRORS = {
    "document_parsing_exception",
    "mapper_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "json_parse_exception",
    "x_content_parse_exception",
}
RETRY_STATUSES = (429, 503)
# A whole bulk request refused for what it contains (an `_id` over 512 bytes, a negative version, a body
# over http.max_content_length): one document is to blame, and the rest of the batch must not share its fate.
REQUEST_REFUSALS = (400, 413)


@dataclass
class Outcome:
    status: Literal["indexed", "exists", "mapping", "rejected", "failed"]
    error: str | None = None
    http_status: int | None = None

    @property
    def searchable(self) -> bool:
        return self.status in ("indexed", "exists")

    @property
    def metric(self) -> str:
        return self.status if self.searchable else "failed"


class TransientBulkError(Exception):
    """Items refused with 429/503 (Elasticsearch overloaded): the batch is retried as a whole."""


def _error_text(error: Any) -> tuple[str, str]:
    if isinstance(error, dict):
        etype = str(error.get("type", "error"))
        reason = str(error.get("reason", ""))
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return etype, reason
    return "error", str(error)


class RefreshPolicy:
    """The `refresh` of each bulk: "true" or "wait_for" as configured, or, "adaptive", chosen per bulk.

    Adaptive: a forced refresh at most once per `min_gap_s` and only for a batch under `wait_from`
    articles; every other bulk waits for the next refresh, forced by a later bulk or scheduled by the
    index (refresh_interval). Elasticsearch then makes a few segments a second however many bulks
    come, instead of one per bulk, and an article that arrives alone is still searchable at once.
    """

    def __init__(self, mode: str, min_gap_s: float = 0.5, wait_from: int = 50) -> None:
        self.mode = mode
        self.min_gap_s = min_gap_s
        self.wait_from = wait_from
        self._last_forced = -math.inf

    def choose(self, n: int) -> Literal["true", "wait_for"]:
        if self.mode == "true":
            return "true"
        if self.mode == "wait_for":
            return "wait_for"
        now = time.monotonic()
        if n >= self.wait_from or now - self._last_forced < self.min_gap_s:
            return "wait_for"
        self._last_forced = now
        return "true"


class BulkWriter:
    def __init__(self, es: AsyncElasticsearch, settings: IndexerSettings) -> None:
        self.es = es
        self.settings = settings
        self.alias = settings.index_alias
        self.refresh = RefreshPolicy(
            settings.bulk_refresh, settings.bulk_refresh_min_gap_s, settings.bulk_refresh_wait_from
        )

    async def locate(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        """Where each id lives now: backing index and version, over every index behind the alias.

        After a rollover an update must go to the index that holds the document, not to the new write
        index, or the alias would hold two documents with one id.
        """
        if not ids:
            return {}
        resp = await self.es.search(
            index=self.alias,
            query={"ids": {"values": ids}},
            size=len(ids) * 2,
            source=False,
            version=True,
            track_total_hits=False,
            # A missing alias is reported by the write itself (require_alias), per document.
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        found: dict[str, tuple[str, int]] = {}
        for hit in resp["hits"]["hits"]:
            prev = found.get(hit["_id"])
            # Two copies can only exist if something wrote around this writer; prefer the newest.
            if prev is None or hit.get("_version", 0) > prev[1]:
                found[hit["_id"]] = (hit["_index"], hit.get("_version", 0))
        return found

    def action(self, article: ParsedArticle, index: str | None, now: datetime) -> list[dict[str, Any]]:
        header: dict[str, Any] = {
            "_id": article.article_id,
            "version": doc_version(article),
            "version_type": "external",
        }
        if index is None:
            header["_index"] = self.alias
            header["require_alias"] = True
        else:
            header["_index"] = index
        return [{"index": header}, to_document(article, indexed_at=now)]

    async def write(self, articles: list[ParsedArticle]) -> dict[str, Outcome]:
        """Write the newest version of each article; one Outcome per article_id.

        Outcomes: indexed; exists (409: this or a newer version is there); mapping (400: the document
        can never fit); rejected (the request itself was refused and this document was isolated as the
        cause); failed (anything else: retried by redelivery). 429/503 answers raise
        `TransientBulkError`: Elasticsearch is overloaded, and the caller retries the batch.
        """
        newest: dict[str, ParsedArticle] = {}
        for a in articles:
            cur = newest.get(a.article_id)
            if cur is None or doc_version(a) > doc_version(cur):
                newest[a.article_id] = a
        located = await self.locate(list(newest))
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            return await self._bulk(list(newest.values()), located, now)
        finally:
            metrics.BULK_SECONDS.observe(time.perf_counter() - started)

    async def _bulk(
        self, articles: list[ParsedArticle], located: dict[str, tuple[str, int]], now: datetime
    ) -> dict[str, Outcome]:
        operations: list[dict[str, Any]] = []
        for a in articles:
            operations.extend(self.action(a, located.get(a.article_id, (None, 0))[0], now))
        try:
            refresh = self.refresh.choose(len(articles))
            metrics.BULK_REFRESH.labels(refresh).inc()
            resp = await self.es.bulk(operations=operations, refresh=refresh)
        except ApiError as e:
            if e.meta.status not in REQUEST_REFUSALS:
                raise
            return await self._isolate(articles, located, now, e)
        outcomes: dict[str, Outcome] = {}
        overloaded = 0
        for item in resp["items"]:
            info = item.get("index", item)
            outcome = _outcome(int(info.get("status", 0)), info.get("error"))
            if outcome is None:
                overloaded += 1
                continue
            outcomes[info.get("_id")] = outcome
            metrics.DOCUMENTS.labels(outcome.metric).inc()
        if overloaded:
            metrics.BULK_FAILURES.labels("429").inc(overloaded)
            raise TransientBulkError(f"{overloaded} documents refused with 429/503")
        return outcomes

    async def _isolate(
        self, articles: list[ParsedArticle], located: dict[str, tuple[str, int]], now: datetime, error: ApiError
    ) -> dict[str, Outcome]:
        """The whole request was refused because of something in it: halve it until the culprit stands alone."""
        if len(articles) == 1:
            (a,) = articles
            metrics.DOCUMENTS.labels("failed").inc()
            etype, reason = _error_text(
                getattr(error, "body", {}).get("error") if isinstance(error.body, dict) else error
            )
            log.error(
                "bulk request refused because of this document: %s: %s",
                etype,
                reason,
                extra={"article_id": a.article_id, "url": a.url},
            )
            return {a.article_id: Outcome("rejected", f"{error.meta.status} {etype}: {reason}", error.meta.status)}
        mid = len(articles) // 2
        log.warning(
            "bulk request of %d documents refused (%s); splitting it to find the culprit",
            len(articles),
            error.meta.status,
        )
        first = await self._bulk(articles[:mid], located, now)
        return first | await self._bulk(articles[mid:], located, now)


def _outcome(status: int, error: Any) -> Outcome | None:
    """A bulk item's final answer; None for 429/503 (retry the batch later)."""
    if 200 <= status < 300:
        return Outcome("indexed", http_status=status)
    metrics.BULK_FAILURES.labels(str(status)).inc()
    if status == 409:
        return Outcome("exists", http_status=status)
    if status in RETRY_STATUSES:
        return None
    etype, reason = _error_text(error)
    if status == 400 and etype in MAPPING_ERRORS:
        return Outcome("mapping", f"{etype}: {reason}", status)
    return Outcome("failed", f"{status} {etype}: {reason}", status)
