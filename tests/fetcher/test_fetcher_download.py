"""Article downloads against hostile and broken servers on 127.0.0.1 (and a fake DNS answer for
the private-address case: nothing is ever sent to any address outside loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fetcher_helpers import WebServer, fetcher_settings

from newsflow_fetcher.downloader import ArticleDownloader, TransientFetchError
from newsflow_fetcher.robots import RobotsCache
from newsflow_http.httpclient import HttpClient
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry, RawPage
from newsflow_shared.runtime import PermanentError
from newsflow_shared.urls import canonicalize

pytestmark = pytest.mark.integration


def entry(url: str) -> FeedEntry:
    c = canonicalize(url)
    return FeedEntry(url=c, link=url, article_id=article_id(c), feed_url="http://feeds.test/f")


async def fake_dns(host: str, port: int) -> list[str]:
    """Resolves *.internal.test to private addresses, everything else to loopback."""
    if host.endswith(".internal.test"):
        return ["10.20.30.40"]
    if host.endswith(".mixed.test"):
        return ["127.0.0.1", "192.168.1.10"]
    return ["127.0.0.1"]


@pytest.fixture
async def dl(redis: Any, redis_url: str) -> AsyncIterator[ArticleDownloader]:
    settings = fetcher_settings(redis_url, max_body_bytes=256 * 1024, compress_above_bytes=4096)
    http = HttpClient(settings, resolver=fake_dns)
    try:
        yield ArticleDownloader(http, RobotsCache(http, redis, settings.user_agent, 60), settings)
    finally:
        await http.aclose()


async def test_html_page_is_downloaded_with_final_url(site: WebServer, dl: ArticleDownloader) -> None:
    site.article("/story", "Quay works")
    site.redirect("/old-story", "/story", permanent=True)
    page = await dl.handle(entry(site.url("/old-story?utm_campaign=x")))
    assert isinstance(page, RawPage)
    assert page.url == site.url("/old-story")
    assert page.final_url == site.url("/story")
    assert page.status == 200 and page.content_type == "text/html"
    assert "Quay works" in page.html()
    assert page.entry.url == page.url


async def test_large_page_is_compressed_and_charset_from_meta(site: WebServer, dl: ArticleDownloader) -> None:
    text = "Café crème à la Gare du Nord. " * 400  # > 4 KiB: compressed on the stream
    html = f'<html><head><meta charset="windows-1252"><title>Café</title></head><body><p>{text}</p></body></html>'
    site.static("/big", html.encode("cp1252"), "text/html")
    page = await dl.handle(entry(site.url("/big")))
    assert page.body_encoding == "zlib+base64"
    assert page.charset == "windows-1252" and page.charset_source == "meta"
    assert "Café crème à la Gare du Nord." in page.html()


async def test_non_html_is_dead_lettered_as_not_html(site: WebServer, dl: ArticleDownloader) -> None:
    site.static("/paper.pdf", b"%PDF-1.7\n...", "application/pdf")
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/paper.pdf")))
    assert err.value.reason == "not-html"


async def test_404_is_permanent(site: WebServer, dl: ArticleDownloader) -> None:
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/missing")))
    assert err.value.reason == "http-404"


async def test_slow_server_times_out_as_transient(site: WebServer, dl: ArticleDownloader) -> None:
    site.slow("/slow", 10)
    with pytest.raises(TransientFetchError) as err:
        await dl.handle(entry(site.url("/slow")))
    assert err.value.reason == "timeout"
    assert site.count("/slow") == 3  # the first try and two in-handler retries


async def test_trickling_body_hits_total_timeout(site: WebServer, dl: ArticleDownloader) -> None:
    site.stream("/trickle", b"<", 100, pause_s=0.3)  # one byte every 0.3 s never trips the 1 s read timeout
    with pytest.raises(TransientFetchError) as err:
        await dl.handle(entry(site.url("/trickle")))
    assert err.value.reason == "timeout"


async def test_endless_body_is_cut_at_the_size_cap(site: WebServer, dl: ArticleDownloader) -> None:
    # bounded: 640 MiB at most, the client hangs up long before
    site.stream("/endless", b"<p>" + b"x" * 65_530 + b"</p>", 10_000)
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/endless")))
    assert err.value.reason == "too-large"


async def test_declared_oversize_is_refused_before_reading(site: WebServer, dl: ArticleDownloader) -> None:
    site.static("/huge", b"<html>" + b"y" * (300 * 1024) + b"</html>", "text/html")
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/huge")))
    assert err.value.reason == "too-large"


async def test_gzip_bomb_is_cut_after_decompression(site: WebServer, dl: ArticleDownloader) -> None:
    import gzip

    bomb = gzip.compress(b"<html>" + b"0" * (20 * 1024 * 1024))  # 20 MiB that travel as ~20 KiB
    site.static("/bomb", bomb, "text/html", headers={"Content-Encoding": "gzip"})
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/bomb")))
    assert err.value.reason == "too-large"


async def test_redirect_loop(site: WebServer, dl: ArticleDownloader) -> None:
    site.redirect("/loop-a", "/loop-b")
    site.redirect("/loop-b", "/loop-a")
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/loop-a")))
    assert err.value.reason == "redirect-loop"
    assert site.count("/loop-a") == 1 and site.count("/loop-b") == 1


async def test_500s_then_success(site: WebServer, dl: ArticleDownloader) -> None:
    site.flaky("/flaky", 2, 500, "<html><body>finally</body></html>")
    page = await dl.handle(entry(site.url("/flaky")))
    assert "finally" in page.html() and site.count("/flaky") == 3


async def test_persistent_500_is_transient_for_the_runtime(site: WebServer, dl: ArticleDownloader) -> None:
    site.static("/broken", "no", "text/plain", status=502)
    with pytest.raises(TransientFetchError) as err:
        await dl.handle(entry(site.url("/broken")))
    assert err.value.reason == "http-502"


async def test_private_address_is_refused_without_connecting(dl: ArticleDownloader) -> None:
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry("http://wiki.internal.test/secret"))
    assert err.value.reason == "ssrf"
    # a name with one allowed and one private address is refused as a whole
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry("http://both.mixed.test/page"))
    assert err.value.reason == "ssrf"


async def test_redirect_to_metadata_address_is_refused(site: WebServer, dl: ArticleDownloader) -> None:
    site.redirect("/innocent", "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/innocent")))
    assert err.value.reason == "ssrf"


async def test_loopback_refused_when_not_allowed(redis: Any, redis_url: str, site: WebServer) -> None:
    site.article("/local")
    settings = fetcher_settings(redis_url, allowed_networks=[])
    async with HttpClient(settings) as http:
        d = ArticleDownloader(http, None, settings)
        with pytest.raises(PermanentError) as err:
            await d.handle(entry(site.url("/local")))
    assert err.value.reason == "ssrf"
    assert site.count("/local") == 0


async def test_robots_txt_is_honoured_and_cached(site: WebServer, dl: ArticleDownloader) -> None:
    site.static(
        "/robots.txt", "User-agent: NewsflowBot\nDisallow: /private/\n\nUser-agent: *\nDisallow:\n", "text/plain"
    )
    site.article("/private/page")
    site.article("/public/page")
    with pytest.raises(PermanentError) as err:
        await dl.handle(entry(site.url("/private/page")))
    assert err.value.reason == "robots"
    page = await dl.handle(entry(site.url("/public/page")))
    assert page.status == 200
    assert site.count("/robots.txt") == 1 and site.count("/private/page") == 0


async def test_robots_txt_server_error_is_transient(site: WebServer, dl: ArticleDownloader) -> None:
    site.static("/robots.txt", "down", "text/plain", status=503)
    site.article("/p")
    with pytest.raises(TransientFetchError) as err:
        await dl.handle(entry(site.url("/p")))
    assert err.value.reason == "robots-unavailable"
    assert site.count("/p") == 0


async def test_brotli_and_gzip_bodies_are_decoded(site: WebServer, dl: ArticleDownloader) -> None:
    import gzip

    import brotli

    html = b"<html><body><p>compressed story</p></body></html>"
    site.static("/br", brotli.compress(html), "text/html; charset=utf-8", headers={"Content-Encoding": "br"})
    site.static("/gz", gzip.compress(html), "text/html; charset=utf-8", headers={"Content-Encoding": "gzip"})
    for path in ("/br", "/gz"):
        page = await dl.handle(entry(site.url(path)))
        assert "compressed story" in page.html() and page.charset_source == "header"
    accepted = site.hits_for("/br")[0].headers.get("Accept-Encoding", "")
    assert "br" in accepted and "gzip" in accepted
    assert site.hits_for("/br")[0].headers.get("User-Agent", "").startswith("NewsflowBot/")


async def test_a_kept_alive_connection_the_server_closed_is_noticed_and_replaced(redis_url: str) -> None:
    # httpcore checks an idle connection's socket before reusing it (is it readable: closed by the
    # server?); the guarded backend answers that check from the socket it looked up once.
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html><body><p>one answer per connection</p></body></html>"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()  # keep-alive was implied, and the connection goes away all the same

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = HttpClient(fetcher_settings(redis_url), resolver=fake_dns)
    try:
        for i in range(3):
            resp = await http.get(f"http://127.0.0.1:{port}/p{i}")
            assert resp.status == 200 and b"one answer" in resp.body
            await asyncio.sleep(0.1)
        assert connections == 3
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
