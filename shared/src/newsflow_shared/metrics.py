"""Metrics every stage shares, defined once on the default registry (served at /metrics).

Service-specific metrics live in each service's own `metrics.py`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "newsflow_messages",
    "Stream messages handled, by outcome (ok, retry, dead_letter)",
    ["service", "stream", "outcome"],
)
DEAD_LETTERS = Counter(
    "newsflow_dead_letters",
    "Messages moved to a dead-letter stream, by reason",
    ["stream", "reason"],
)
HANDLER_SECONDS = Histogram(
    "newsflow_handler_seconds",
    "Time spent in a stage's handler per message (per batch for batch handlers)",
    ["service", "stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECLAIMED = Counter(
    "newsflow_reclaimed",
    "Pending messages taken over by this consumer's claimer (XAUTOCLAIM)",
    ["service", "stream"],
)
BACKPRESSURE_SECONDS = Counter(
    "newsflow_backpressure_seconds",
    "Seconds a producer waited because its output stream had too much unprocessed work",
    ["service", "stream"],
)
UNREPLICATED = Counter(
    "newsflow_unreplicated_appends",
    "Appends that fewer replicas than NEWSFLOW_REDIS_WAIT_REPLICAS confirmed within the timeout",
    ["service", "stream"],
)
STREAM_LAG = Gauge(
    "newsflow_stream_lag",
    "Entries a consumer group has not read yet",
    ["stream", "group"],
)
STREAM_PENDING = Gauge(
    "newsflow_stream_pending",
    "Entries read by a consumer group but not acknowledged yet",
    ["stream", "group"],
)
STREAM_LENGTH = Gauge("newsflow_stream_length", "Entries in a stream", ["stream"])
