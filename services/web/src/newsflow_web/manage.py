"""Changing things: signing in, saving a search as an alert rule, managing rules and feeds.

Every POST here depends on `Guard.require_writer` (token, session or bearer, and CSRF), and every change is
made through the libraries the CLI uses (`RuleStore`, `FeedRegistry`), so the web and `newsflow` agree.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

from elasticsearch import BadRequestError
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from newsflow_feeds.opml import OpmlError
from newsflow_feeds.registry import FeedInfo
from newsflow_search import explore
from newsflow_search.explore import Search
from newsflow_search.rules import InvalidRule, Rule
from newsflow_web.app import Ctx, ctx, problem, render
from newsflow_web.pages import search_request
from newsflow_web.params import SearchRequest, parse

router = APIRouter()
PREVIEW_DAYS = 7
MAX_OPML_BYTES = 2_000_000


async def writer(request: Request) -> None:
    await ctx(request).guard.require_writer(request)


Writer = Depends(writer)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- signing in ------------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str = "/search") -> Response:
    return render(request, "login.html", next=_local(next), error=None, page_title="Sign in")


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=1000)] = "", next: str = "/search") -> Response:
    c = ctx(request)
    await c.guard.check_csrf(request)
    if not c.guard.writable:
        return render(request, "login.html", status=403, next=_local(next), error=_READ_ONLY, page_title="Sign in")
    if not c.guard.token_matches(token):
        return render(
            request, "login.html", status=401, next=_local(next), error="That is not the token.", page_title="Sign in"
        )
    resp = see_other(_local(next))
    resp.set_cookie(**c.guard.session_cookie())
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    await ctx(request).guard.check_csrf(request)
    resp = see_other("/search")
    resp.delete_cookie("newsflow_session")
    return resp


_READ_ONLY = "This Newsflow is read-only: the operator has not set NEWSFLOW_WEB_TOKEN."


def _local(url: str) -> str:
    """Only paths of this site: `next` must never send a signed-in analyst elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/search"


# --- rules -----------------------------------------------------------------------------------------------


@router.get("/rules")
async def rules_page(request: Request, created: str | None = None) -> Response:
    c = ctx(request)
    rules = await c.rules.all()
    return render(request, "rules.html", rules=rules, created=created, page_title="Alert rules")


@router.get("/rules/new")
async def new_rule_page(request: Request) -> Response:
    req = search_request(request)
    preview = await _preview(ctx(request), req.search, _channel_count(request.query_params.get("webhook")))
    return render(
        request,
        "rule_new.html",
        req=req,
        preview=preview,
        form={"name": req.search.q[:80] or "", "log": True, "webhook": "", "slack": ""},
        error=None,
        page_title="Save as alert",
    )


@router.get("/rules/preview")
async def preview_fragment(request: Request) -> Response:
    req = search_request(request)
    channels = _channel_count(request.query_params.get("webhook"), request.query_params.get("slack"))
    channels += 1 if request.query_params.get("log") else 0
    preview = await _preview(ctx(request), req.search, max(channels, 1))
    return render(request, "_preview.html", preview=preview, req=req)


def _channel_count(*urls: str | None) -> int:
    return sum(1 for u in urls if u and u.strip())


async def _preview(c: Ctx, search: Search, channels: int) -> dict[str, Any]:
    """What the rule would have done over the last 7 days: its matches, the alerts they make (copies of a
    story alert once: equal fingerprints) and the messages those send, one per alert and channel."""
    try:
        rule = Rule(name="preview", query=search.rule_query() or "*", filters=search.rule_filters())
    except ValidationError as e:
        return {"error": str(e.errors()[0].get("msg"))}
    query = rule.es_query(since=f"now-{PREVIEW_DAYS}d")
    try:
        resp = await c.es.search(
            index=c.settings.index_alias,
            query=query,
            size=5,
            sort=[{"published_at": {"order": "desc", "missing": "_last"}}],
            _source=["title", "url", "domain", "published_at"],
            aggs={"stories": {"cardinality": {"field": "simhash", "precision_threshold": 40000}}},
            track_total_hits=True,
        )
    except BadRequestError as e:  # a query Lucene cannot parse: say why, next to the form
        return {"error": explore.query_error(e)}
    matches = int(resp["hits"]["total"]["value"])
    stories = min(matches, int(resp["aggregations"]["stories"]["value"]))
    return {
        "days": PREVIEW_DAYS,
        "matches": matches,
        "alerts": stories,
        "channels": channels,
        "messages": stories * channels,
        "recent": [{"article_id": h["_id"], **h["_source"]} for h in resp["hits"]["hits"]],
        "error": None,
    }


@router.post("/rules", dependencies=[Writer])
async def create_rule(request: Request) -> Response:
    c = ctx(request)
    form = await request.form()
    req = search_request_from_form(request, form)
    values = {k: str(form.get(k) or "").strip() for k in ("name", "webhook", "slack")}
    values["log"] = bool(form.get("log"))  # type: ignore[assignment]
    error = None
    try:
        rule = _rule_from_form(req, values)
        if await c.rules.get(rule.name) is not None:
            error = f"A rule named {rule.name!r} exists already: choose another name (or delete that rule first)."
        else:
            await c.rules.add(rule, source="web")
            return see_other(f"/rules?created={rule.id}")
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        error = f"{where}: {err.get('msg', '').removeprefix('Value error, ')}" if where else str(err.get("msg"))
    except InvalidRule as e:
        error = str(e)
    channels = max(1, int(values["log"]) + _channel_count(values["webhook"], values["slack"]))  # type: ignore[arg-type]
    preview = await _preview(c, req.search, channels)
    return render(
        request, "rule_new.html", status=400, req=req, preview=preview, form=values, error=error, page_title="Save"
    )


def search_request_from_form(request: Request, form: Any) -> SearchRequest:
    """The search a rule is saved from travels in the form as the search page's own parameters."""
    s = ctx(request).settings
    args: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key in ("q", "domain", "language", "section", "author"):
            args.setdefault(key, []).append(value)
    return parse(
        args, max_query_chars=s.web_max_query_chars, page_size=s.web_page_size, max_page_size=s.web_max_page_size
    )


def _rule_from_form(req: SearchRequest, values: dict[str, Any]) -> Rule:
    channels: list[Any] = ["log"] if values.get("log") else []
    if values.get("webhook"):
        channels.append({"webhook": values["webhook"]})
    if values.get("slack"):
        channels.append({"webhook": values["slack"], "slack": True})
    if not channels:
        raise InvalidRule("Choose at least one channel: the log, a webhook or Slack.")
    query = req.search.rule_query()
    if not query:
        raise InvalidRule("A rule needs words to match: type a query first (an empty search matches everything).")
    return Rule(
        name=values.get("name") or query[:80], query=query, filters=req.search.rule_filters(), channels=channels
    )


async def _find(c: Ctx, rule_id: str) -> Rule | None:
    return next((r for r in await c.rules.all() if r.id == rule_id), None)


@router.post("/rules/{rule_id}/{action}", dependencies=[Writer])
async def rule_action(request: Request, rule_id: str, action: str) -> Response:
    c = ctx(request)
    rule = await _find(c, rule_id)
    if rule is None:
        return problem(request, 404, "No such rule", "That rule does not exist any more (deleted elsewhere?).")
    if action in ("enable", "disable"):
        rule = rule.model_copy(update={"enabled": action == "enable"})
        await c.rules.add(rule, source="web", validate=False)
    elif action == "delete":
        await c.rules.remove(rule.name)
        rule = None
    else:
        return problem(request, 404, "No such action", f"Rules can be enabled, disabled or deleted, not {action!r}.")
    if request.headers.get("hx-request") == "true":
        if rule is None:
            return render(request, "_flash.html", kind="ok", message="Rule deleted.")
        return render(request, "_rule_row.html", rule=rule)
    return see_other("/rules")


# --- feeds -----------------------------------------------------------------------------------------------


def feed_health(f: FeedInfo) -> str:
    """As `newsflow feeds list` says it: new, ok, failing (errors lately) or unhealthy (failing for long)."""
    st = f.state
    if st.unhealthy:
        return "unhealthy"
    if st.consecutive_failures:
        return "failing"
    return "new" if st.last_success_at is None else "ok"


DONE = {
    "added": "Added {url}.",
    "exists": "{url} was there already.",
    "removed": "Removed {url}.",
    "missing": "There was no feed {url}.",
    "imported": "Imported {n} new feeds ({m} were there already).",
}


@router.get("/feeds")
async def feeds_page(request: Request, done: str = "", url: str = "", n: int = 0, m: int = 0) -> Response:
    c = ctx(request)
    message = DONE[done].format(url=url[:300], n=n, m=m) if done in DONE else None
    feeds = await c.feeds.list()
    counts: dict[str, int] = {}
    for f in feeds:
        counts[feed_health(f)] = counts.get(feed_health(f), 0) + 1
    return render(
        request,
        "feeds.html",
        feeds=feeds,
        health=feed_health,
        counts=counts,
        message=message,
        now=time.time(),
        page_title="Feeds",
    )


@router.post("/feeds", dependencies=[Writer])
async def add_feed(request: Request, url: Annotated[str, Form(max_length=2048)]) -> Response:
    c = ctx(request)
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        return await _feeds_error(request, f"{url[:100]!r} is not an http(s) URL of a feed.")
    try:
        cfg, created = await c.feeds.add(url)
    except ValueError as e:
        return await _feeds_error(request, f"Cannot add {url[:100]!r}: {e}")
    return see_other("/feeds?" + urlencode({"done": "added" if created else "exists", "url": cfg.url}))


@router.post("/feeds/remove", dependencies=[Writer])
async def remove_feed(request: Request, url: Annotated[str, Form(max_length=4096)]) -> Response:
    removed = await ctx(request).feeds.remove(url)
    return see_other("/feeds?" + urlencode({"done": "removed" if removed else "missing", "url": url[:300]}))


@router.post("/feeds/import", dependencies=[Writer])
async def import_opml(request: Request, opml: UploadFile) -> Response:
    data = await opml.read(MAX_OPML_BYTES + 1)
    if len(data) > MAX_OPML_BYTES:
        return await _feeds_error(request, f"That file is over {MAX_OPML_BYTES // 1_000_000} MB; an OPML list is not.")
    try:
        added, updated = await ctx(request).feeds.import_opml(data)
    except (OpmlError, ValueError) as e:
        return await _feeds_error(request, f"Cannot import {opml.filename or 'the file'}: {e}")
    return see_other(f"/feeds?done=imported&n={added}&m={updated}")


async def _feeds_error(request: Request, message: str) -> Response:
    c = ctx(request)
    feeds = await c.feeds.list()
    return render(
        request,
        "feeds.html",
        status=400,
        feeds=feeds,
        health=feed_health,
        counts={},
        message=None,
        error=message,
        now=time.time(),
        page_title="Feeds",
    )
