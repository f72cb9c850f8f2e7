"""The fetcher service: the feed poller (a background task) and the article downloader (a consumer
of `news.entries`), on the shared stream runtime. Any number of replicas can run side by side."""

from __future__ import annotations

import logging

from newsflow_fetcher.downloader import ArticleDownloader
from newsflow_fetcher.httpclient import HttpClient
from newsflow_fetcher.poller import Poller
from newsflow_fetcher.registry import FeedRegistry, load_feeds_file
from newsflow_fetcher.robots import RobotsCache
from newsflow_fetcher.settings import FetcherSettings
from newsflow_fetcher.ssrf import Resolver
from newsflow_shared import streams
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import Consumer, Service, ServiceContext, run_main

log = logging.getLogger("newsflow.fetcher")


def build_service(settings: FetcherSettings | None = None, resolver: Resolver | None = None) -> Service:
    """The service, unstarted. Tests call this with their own settings (and a fake DNS resolver)."""
    s = settings or FetcherSettings()
    svc = Service("fetcher", s)
    parts: dict[str, object] = {}

    async def startup(ctx: ServiceContext) -> None:
        http = HttpClient(s, resolver=resolver)
        robots = RobotsCache(http, ctx.redis, s.user_agent, s.robots_cache_s) if s.respect_robots else None
        parts["http"] = http
        parts["downloader"] = ArticleDownloader(http, robots, s)
        # The poller waits while news.entries is backed up, instead of piling entries on it.
        ctx.backpressure_streams.add(streams.ENTRIES)
        if s.feeds_file:
            feeds = load_feeds_file(s.feeds_file)
            added, updated = await FeedRegistry(ctx.redis).add_many(feeds)
            log.info("seeded feeds from %s: %d added, %d already known", s.feeds_file, added, updated)

    async def shutdown(ctx: ServiceContext) -> None:
        http = parts.get("http")
        if isinstance(http, HttpClient):
            await http.aclose()

    async def poll(ctx: ServiceContext) -> None:
        http = parts["http"]
        assert isinstance(http, HttpClient)
        poller = Poller(ctx.redis, http, s, ctx.publish, wait_for_room=lambda: ctx.wait_for_room(streams.ENTRIES))
        await poller.run(ctx.stopping)

    async def handle(entry: FeedEntry) -> list:  # type: ignore[type-arg]
        downloader = parts["downloader"]
        assert isinstance(downloader, ArticleDownloader)
        return await downloader.handle(entry)

    svc.on_startup(startup)
    svc.on_shutdown(shutdown)
    svc.task(poll)
    svc.consumer(
        Consumer(
            stream=streams.ENTRIES,
            group=streams.FETCHER_GROUP,
            model=FeedEntry,
            handle=handle,
            concurrency=s.download_concurrency,
            output_streams=(streams.RAW,),
        )
    )
    return svc


def main() -> None:
    run_main("fetcher", FetcherSettings, build_service)


if __name__ == "__main__":
    main()
