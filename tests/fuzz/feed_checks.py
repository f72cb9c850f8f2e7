"""What the poller does with each entry of a parsed feed, for the corpus and fuzz tests of the feed
parser: an entry that `parse_feed` returns must get through every step without an exception."""

from __future__ import annotations

from datetime import UTC
from urllib.parse import urljoin

from newsflow_fetcher.feedtypes import ParsedFeed
from newsflow_shared.ids import article_id
from newsflow_shared.models import FeedEntry
from newsflow_shared.urls import canonicalize


def publish_all(parsed: ParsedFeed, feed_url: str) -> list[FeedEntry]:
    """The `news.entries` messages the poller would publish, serialised and read back.

    Mirrors `Poller._publish_entries` step by step, except that an unusable link fails here where
    the poller skips it: the parser promises to hand out only links the poller can use.
    """
    out: list[FeedEntry] = []
    for e in parsed.entries:
        link = urljoin(feed_url, e.link.strip())
        canonical = canonicalize(link)
        media = [m.model_copy(update={"url": urljoin(feed_url, m.url)}) for m in e.media]
        for m in media:
            canonicalize(m.url)  # resolved to an http(s) URL, like the entry's link
        for d in (e.published, e.updated):
            assert d is None or d.astimezone(UTC).tzinfo is UTC
        entry = FeedEntry(
            url=canonical,
            link=link,
            article_id=article_id(canonical),
            feed_url=feed_url,
            feed_title=parsed.title,
            title=e.title,
            summary=e.summary,
            authors=e.authors,
            published_at=e.published,
            updated_at=e.updated,
            tags=e.tags,
            language=e.language or parsed.language,
            media=media,
            guid=e.guid,
        )
        wire = entry.model_dump_json().encode("utf-8")
        out.append(FeedEntry.model_validate_json(wire))
    return out
