"""The web app's settings (environment variables `NEWSFLOW_...`): where it listens, who may write, its limits."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from newsflow_search.settings import SearchSettings
from newsflow_shared.settings import CommonSettings


class WebSettings(CommonSettings, SearchSettings):
    # Loopback by default: the page shows everything Newsflow indexed to whoever reaches it.
    web_host: str = "127.0.0.1"
    web_port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    # Unset: the page is read-only (search, read, watch). Set: writing (rules, feeds) needs it, once per session.
    web_token: SecretStr | None = Field(None, min_length=12)
    web_session_hours: float = Field(12.0, gt=0)
    # Behind a TLS-terminating proxy: cookies only over https.
    web_cookie_secure: bool = False
    web_max_query_chars: int = Field(1000, ge=10, le=10_000)
    web_page_size: int = Field(20, ge=1, le=100)
    web_max_page_size: int = Field(100, ge=1, le=500)
    # An export stops after this many articles (the file says so in its last line or element).
    web_export_max: int = Field(10_000, ge=1, le=1_000_000)
    # How many recent alerts the alerts page lists before live ones arrive.
    web_alerts_shown: int = Field(50, ge=1, le=500)

    @field_validator("web_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        # Compose passes `${NEWSFLOW_WEB_TOKEN:-}`: an empty token means none, not a 0-character secret.
        return None if isinstance(v, str) and not v.strip() else v
