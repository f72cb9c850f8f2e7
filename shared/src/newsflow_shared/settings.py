"""Configuration from the environment (prefix `NEWSFLOW_`), with defaults for a developer machine.

Each service extends `CommonSettings` with its own fields in its own package; the CLI and the tests
read the same classes, so a value set once in the environment means the same thing everywhere.
"""

from __future__ import annotations

import socket
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_file=None, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # With Sentinels (host:port, comma-separated), the primary is asked of them and followed through a
    # failover; `redis_url` then gives only the database number and the password.
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    redis_sentinel_master: str = "newsflow"
    # Replication is asynchronous: after each append, WAIT until this many replicas have it (at most
    # `redis_wait_timeout_ms`), so that an append the primary acknowledged and then lost with it is
    # retried on the new primary instead (docs/decisions.md, "Acknowledged writes and a failover").
    # Unset: 1 with Sentinels, 0 (never wait) with a single server, which has no replica to wait for.
    redis_wait_replicas: int | None = Field(None, ge=0)
    # Below the 2 s socket timeout that Sentinel-made connections get (runtime/housekeeping.py): a longer WAIT
    # would be cut off by the client as a dead connection.
    redis_wait_timeout_ms: int = Field(200, ge=1, le=1500)

    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$")
    # Unique per replica: the Redis consumer name. Defaults to host name + pid, which is unique on
    # one machine and in containers alike.
    consumer_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{__import__('os').getpid()}")

    # Delivery guarantees (see docs/RELIABILITY.md)
    max_deliveries: int = Field(5, ge=1, description="deliveries before a message is dead-lettered")
    claim_idle_ms: int = Field(60_000, ge=100, description="pending this long, a message is reclaimed")
    claim_interval_s: float = Field(5.0, gt=0)
    # Backpressure: a producer pauses while its output stream holds more unprocessed entries than this.
    backpressure_max_lag: int = Field(2_000, ge=1)
    # How often a service trims its input streams of entries every group has acknowledged.
    stream_trim_interval_s: float = Field(10.0, gt=0)

    # Consumers that left (old replicas, earlier runs) stay listed in their group forever; once idle this
    # long with nothing pending they are removed, which loses nothing and keeps `newsflow status` true.
    stale_consumer_s: float = Field(3600.0, gt=0)
    # How long a published idempotency key (an alert id) is remembered to refuse a second publish.
    publish_dedup_ttl_days: float = Field(30.0, gt=0)
    graceful_timeout_s: float = Field(25.0, gt=0)
    # Loopback by default: /metrics and /health tell anyone who can reach them about the pipeline.
    # Compose sets 0.0.0.0 inside the container network, where Prometheus and healthchecks need it.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535, description="0 picks a free port")

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, v: object) -> object:
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @field_validator("redis_sentinels")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        for hp in v:
            host, _, port = hp.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"NEWSFLOW_REDIS_SENTINELS wants host:port entries (got {hp!r})")
        return v

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(hp.rpartition(":")[0].strip("[]"), int(hp.rpartition(":")[2])) for hp in self.redis_sentinels]

    @property
    def wait_replicas(self) -> int:
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinels else 0

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"NEWSFLOW_REDIS_URL must start with redis://, rediss:// or unix:// (got {v!r})")
        return v
