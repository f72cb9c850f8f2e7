"""Settings of Newsflow's outbound HTTP: limits, politeness and the SSRF guard (environment `NEWSFLOW_...`).

Every outbound request Newsflow makes goes through the same guard and allow-list: feed polls, article
downloads, robots.txt, alert webhooks, site discovery.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_USER_AGENT = "NewsflowBot/0.1 (news ingestion; respects robots.txt)"


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_file=None, extra="ignore")

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
