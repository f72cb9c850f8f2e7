"""Discovery: from a site's address to its feeds and news sitemaps, through the guarded HTTP client.

- the home page's `<link rel="alternate">` to RSS, Atom and JSON Feed;
- robots.txt `Sitemap:` lines, then the usual sitemap paths when robots.txt names none;
- each candidate is fetched once to tell what it is: a feed, a news sitemap (its URLs carry the `news:`
  extension), a sitemap index (news when its name or a child's says so) or a plain sitemap.

Nothing is added here; the caller shows the findings and adds what the operator picks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from lxml import html as lxml_html
from protego import Protego

from newsflow_feeds.sitemaps import SitemapError, looks_like_sitemap, parse_sitemap
from newsflow_http.httpclient import FetchError, HttpClient
from newsflow_shared.urls import canonicalize

log = logging.getLogger("newsflow.feeds.discovery")

FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/feed+json": "json",
    "application/json": "json",
    "application/rdf+xml": "rss",
}
SITEMAP_PATHS = ("/news-sitemap.xml", "/sitemap_news.xml", "/sitemap-news.xml", "/sitemap.xml", "/sitemap_index.xml")
MAX_CANDIDATES = 20


@dataclass
class Found:
    url: str
    kind: str  # "feed" or "sitemap" (the registry's source kind)
    what: str  # rss, atom, json, news sitemap, sitemap index, news sitemap index, sitemap
    title: str | None = None
    via: str = ""  # where it was found: link, robots.txt, usual path

    @property
    def recommended(self) -> bool:
        """Added by `--all`: feeds and news sitemaps. A plain sitemap can list a whole site's archive."""
        return self.kind == "feed" or "news" in self.what


@dataclass
class Discovery:
    site: str
    found: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_site_url(url: str) -> bool:
    """A URL with no path (`https://site.example/`) names a site, not a feed."""
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and parts.path in ("", "/") and not parts.query


def feed_links(page: bytes, base: str) -> list[Found]:
    """`<link rel="alternate">` feeds of an HTML page, in page order."""
    try:
        doc = lxml_html.document_fromstring(page)
    except (ValueError, lxml_html.etree.ParserError):
        return []
    out: list[Found] = []
    for link in doc.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        ctype = (link.get("type") or "").split(";", 1)[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" in rels and ctype in FEED_TYPES and href:
            out.append(Found(urljoin(base, href), "feed", FEED_TYPES[ctype], (link.get("title") or None), "link"))
    return out


class Discoverer:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def discover(self, site: str) -> Discovery:
        site = canonicalize(site)
        result = Discovery(site)
        home = await self._get(site, result)
        candidates: list[Found] = []
        if home is not None:
            candidates += feed_links(home[1], home[0])
        robots = await self._get(urljoin(site, "/robots.txt"), result, quiet=True)
        sitemaps = Protego.parse(robots[1].decode("utf-8", "replace")).sitemaps if robots else []
        candidates += [Found(urljoin(site, u), "sitemap", "sitemap", via="robots.txt") for u in sitemaps]
        if not sitemaps:
            candidates += [Found(urljoin(site, p), "sitemap", "sitemap", via="usual path") for p in SITEMAP_PATHS]
        unique: dict[str, Found] = {}
        for c in candidates:
            unique.setdefault(c.url, c)
        checked = await asyncio.gather(*(self._check(c, result) for c in list(unique.values())[:MAX_CANDIDATES]))
        result.found = [c for c in checked if c is not None]
        return result

    async def _get(self, url: str, result: Discovery, quiet: bool = False) -> tuple[str, bytes] | None:
        try:
            resp = await self.http.get(url, {"Accept": "text/html, application/xml;q=0.9, */*;q=0.5"})
        except FetchError as e:
            result.problems.append(f"{url}: {e.reason}: {e}")
            return None
        if resp.status != 200:
            if not quiet:
                result.problems.append(f"{url}: HTTP {resp.status}")
            return None
        return resp.final_url, resp.body

    async def _check(self, c: Found, result: Discovery) -> Found | None:
        """The candidate with what it really is, or None when it is nothing usable."""
        got = await self._get(c.url, result, quiet=c.via == "usual path")
        if got is None:
            return None
        final, body = got
        if looks_like_sitemap(body):
            try:
                sm = await asyncio.to_thread(parse_sitemap, body, final)
            except SitemapError as e:
                result.problems.append(f"{c.url}: {e}")
                return None
            if sm.kind == "index":
                newsy = "news" in c.url.lower() or any("news" in u.lower() for u in sm.children)
                what = "news sitemap index" if newsy else "sitemap index"
            else:
                what = "news sitemap" if sm.news else "sitemap"
            return Found(c.url, "sitemap", what, c.title, c.via)
        if c.kind == "feed":
            head = body[:2048].lstrip().lower()
            if head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf", b"{")):
                return c
            result.problems.append(f"{c.url}: linked as a feed, but not one")
        return None
