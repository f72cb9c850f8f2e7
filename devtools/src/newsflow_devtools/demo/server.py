"""The demo feed server: a small news site on loopback that publishes the demo corpus.

    async with DemoFeedServer(n_articles=300, seed=1) as srv:
        srv.feed_urls, srv.article_urls, srv.opml_url

    python -m newsflow_devtools.demo.server --port 8765 --articles 300

It serves four feeds (RSS 2.0 with media RSS, Atom, JSON Feed 1.1, and a second RSS), an OPML list of
them, one page per article, robots.txt and placeholder images, with ETag and Last-Modified validators
and 304 answers to conditional requests, like a well-behaved news site. `reveal(n)` limits the feeds to
the first n articles, so a test can publish new stories while the pipeline runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import logging
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

from newsflow_devtools.demo import render
from newsflow_devtools.demo.corpus import FEEDS, DemoArticle, DemoFeed, build_corpus, bundled_count
from newsflow_devtools.loopback import LoopbackSite

# A 1x1 grey PNG: every image URL answers with it, so a client that follows image links gets a real image.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCB3UNq9AAAAABJRU5ErkJggg==")


class DemoServerError(Exception):
    """The server could not start (for example, its port is taken)."""


@dataclass(frozen=True)
class _Resource:
    body: bytes
    content_type: str
    last_modified: datetime

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:20] + '"'


class DemoFeedServer(LoopbackSite):
    def __init__(
        self,
        n_articles: int | None = None,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        base_time: datetime | None = None,
        visible: int | None = None,
        access_log: bool = False,
    ) -> None:
        self.corpus: list[DemoArticle] = build_corpus(n_articles or bundled_count(), seed, base_time)
        self.seed = seed
        self.host = host
        self._port = port
        self._visible = len(self.corpus) if visible is None else max(0, min(visible, len(self.corpus)))
        self._access_log = access_log
        self._by_path = {a.path: a for a in self.corpus}
        self._cache: dict[str, _Resource] = {}
        self.requests: Counter[str] = Counter()  # path -> requests answered (200 or 304)
        self.not_modified: Counter[str] = Counter()  # path -> 304 answers

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("the demo server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def feed_urls(self) -> list[str]:
        return [self.base_url + f.path for f in FEEDS]

    @property
    def article_urls(self) -> list[str]:
        return [self.base_url + a.path for a in self.corpus]

    @property
    def visible_article_urls(self) -> list[str]:
        return [self.base_url + a.path for a in self.corpus[: self._visible]]

    @property
    def opml_url(self) -> str:
        return self.base_url + "/feeds.opml"

    @property
    def robots_url(self) -> str:
        return self.base_url + "/robots.txt"

    def reveal(self, n: int) -> None:
        """Publish the first `n` articles in the feeds (article pages are always served)."""
        self._visible = max(0, min(n, len(self.corpus)))
        for f in FEEDS:
            self._cache.pop(f.path, None)

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> DemoFeedServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        try:
            self._port = await self._serve(app, self._port, **({} if self._access_log else {"access_log": None}))
        except OSError as e:
            raise DemoServerError(f"cannot listen on {self.host}:{self._port}: {e.strerror or e}") from None
        return self

    # -- serving -----------------------------------------------------------------------------------
    def _resource(self, path: str) -> _Resource | None:
        if (res := self._cache.get(path)) is not None:
            return res
        base = self.base_url
        newest = max(a.last_modified for a in self.corpus)
        res = None
        if (a := self._by_path.get(path)) is not None:
            res = _Resource(
                render.render_page(a, self.corpus, base).encode(), "text/html; charset=utf-8", a.last_modified
            )
        elif (feed := _feed_by_path(path)) is not None:
            items = [a for a in self.corpus[: self._visible] if a.feed.key == feed.key]
            updated = max((a.last_modified for a in items), default=newest)
            res = _Resource(
                render.render_feed(feed, items, base, updated).encode(), render.feed_content_type(feed), updated
            )
        elif path == "/feeds.opml":
            res = _Resource(render.render_opml(base).encode(), "text/x-opml; charset=utf-8", newest)
        elif path == "/robots.txt":
            res = _Resource(render.render_robots(base).encode(), "text/plain; charset=utf-8", newest)
        elif path.startswith("/images/"):
            res = _Resource(PNG, "image/png", newest)
        elif path in ("/", "/index.html"):
            res = _Resource(render.render_front(self.corpus, base).encode(), "text/html; charset=utf-8", newest)
        if res is not None:
            self._cache[path] = res
        return res

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        res = self._resource(request.path)
        if res is None:
            return web.Response(status=404, text="not found\n")
        self.requests[request.path] += 1
        headers = {
            "ETag": res.etag,
            "Last-Modified": format_datetime(res.last_modified.astimezone(UTC), usegmt=True),
            "Cache-Control": "public, max-age=60",
        }
        if _not_modified(request, res):
            self.not_modified[request.path] += 1
            return web.Response(status=304, headers=headers)
        return web.Response(body=res.body, headers={**headers, "Content-Type": res.content_type})


def _feed_by_path(path: str) -> DemoFeed | None:
    return next((f for f in FEEDS if f.path == path), None)


def _not_modified(request: web.Request, res: _Resource) -> bool:
    # RFC 9110: If-None-Match wins over If-Modified-Since when both are sent.
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or res.etag in tags
    ims = request.if_modified_since
    return ims is not None and res.last_modified.replace(microsecond=0) <= ims


async def serve_forever(srv: DemoFeedServer, stop: asyncio.Event) -> None:
    async with srv:
        print(f"demo feed server: {len(srv.corpus)} articles at {srv.base_url}/", flush=True)
        for url in srv.feed_urls:
            print(f"feed: {url}", flush=True)
        print(f"opml: {srv.opml_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m newsflow_devtools.demo.server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--articles", type=int, default=None, help=f"number of articles (default {bundled_count()})")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated articles")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.articles is not None and args.articles < 1:
        p.error("--articles must be at least 1")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        srv = DemoFeedServer(args.articles, args.seed, host=args.host, port=args.port, access_log=True)
        await serve_forever(srv, stop)

    try:
        asyncio.run(run())
    except DemoServerError as e:
        print(f"demo feed server: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
