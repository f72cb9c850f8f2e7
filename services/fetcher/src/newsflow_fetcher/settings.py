"""The fetcher's settings (environment variables `NEWSFLOW_...`), on top of the common ones."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from newsflow_shared.settings import CommonSettings

DEFAULT_USER_AGENT = "NewsflowBot/0.1 (news ingestion; respects robots.txt)"


class FetcherSettings(CommonSettings):
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

    # --- HTTP ----------------------------------------------------------------------------------
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(20.0, gt=0, description="longest silence between two reads")
    total_timeout_s: float = Field(60.0, gt=0, description="whole request, redirects and body included")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="decoded body size cap")
    max_redirects: int = Field(5, ge=0)
    max_connections: int = Field(64, ge=1, description="requests in flight per replica, all hosts together")
    per_host_concurrency: int = Field(2, ge=1, description="requests in flight to one host")
    per_host_delay_s: float = Field(1.0, ge=0, description="minimum gap between request starts to one host")
    http2: bool = False

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

    # --- server-side request forgery guard ------------------------------------------------------
    # Off by default: a feed is untrusted input, and its links must not reach the cluster's own
    # network. `allowed_networks` opens precise holes (the tests and the local demo use
    # 127.0.0.0/8); `allow_private_addresses` switches the guard off entirely.
    allow_private_addresses: bool = False
    allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # raises ValueError on nonsense
        return v

    @model_validator(mode="after")
    def _intervals(self) -> FetcherSettings:
        if self.max_poll_interval_s < self.min_poll_interval_s:
            raise ValueError("max_poll_interval_s must be >= min_poll_interval_s")
        return self
