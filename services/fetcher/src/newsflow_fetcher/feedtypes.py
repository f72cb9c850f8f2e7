"""What a parsed feed looks like, whatever its format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from newsflow_shared.models import MediaItem


class FeedParseError(Exception):
    """The document is not a feed, or has no usable entry."""


@dataclass
class ParsedEntry:
    link: str  # as the feed gave it (may be relative)
    guid: str | None = None
    title: str | None = None
    summary: str | None = None
    authors: list[str] = field(default_factory=list)
    published: datetime | None = None
    updated: datetime | None = None
    tags: list[str] = field(default_factory=list)
    language: str | None = None
    media: list[MediaItem] = field(default_factory=list)


@dataclass
class ParsedFeed:
    format: str  # "rss20", "atom10", "json", ... (feedparser's version names, or "json")
    title: str | None = None
    link: str | None = None
    language: str | None = None
    entries: list[ParsedEntry] = field(default_factory=list)
    # Publisher hints about how often to poll, in seconds.
    ttl_s: float | None = None
    update_period_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    malformed: bool = False


def clip(s: str | None, n: int) -> str | None:
    if s is None:
        return None
    s = s.strip()
    if not s:
        return None
    return s if len(s) <= n else s[: n - 1] + "…"
