"""The indexer's Prometheus metrics (default registry, served by the runtime at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DOCUMENTS = Counter(
    "newsflow_indexer_documents",
    "Articles written to Elasticsearch, by outcome (indexed, exists = already there or newer, failed)",
    ["outcome"],
)
BULK_FAILURES = Counter(
    "newsflow_indexer_bulk_failures",
    "Bulk items that failed, by HTTP status (429/503 are retried; 400 goes to the dead-letter stream)",
    ["status"],
)
BULK_SECONDS = Histogram(
    "newsflow_indexer_bulk_seconds",
    "Time of one bulk write including its refresh",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
BATCH_RETRIES = Counter(
    "newsflow_indexer_batch_retries",
    "Batches retried because Elasticsearch was unreachable or not ready",
)
RULE_EVAL_SECONDS = Histogram(
    "newsflow_indexer_rule_eval_seconds",
    "Time to evaluate every rule against one batch (one _msearch) and record the alerts",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
RULE_ERRORS = Counter(
    "newsflow_indexer_rule_errors",
    "Rule searches that Elasticsearch refused in a batch's _msearch",
)
ALERTS_FIRED = Counter("newsflow_alerts_fired", "Alerts fired (one per rule and story)")
ALERTS_SUPPRESSED = Counter(
    "newsflow_alerts_suppressed",
    "Matches that did not fire: already alerted, or a syndicated copy of an alerted story",
    ["why"],
)
SEARCHABLE_LATENCY = Histogram(
    "newsflow_searchable_latency_seconds",
    "From an article's feed publication (published_at) or discovery (discovered_at) to searchable",
    ["since"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
