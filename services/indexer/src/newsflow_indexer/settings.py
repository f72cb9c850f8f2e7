"""Indexer settings (env prefix NEWSFLOW_), with defaults for a developer machine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from newsflow_search.settings import SearchSettings
from newsflow_shared.settings import CommonSettings


class IndexerSettings(CommonSettings, SearchSettings):
    # A YAML rules file seeding the rules index at start (see rules.yaml); the index is the truth.
    rules_file: Path | None = None

    # Bulk batching: a batch is written when it holds batch_size articles or batch_linger_s passed.
    # Under load the stream already holds a full batch when the previous bulk returns, so the linger only
    # delays articles that arrive one by one (benchmarks: 1 s of linger was half the p95 latency).
    batch_size: int = Field(500, ge=1, le=10_000)
    batch_linger_s: float = Field(0.2, ge=0)
    # Bulks written at once; articles that arrive meanwhile wait and make the next batch bigger.
    bulk_max_in_flight: int = Field(2, ge=1)
    # How a bulk makes its documents searchable before the rules run on them. "true" refreshes the shard
    # at once: at most one small segment per bulk, i.e. a few a second given the linger, which the merge
    # policy absorbs. "wait_for" rides the index's scheduled refresh (refresh_interval 1 s): fewer
    # segments, but up to a second per bulk while the next batch waits (p95 2.4 s against 1.2 s when
    # measured side by side, docs/PERFORMANCE.md).
    bulk_refresh: Literal["true", "wait_for"] = "true"
    bulk_max_retries: int = Field(5, ge=0, description="per-item retries of 429/503 inside one bulk")
    bulk_initial_backoff_s: float = Field(0.5, gt=0)
    # Elasticsearch unreachable: the batch is retried with backoff up to this interval, forever.
    unavailable_max_backoff_s: float = Field(10.0, gt=0)

    # Rules are cached in memory and reloaded from their index this often.
    rules_refresh_s: float = Field(5.0, gt=0)
