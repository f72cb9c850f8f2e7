"""Article download: the handler of the fetcher's consumer on `news.entries`.

An entry becomes a `RawPage` on `news.raw`, or a `PermanentError` with a short reason (dead-lettered
at once by the runtime), or a plain exception for the runtime to retry later (`TransientFetchError`).

Permanent: not-html, too-large, empty, http-4xx, robots, ssrf, redirect-loop, too-many-redirects,
bad-url. Transient: timeout, connect-error, protocol-error, http-5xx, http-429, robots-unavailable.
A transient failure is first retried here a couple of times with backoff; the runtime's redelivery
is the slower second line, and `max_deliveries` ends it in the dead-letter stream. The whole download
has one deadline (`download_deadline_s`), and an article whose host keeps every slot busy for
`host_slot_wait_s` is `Deferred` to the end of the stream, so that a slow site never holds back others.
"""

from __future__ import annotations

import asyncio
import logging
import time

from newsflow_fetcher import metrics
from newsflow_fetcher.archiving import PageArchive
from newsflow_fetcher.charset import decode_html
from newsflow_fetcher.robots import RobotsCache
from newsflow_fetcher.schedule import parse_retry_after
from newsflow_fetcher.settings import FetcherSettings
from newsflow_http.httpclient import FetchError, HttpClient, Response
from newsflow_http.politeness import HostBusy
from newsflow_shared.errors import Deferred, PermanentError
from newsflow_shared.models import FeedEntry, RawPage

log = logging.getLogger("newsflow.fetcher.download")

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
SNIFF_TYPES = frozenset({"", "text/plain", "application/octet-stream", "application/xml", "text/xml"})
ARTICLE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 10.0  # longer waits are left to the runtime's redelivery


class TransientFetchError(Exception):
    """Retry later: the runtime redelivers, then dead-letters after max_deliveries."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason
        self.retry_after = retry_after


def looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) and b"<html" in body[:4096].lower()


class ArticleDownloader:
    def __init__(
        self,
        http: HttpClient,
        robots: RobotsCache | None,
        settings: FetcherSettings,
        archive: PageArchive | None = None,
    ) -> None:
        self.http = http
        self.robots = robots
        self.settings = settings
        self.archive = archive

    async def handle(self, entry: FeedEntry) -> RawPage:
        where = {"article_id": entry.article_id, "url": entry.url}
        try:
            async with asyncio.timeout(self.settings.download_deadline_s):
                page = await self.download(entry)
        except HostBusy as e:
            metrics.PAGES_DEFERRED.inc()
            raise Deferred(str(e)) from e
        except TimeoutError as e:
            metrics.PAGES_FAILED.labels("deadline").inc()
            log.warning(
                "download took longer than %g s; will be retried", self.settings.download_deadline_s, extra=where
            )
            raise TransientFetchError("deadline", f"no page within {self.settings.download_deadline_s:g} s") from e
        except PermanentError as e:
            metrics.PAGES_FAILED.labels(e.reason).inc()
            log.info("not downloadable (%s): %s", e.reason, e, extra=where)
            raise
        except TransientFetchError as e:
            metrics.PAGES_FAILED.labels(e.reason).inc()
            log.warning("download failed, will be retried (%s): %s", e.reason, e, extra=where)
            raise
        metrics.PAGES_FETCHED.inc()
        log.debug("downloaded %d bytes", page.body_bytes, extra=where)
        return page

    async def download(self, entry: FeedEntry) -> RawPage:
        if self.settings.respect_robots and self.robots is not None:
            try:
                if not await self.robots.allowed(entry.url):
                    raise PermanentError("robots", f"robots.txt disallows {entry.url}")
            except FetchError as e:
                if e.permanent:
                    raise PermanentError(e.reason, str(e)) from e
                raise TransientFetchError(e.reason, str(e)) from e

        started = time.monotonic()
        resp = await self._fetch_with_retries(entry.url)
        fetch_ms = (time.monotonic() - started) * 1000
        status = resp.status
        if status in RETRY_STATUSES:
            raise TransientFetchError(f"http-{status}", f"HTTP {status} from {resp.final_url}")
        if status >= 400:
            raise PermanentError(f"http-{status}", f"HTTP {status} from {resp.final_url}")
        if status >= 300:
            raise PermanentError(f"http-{status}", f"HTTP {status} without a usable Location")
        if status == 204 or not resp.body:
            raise PermanentError("empty", f"HTTP {status} with an empty body")

        ctype = resp.content_type
        if ctype not in HTML_TYPES and not (ctype in SNIFF_TYPES and looks_like_html(resp.body)):
            raise PermanentError("not-html", f"content-type {ctype or 'missing'} at {resp.final_url}")
        html, charset, source = decode_html(resp.body, resp.headers.get("content-type"))
        archived = await self.archive.write(entry, resp) if self.archive is not None else None
        return RawPage.with_html(
            html,
            compress_above=self.settings.compress_above_bytes,
            entry=entry,
            url=entry.url,
            final_url=resp.final_url,
            status=status,
            content_type=ctype or "text/html",
            charset=charset,
            charset_source=source,  # type: ignore[arg-type]
            etag=resp.headers.get("etag"),
            last_modified=resp.headers.get("last-modified"),
            fetch_ms=round(fetch_ms, 1),
            archive=archived,
        )

    async def _fetch_with_retries(self, url: str) -> Response:
        s = self.settings
        attempts = s.download_retries + 1
        last: TransientFetchError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff(attempt, last))
            started = time.monotonic()
            try:
                resp = await self.http.get(url, {"Accept": ARTICLE_ACCEPT}, slot_wait_s=self.settings.host_slot_wait_s)
            except FetchError as e:
                if e.permanent:
                    raise PermanentError(e.reason, str(e)) from e
                last = TransientFetchError(e.reason, str(e))
                continue
            finally:
                metrics.FETCH_SECONDS.labels("article").observe(time.monotonic() - started)
            if resp.status not in RETRY_STATUSES:
                return resp
            last = TransientFetchError(
                f"http-{resp.status}",
                f"HTTP {resp.status} from {resp.final_url}",
                parse_retry_after(resp.headers.get("retry-after")),
            )
        assert last is not None
        raise last

    def _backoff(self, attempt: int, last: TransientFetchError | None) -> float:
        delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
        if last is not None and last.retry_after:
            delay = max(delay, min(last.retry_after, MAX_RETRY_AFTER_S))
        return delay
