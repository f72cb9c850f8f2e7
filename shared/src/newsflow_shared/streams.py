"""Stream and consumer-group names: the one place they are spelled.

Workers do not know their place in the pipeline beyond the stream they read and the stream they
write; the wiring below is what the init step and `newsflow status` read.
"""

from __future__ import annotations

ENTRIES = "news.entries"
RAW = "news.raw"
PARSED = "news.parsed"
ALERTS = "news.alerts"

FETCHER_GROUP = "fetcher"
PARSER_GROUP = "parser"
INDEXER_GROUP = "indexer"
# news.alerts is a notification stream for consumers outside Newsflow, who attach their own groups;
# it is capped by length (ALERTS_MAXLEN) because nobody is obliged to read it.
ALERTS_MAXLEN = 100_000
# Streams capped by length on every append (only those nobody is obliged to read).
MAXLEN: dict[str, int] = {ALERTS: ALERTS_MAXLEN}

DLQ_SUFFIX = ".dlq"


def dlq(stream: str) -> str:
    """The dead-letter stream of `stream`."""
    return stream + DLQ_SUFFIX


# stream -> the consumer groups that read it, created at position 0 by the init step.
GROUPS: dict[str, tuple[str, ...]] = {
    ENTRIES: (FETCHER_GROUP,),
    RAW: (PARSER_GROUP,),
    PARSED: (INDEXER_GROUP,),
}

PIPELINE: tuple[str, ...] = (ENTRIES, RAW, PARSED, ALERTS)
# Streams whose consumers dead-letter what they cannot use, and those dead-letter streams.
DEAD_LETTER_SOURCES: tuple[str, ...] = (ENTRIES, RAW, PARSED)
DEAD_LETTER_STREAMS: tuple[str, ...] = tuple(dlq(s) for s in DEAD_LETTER_SOURCES)

# Redis keys that are not streams, also named once.
FEEDS_KEY = "newsflow:feeds"  # hash: feed url -> FeedState JSON
FEEDS_DUE_KEY = "newsflow:feeds:due"  # sorted set: feed url -> next due unix time
FEED_LEASE_PREFIX = "newsflow:feeds:lease:"  # string per feed being polled, with a TTL
FEEDS_CONFIG_KEY = "newsflow:feeds:config"  # hash: feed url -> FeedConfig JSON (what operators set)
FEEDS_UNHEALTHY_KEY = "newsflow:feeds:unhealthy"  # set of feed urls failing for long
SEEN_PREFIX = "newsflow:seen:"  # canonical-URL seen-set (see newsflow_fetcher.seen)
ROBOTS_PREFIX = "newsflow:robots:"
JOBS_PREFIX = "newsflow:jobs:"  # hash per reparse/backfill job: its cursor and counts, for resuming
SITEMAP_KNOWN_PREFIX = "newsflow:sitemap:known:"  # string per sitemap document: the URLs it listed last
FAILURES_PREFIX = "newsflow:failures:"  # hash per stream:group: message id -> first/last failure
PUBLISHED_PREFIX = "newsflow:published:"  # stream:key of messages published at most once (alerts)
