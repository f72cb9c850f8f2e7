"""The fetcher's settings (environment variables `NEWSFLOW_...`), on top of the common ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from newsflow_archive.settings import ArchiveSettings
from newsflow_http.settings import HttpSettings
from newsflow_shared.settings import CommonSettings


class FetcherSettings(CommonSettings, HttpSettings, ArchiveSettings):
    # A YAML feed list seeding the registry at start (see feeds.yaml); the registry in Redis is the truth.
    feeds_file: Path | None = None

    # --- polling -------------------------------------------------------------------------------
    min_poll_interval_s: float = Field(60.0, gt=0, description="never poll one feed more often")
    max_poll_interval_s: float = Field(3600.0, gt=0, description="never wait longer; also the error-backoff cap")
    poll_jitter: float = Field(0.1, ge=0, le=0.5, description="+-fraction of randomness on every interval")
    poll_concurrency: int = Field(32, ge=1, description="feeds polled at once by one replica")
    feed_lease_s: float = Field(300.0, gt=1, description="a claimed feed is re-offered after this if its poller died")
    unhealthy_after_failures: int = Field(5, ge=1, description="consecutive failures that mark a feed unhealthy")
    validator_check_every: int = Field(
        10, ge=0, description="every Nth poll goes without ETag/Last-Modified to catch lying validators (0: never)"
    )

    # --- sitemaps -----------------------------------------------------------------------------
    sitemap_max_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="one sitemap document, decompressed (the protocol's own limit)"
    )
    sitemap_max_children: int = Field(50, ge=1, description="child sitemaps of an index read per poll")
    sitemap_max_age_days: float = Field(
        2.0, gt=0, description="a new sitemap URL dated earlier than this is an old article, not news"
    )

    # --- articles ------------------------------------------------------------------------------
    # Entries a replica holds at once. Most of them wait for a host's politeness slot rather than download,
    # so this is well above the connection limit: one slow host must not hold every slot.
    download_concurrency: int = Field(64, ge=1, description="articles in hand at once per replica")
    host_slot_wait_s: float = Field(
        2.0, gt=0, description="an article whose host stays busy this long goes to the back of the stream"
    )
    download_deadline_s: float = Field(
        120.0, gt=0, description="whole download of one article: robots.txt, redirects, retries, body"
    )
    download_retries: int = Field(2, ge=0, description="in-handler retries of a transient failure")
    retry_backoff_s: float = Field(0.5, ge=0)
    respect_robots: bool = True
    robots_cache_s: float = Field(3600.0, gt=0)
    seen_ttl_days: float = Field(30.0, gt=0, description="how long a canonical URL counts as downloaded")
    compress_above_bytes: int = Field(32 * 1024, ge=0)

    @model_validator(mode="after")
    def _intervals(self) -> FetcherSettings:
        if self.max_poll_interval_s < self.min_poll_interval_s:
            raise ValueError("max_poll_interval_s must be >= min_poll_interval_s")
        return self
