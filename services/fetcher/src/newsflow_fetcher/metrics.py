"""The fetcher's Prometheus metrics (default registry, served by the runtime at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FEED_POLLS = Counter(
    "newsflow_fetcher_feed_polls",
    "Feed polls by outcome: new (parsed, had new entries), no_new, not_modified (HTTP 304), "
    "unchanged (200 with the same body), error",
    ["outcome"],
)
FEED_ERRORS = Counter("newsflow_fetcher_feed_errors", "Failed feed polls by reason", ["reason"])
FEED_MALFORMED = Counter("newsflow_fetcher_feed_malformed", "Malformed feeds parsed for their usable entries")
LYING_VALIDATORS = Counter(
    "newsflow_fetcher_lying_validators", "Feeds caught answering 304 / same ETag for changed content"
)
ENTRIES = Counter("newsflow_fetcher_entries", "Feed entries by result: new, duplicate, invalid", ["result"])
PAGES_FETCHED = Counter("newsflow_fetcher_pages_fetched", "Article pages downloaded and sent to news.raw")
PAGES_FAILED = Counter(
    "newsflow_fetcher_pages_failed",
    "Article downloads that failed, by reason (permanent ones are dead-lettered, others retried)",
    ["reason"],
)
PAGES_DEFERRED = Counter(
    "newsflow_fetcher_pages_deferred",
    "Articles sent to the back of news.entries because their host stayed busy (not failures)",
)
FETCH_SECONDS = Histogram(
    "newsflow_fetcher_fetch_seconds",
    "HTTP fetch time (all hops, body included) by kind: feed, sitemap (children of an index), article, robots",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
)
FEEDS_TOTAL = Gauge("newsflow_fetcher_feeds", "Feeds registered")
FEEDS_UNHEALTHY = Gauge("newsflow_fetcher_feeds_unhealthy", "Feeds failing for long (still retried at the cap)")
FEEDS_IN_FLIGHT = Gauge("newsflow_fetcher_feeds_in_flight", "Feeds being polled by this replica now")
ARCHIVE_RECORDS = Counter("newsflow_fetcher_archived_pages", "Pages written to the WARC archive")
ARCHIVE_FAILURES = Counter(
    "newsflow_fetcher_archive_failures", "Pages that could not be archived (they still went to the parser)"
)
ARCHIVE_SECONDS = Histogram(
    "newsflow_fetcher_archive_seconds",
    "Time to compress and append one page's WARC records",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
