"""The fetcher service: the feed poller (a background task writing `news.entries`) and the article
downloader (the consumer of `news.entries`, writing `news.raw`). Any number of replicas side by side."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from faststream import Context

from newsflow_feeds.registry import FeedRegistry, load_feeds_file
from newsflow_fetcher.archiving import PageArchive
from newsflow_fetcher.downloader import ArticleDownloader
from newsflow_fetcher.poller import Poller
from newsflow_fetcher.robots import RobotsCache
from newsflow_fetcher.settings import FetcherSettings
from newsflow_http.httpclient import HttpClient
from newsflow_shared import streams
from newsflow_shared.models import FeedEntry, RawPage
from newsflow_shared.runtime import Runtime, Service

log = logging.getLogger("newsflow.fetcher")

service = Service("fetcher", FetcherSettings)


@service.lifespan
async def http_client(runtime: Runtime) -> AsyncIterator[dict[str, object]]:
    s: FetcherSettings = runtime.settings
    if s.feeds_file:
        feeds = load_feeds_file(s.feeds_file)
        added, updated = await FeedRegistry(runtime.redis).add_many(feeds)
        log.info("seeded feeds from %s: %d added, %d already known", s.feeds_file, added, updated)
    resolver = runtime.provided.get("resolver")  # the tests' fake DNS, so that any host name is loopback
    archive = _archive(s)
    try:
        async with HttpClient(s, resolver=resolver) as http:  # type: ignore[arg-type]
            robots = RobotsCache(http, runtime.redis, s.user_agent, s.robots_cache_s) if s.respect_robots else None
            yield {"http": http, "downloader": ArticleDownloader(http, robots, s, archive)}
    finally:
        if archive is not None:
            archive.close()  # the open file is renamed final, so `warcio check` and retention see it


def _archive(s: FetcherSettings) -> PageArchive | None:
    if not s.archive_enabled:
        return None
    try:
        return PageArchive(s)
    except OSError as e:
        # Pages flow without their archive copy rather than not at all; the error says how to fix it.
        log.error(
            "WARC archive off: cannot write to %s (%s). Set NEWSFLOW_ARCHIVE_DIR to a writable directory or "
            "volume, or NEWSFLOW_ARCHIVE_ENABLED=false",
            s.archive_dir,
            e,
        )
        return None


@service.task(publishes=[streams.ENTRIES])
async def poll(runtime: Annotated[Runtime, Context("runtime")], http: Annotated[HttpClient, Context("http")]) -> None:
    poller = Poller(
        runtime.redis,
        http,
        runtime.settings,
        runtime.publish,
        wait_for_room=lambda: runtime.publisher.wait_for_room(streams.ENTRIES),
    )
    await poller.run(runtime.stopping)


@service.consumer(
    streams.ENTRIES, group=streams.FETCHER_GROUP, publishes=streams.RAW, concurrency=lambda s: s.download_concurrency
)
async def download(entry: FeedEntry, downloader: Annotated[ArticleDownloader, Context("downloader")]) -> RawPage:
    return await downloader.handle(entry)
