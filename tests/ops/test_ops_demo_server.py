"""The demo feed server over real HTTP on loopback (no Redis or Elasticsearch needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from email.utils import format_datetime

import aiohttp
import feedparser
import pytest

from newsflow_devtools.demo import DemoFeedServer, DemoServerError

pytestmark = pytest.mark.unit


async def test_serves_feeds_pages_robots_and_opml() -> None:
    async with DemoFeedServer(n_articles=100, seed=2) as srv, aiohttp.ClientSession() as http:
        assert srv.base_url.startswith("http://127.0.0.1:")
        links: list[str] = []
        for url in srv.feed_urls:
            async with http.get(url) as r:
                assert r.status == 200
                body = await r.read()
            if url.endswith(".json"):
                assert r.content_type == "application/feed+json"
                links += [i["url"] for i in json.loads(body)["items"]]
            else:
                links += [e.link for e in feedparser.parse(body).entries]
        assert sorted(links) == sorted(srv.article_urls)
        async with http.get(srv.article_urls[0]) as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert "rocket attack" in await r.text()
        async with http.get(srv.robots_url) as r:
            assert "User-agent: *" in await r.text()
        async with http.get(srv.opml_url) as r:
            opml = await r.text()
        assert all(u in opml for u in srv.feed_urls)
        async with http.get(srv.base_url + "/images/kesh-commander-rally.png") as r:
            assert r.content_type == "image/png" and (await r.read()).startswith(b"\x89PNG")
        async with http.get(srv.base_url + "/news/nope.html") as r:
            assert r.status == 404


async def test_conditional_requests_get_304() -> None:
    async with DemoFeedServer(n_articles=30) as srv, aiohttp.ClientSession() as http:
        url = srv.feed_urls[0]
        async with http.get(url) as r:
            etag, last_modified = r.headers["ETag"], r.headers["Last-Modified"]
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and r.headers["ETag"] == etag
        async with http.get(url, headers={"If-Modified-Since": last_modified}) as r:
            assert r.status == 304
        async with http.get(url, headers={"If-None-Match": '"other"'}) as r:
            assert r.status == 200
        old = format_datetime(srv.corpus[-1].published.replace(year=2000), usegmt=True)
        async with http.get(url, headers={"If-Modified-Since": old}) as r:
            assert r.status == 200
        assert srv.not_modified[srv.feed_urls[0].removeprefix(srv.base_url)] == 2
        assert srv.requests[srv.feed_urls[0].removeprefix(srv.base_url)] == 5


async def test_reveal_publishes_new_articles_and_changes_the_etag() -> None:
    async with DemoFeedServer(n_articles=60, visible=20) as srv, aiohttp.ClientSession() as http:

        async def links() -> tuple[set[str], list[str]]:
            found: set[str] = set()
            tags = []
            for url in srv.feed_urls:
                async with http.get(url) as r:
                    tags.append(r.headers["ETag"])
                    body = await r.read()
                if url.endswith(".json"):
                    found |= {i["url"] for i in json.loads(body)["items"]}
                else:
                    found |= {e.link for e in feedparser.parse(body).entries}
            return found, tags

        first, tags1 = await links()
        assert first == set(srv.article_urls[:20]) == set(srv.visible_article_urls)
        srv.reveal(60)
        second, tags2 = await links()
        assert second == set(srv.article_urls)
        assert all(a != b for a, b in zip(tags1, tags2, strict=True))


async def test_same_port_same_urls_and_busy_port_is_a_clear_error() -> None:
    async with DemoFeedServer(n_articles=30) as srv:
        port, urls = srv.port, srv.article_urls
        with pytest.raises(DemoServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            await DemoFeedServer(port=port).start()
    # Restarting on the same port (as `make run` does on its second run) gives the same URLs.
    async with DemoFeedServer(n_articles=30, port=port) as again:
        assert again.article_urls == urls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def demo_process(*launcher: str, articles: int) -> AsyncIterator[tuple[asyncio.StreamReader, int]]:
    """Run the demo server as `python <launcher>` on a free port; yield its stdout (after the first line,
    which it checks) and the port. Leaving terminates it and checks that it exits cleanly."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *launcher,
        "--port",
        str(port),
        "--articles",
        str(articles),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"{articles} articles at http://127.0.0.1:{port}/" in first
        yield proc.stdout, port
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_module_entry_point_serves_until_terminated() -> None:
    async with demo_process("-m", "newsflow_devtools.demo.server", articles=40) as (stdout, _port):
        feeds = [(await stdout.readline()).decode().split(" ", 1)[1].strip() for _ in range(4)]
        async with aiohttp.ClientSession() as http, http.get(feeds[0]) as r:
            assert r.status == 200


async def test_demo_serve_command_serves_until_terminated() -> None:
    launcher = ("-c", "from newsflow_devtools.demo.cli import app; app()", "serve")
    async with (
        demo_process(*launcher, articles=35) as (_stdout, port),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/feeds.opml") as r,
    ):
        assert r.status == 200
