"""The sitemap half of a poll: a sitemap (or sitemap index) fetched by the poller becomes entries.

The poller does the conditional GET, the body hash, the schedule and the backoff for a sitemap exactly
as for a feed; this module takes the fetched document from there:

- an index's children are fetched here through the same guarded client, each with its own validators
  and body hash (`FeedState.children`), so an unchanged child costs a 304 and no parse;
- each sitemap document remembers the URLs it listed at its last parse (`SITEMAP_KNOWN_PREFIX`: one
  Redis string per document, 8 bytes per URL, zlib'd), and only URLs new since then become entries.
  That memory, not the 30-day seen-set, is what keeps a plain sitemap of 50,000 old URLs from being
  downloaded again a month later;
- the first parse of a document has no memory: only URLs dated within `sitemap_max_age_days` become
  entries (Google News sitemaps list two days), the others are recorded as already published;
- the memory is written only after the entries are published, so a crash mid-poll loses nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from newsflow_feeds.registry import ChildState, FeedConfig, FeedState
from newsflow_feeds.sitemaps import Sitemap, SitemapError, SitemapUrl, parse_sitemap
from newsflow_fetcher import metrics
from newsflow_fetcher.settings import FetcherSettings
from newsflow_http.httpclient import FetchError, HttpClient, Response
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry
from newsflow_shared.urls import canonicalize

log = logging.getLogger("newsflow.fetcher.sitemaps")

SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, application/x-gzip;q=0.8, */*;q=0.5"
MAX_DEPTH = 2  # index -> index -> urlset, as large news sites nest them


class SitemapFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def url_hash(canonical: str) -> bytes:
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=8).digest()


def known_key(doc_url: str) -> str:
    return streams.SITEMAP_KNOWN_PREFIX + hashlib.sha256(doc_url.encode("utf-8")).hexdigest()[:32]


def pack(hashes: set[bytes]) -> bytes:
    return zlib.compress(b"".join(sorted(hashes)), 1)


def unpack(blob: bytes) -> set[bytes]:
    raw = zlib.decompress(blob)
    return {raw[i : i + 8] for i in range(0, len(raw), 8)}


@dataclass
class SitemapOutcome:
    """What a sitemap poll found: entries to publish and the memory to store once they are out."""

    entries: dict[str, FeedEntry] = field(default_factory=dict)
    memory: dict[str, set[bytes]] = field(default_factory=dict)  # document URL -> URL hashes it lists
    documents: int = 0
    listed: int = 0
    malformed: bool = False
    kind: str = "sitemap"
    title: str | None = None


class SitemapSource:
    def __init__(self, redis: aioredis.Redis, http: HttpClient, settings: FetcherSettings) -> None:
        self.redis = redis
        self.http = http
        self.settings = settings

    async def poll(self, cfg: FeedConfig, state: FeedState, resp: Response) -> SitemapOutcome:
        """Entries of the sitemap (or index) in `resp`; raises SitemapFailed when nothing was usable."""
        out = SitemapOutcome()
        top = await self._parse(resp.body, resp.final_url)
        children: dict[str, ChildState] = {}
        await self._take(cfg, state, out, children, resp.final_url, top, depth=0)
        state.children = children
        if top.kind == "index":
            out.kind = "sitemap-index"
        elif top.news:
            out.kind = "sitemap-news"
        return out

    async def store_memory(self, out: SitemapOutcome) -> None:
        ttl_ms = int(self.settings.seen_ttl_days * 86400 * 1000)
        async with self.redis.pipeline(transaction=False) as p:
            for doc_url, hashes in out.memory.items():
                p.set(known_key(doc_url), pack(hashes), px=ttl_ms)
            await p.execute()

    async def _parse(self, body: bytes, url: str) -> Sitemap:
        try:
            return await asyncio.to_thread(parse_sitemap, body, url, self.settings.sitemap_max_bytes)
        except SitemapError as e:
            raise SitemapFailed("parse-error", str(e)) from e

    async def _take(
        self,
        cfg: FeedConfig,
        state: FeedState,
        out: SitemapOutcome,
        children: dict[str, ChildState],
        url: str,
        sm: Sitemap,
        depth: int,
    ) -> None:
        out.documents += 1
        if sm.malformed:
            out.malformed = True
            metrics.FEED_MALFORMED.inc()
            log.warning("sitemap %s is malformed; using its %d readable URLs: %s", url, len(sm.urls), sm.warnings[:1])
        if sm.kind != "index":
            await self._new_urls(cfg, state, out, url, sm)
            return
        if depth >= MAX_DEPTH:
            log.warning("sitemap index %s nests deeper than %d levels; its children are not read", url, MAX_DEPTH)
            return
        wanted = [c for c in sm.children if c not in children][: self.settings.sitemap_max_children]
        failures: list[str] = []
        for child in wanted:
            prev = state.children.get(child, ChildState())
            children[child] = prev
            try:
                body = await self._fetch_child(child, prev)
            except SitemapFailed as e:
                failures.append(f"{child}: {e}")
                continue
            if body is None:  # not modified
                continue
            try:
                sub = await self._parse(body, child)
            except SitemapFailed as e:
                failures.append(f"{child}: {e}")
                continue
            prev.urls = len(sub.urls)
            await self._take(cfg, state, out, children, child, sub, depth + 1)
        if failures:
            log.warning("sitemap index %s: %d of %d children failed: %s", url, len(failures), len(wanted), failures[0])
        if wanted and len(failures) == len(wanted):
            raise SitemapFailed("children-failed", f"every child sitemap failed, first: {failures[0]}"[:500])

    async def _fetch_child(self, url: str, st: ChildState) -> bytes | None:
        headers = {"Accept": SITEMAP_ACCEPT}
        if st.etag:
            headers["If-None-Match"] = st.etag
        if st.last_modified:
            headers["If-Modified-Since"] = st.last_modified
        started = time.monotonic()
        try:
            resp = await self.http.get(url, headers, max_bytes=self.settings.sitemap_max_bytes)
        except FetchError as e:
            raise SitemapFailed(e.reason, str(e)) from e
        finally:
            metrics.FETCH_SECONDS.labels("sitemap").observe(time.monotonic() - started)
        if resp.status == 304 and (st.etag or st.last_modified):
            return None
        if resp.status != 200:
            raise SitemapFailed(f"http-{resp.status}", f"HTTP {resp.status}")
        digest = hashlib.sha256(resp.body).hexdigest()
        st.etag, st.last_modified = resp.headers.get("etag"), resp.headers.get("last-modified")
        if digest == st.content_hash:
            return None
        st.content_hash = digest
        return resp.body

    async def _new_urls(self, cfg: FeedConfig, state: FeedState, out: SitemapOutcome, url: str, sm: Sitemap) -> None:
        blob = await self.redis.get(known_key(url))
        known = unpack(blob) if blob else None
        oldest = datetime.now(UTC) - timedelta(days=self.settings.sitemap_max_age_days)
        hashes: set[bytes] = set()
        taken = 0
        out.listed += len(sm.urls)
        for u in sm.urls:
            canonical = canonicalize(u.url)  # parse_sitemap kept only URLs that canonicalise
            h = url_hash(canonical)
            hashes.add(h)
            if known is not None and h in known:
                continue
            date = u.date
            # First parse: an undated URL may be years old. Later: a new URL dated long ago is an old
            # article added to the sitemap (an archive section), not news.
            if (date is None and known is None) or (date is not None and date < oldest):
                continue
            if canonical not in out.entries:
                out.entries[canonical] = self._entry(cfg, state, canonical, u)
                taken += 1
            out.title = out.title or u.publication
        out.memory[url] = hashes
        if known is None:
            log.info("first read of sitemap %s: %d URLs, %d recent enough to become entries", url, len(sm.urls), taken)

    @staticmethod
    def _entry(cfg: FeedConfig, state: FeedState, canonical: str, u: SitemapUrl) -> FeedEntry:
        return FeedEntry(
            url=canonical,
            link=u.url,
            article_id=article_id(canonical),
            feed_url=cfg.url,
            feed_title=cfg.title or u.publication or state.title,
            title=u.title,
            published_at=u.published,
            updated_at=u.modified,
            tags=u.keywords,
            language=u.language,
        )
