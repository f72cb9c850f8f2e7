"""A news site on loopback for the benchmark: the eval pages as articles, with RSS feeds.

Articles are numbered; `publish(range)` makes a range of numbers appear in the feeds (all at once, or
`reveal_at(...)` paced over time). The site records when each item was first served in a feed response:
that is the moment the pipeline could first know about it, and where feed-to-searchable latency starts.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from email.utils import formatdate
from xml.sax.saxutils import escape

from aiohttp import web

from benchmarks.pipeline.pages import BasePage, variant
from newsflow_devtools.loopback import LoopbackSite

FEED_WINDOW = 150  # items per feed response (newest first), as a real feed shows only its latest


class BenchSite(LoopbackSite):
    def __init__(self, pages: list[BasePage], n_feeds: int = 20) -> None:
        self.pages = pages
        self.n_feeds = n_feeds
        self.host = "127.0.0.1"
        self.port = 0
        self._feeds: dict[int, list[int]] = defaultdict(list)  # feed -> published article numbers, oldest first
        self.published_at: dict[int, float] = {}  # article -> when it appeared in its feed (wall clock)
        self.first_served: dict[int, float] = {}  # article -> first feed response that listed it
        self.article_requests = 0
        self.feed_requests = 0
        # Seconds each article response waits before it is sent: a news site's answer time over the internet
        # (loopback answers in a millisecond, which hides what a sequential fetch loop pays per article).
        self.article_delay_s = 0.0

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def feed_url(self, k: int) -> str:
        return f"{self.base_url}/feeds/{k}.xml"

    @property
    def feed_urls(self) -> list[str]:
        return [self.feed_url(k) for k in range(self.n_feeds)]

    def page_of(self, i: int) -> BasePage:
        return self.pages[i % len(self.pages)]

    def article_url(self, i: int) -> str:
        return f"{self.base_url}/news/{i}/{self.page_of(i).slug}.html"

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, numbers: range | list[int], at: float | None = None) -> None:
        now = time.time() if at is None else at
        for i in numbers:
            self._feeds[i % self.n_feeds].append(i)
            self.published_at[i] = now

    def reset(self) -> None:
        self._feeds.clear()
        self.published_at.clear()
        self.first_served.clear()

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> BenchSite:
        app = web.Application()
        app.router.add_get("/feeds/{k}.xml", self._feed)
        app.router.add_get("/news/{i}/{slug}.html", self._article)
        app.router.add_get("/robots.txt", lambda r: web.Response(text="User-agent: *\nAllow: /\n"))
        self.port = await self._serve(app, backlog=1024, access_log=None)
        return self

    # -- serving -----------------------------------------------------------------------------------
    async def _article(self, request: web.Request) -> web.Response:
        try:
            i = int(request.match_info["i"])
        except ValueError:
            return web.Response(status=404)
        page = self.page_of(i)
        if request.match_info["slug"] != page.slug:
            return web.Response(status=404)
        self.article_requests += 1
        if self.article_delay_s > 0:
            await asyncio.sleep(self.article_delay_s)
        return web.Response(body=variant(page, i), content_type="text/html", charset="utf-8")

    async def _feed(self, request: web.Request) -> web.Response:
        try:
            k = int(request.match_info["k"])
        except ValueError:
            return web.Response(status=404)
        if not 0 <= k < self.n_feeds:
            return web.Response(status=404)
        self.feed_requests += 1
        published = self._feeds.get(k, [])
        # Validators, as news sites send them: an unchanged feed costs a 304, not a download and a parse.
        etag = f'"{k}-{len(published)}-{published[-1] if published else 0}"'
        if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
            return web.Response(status=304, headers={"ETag": etag})
        items = published[-FEED_WINDOW:][::-1]
        now = time.time()
        for i in items:
            self.first_served.setdefault(i, now)
        body = self._rss(k, items)
        return web.Response(body=body, content_type="application/rss+xml", charset="utf-8", headers={"ETag": etag})

    def _rss(self, k: int, items: list[int]) -> bytes:
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
            f"<title>Benchmark feed {k}</title><link>{self.base_url}/</link>",
            f"<description>Labelled news pages, feed {k}</description>",
        ]
        for i in items:
            page = self.page_of(i)
            url = self.article_url(i)
            out.append(
                f"<item><title>{escape(page.slug.replace('-', ' '))} ({i})</title><link>{escape(url)}</link>"
                f'<guid isPermaLink="true">{escape(url)}</guid>'
                f"<pubDate>{formatdate(self.published_at.get(i, time.time()), usegmt=True)}</pubDate></item>"
            )
        out.append("</channel></rss>")
        return "".join(out).encode("utf-8")
