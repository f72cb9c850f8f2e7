"""The feed poller: claim due feeds, fetch, parse, publish new entries, reschedule.

One `Poller` per replica. It claims at most `poll_concurrency` due feeds at a time from Redis (see
`registry`), polls each in its own task while a keeper renews the feed's lease, and stores the
outcome with the next due time. Nothing here blocks the loop for long: fetching goes through the
politeness-limited HTTP client, publishing through the runtime's backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import redis.asyncio as aioredis
from pydantic import BaseModel

from newsflow_feeds.registry import FeedConfig, FeedRegistry, FeedState
from newsflow_feeds.sitemaps import looks_like_sitemap
from newsflow_fetcher import metrics
from newsflow_fetcher.feedparse import parse_feed
from newsflow_fetcher.feedtypes import FeedParseError, ParsedEntry, ParsedFeed
from newsflow_fetcher.schedule import (
    failure_delay,
    jittered,
    parse_max_age,
    parse_retry_after,
    success_interval,
)
from newsflow_fetcher.seen import SeenSet
from newsflow_fetcher.settings import FetcherSettings
from newsflow_fetcher.sitemap_poll import SitemapFailed, SitemapOutcome, SitemapSource
from newsflow_http.httpclient import FetchError, HttpClient, Response
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry
from newsflow_shared.runtime import Stopping
from newsflow_shared.urls import canonicalize

log = logging.getLogger("newsflow.fetcher.poller")

Publish = Callable[[str, BaseModel], Awaitable[Any]]
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)


class PollFailed(Exception):
    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class PollResult:
    url: str
    outcome: str  # new, no_new, not_modified, unchanged, error
    status: int | None = None
    new_entries: int = 0
    duplicates: int = 0
    error: str | None = None
    lying_validators: bool = False
    deferred: int = 0  # entries another poller held pending: this poll must not mark the feed as read
    next_due: float = 0.0
    entry_urls: list[str] = field(default_factory=list)


def _raise_for_status(resp: Response) -> None:
    """Anything but 200 fails the poll; 429 and 5xx carry the server's Retry-After into the backoff."""
    if resp.status in (429, 503) or resp.status >= 500:
        raise PollFailed(
            f"http-{resp.status}",
            f"HTTP {resp.status} from {resp.final_url}",
            parse_retry_after(resp.headers.get("retry-after")),
        )
    if resp.status >= 400:
        raise PollFailed(f"http-{resp.status}", f"HTTP {resp.status} from {resp.final_url}")
    if resp.status != 200:
        raise PollFailed(f"http-{resp.status}", f"unexpected HTTP {resp.status} from {resp.final_url}")


def feed_entry(e: ParsedEntry, parsed: ParsedFeed, base: str, feed_url: str, feed_title: str | None) -> FeedEntry:
    """The `news.entries` message for one item of a feed; ValueError when its link is unusable."""
    link = urljoin(base, e.link.strip())
    canonical = canonicalize(link)
    return FeedEntry(
        url=canonical,
        link=link,
        article_id=article_id(canonical),
        feed_url=feed_url,
        feed_title=feed_title or parsed.title,
        title=e.title,
        summary=e.summary,
        authors=e.authors,
        published_at=e.published,
        updated_at=e.updated,
        tags=e.tags,
        language=e.language or parsed.language,
        media=[m.model_copy(update={"url": urljoin(base, m.url)}) for m in e.media],
        guid=e.guid,
    )


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class Poller:
    def __init__(
        self,
        redis: aioredis.Redis,
        http: HttpClient,
        settings: FetcherSettings,
        publish: Publish,
        *,
        wait_for_room: Callable[[], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.redis = redis
        self.http = http
        self.settings = settings
        self.publish = publish
        self.wait_for_room = wait_for_room
        self.registry = FeedRegistry(redis)
        # A pending claim must run out before the feed's lease does: if this replica dies after
        # claiming a URL but before publishing it, the feed's next poller must find it unclaimed.
        # The keeper refreshes both every lease/3.
        self.seen = SeenSet(redis, settings.seen_ttl_days * 86400, settings.feed_lease_s / 2)
        self.sitemaps = SitemapSource(redis, http, settings)
        self.rng = rng or random.Random()
        self.token = uuid.uuid4().hex
        self.active: set[asyncio.Task[Any]] = set()
        self._last_gauges = 0.0

    # --- the loop ---------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("poller started (token %s, up to %d feeds at once)", self.token[:8], self.settings.poll_concurrency)
        try:
            while not stopping.is_set():
                await self._refresh_gauges()
                if self.wait_for_room is not None:
                    try:
                        await self.wait_for_room()
                    except Stopping:
                        break
                free = self.settings.poll_concurrency - len(self.active)
                claimed: list[str] = []
                if free > 0:
                    claimed = await self.registry.claim_due(free, self.settings.feed_lease_s, self.token)
                    for url in claimed:
                        task = asyncio.create_task(self.poll_leased(url), name=f"poll:{url}")
                        self.active.add(task)
                        task.add_done_callback(self.active.discard)
                    metrics.FEEDS_IN_FLIGHT.set(len(self.active))
                if len(self.active) >= self.settings.poll_concurrency:
                    # Full: wait for a slot, then let a few more polls finish so that one claim
                    # round trip refills several slots.
                    await asyncio.wait(self.active, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                    await asyncio.sleep(0.005)
                elif claimed and len(claimed) == free:
                    await asyncio.sleep(0)
                else:  # nothing more due now: sleep until the next feed is
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), await self._idle_delay())
        finally:
            await self._stop_active()

    async def _idle_delay(self) -> float:
        nxt = await self.registry.next_due_at()
        if nxt is None:
            return 1.0
        # At most a second: a feed added from the CLI is due at once and should not wait long.
        return min(max(nxt - time.time(), 0.02), 1.0)

    async def _stop_active(self) -> None:
        if not self.active:
            return
        _done, pending = await asyncio.wait(self.active, timeout=self.settings.graceful_timeout_s / 2)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _refresh_gauges(self) -> None:
        now = time.monotonic()
        if now - self._last_gauges < 10:
            return
        self._last_gauges = now
        with contextlib.suppress(Exception):
            metrics.FEEDS_TOTAL.set(await self.registry.count())
            metrics.FEEDS_UNHEALTHY.set(await self.registry.unhealthy_count())

    # --- one feed under its lease -------------------------------------------------------------------

    async def poll_leased(self, url: str) -> PollResult | None:
        pending: set[str] = set()
        keeper = asyncio.create_task(self._keep_lease(url, pending))
        try:
            cfg, state = await self.registry.load(url)
            if cfg is None:  # removed after being claimed
                await self.redis.delete(streams.FEED_LEASE_PREFIX + url)
                return None
            result = await self.poll_feed(cfg, state, pending)
            done = await self.registry.complete(url, self.token, state, result.next_due)
            if done == 0:
                log.warning("lease on %s expired during the poll; its outcome was not stored", url)
            return result
        except asyncio.CancelledError:
            # Shutting down mid-poll: offer the feed again at once instead of after the lease.
            await self._release_quietly(url)
            raise
        except Stopping:  # the runtime is stopping while news.entries is full
            await self._release_quietly(url)
            return None
        except Exception:
            log.exception("poll of %s crashed; the feed is retried when its lease expires", url)
            return None
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _release_quietly(self, url: str) -> None:
        with contextlib.suppress(Exception):
            await self.registry.release(url, self.token)

    async def _keep_lease(self, url: str, pending: set[str]) -> None:
        period = self.settings.feed_lease_s / 3
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                await self.registry.renew(url, self.token, self.settings.feed_lease_s)
                await self.seen.keep_pending(list(pending))

    # --- the poll itself ----------------------------------------------------------------------------

    async def poll_feed(self, cfg: FeedConfig, state: FeedState, pending: set[str] | None = None) -> PollResult:
        """Poll one feed and update `state` in place (the caller stores it)."""
        now = time.time()
        state.polls += 1
        state.last_polled_at = now
        headers, conditional, verify = self._request_headers(state)
        result = PollResult(url=cfg.url, outcome="error")
        try:
            resp = await self._fetch(cfg.url, headers, sitemap=cfg.kind == "sitemap")
            result.status = resp.status
            state.last_status = resp.status
            state.final_url = resp.final_url if resp.final_url != cfg.url else None
            state.polls_since_check = state.polls_since_check + 1 if conditional else 0
            await self._handle_response(cfg, state, resp, conditional, verify, result, pending)
        except PollFailed as e:
            return self._failed(cfg, state, result, e.reason, str(e), e.retry_after)
        except FetchError as e:
            return self._failed(cfg, state, result, e.reason, str(e))
        except FeedParseError as e:
            return self._failed(cfg, state, result, "parse-error", str(e))
        except SitemapFailed as e:
            return self._failed(cfg, state, result, e.reason, str(e))
        except Stopping:
            raise
        except Exception as e:
            # A bug or a broken dependency on this feed's input: count it against the feed (so it
            # shows in `feeds list` and backs off) instead of retrying it blindly.
            log.exception("polling %s failed unexpectedly", cfg.url)
            return self._failed(cfg, state, result, "internal-error", f"{type(e).__name__}: {e}")
        return self._succeeded(cfg, state, resp, result, now)

    def _request_headers(self, state: FeedState) -> tuple[dict[str, str], bool, bool]:
        """The poll's headers, whether it is conditional, and whether it verifies the validators instead:
        every `validator_check_every` polls a full GET checks that a server's validators tell the truth."""
        s = self.settings
        has_validators = bool(state.etag or state.last_modified)
        verify = (
            has_validators
            and state.validators_trusted
            and s.validator_check_every > 0
            and state.polls_since_check + 1 >= s.validator_check_every
        )
        conditional = has_validators and state.validators_trusted and not verify
        headers = {"Accept": FEED_ACCEPT}
        if conditional:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        return headers, conditional, verify

    def _succeeded(
        self, cfg: FeedConfig, state: FeedState, resp: Response, result: PollResult, now: float
    ) -> PollResult:
        s = self.settings
        state.consecutive_failures = 0
        state.failing_since = None
        state.unhealthy = False
        state.last_success_at = now
        hints = (
            parse_max_age(resp.headers.get("cache-control")),
            parse_retry_after(resp.headers.get("retry-after")),
            state.publisher_hint_s,
        )
        interval = success_interval(
            state.current_interval_s,
            result.new_entries,
            min_s=s.min_poll_interval_s,
            max_s=s.max_poll_interval_s,
            fixed=cfg.interval_s,
            hints=hints,
        )
        state.current_interval_s = interval
        # Counted from the end of the poll: a slow server or a queue wait must not shorten the gap.
        result.next_due = time.time() + jittered(interval, s.poll_jitter, self.rng)
        state.next_due_at = result.next_due
        metrics.FEED_POLLS.labels(result.outcome).inc()
        return result

    async def _fetch(self, url: str, headers: dict[str, str], sitemap: bool = False) -> Response:
        started = time.monotonic()
        try:
            return await self.http.get(url, headers, max_bytes=self.settings.sitemap_max_bytes if sitemap else None)
        finally:
            metrics.FETCH_SECONDS.labels("feed").observe(time.monotonic() - started)

    async def _handle_response(
        self,
        cfg: FeedConfig,
        state: FeedState,
        resp: Response,
        conditional: bool,
        verify: bool,
        result: PollResult,
        pending: set[str] | None,
    ) -> None:
        if resp.status == 304:
            if not conditional:
                raise PollFailed("http-304", "304 Not Modified to a request without validators")
            state.not_modified += 1
            result.outcome = "not_modified"
            return
        _raise_for_status(resp)
        digest = body_hash(resp.body)
        self._update_validators(cfg, state, resp, digest, verify, result)
        if digest == state.content_hash:
            # Same bytes as last time (a server without validators, or a verification poll that
            # found it honest): nothing to parse.
            state.unchanged += 1
            result.outcome = "unchanged"
            return
        if cfg.kind == "sitemap" or looks_like_sitemap(resp.body):
            new, dup = await self._handle_sitemap(cfg, state, resp, result, pending)
        else:
            new, dup = await self._handle_feed(cfg, state, resp, result, pending)
        if result.deferred:
            # Entries pending in a poller that may have died: if this poll stored the validators and
            # the hash, the source would answer 304 and those entries would wait for a verification poll.
            # Without them the next poll reads the whole document again and retries them.
            state.etag = state.last_modified = state.content_hash = None
        else:
            state.content_hash = digest
        state.items_seen += new
        state.last_new_items = new
        result.new_entries, result.duplicates = new, dup
        result.outcome = "new" if new else "no_new"

    def _update_validators(
        self, cfg: FeedConfig, state: FeedState, resp: Response, digest: str, verify: bool, result: PollResult
    ) -> None:
        """Keep the response's validators, unless a verification poll caught them lying."""
        etag = resp.headers.get("etag")
        last_modified = resp.headers.get("last-modified")
        if verify and digest != state.content_hash:
            same_validator = (etag is not None and etag == state.etag) or (
                etag is None and last_modified is not None and last_modified == state.last_modified
            )
            if same_validator:
                state.validators_trusted = False
                result.lying_validators = True
                metrics.LYING_VALIDATORS.inc()
                log.warning(
                    "feed %s sends the same validator (%s) for changed content: no more conditional GETs",
                    cfg.url,
                    etag or last_modified,
                )
        if state.validators_trusted:
            state.etag, state.last_modified = etag, last_modified
        else:
            state.etag = state.last_modified = None

    async def _handle_feed(
        self, cfg: FeedConfig, state: FeedState, resp: Response, result: PollResult, pending: set[str] | None
    ) -> tuple[int, int]:
        parsed = parse_feed(resp.body, resp.headers.get("content-type", ""), resp.final_url)
        if parsed.malformed:
            metrics.FEED_MALFORMED.inc()
            log.warning(
                "feed %s is malformed; using its %d readable entries: %s",
                cfg.url,
                len(parsed.entries),
                "; ".join(parsed.warnings)[:300],
            )
        state.title = parsed.title or state.title
        state.format = parsed.format
        counts = await self._publish_candidates(cfg, self._candidates(cfg, parsed, resp.final_url), result, pending)
        state.publisher_hint_s = max((h for h in (parsed.ttl_s, parsed.update_period_s) if h), default=None)
        return counts

    async def _handle_sitemap(
        self, cfg: FeedConfig, state: FeedState, resp: Response, result: PollResult, pending: set[str] | None
    ) -> tuple[int, int]:
        found: SitemapOutcome = await self.sitemaps.poll(cfg, state, resp)
        state.title = found.title or state.title
        state.format = found.kind
        state.sitemap_urls = found.listed
        new, dup = await self._publish_candidates(cfg, found.entries, result, pending)
        if result.deferred:
            # As for the validators: the URL memory must not say this sitemap was fully read.
            state.children = {}
        else:
            await self.sitemaps.store_memory(found)
        return new, dup

    @staticmethod
    def _candidates(cfg: FeedConfig, parsed: ParsedFeed, base: str) -> dict[str, FeedEntry]:
        candidates: dict[str, FeedEntry] = {}
        for e in parsed.entries:
            try:
                entry = feed_entry(e, parsed, base, cfg.url, cfg.title)
            except ValueError as err:
                metrics.ENTRIES.labels("invalid").inc()
                log.info("skipping entry with unusable link %r in %s: %s", e.link[:200], cfg.url, err)
                continue
            candidates.setdefault(entry.url, entry)
        return candidates

    async def _publish_candidates(
        self, cfg: FeedConfig, candidates: dict[str, FeedEntry], result: PollResult, pending: set[str] | None
    ) -> tuple[int, int]:
        """Claim each canonical URL in the seen-set and publish the ones this poll won. (new, duplicates)"""
        urls = list(candidates)
        won = await self.seen.claim_many(urls)
        if pending is not None:
            # Every URL won, not only the one being published: the lease keeper renews the pending marks of
            # this set, and the publishes before a URL's own can wait minutes for backpressure. A mark that
            # expired meanwhile let another feed listing the same URL publish it a second time.
            pending.update(u for u, mine in zip(urls, won, strict=True) if mine)
        result.deferred = await self.seen.pending_elsewhere([u for u, mine in zip(urls, won, strict=True) if not mine])
        new = dup = 0
        for i, (url, mine) in enumerate(zip(urls, won, strict=True)):
            if not mine:
                dup += 1
                metrics.ENTRIES.labels("duplicate").inc()
                continue
            entry = candidates[url]
            try:
                await self.publish(streams.ENTRIES, entry)
            except BaseException:
                # Not published: let the next poll (or another feed) have it. Later claims of this
                # poll are released too, so none waits for its pending mark to expire.
                for u, m in zip(urls[i:], won[i:], strict=True):
                    if m:
                        with contextlib.suppress(Exception):
                            await self.seen.release(u)
                raise
            await self.seen.confirm(url)
            if pending is not None:
                pending.discard(url)
            new += 1
            result.entry_urls.append(url)
            metrics.ENTRIES.labels("new").inc()
            log.debug("new entry from %s", cfg.url, extra={"article_id": entry.article_id, "url": url})
        return new, dup

    def _failed(
        self,
        cfg: FeedConfig,
        state: FeedState,
        result: PollResult,
        reason: str,
        message: str,
        retry_after: float | None = None,
    ) -> PollResult:
        s = self.settings
        now = time.time()
        state.consecutive_failures += 1
        state.failing_since = state.failing_since or now
        state.last_error = f"{reason}: {message}"[:500]
        state.last_error_at = now
        was_unhealthy = state.unhealthy
        state.unhealthy = state.consecutive_failures >= s.unhealthy_after_failures
        delay = failure_delay(
            state.consecutive_failures,
            min_s=min(cfg.interval_s or s.min_poll_interval_s, s.min_poll_interval_s),
            max_s=s.max_poll_interval_s,
            retry_after=retry_after,
        )
        result.outcome = "error"
        result.error = state.last_error
        result.next_due = time.time() + jittered(delay, s.poll_jitter, self.rng)
        state.next_due_at = result.next_due
        metrics.FEED_POLLS.labels("error").inc()
        metrics.FEED_ERRORS.labels(reason).inc()
        level = logging.ERROR if state.unhealthy and not was_unhealthy else logging.WARNING
        log.log(
            level,
            "feed %s failed (%s, %d in a row%s): %s",
            cfg.url,
            reason,
            state.consecutive_failures,
            ", now unhealthy" if state.unhealthy else "",
            message[:300],
            extra={"feed_url": cfg.url, "reason": reason},
        )
        return result
