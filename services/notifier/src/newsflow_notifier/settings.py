"""Notifier settings (env prefix NEWSFLOW_), with defaults for a developer machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from newsflow_http.settings import HttpSettings
from newsflow_search.settings import SearchSettings
from newsflow_shared.settings import CommonSettings


class NotifierSettings(CommonSettings, SearchSettings, HttpSettings):
    # Rules are cached and reloaded this often (a snooze or a new channel applies within it).
    rules_refresh_s: float = Field(5.0, gt=0)
    # Alerts decided at once (each takes its rule's lock only while it decides), and messages sent at once.
    plan_concurrency: int = Field(16, ge=1, le=256)
    send_concurrency: int = Field(32, ge=1, le=1024)

    # One delivery: each attempt is bounded as a whole (a receiver that trickles its answer too); the
    # attempts of one handling back off exponentially with jitter; after the last the message is
    # dead-lettered with the reason (`newsflow dlq replay news.notifications` sends it again).
    delivery_timeout_s: float = Field(10.0, gt=0)
    delivery_attempts: int = Field(4, ge=1, le=20)
    delivery_initial_backoff_s: float = Field(1.0, gt=0)
    delivery_max_backoff_s: float = Field(30.0, gt=0)

    # Story grouping: another outlet's report joins a story with activity within this window.
    story_window_h: float = Field(24.0, gt=0, le=24 * 14)
    # How alike two reports' facts must be (newsflow_alerting.stories; tuned on the labelled set).
    story_threshold: float = Field(0.55, gt=0, le=1)
    story_min_shared: int = Field(2, ge=1)
    # How often due digests are looked for.
    digest_tick_s: float = Field(1.0, gt=0)
    # How long decisions, stories, digests and delivery outcomes are kept in Redis.
    state_ttl_days: float = Field(30.0, gt=0)

    # E-mail: the SMTP server is the operator's, named here; rules only name recipients.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Newsflow <newsflow@localhost>"
    smtp_ca_certs: Path | None = None
    # Telegram's Bot API (a local stand-in in tests).
    telegram_api_url: str = "https://api.telegram.org"

    @field_validator("smtp_host", "smtp_username", "smtp_password", "smtp_ca_certs", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        # Compose passes `${VAR:-}` as an empty string: that means "not set", not "log in as nobody".
        return None if v == "" else v
