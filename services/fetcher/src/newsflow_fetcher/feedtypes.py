"""What a parsed feed looks like, whatever its format, and the rules every parser applies per item.

An entry that leaves a parser is one the poller can publish: its link resolves against the feed's
URL to something `canonicalize` accepts, its media URLs resolve, its text encodes as UTF-8 and its
dates convert to UTC. An item that cannot meet that is skipped (`UnusableItem`) and a field that
cannot is dropped, each noted in `ItemProblems`, so that one bad item never costs the feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, BeforeValidator

from newsflow_shared.models import MediaItem
from newsflow_shared.urls import canonicalize

log = logging.getLogger("newsflow.fetcher.feeds")

# Far above any real article URL, far below what makes a stream message or an Elasticsearch
# keyword (32 KiB) fail.
MAX_LINK_CHARS = 4096
MAX_LIST = 50  # authors, tags or media of one entry
MAX_NAME_CHARS = 300  # one author or tag


class FeedParseError(Exception):
    """The document is not a feed, or has no usable entry."""


class UnusableItem(ValueError):
    """One item of a feed cannot become an entry; the message says why."""


def clean_text(s: str) -> str:
    """`s` without lone surrogates (U+FFFD instead), UTF-16 pairs joined into their character.

    JSON escapes and XML character references can spell surrogates; such a string cannot be encoded
    as UTF-8, so it would fail only later, when the entry is serialised into a stream message.
    """
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return s


def clip(s: str | None, n: int) -> str | None:
    if not isinstance(s, str):
        return None
    s = clean_text(s).strip()
    if not s:
        return None
    return s if len(s) <= n else s[: n - 1] + "…"


def _names(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        c = clip(v, MAX_NAME_CHARS)
        if c and c not in out:
            out.append(c)
            if len(out) == MAX_LIST:
                break
    return out


def _utc_safe(d: datetime | None) -> datetime | None:
    """`d` (naive means UTC), or None when it has no UTC equivalent (year 9999 at -14:00)."""
    if not isinstance(d, datetime):
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    try:
        d.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return d


def clean_media(m: MediaItem) -> MediaItem:
    return m.model_copy(
        update={
            "url": clean_text(m.url).strip(),
            "medium": clip(m.medium, 100),
            "mime_type": clip(m.mime_type, 200),
            "caption": clip(m.caption, 2000),
            "credit": clip(m.credit, 500),
        }
    )


def _clean_media_list(media: list[MediaItem]) -> list[MediaItem]:
    return [clean_media(m) for m in media[:MAX_LIST]]


def _clipped(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda s: clip(s, limit))


# Both parsers build entries; each field's type carries its normalisation, so the guarantees hold in one place.
_Names = BeforeValidator(_names)
_UtcSafe = BeforeValidator(_utc_safe)


class ParsedEntry(BaseModel):
    """One item of a feed, whatever its format, normalised as it is built."""

    # as the feed gave it (may be relative); resolves against the feed URL (see article_link)
    link: Annotated[str, BeforeValidator(clean_text)]
    guid: Annotated[str | None, _clipped(2000)] = None
    title: Annotated[str | None, _clipped(1000)] = None
    summary: Annotated[str | None, _clipped(10_000)] = None
    authors: Annotated[list[str], _Names] = []
    published: Annotated[datetime | None, _UtcSafe] = None
    updated: Annotated[datetime | None, _UtcSafe] = None
    tags: Annotated[list[str], _Names] = []
    language: Annotated[str | None, _clipped(35)] = None
    media: Annotated[list[MediaItem], BeforeValidator(_clean_media_list)] = []


@dataclass
class ParsedFeed:
    format: str  # "rss20", "atom10", "json", ... (feedparser's version names, or "json")
    title: str | None = None
    language: str | None = None
    entries: list[ParsedEntry] = field(default_factory=list)
    # Publisher hints about how often to poll, in seconds.
    ttl_s: float | None = None
    update_period_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    malformed: bool = False
    skipped: int = 0  # items that could not become entries


# --- per-item rules ---------------------------------------------------------------------------------


def _check_url(url: str, base: str) -> str:
    """`url` resolved against `base`; raises ValueError unless it is an http(s) URL with a host."""
    if len(url) > MAX_LINK_CHARS:
        raise ValueError(f"longer than {MAX_LINK_CHARS} characters")
    resolved = urljoin(base, url) if base else url
    # Without a base a relative link is left for the caller to resolve.
    if base or urlsplit(resolved).scheme:
        canonicalize(resolved)
    return resolved


def article_link(candidates: Iterable[Any], base: str) -> str:
    """The first candidate that makes an article URL, as the feed gave it.

    Candidates are the item's link, its other alternate links, its permalink guid... in order of
    preference; a broken first choice does not hide a good second one. Raises UnusableItem.
    """
    problem = "no link"
    for c in candidates:
        if not isinstance(c, str) or not (link := clean_text(c).strip()):
            continue
        try:
            _check_url(link, base)
        except ValueError as e:
            if problem == "no link":  # the first choice's reason, without quoting the link twice
                problem = f"unusable link: {e}" if link[:50] in str(e) else f"unusable link {link[:200]!r}: {e}"
            continue
        return link
    raise UnusableItem(problem)


def usable_media(media: Iterable[MediaItem], base: str, problems: ItemProblems, where: str) -> list[MediaItem]:
    """Media whose URL resolves to an http(s) URL, resolved; the others are dropped and noted."""
    out: list[MediaItem] = []
    for m in media:
        url = clean_text(m.url).strip()
        try:
            resolved = _check_url(url, base)
        except ValueError as e:
            problems.drop(where, f"media URL {url[:200]!r}: {e}")
            continue
        out.append(m.model_copy(update={"url": resolved}))
    return out


def describe(index: int, *names: Any) -> str:
    """How a warning names an item: its position and the first identifier it has."""
    for n in names:
        if isinstance(n, str | int) and not isinstance(n, bool) and str(n).strip():
            return f"item {index} ({clean_text(str(n)).strip()[:80]!r})"
    return f"item {index}"


class ItemProblems:
    """Items skipped and fields dropped while parsing one feed.

    Counted in full and described by the first few, so that a feed of 10,000 broken items costs
    one log line and a few warnings, not 10,000.
    """

    EXAMPLES = 3

    def __init__(self) -> None:
        self.skipped = 0
        self.crashed = 0
        self.dropped = 0
        self._skips: list[str] = []
        self._drops: list[str] = []

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self._skips) < self.EXAMPLES:
            self._skips.append(f"{where}: {why}")

    def crash(self, feed_url: str, where: str, error: Exception) -> None:
        """An item failed in a way no rule foresaw: it costs this item, never the feed. The first
        such failure of a feed is logged with its traceback, which shows what to fix."""
        if not self.crashed:
            log.warning("feed %s: %s could not be read", feed_url, where, exc_info=error)
        self.crashed += 1
        self.skip(where, f"{type(error).__name__}: {error}")

    def drop(self, where: str, why: str) -> None:
        self.dropped += 1
        if len(self._drops) < self.EXAMPLES:
            self._drops.append(f"{where}: {why}")

    def report(self, feed_url: str, total: int, warnings: list[str]) -> None:
        """Add the summary to `warnings` and log skipped items (with the feed URL) once."""
        if self.dropped:
            warnings.append(f"{self.dropped} unusable field(s) dropped: {'; '.join(self._drops)}"[:1000])
        if self.skipped:
            text = f"{self.skipped} of {total} item(s) skipped: {'; '.join(self._skips)}"[:1000]
            warnings.append(text)
            log.warning("feed %s: %s", feed_url or "(no URL)", text, extra={"feed_url": feed_url})


def convert_items(
    items: list[Any], entry: Callable[[Any, int, str], ParsedEntry], problems: ItemProblems, feed_url: str
) -> list[ParsedEntry]:
    """`entry(item, index, where)` for each item, skipping the unusable ones: one item never costs the feed."""
    out: list[ParsedEntry] = []
    for i, item in enumerate(items):
        where = describe(i, item.get("id"), item.get("title")) if isinstance(item, dict) else describe(i)
        try:
            out.append(entry(item, i, where))
        except UnusableItem as why:
            problems.skip(where, str(why))
        except Exception as e:
            problems.crash(feed_url, where, e)
    return out
