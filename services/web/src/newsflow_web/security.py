"""Safe by default: security headers on every response, CSRF tokens on every form, and writing only for whoever
holds the operator's token (`NEWSFLOW_WEB_TOKEN`).

- Headers: a CSP that allows scripts, styles, images and connections from this origin only (no inline script,
  no eval), no framing, no referrer to the news sites an analyst clicks through to.
- CSRF: signed double submit. A random nonce in a cookie, and in every form (and in an htmx header) its HMAC
  under a key derived from the token. Replicas share the key through the environment, so a form rendered by
  one replica posts to any other; a cookie planted by another site is useless without the key.
- Writing: the token, typed once on the sign-in page, becomes a signed session cookie (HttpOnly,
  SameSite=Strict, `web_session_hours`). Scripts may send `Authorization: Bearer <token>` instead; they carry
  no ambient cookie, so they need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsflow_web.settings import WebSettings

CSRF_COOKIE = "newsflow_csrf"
SESSION_COOKIE = "newsflow_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Links lead to the news sites themselves: they need not learn where the analyst came from. (Not
    # no-referrer: with it, browsers send `Origin: null` on this site's own form posts.)
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]


class Forbidden(Exception):
    """A write refused: `status` 401 (sign in first) or 403 (never allowed here), with a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Guard:
    """Keys and checks, made once per process from the settings."""

    def __init__(self, settings: WebSettings) -> None:
        token = settings.web_token.get_secret_value() if settings.web_token else None
        self.token = token
        # Without a token nothing can be written, so the key only has to outlive one process.
        seed = token.encode() if token else secrets.token_bytes(32)
        self.key = hmac.new(seed, b"newsflow-web signing key", hashlib.sha256).digest()
        self.session_s = settings.web_session_hours * 3600
        self.secure = settings.web_cookie_secure
        self._sessions = TimestampSigner(self.key, salt="newsflow-web session")

    @property
    def writable(self) -> bool:
        return self.token is not None

    # -- CSRF ---------------------------------------------------------------------------------------------
    def csrf_token(self, request: Request) -> str:
        nonce = request.state.csrf_nonce
        return hmac.new(self.key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()

    async def check_csrf(self, request: Request) -> None:
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        # Sec-Fetch-Site and Origin are set by the browser, not by pages; "null" comes from privacy settings and
        # sandboxes, and is left to the token below.
        if site == "cross-site" or (origin and origin != "null" and origin != _own_origin(request)):
            raise Forbidden(403, "This form was sent from another site; nothing was changed.")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not sent or not request.cookies.get(CSRF_COOKIE) or not hmac.compare_digest(sent, self.csrf_token(request)):
            raise Forbidden(403, "The form had expired or was not sent from this page; reload it and try again.")

    # -- who may write ------------------------------------------------------------------------------------
    def bearer_ok(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        return bool(self.token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token or "")

    def signed_in(self, request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not self.token or not cookie:
            return False
        try:
            return self._sessions.unsign(cookie, max_age=self.session_s) == b"editor"
        except BadSignature:
            return False

    def token_matches(self, typed: str) -> bool:
        return bool(self.token) and hmac.compare_digest(typed.encode(), (self.token or "").encode())

    def session_cookie(self) -> dict[str, Any]:
        return {
            "key": SESSION_COOKIE,
            "value": self._sessions.sign(b"editor").decode(),
            "max_age": int(self.session_s),
            "httponly": True,
            "samesite": "strict",
            "secure": self.secure,
        }

    async def require_writer(self, request: Request) -> None:
        """Every write: the page must be writable, the request signed in (or a bearer) and carry its CSRF token."""
        if not self.writable:
            raise Forbidden(
                403, "This Newsflow is read-only: the operator has not set NEWSFLOW_WEB_TOKEN, which writing needs."
            )
        if self.bearer_ok(request):
            return
        await self.check_csrf(request)
        if not self.signed_in(request):
            raise Forbidden(401, "Sign in with the operator's token to change rules or feeds.")


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


class SecurityMiddleware:
    """Pure ASGI (streams, server-sent events included): headers, the CSRF nonce cookie, and `Server-Timing`
    (the time to the first byte of the response, which the benchmark reads)."""

    def __init__(self, app: ASGIApp, secure_cookies: bool = False) -> None:
        self.app = app
        self.secure = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        nonce = _cookie(scope, CSRF_COOKIE)
        fresh = not nonce or len(nonce) > 64
        if fresh:
            nonce = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf_nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in HEADERS if k not in names]
                took = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={took:.1f}".encode()))
                if fresh:
                    flags = "; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if self.secure else "")
                    headers.append((b"set-cookie", f"{CSRF_COOKIE}={nonce}{flags}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            if name in jar:
                return jar[name].value
    return None
