"""Bulk writes of articles: one document per canonical URL, replaced only by a newer parse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk

from newsflow_indexer import metrics
from newsflow_indexer.documents import doc_version, to_document
from newsflow_indexer.settings import IndexerSettings
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


@dataclass
class Outcome:
    status: Literal["indexed", "exists", "mapping", "failed"]
    error: str | None = None
    http_status: int | None = None

    @property
    def searchable(self) -> bool:
        return self.status in ("indexed", "exists")


class TransientBulkError(Exception):
    """Items still refused with 429/503 after the helper's retries: the batch is retried as a whole."""


def _expand(action: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    # Our own expansion: the helper's does not pass `require_alias` per item.
    return action["header"], action["body"]


def _error_text(error: Any) -> tuple[str, str]:
    if isinstance(error, dict):
        etype = str(error.get("type", "error"))
        reason = str(error.get("reason", ""))
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return etype, reason
    return "error", str(error)


class BulkWriter:
    def __init__(self, es: AsyncElasticsearch, settings: IndexerSettings) -> None:
        self.es = es
        self.settings = settings
        self.alias = settings.index_alias

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

    def action(self, article: ParsedArticle, index: str | None, now: datetime) -> dict[str, Any]:
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
        return {"header": {"index": header}, "body": to_document(article, indexed_at=now)}

    async def write(
        self, articles: list[ParsedArticle], stopping: Callable[[], bool] = lambda: False
    ) -> dict[str, Outcome]:
        """Write the newest version of each article; one Outcome per article_id.

        429/503 items are retried with backoff until they succeed (or `stopping()`), so that the caller
        sees only final answers: indexed, exists (409: this or a newer version is there), mapping
        (400: the document can never fit), failed (anything else, retried by redelivery).
        """
        newest: dict[str, ParsedArticle] = {}
        for a in articles:
            cur = newest.get(a.article_id)
            if cur is None or doc_version(a) > doc_version(cur):
                newest[a.article_id] = a
        outcomes: dict[str, Outcome] = {}
        pending = dict(newest)
        delay = self.settings.bulk_initial_backoff_s
        while pending:
            located = await self.locate(list(pending))
            now = datetime.now(UTC)
            actions = [self.action(a, located.get(aid, (None, 0))[0], now) for aid, a in pending.items()]
            retry: dict[str, ParsedArticle] = {}
            started = time.perf_counter()
            async for ok, item in async_streaming_bulk(
                self.es,
                actions,
                chunk_size=max(len(actions), 1),
                expand_action_callback=_expand,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=self.settings.bulk_max_retries,
                initial_backoff=self.settings.bulk_initial_backoff_s,
                max_backoff=self.settings.unavailable_max_backoff_s,
                retry_on_status=RETRY_STATUSES,
                refresh=self.settings.bulk_refresh,
            ):
                info = item.get("index", item)
                aid = info.get("_id")
                status = int(info.get("status", 0))
                if aid not in pending:
                    continue
                if ok:
                    outcomes[aid] = Outcome("indexed", http_status=status)
                    metrics.DOCUMENTS.labels("indexed").inc()
                    continue
                metrics.BULK_FAILURES.labels(str(status)).inc()
                etype, reason = _error_text(info.get("error"))
                if status == 409:
                    outcomes[aid] = Outcome("exists", http_status=status)
                    metrics.DOCUMENTS.labels("exists").inc()
                elif status in RETRY_STATUSES:
                    retry[aid] = pending[aid]
                elif status == 400 and etype in MAPPING_ERRORS:
                    outcomes[aid] = Outcome("mapping", f"{etype}: {reason}", status)
                    metrics.DOCUMENTS.labels("failed").inc()
                else:
                    outcomes[aid] = Outcome("failed", f"{status} {etype}: {reason}", status)
                    metrics.DOCUMENTS.labels("failed").inc()
            metrics.BULK_SECONDS.observe(time.perf_counter() - started)
            pending = retry
            if pending:
                if stopping():
                    raise TransientBulkError(f"{len(pending)} documents still refused with 429/503")
                log.warning("bulk: %d documents refused with 429/503; retrying in %.1f s", len(pending), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.unavailable_max_backoff_s)
        return outcomes
