"""The notifier's Prometheus metrics (default registry, served by the runtime at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "newsflow_notifier_deliveries",
    "Messages per channel type and outcome: delivered, retried (an attempt failed), failed (dead-lettered), "
    "dropped (the rule or channel was removed), duplicate (already delivered, not sent again)",
    ["channel", "outcome"],
)
LATENCY = Histogram(
    "newsflow_notifier_latency_seconds",
    "From the article indexed (searchable) to its alert delivered, per channel type (immediate messages)",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
)
SEND_SECONDS = Histogram(
    "newsflow_notifier_send_seconds",
    "One delivery attempt, per channel type",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERTS = Counter(
    "newsflow_notifier_alerts",
    "Alerts decided, by route: immediate, digest, storm (held for a storm digest), snoozed, also (another "
    "outlet's report of an open story), dropped (no such rule)",
    ["route"],
)
DIGESTS = Counter("newsflow_notifier_digests", "Digests sealed (with at least one story), by kind", ["kind"])
STORMS = Gauge("newsflow_notifier_rules_in_storm", "Rules whose storm guard holds their stories for a digest")
GROUPING_ERRORS = Counter(
    "newsflow_notifier_grouping_errors",
    "Story look-ups that failed (Elasticsearch unavailable): the alert became a story of its own",
)
