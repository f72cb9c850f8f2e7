"""The fetcher's side of the archive: every downloaded page goes into the replica's WARC file.

Writing runs in one dedicated thread: it serialises the appends of the 64 concurrent downloads without
a lock on the event loop, and gzip compression (which releases the GIL) runs beside the loop. A failed
write (disk full, a volume gone) costs the page its archive copy, never the page: it is logged, counted,
and the page goes on to the parser without an ArchiveRef.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from newsflow_archive.writer import Fetched, WarcArchive
from newsflow_fetcher import metrics
from newsflow_fetcher.settings import FetcherSettings
from newsflow_http.httpclient import Response
from newsflow_shared.models import ArchiveRef, FeedEntry, utcnow

log = logging.getLogger("newsflow.fetcher.archive")


class PageArchive:
    def __init__(self, settings: FetcherSettings) -> None:
        self.warc = WarcArchive(
            settings.archive_dir,
            settings.consumer_name,
            max_file_bytes=settings.archive_max_file_mb * 1024 * 1024,
            max_file_age_s=settings.archive_max_file_age_s,
            retention_days=settings.archive_retention_days,
            max_total_bytes=int(settings.archive_max_total_gb * 1024**3),
            compress_level=settings.archive_compress_level,
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc")
        self._thread.submit(self.warc.prune)  # files a dead replica left open, expired ones

    async def write(self, entry: FeedEntry, resp: Response) -> ArchiveRef | None:
        page = Fetched(
            url=resp.final_url,
            status=resp.status,
            reason=resp.reason,
            http_version=resp.http_version,
            request_headers=resp.request_headers,
            response_headers=resp.headers.multi_items(),
            body=resp.body,
            fetched_at=utcnow(),
            metadata={"entry": entry.model_dump(mode="json"), "redirects": resp.redirects},
        )
        started = time.perf_counter()
        try:
            ref = await asyncio.get_running_loop().run_in_executor(self._thread, self.warc.write, page)
        except OSError as e:
            metrics.ARCHIVE_FAILURES.inc()
            log.error("page not archived: %s", e, extra={"article_id": entry.article_id, "url": entry.url})
            return None
        finally:
            metrics.ARCHIVE_SECONDS.observe(time.perf_counter() - started)
        metrics.ARCHIVE_RECORDS.inc()
        return ref

    def close(self) -> None:
        self._thread.submit(self.warc.close).result()
        self._thread.shutdown()
