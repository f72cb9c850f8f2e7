"""The parser's stream handler: RawPage in, ParsedArticle out, or a PermanentError with its reason."""

from __future__ import annotations

import logging
import time
import zlib
from binascii import Error as Base64Error

from newsflow_extract.errors import ExtractionError
from newsflow_extract.extract import extract_payload
from newsflow_extract.version import PARSER_VERSION
from newsflow_parser import metrics
from newsflow_parser.pool import ExtractionPool, WorkerCrashed
from newsflow_parser.settings import ParserSettings
from newsflow_shared.errors import PermanentError
from newsflow_shared.models import BodyTooLarge, ParsedArticle, RawPage

log = logging.getLogger("newsflow.parser")

_BINARY_TYPES = (
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/pdf",
    "application/zip",
    "application/octet-stream",
    "application/gzip",
    "application/x-",
)


class PageHandler:
    def __init__(self, pool: ExtractionPool, settings: ParserSettings) -> None:
        self.pool = pool
        self.settings = settings

    def _fail(self, raw: RawPage, reason: str, message: str) -> PermanentError:
        metrics.FAILED.labels(reason).inc()
        log.warning(
            "page not parsed: %s: %s",
            reason,
            message,
            extra={"article_id": raw.entry.article_id, "url": raw.url, "reason": reason},
        )
        return PermanentError(reason, message)

    async def handle(self, raw: RawPage) -> ParsedArticle:
        s = self.settings
        if raw.body_bytes > s.parser_max_bytes:
            raise self._fail(raw, "too-large", f"{raw.body_bytes} bytes of HTML (limit {s.parser_max_bytes})")
        ctype = (raw.content_type or "").split(";", 1)[0].strip().lower()
        if ctype.startswith(_BINARY_TYPES):
            raise self._fail(raw, "binary", f"content type {ctype}")
        try:
            # body_bytes is the producer's claim; the body is the fact, read no further than the cap
            html = raw.html(max_bytes=s.parser_max_bytes)
        except BodyTooLarge as exc:
            raise self._fail(raw, "too-large", str(exc)) from exc
        except (zlib.error, Base64Error, UnicodeDecodeError, ValueError) as exc:
            raise self._fail(raw, "binary", f"body cannot be decoded: {exc}") from exc

        started = time.perf_counter()
        try:
            payload = await self.pool.run(
                extract_payload, html, raw.url, raw.entry.model_dump(mode="json"), raw.final_url, s.parser_min_words
            )
        except ExtractionError as exc:
            raise self._fail(raw, exc.reason, exc.message) from exc
        except TimeoutError as exc:
            raise self._fail(raw, "timeout", f"extraction took longer than {s.parser_timeout_s:g} s") from exc
        except WorkerCrashed:
            metrics.FAILED.labels("worker-crashed").inc()
            log.error(
                "worker crashed on a page; it will be retried",
                extra={"article_id": raw.entry.article_id, "url": raw.url},
            )
            raise
        finally:
            metrics.PARSE_SECONDS.observe(time.perf_counter() - started)

        article = ParsedArticle.model_validate_json(payload)
        article.fetched_at = raw.fetched_at
        # What the page carried through the pipeline: where it is archived, where it came from (live,
        # reparse, backfill) and whether its alerts are wanted; plus which extraction made it.
        article.parser_version = PARSER_VERSION
        article.archive = raw.archive
        article.origin = raw.origin
        article.alerts = raw.alerts
        metrics.ARTICLES.inc()
        metrics.PAGES.labels(article.extraction_method).inc()
        metrics.CAPTIONS.inc(len(article.captions))
        metrics.WORDS.observe(article.word_count)
        log.info(
            "parsed (%s): %d words, %d captions, language %s",
            article.extraction_method,
            article.word_count,
            len(article.captions),
            article.language,
            extra={"article_id": article.article_id, "url": article.url},
        )
        return article
