"""Stream and consumer-group names: the one place they are spelled.

Workers do not know their place in the pipeline beyond the stream they read and the stream they
write; the wiring below is what the init step and `newsflow status` read.
"""

from __future__ import annotations

ENTRIES = "news.entries"
RAW = "news.raw"
PARSED = "news.parsed"
ALERTS = "news.alerts"
NOTIFICATIONS = "news.notifications"

FETCHER_GROUP = "fetcher"
PARSER_GROUP = "parser"
INDEXER_GROUP = "indexer"
NOTIFIER_GROUP = "notifier"
# Streams capped by length on every append: only those nobody is obliged to read. None today: news.alerts
# has the notifier's group, which must see every alert, so it is trimmed like a pipeline stream (`safe_trim`:
# only what every group acknowledged).
MAXLEN: dict[str, int] = {}
# Streams whose producers never wait for their readers. The indexer publishes alerts without backpressure:
# a slow or dead notifier must never hold indexing back. news.alerts then grows by the alert rate (one entry
# of about a kilobyte per rule and story) until the notifier is back; its lag is on /metrics and in status.
NO_BACKPRESSURE: frozenset[str] = frozenset({ALERTS})
# Streams that keep their newest entries after every group acknowledged them, for readers without a group
# (the web page's live alerts catching up, `newsflow status`); trimming beyond that is as for any stream.
RETAIN: dict[str, int] = {ALERTS: 10_000}

DLQ_SUFFIX = ".dlq"


def dlq(stream: str) -> str:
    """The dead-letter stream of `stream`."""
    return stream + DLQ_SUFFIX


# stream -> the consumer groups that read it, created at position 0 by the init step.
GROUPS: dict[str, tuple[str, ...]] = {
    ENTRIES: (FETCHER_GROUP,),
    RAW: (PARSER_GROUP,),
    PARSED: (INDEXER_GROUP,),
    ALERTS: (NOTIFIER_GROUP,),
    NOTIFICATIONS: (NOTIFIER_GROUP,),
}

PIPELINE: tuple[str, ...] = (ENTRIES, RAW, PARSED, ALERTS, NOTIFICATIONS)
# Streams whose consumers dead-letter what they cannot use, and those dead-letter streams.
DEAD_LETTER_SOURCES: tuple[str, ...] = (ENTRIES, RAW, PARSED, ALERTS, NOTIFICATIONS)
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
NOTIFIER_PREFIX = "newsflow:notifier:"  # the notifier's state: stories, deliveries, digests (newsflow_alerting.state)
