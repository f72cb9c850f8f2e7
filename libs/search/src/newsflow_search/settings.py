"""Where Elasticsearch is and how Newsflow's indices are named: shared by the indexer, the notifier,
the web app and the CLI (environment variables `NEWSFLOW_...`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_file=None, extra="ignore")

    # One node, or several comma-separated: the client spreads requests over them and moves a request to
    # another node when one is down.
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_ca_certs: Path | None = None
    request_timeout_s: float = Field(30.0, gt=0)

    # Index names. The alias is what search UIs and the CLI query; backing indices are `<alias>-000001`...
    index_alias: str = "news"
    rules_index: str = "newsflow-rules"
    alerts_index: str = "newsflow-alerts"
    index_shards: int = Field(1, ge=1)
    # Unset: one replica of every shard once the cluster has more than one data node, none on a single
    # node (where a replica could never be placed and the cluster would stay yellow).
    index_replicas: int | None = Field(None, ge=0, description="replicas per shard; unset follows the cluster")

    @field_validator("elasticsearch_url")
    @classmethod
    def _es_scheme(cls, v: str) -> str:
        urls = [u.strip().rstrip("/") for u in v.split(",") if u.strip()]
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"NEWSFLOW_ELASTICSEARCH_URL must start with http:// or https:// (got {u!r})")
        if not urls:
            raise ValueError("NEWSFLOW_ELASTICSEARCH_URL is empty")
        return ",".join(urls)

    @property
    def elasticsearch_nodes(self) -> list[str]:
        return self.elasticsearch_url.split(",")
