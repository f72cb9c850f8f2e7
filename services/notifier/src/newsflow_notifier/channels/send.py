"""One attempt to deliver one message on one channel, and what its failure means.

HTTP channels (webhook, Slack, Teams, Discord, Telegram) go through the guarded client
(`newsflow_http.destinations.guarded_client`): the SSRF guard and allow-list of the fetcher, no redirects.
Every request carries `Idempotency-Key` (message id and channel) so that a receiver can drop the repeat a
crash between its answer and our record can cause; a webhook with a secret is signed (HMAC-SHA256 over
the timestamp and the body). E-mail goes to the operator's SMTP server with aiosmtplib.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
import httpx

from newsflow_http.ssrf import BlockedAddressError
from newsflow_notifier.channels import render
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.rules import Channel

log = logging.getLogger("newsflow.notifier.channels")
SIGNATURE_HEADER = "X-Newsflow-Signature"
TIMESTAMP_HEADER = "X-Newsflow-Timestamp"


class SendError(Exception):
    """A failed attempt: `reason` is short and machine-readable; `permanent` means retrying cannot help."""

    def __init__(self, reason: str, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.permanent = permanent


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body): what a receiver recomputes to verify."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def classify_status(status: int) -> SendError | None:
    if 200 <= status < 300:
        return None
    if status in (408, 425, 429) or status >= 500:
        return SendError(f"http-{status}", f"HTTP {status}")
    # 3xx: a moved webhook must be re-configured, not followed; other 4xx: the receiver refuses this body.
    return SendError(f"http-{status}", f"HTTP {status}", permanent=True)


class Sender:
    def __init__(self, http: httpx.AsyncClient, settings: NotifierSettings) -> None:
        self.http = http
        self.settings = settings
        self._tls: ssl.SSLContext | None = None

    async def send(self, ch: Channel, key: str, content: render.Content, webhook_body: dict[str, Any]) -> str:
        """Deliver once; returns a short detail ("HTTP 200"); raises SendError."""
        if ch.type == "log":
            log.warning(
                "ALERT %s: %s",
                content.rule_name,
                content.subject.removeprefix(f"{content.rule_name}: "),
                extra={"rule": content.rule_name, "idempotency_key": key, "stories": len(content.items)},
            )
            return "logged"
        if ch.type == "email":
            return await self._email(ch, key, content)
        url, body = self._http_request(ch, content, webhook_body)
        return await self._post(url, body, key, ch.secret)

    def _http_request(self, ch: Channel, c: render.Content, webhook_body: dict[str, Any]) -> tuple[str, Any]:
        if ch.type == "slack":
            return ch.url or "", render.slack(c)
        if ch.type == "teams":
            return ch.url or "", render.teams(c)
        if ch.type == "discord":
            return ch.url or "", render.discord(c)
        if ch.type == "telegram":
            api = self.settings.telegram_api_url.rstrip("/")
            return f"{api}/bot{ch.token}/sendMessage", render.telegram(c, ch.chat_id or "")
        return ch.url or "", webhook_body

    async def _post(self, url: str, payload: Any, key: str, secret: str | None) -> str:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if secret:
            ts = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(secret, ts, body)
        try:
            # The whole exchange is bounded: httpx's timeouts are per read, and a receiver that answers
            # one byte at a time would never trip them.
            async with asyncio.timeout(self.settings.delivery_timeout_s):
                resp = await self.http.post(url, content=body, headers=headers)
        except BlockedAddressError as e:
            raise SendError("blocked", str(e), permanent=True) from e
        except (TimeoutError, httpx.TimeoutException) as e:
            raise SendError("timeout", f"no answer within {self.settings.delivery_timeout_s:g} s") from e
        except httpx.ConnectError as e:
            raise SendError("connect-error", f"cannot connect: {e}") from e
        except httpx.InvalidURL as e:
            raise SendError("bad-url", str(e), permanent=True) from e
        except httpx.HTTPError as e:
            raise SendError("protocol-error", f"{type(e).__name__}: {e}") from e
        if (err := classify_status(resp.status_code)) is not None:
            raise err
        return f"HTTP {resp.status_code}"

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            cafile = str(self.settings.smtp_ca_certs) if self.settings.smtp_ca_certs else None
            self._tls = ssl.create_default_context(cafile=cafile)
        return self._tls

    async def _email(self, ch: Channel, key: str, c: render.Content) -> str:
        s = self.settings
        if not s.smtp_host:
            raise SendError("smtp-not-configured", "NEWSFLOW_SMTP_HOST is not set", permanent=True)
        msg = EmailMessage()
        msg["Subject"] = render._limit(f"[Newsflow] {c.subject}", 200)
        msg["From"] = s.smtp_from
        msg["To"] = ", ".join(ch.to)
        msg["Date"] = formatdate(localtime=False)
        # The same key on every attempt: mail systems and clients drop a repeat with a known Message-ID.
        msg["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', key)}@newsflow>"
        msg["X-Newsflow-Idempotency-Key"] = key
        msg.set_content(render.text(c))
        msg.add_alternative(render.html_body(c), subtype="html")
        try:
            _errors, reply = await aiosmtplib.send(
                msg,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                tls_context=self._tls_context() if s.smtp_security != "none" else None,
                timeout=s.delivery_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            raise SendError("smtp-refused", str(e), permanent=all(500 <= c < 600 for c in codes)) from e
        except aiosmtplib.SMTPResponseException as e:
            raise SendError(f"smtp-{e.code}", f"{e.code} {e.message}", permanent=500 <= e.code < 600) from e
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as e:
            raise SendError("timeout", f"SMTP: no answer within {s.delivery_timeout_s:g} s") from e
        except (aiosmtplib.SMTPException, OSError) as e:
            raise SendError("smtp-error", f"{type(e).__name__}: {e}") from e
        return f"SMTP {reply[:60]}"
