"""Reading: the search page, the article page and exports."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from newsflow_search import explore
from newsflow_search.articles import get_article
from newsflow_search.explore import SearchError, encode_cursor
from newsflow_web.app import REQUEST_SECONDS, ctx, problem, render
from newsflow_web.params import SearchRequest, parse

router = APIRouter()
EXPORT_COLUMNS = [
    "published_at",
    "title",
    "url",
    "domain",
    "site_name",
    "section",
    "language",
    "authors",
    "word_count",
    "description",
    "article_id",
    "indexed_at",
]


def search_request(request: Request) -> SearchRequest:
    s = ctx(request).settings
    args: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        args.setdefault(key, []).append(value)
    return parse(
        args, max_query_chars=s.web_max_query_chars, page_size=s.web_page_size, max_page_size=s.web_max_page_size
    )


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/search", status_code=307)


@router.get("/search")
async def search_page(request: Request) -> Response:
    started = time.perf_counter()
    c = ctx(request)
    req = search_request(request)
    page = error = None
    try:
        page = await explore.run(c.es, c.settings.index_alias, req.search, req.after, req.offset)
    except SearchError as e:
        error = str(e)
    next_url = None
    if page is not None and page.last_sort and req.offset + len(page.hits) < page.total:
        next_url = req.url(after=encode_cursor(page.last_sort), page=req.page + 1)
    response = render(
        request,
        "search.html",
        req=req,
        page=page,
        error=error,
        next_url=next_url,
        histogram=_histogram(req, page) if page else None,
        page_title=f"{req.search.q} – search" if req.search.q else "Search",
    )
    REQUEST_SECONDS.labels("search").observe(time.perf_counter() - started)
    return response


def _histogram(req: SearchRequest, page: explore.Page) -> dict[str, Any] | None:
    """Bars for the SVG, heights scaled to the busiest bucket."""
    if not page.histogram:
        return None
    top = max(b.count for b in page.histogram) or 1
    bars = [{"start": b.start, "count": b.count, "height": round(100 * b.count / top, 1)} for b in page.histogram]
    # A few bars are drawn at the width thirty would have, centred, rather than stretched across the chart.
    slots = max(len(bars), 30)
    return {"bars": bars, "top": top, "unit": page.interval, "slots": slots, "offset": (slots - len(bars)) // 2}


@router.get("/articles/{article_id}")
async def article_page(request: Request, article_id: str) -> Response:
    started = time.perf_counter()
    c = ctx(request)
    view = await get_article(c.es, c.settings.index_alias, c.settings.alerts_index, article_id)
    if view is None:
        return problem(
            request, 404, "Article not found", "No article has this address. It may never have been indexed."
        )
    response = render(
        request, "article.html", a=view, doc=view.doc, page_title=view.doc.get("title") or view.doc.get("url")
    )
    REQUEST_SECONDS.labels("article").observe(time.perf_counter() - started)
    return response


# --- exports ---------------------------------------------------------------------------------------------


def export_name(req: SearchRequest, ext: str, now: datetime | None = None) -> str:
    """`newsflow-<query words>-<UTC time>.<ext>`: what was searched and when, in the file name."""
    words = re.sub(r"[^\w]+", "-", req.search.q, flags=re.UNICODE).strip("-").lower()[:60] or "all"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"newsflow-{words}-{stamp}.{ext}"


def _disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.get("/export.csv")
async def export_csv(request: Request) -> Response:
    return await _export(request, "csv")


@router.get("/export.jsonl")
async def export_jsonl(request: Request) -> Response:
    return await _export(request, "jsonl")


async def _export(request: Request, kind: str) -> Response:
    c = ctx(request)
    req = search_request(request)
    limit = c.settings.web_export_max
    rows = explore.export(c.es, c.settings.index_alias, req.search, limit)
    # The first batch is read before the response starts, so a query error is a page, not a broken file.
    try:
        first = await anext(rows)
    except StopAsyncIteration:
        first = None
    except SearchError as e:
        return problem(request, 400, "Cannot export this search", str(e))
    body = _csv_lines(first, rows, limit) if kind == "csv" else _jsonl_lines(first, rows, limit)
    media = "text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body,
        media_type=media,
        headers={"Content-Disposition": _disposition(export_name(req, kind)), "Cache-Control": "no-store"},
    )


async def _all(first: dict[str, Any] | None, rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    if first is None:
        return
    yield first
    async for row in rows:
        yield row


async def _csv_lines(
    first: dict[str, Any] | None, rows: AsyncIterator[dict[str, Any]], limit: int
) -> AsyncIterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf)

    def line(values: list[Any]) -> str:
        buf.seek(0)
        buf.truncate()
        w.writerow(values)
        return buf.getvalue()

    # A byte-order mark, so spreadsheet programs read the UTF-8 as UTF-8.
    yield "\ufeff" + line(EXPORT_COLUMNS)
    n = 0
    async for row in _all(first, rows):
        n += 1
        yield line([_cell(row.get(col)) for col in EXPORT_COLUMNS])
    if n >= limit:
        yield line([f"# stopped at {limit:,} articles (NEWSFLOW_WEB_EXPORT_MAX); narrow the search for the rest"])


async def _jsonl_lines(
    first: dict[str, Any] | None, rows: AsyncIterator[dict[str, Any]], limit: int
) -> AsyncIterator[str]:
    n = 0
    async for row in _all(first, rows):
        n += 1
        yield json.dumps(row, ensure_ascii=False) + "\n"
    if n >= limit:
        yield json.dumps({"truncated": True, "limit": limit}) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: a hostile headline must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
