"""Fixtures of the notifier tests: real receivers on loopback (an HTTP server that counts, a real SMTP
server with STARTTLS and AUTH), articles indexed in the real Elasticsearch, alerts on the real stream, and
the notifier running in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from article_factory import parsed_article
from elasticsearch import AsyncElasticsearch

from newsflow_indexer.alerts import Match, delivery_key
from newsflow_notifier.main import service
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.documents import to_document
from newsflow_search.index_setup import ensure_index
from newsflow_search.rules import Rule, RuleStore
from newsflow_shared import streams
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.runtime import Publisher, ensure_groups

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))

# --- an HTTP receiver that counts ----------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST. Behaviour per path prefix: /fail answers 500, /reject 400, /slow answers after
    `slow_s`, /flaky 500 for the first `flaky_failures` requests then 200; anything else 200 after `delay_s`."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    slow_s: float = 3.0
    delay_s: float = 0.0
    flaky_failures: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def keys(self, path: str | None = None) -> Counter[str]:
        with self.lock:
            return Counter(r.headers.get("idempotency-key", "") for r in self.requests if path in (None, r.path))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.requests.append(
                    Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                seen = sum(1 for r in rec.requests if r.path == self.path)
            status = 200
            if self.path.startswith("/fail"):
                status = 500
            elif self.path.startswith("/reject"):
                status = 400
            elif self.path.startswith("/flaky") and seen <= rec.flaky_failures:
                status = 500
            elif self.path.startswith("/slow"):
                time.sleep(rec.slow_s)
            elif rec.delay_s:
                time.sleep(rec.delay_s)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the client gave up (a timeout): nothing to answer
                pass

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client killed mid-request (the kill -9 test) resets its connection: expected here

    server = Server(("127.0.0.1", 0), H)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


# --- a real SMTP server ----------------------------------------------------------------------------

SMTP_USER, SMTP_PASSWORD = "newsflow", "s3cret-pass"


@dataclass
class Mailbox:
    port: int
    ca_file: str
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@pytest.fixture
def smtp_server(tmp_path: Any) -> Iterator[Mailbox]:
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox(port=0, ca_file=str(ca_file))

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            return "250 OK queued"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=True would leave the client waiting for an answer

    import socket

    with socket.socket() as sock:  # the controller checks readiness by connecting: it needs a real port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    box.port = port
    try:
        yield box
    finally:
        controller.stop()


# --- articles, rules and alerts --------------------------------------------------------------------


def article(url: str, title: str, text: str, *, minutes_ago: float = 5, **kw: Any) -> ParsedArticle:
    return parsed_article(url, title, text, published_at=datetime.now(UTC) - timedelta(minutes=minutes_ago), **kw)


async def index_articles(es: AsyncElasticsearch, articles: list[ParsedArticle]) -> None:
    ops: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for a in articles:
        ops += [{"index": {"_index": "news", "_id": a.article_id}}, to_document(a, indexed_at=now)]
    resp = await es.bulk(operations=ops, refresh=True)
    assert not resp["errors"], resp


def alert_for(rule: Rule, a: ParsedArticle, snippet: str | None = None) -> Alert:
    """The alert the indexer publishes when `rule` matches `a`: its own Match, on the article's document."""
    match = Match(rule, a.article_id, to_document(a), snippet or f"a «{rule.query}» in the text", delivery_key(a))
    return match.alert(duplicates=[], indexed_at=datetime.now(UTC))


async def publish_alerts(redis: aioredis.Redis, alerts: list[Alert]) -> None:
    pub = Publisher("indexer", redis, max_lag=100_000, dedup_ttl_s=3600)
    for a in alerts:
        await pub.publish(streams.ALERTS, a)


@pytest.fixture
async def ready(
    es: AsyncElasticsearch, redis: aioredis.Redis, settings: Any
) -> AsyncIterator[tuple[AsyncElasticsearch, aioredis.Redis]]:
    """Index, rules and alerts indices, and every consumer group (what `newsflow init` makes)."""
    await ensure_index(es, settings)
    await ensure_groups(redis, streams.GROUPS)
    yield es, redis


async def add_rules(es: AsyncElasticsearch, *rules: Rule) -> None:
    store = RuleStore(es)
    for r in rules:
        await store.add(r, validate=False)


def notifier_settings(redis_url: str, es_url: str, **kw: Any) -> NotifierSettings:
    base: dict[str, Any] = {
        "redis_url": redis_url,
        "elasticsearch_url": es_url,
        "allowed_networks": ["127.0.0.0/8"],
        "claim_idle_ms": 3000,
        "claim_interval_s": 0.5,
        "max_deliveries": 3,
        "graceful_timeout_s": 5,
        "rules_refresh_s": 0.2,
        "delivery_timeout_s": 1.0,
        "delivery_attempts": 3,
        "delivery_initial_backoff_s": 0.05,
        "delivery_max_backoff_s": 0.2,
        "digest_tick_s": 0.2,
        "stream_trim_interval_s": 0.5,
        "telegram_api_url": "",
    }
    return NotifierSettings(**(base | kw))


@contextlib.asynccontextmanager
async def running_notifier(settings: NotifierSettings, **provide: object) -> AsyncIterator[Any]:
    instance = service.instance(settings, provide=provide)
    stop = asyncio.Event()
    task = asyncio.create_task(instance.serve(stop))
    try:
        await asyncio.wait_for(instance.ready.wait(), 60)
        yield instance
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`newsflow ...` as an operator runs it (in a thread: the event loop keeps serving the receivers)."""
    return subprocess.run(
        [NEWSFLOW, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **env}, timeout=120
    )


async def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, **env)


@dataclass
class Parts:
    """The notifier's pieces without the runtime, for tests that move the clock."""

    state: Any
    planner: Any
    scheduler: Any
    deliverer: Any
    http: Any

    async def notifications(self, redis: aioredis.Redis) -> list[Any]:
        from newsflow_shared.models import Notification
        from newsflow_shared.runtime import DATA_FIELD

        return [Notification.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.NOTIFICATIONS)]


@pytest.fixture
async def parts(ready: Any, redis_url: str, es_url: str) -> AsyncIterator[Parts]:
    from newsflow_alerting.state import NotifierState
    from newsflow_http.destinations import guarded_client
    from newsflow_notifier.channels.send import Sender
    from newsflow_notifier.deliver import Deliverer
    from newsflow_notifier.digests import DigestScheduler
    from newsflow_notifier.planner import Planner
    from newsflow_notifier.rules import RuleCache

    es, redis = ready
    s = notifier_settings(redis_url, es_url)
    state = NotifierState(redis)
    rules = RuleCache(RuleStore(es), 0.0)
    http = guarded_client(s, timeout_s=s.delivery_timeout_s)
    try:
        yield Parts(
            state=state,
            planner=Planner(state, rules, es, s),
            scheduler=DigestScheduler(redis, state, rules, 0.1),
            deliverer=Deliverer(state, rules, Sender(http, s), s, asyncio.Event()),
            http=http,
        )
    finally:
        await http.aclose()
