"""What the poller does with each entry of a parsed feed, for the corpus and fuzz tests of the feed
parser: an entry that `parse_feed` returns must get through every step without an exception."""

from __future__ import annotations

from datetime import UTC

from newsflow_fetcher.feedtypes import ParsedFeed
from newsflow_fetcher.poller import feed_entry
from newsflow_shared.models import FeedEntry
from newsflow_shared.urls import canonicalize


def publish_all(parsed: ParsedFeed, feed_url: str) -> list[FeedEntry]:
    """The `news.entries` messages the poller would publish, serialised and read back.

    The poller's own `feed_entry` for each item, except that an unusable link fails here where the
    poller skips it: the parser promises to hand out only links the poller can use.
    """
    out: list[FeedEntry] = []
    for e in parsed.entries:
        entry = feed_entry(e, parsed, feed_url, feed_url, None)
        for m in entry.media:
            canonicalize(m.url)  # resolved to an http(s) URL, like the entry's link
        for d in (e.published, e.updated):
            assert d is None or d.astimezone(UTC).tzinfo is UTC
        wire = entry.model_dump_json().encode("utf-8")
        out.append(FeedEntry.model_validate_json(wire))
    return out
