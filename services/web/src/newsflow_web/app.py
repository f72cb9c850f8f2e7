"""The web app: FastAPI, Jinja2 templates, htmx for the live parts. The browser talks to this process only;
this process talks to Elasticsearch and Redis through the project's libraries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import AsyncElasticsearch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from prometheus_client import REGISTRY, Histogram, make_asgi_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsflow_feeds.registry import FeedRegistry
from newsflow_search.es import is_healthy, make_client
from newsflow_search.explore import FACETS, MARK_CLOSE, MARK_OPEN
from newsflow_search.rules import RuleStore
from newsflow_shared.runtime import make_redis
from newsflow_web.deliveries import NotifierDeliveries
from newsflow_web.live import AlertFeed
from newsflow_web.params import FACET_TITLES, PRESETS
from newsflow_web.security import Forbidden, Guard, SecurityMiddleware
from newsflow_web.settings import WebSettings

log = logging.getLogger("newsflow.web")
PACKAGE = Path(str(resources.files("newsflow_web")))
REQUEST_SECONDS = Histogram(
    "newsflow_web_request_seconds",
    "Time to the response of a page or fragment, by route",
    ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10),
)
LANGUAGES = {
    "en": "English",
    "ar": "Arabic",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "ru": "Russian",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "zh": "Chinese",
    "ja": "Japanese",
    "tr": "Turkish",
    "fa": "Persian",
    "uk": "Ukrainian",
    "he": "Hebrew",
}
RTL = {"ar", "fa", "he", "ur"}


@dataclass
class Ctx:
    """What every route needs, made once in the lifespan."""

    settings: WebSettings
    es: AsyncElasticsearch
    redis: aioredis.Redis
    guard: Guard
    feed: AlertFeed
    rules: RuleStore
    feeds: FeedRegistry
    deliveries: NotifierDeliveries
    templates: Jinja2Templates


def ctx(request: Request) -> Ctx:
    return request.app.state.ctx  # type: ignore[no-any-return]


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    c = ctx(request)
    values.setdefault("page_title", None)
    return c.templates.TemplateResponse(
        request,
        name,
        {
            "settings": c.settings,
            "writable": c.guard.writable,
            "signed_in": c.guard.signed_in(request),
            "csrf_token": c.guard.csrf_token(request),
            **values,
        },
        status_code=status,
    )


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    env = templates.env
    env.filters["marked"] = marked
    env.filters["when"] = when
    env.filters["day"] = day
    env.filters["ago"] = ago
    env.filters["language"] = lambda code: LANGUAGES.get(str(code or ""), str(code or "unknown"))
    env.globals["rtl"] = lambda code: str(code or "").split("-")[0] in RTL
    env.globals["LANGUAGES"] = LANGUAGES
    # The search form's fixed vocabulary, the same on every page that draws it.
    env.globals.update(facets=FACETS, facet_titles=FACET_TITLES, presets=PRESETS)
    return templates


def marked(text: str | None) -> Markup:
    """Highlighted text from Elasticsearch: escaped first, then only its own markers become <mark>."""
    safe = str(escape(text or ""))
    return Markup(safe.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>"))


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    t = _dt(value)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else ""


def day(value: Any) -> str:
    t = _dt(value)
    return t.astimezone(UTC).strftime("%d %b %Y") if t else ""


def ago(value: Any, now: datetime | None = None) -> str:
    t = _dt(value)
    if t is None:
        return ""
    s = int(((now or datetime.now(UTC)) - t).total_seconds())
    if s < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return "just now"


def create_app(settings: WebSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        es = make_client(settings)
        redis = make_redis(settings)
        feed = AlertFeed(redis)
        app.state.ctx = Ctx(
            settings=settings,
            es=es,
            redis=redis,
            guard=Guard(settings),
            feed=feed,
            rules=RuleStore(es, index=settings.rules_index, news_alias=settings.index_alias),
            feeds=FeedRegistry(redis),
            deliveries=NotifierDeliveries(redis),
            templates=make_templates(),
        )
        tail = asyncio.create_task(feed.run(), name="alerts-tail")
        try:
            yield
        finally:
            feed.close()
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
            await es.close()
            await redis.aclose()
            log.info("web app stopped: open requests finished, clients closed")

    app = FastAPI(title="Newsflow", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityMiddleware, secure_cookies=settings.web_cookie_secure)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")
    app.mount("/metrics", make_asgi_app(REGISTRY))
    _handlers(app)
    from newsflow_web import manage, pages, watch

    app.include_router(pages.router)
    app.include_router(watch.router)
    app.include_router(manage.router)

    @app.get("/health")
    @app.get("/health/ready")
    async def health(request: Request) -> JSONResponse:
        c = ctx(request)
        checks = {"elasticsearch": await is_healthy(c.es), "redis": await _redis_ok(c.redis)}
        return JSONResponse({"ok": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503)

    @app.get("/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app


async def _redis_ok(redis: aioredis.Redis) -> bool:
    try:
        return bool(await asyncio.wait_for(redis.ping(), 3))
    except Exception:
        return False


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def problem(request: Request, status: int, title: str, message: str) -> Response:
    """An error as a page, or, for an htmx request, as a message in the page's announcement area."""
    if _is_htmx(request):
        resp = render(request, "_flash.html", status=200, kind="error", message=message)
        resp.headers["HX-Retarget"] = "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
        return resp
    return render(request, "error.html", status=status, title=title, message=message, page_title=title)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        title = "Sign in to make changes" if exc.status == 401 else "Not allowed"
        return problem(request, exc.status, title, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return problem(request, 404, "Not found", str(exc.detail) if exc.detail != "Not Found" else "No such page.")
        return problem(request, exc.status_code, "Request refused", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return problem(request, 400, "Bad request", f"{where or 'request'}: {first.get('msg', 'not valid')}")

    @app.exception_handler(ESConnectionError)
    @app.exception_handler(ConnectionTimeout)
    async def es_down(request: Request, exc: Exception) -> Response:
        log.warning("Elasticsearch unreachable: %s", exc)
        return problem(
            request, 503, "Search is unavailable", "Elasticsearch is not reachable right now. Try again soon."
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> Response:
        log.warning("Redis unreachable: %s", exc)
        return problem(request, 503, "Unavailable", "Redis is not reachable right now. Try again soon.")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return problem(request, 500, "Something went wrong", "The page failed; the error is in the web app's log.")
