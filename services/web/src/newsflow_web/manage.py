"""Changing things: signing in, saving a search as an alert rule, managing rules and feeds.

Every POST here depends on `Guard.require_writer` (token, session or bearer, and CSRF), and every change is
made through the libraries the CLI uses (`RuleStore`, `FeedRegistry`), so the web and `newsflow` agree.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from elasticsearch import BadRequestError
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from newsflow_alerting.simulate import outlook
from newsflow_feeds.opml import OpmlError
from newsflow_search import explore
from newsflow_search.rules import InvalidRule, Rule, first_error, parse_minutes
from newsflow_web.app import Ctx, ctx, problem, render
from newsflow_web.pages import search_request
from newsflow_web.params import SearchRequest, parse

router = APIRouter()
PREVIEW_DAYS = 7
# The preview replays at most this many matches (the rest are counted), so that it answers while the analyst
# types: story grouping took 1-3 s for 650 matches of a week on the loaded benchmark machine.
PREVIEW_CAP = 500
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

# How long a rule can be snoozed from the rules page (the CLI takes any duration).
SNOOZES = {"1h": "1 hour", "4h": "4 hours", "1d": "1 day", "7d": "1 week"}
# Form fields of the channels, in the order the form shows them. Secrets (a webhook's signing secret, a
# Telegram bot token) go in the POST only: the preview's GET leaves them out (hx-params in rule_new.html).
URL_FIELDS = {"webhook": "webhook", "slack": "slack", "teams": "teams", "discord": "discord"}
TEXT_FIELDS = (
    "name",
    "mode",
    "digest_kind",
    "digest_every",
    "digest_at",
    "digest_tz",
    "storm_max",
    "storm_within",
    *URL_FIELDS,
    "webhook_secret",
    "email",
    "telegram_chat",
    "telegram_token",
)
FORM_DEFAULTS: dict[str, Any] = {
    "mode": "immediate",
    "digest_kind": "every",
    "digest_every": "1h",
    "digest_at": "08:00",
    "digest_tz": "UTC",
    "storm": True,
    "storm_max": "5",
    "storm_within": "10m",
    "log": True,
}


@router.get("/rules")
async def rules_page(request: Request, created: str | None = None) -> Response:
    c = ctx(request)
    rules = await c.rules.all()
    return render(
        request, "rules.html", rules=rules, created=created, snoozes=SNOOZES, now=_now(), page_title="Alert rules"
    )


@router.get("/rules/new")
async def new_rule_page(request: Request) -> Response:
    req = search_request(request)
    values = {**FORM_DEFAULTS, "name": req.search.q[:80]}
    preview = await _preview(ctx(request), req, values)
    return render(
        request, "rule_new.html", req=req, preview=preview, form=values, error=None, page_title="Save as alert"
    )


@router.get("/rules/preview")
async def preview_fragment(request: Request) -> Response:
    req = search_request(request)
    preview = await _preview(ctx(request), req, form_values(request.query_params))
    return render(request, "_preview.html", preview=preview, req=req)


def form_values(form: Any) -> dict[str, Any]:
    """The rule form as it was filled in (to build the rule, and to show the form again after an error)."""
    values: dict[str, Any] = {k: str(form.get(k) or "").strip() for k in TEXT_FIELDS}
    values["log"] = bool(form.get("log"))
    values["storm"] = bool(form.get("storm"))
    values["mode"] = "digest" if values["mode"] == "digest" else "immediate"
    values["digest_kind"] = "at" if values["digest_kind"] == "at" else "every"
    return values


def rule_from_form(req: SearchRequest, values: dict[str, Any], *, need_channels: bool = True) -> Rule:
    """The rule the form describes. InvalidRule or ValidationError (with the field) when it cannot be one."""
    query = req.search.rule_query()
    if not query:
        raise InvalidRule("A rule needs words to match: type a query first (an empty search matches everything).")
    channels: list[Any] = ["log"] if values.get("log") else []
    for name, kind in URL_FIELDS.items():
        if values.get(name):
            ch: dict[str, Any] = {"type": kind, "url": values[name]}
            if kind == "webhook" and values.get("webhook_secret"):
                ch["secret"] = values["webhook_secret"]
            channels.append(ch)
    if values.get("email"):
        channels.append({"type": "email", "to": values["email"]})
    if values.get("telegram_chat") or values.get("telegram_token"):
        channels.append(
            {"type": "telegram", "chat_id": values.get("telegram_chat"), "token": values.get("telegram_token")}
        )
    if not channels:
        if need_channels:
            raise InvalidRule("Choose at least one channel: the log, a webhook, Slack, Teams, Discord, e-mail.")
        channels = ["log"]
    digest: Any = None
    if values.get("mode") == "digest":
        if values.get("digest_kind") == "at":
            digest = {"at": values.get("digest_at") or "", "timezone": values.get("digest_tz") or "UTC"}
        else:
            digest = {"every": values.get("digest_every") or ""}
    storm: dict[str, Any] = {"enabled": bool(values.get("storm"))}
    if values.get("storm"):
        storm["max"] = values.get("storm_max") or "5"
        storm["within"] = values.get("storm_within") or "10m"
    return Rule(
        name=values.get("name") or query[:80],
        query=query,
        filters=req.search.rule_filters(),
        channels=channels,
        mode="digest" if digest else "immediate",
        digest=digest,
        storm_guard=storm,
    )


def _problem(e: Exception) -> str:
    return first_error(e) if isinstance(e, ValidationError) else str(e)


async def _preview(c: Ctx, req: SearchRequest, values: dict[str, Any]) -> dict[str, Any]:
    """What the rule would have done over the last 7 days under its mode: its matches, the stories they make
    (other outlets' reports and syndicated copies join a story: one alert), and the messages per channel, as
    `newsflow rules test` counts them (`newsflow_alerting.simulate`)."""
    try:
        rule = rule_from_form(req, {**values, "name": "preview"}, need_channels=False)
    except (ValidationError, InvalidRule) as e:
        return {"error": _problem(e)}
    channels = len(rule.channels)
    try:
        seen = await outlook(c.es, c.settings.index_alias, rule, f"now-{PREVIEW_DAYS}d", cap=PREVIEW_CAP)
        resp = await c.es.search(
            index=c.settings.index_alias,
            query=rule.es_query(since=f"now-{PREVIEW_DAYS}d"),
            size=5,
            sort=[{"published_at": {"order": "desc", "missing": "_last"}}],
            source=["title", "url", "domain", "published_at"],
            track_total_hits=False,
        )
    except BadRequestError as e:  # a query Lucene cannot parse: say why, next to the form
        return {"error": explore.query_error(e)}
    sent = seen.sent
    return {
        "days": PREVIEW_DAYS,
        "matches": seen.matches,
        "replayed": seen.replayed,
        "capped": seen.capped,
        "alerts": seen.stories,
        "channels": channels,
        "per_channel": sent.messages,
        "immediate": sent.immediate,
        "digests": sent.digests,
        "storm_digests": sent.storm_digests,
        "messages": sent.messages * channels,
        "mode": rule.digest.describe() if rule.digest else f"immediate, storm guard {rule.storm_guard.describe()}",
        "recent": [{"article_id": h["_id"], **h["_source"]} for h in resp["hits"]["hits"]],
        "error": None,
    }


@router.post("/rules", dependencies=[Writer])
async def create_rule(request: Request) -> Response:
    c = ctx(request)
    form = await request.form()
    req = search_request_from_form(request, form)
    values = form_values(form)
    error = None
    try:
        rule = rule_from_form(req, values)
        if await c.rules.get(rule.name) is not None:
            error = f"A rule named {rule.name!r} exists already: choose another name (or delete that rule first)."
        else:
            await c.rules.add(rule, source="web")
            return see_other(f"/rules?created={rule.id}")
    except (ValidationError, InvalidRule) as e:
        error = _problem(e)
    preview = await _preview(c, req, values)
    # Secrets are not sent back to the browser: the analyst types them again.
    shown = {**values, "webhook_secret": "", "telegram_token": ""}
    return render(
        request, "rule_new.html", status=400, req=req, preview=preview, form=shown, error=error, page_title="Save"
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


async def _find(c: Ctx, rule_id: str) -> Rule | None:
    return next((r for r in await c.rules.all() if r.id == rule_id), None)


def _now() -> datetime:
    return datetime.now(UTC)


@router.post("/rules/{rule_id}/{action}", dependencies=[Writer])
async def rule_action(request: Request, rule_id: str, action: str) -> Response:
    c = ctx(request)
    rule = await _find(c, rule_id)
    if rule is None:
        return problem(request, 404, "No such rule", "That rule does not exist any more (deleted elsewhere?).")
    message = None
    if action in ("enable", "disable"):
        rule = rule.model_copy(update={"enabled": action == "enable"})
        await c.rules.add(rule, source="web", validate=False)
        message = f"Rule “{rule.name}” {action}d."
    elif action == "snooze":
        length = str((await request.form()).get("for") or "")
        if length not in SNOOZES:
            return problem(request, 400, "Cannot snooze", f"Snooze for one of {', '.join(SNOOZES.values())}.")
        until = _now().replace(microsecond=0) + timedelta(minutes=parse_minutes(length, "snooze"))
        await c.rules.snooze(rule.name, until)
        rule = rule.model_copy(update={"snoozed_until": until})
        message = f"Rule “{rule.name}” snoozed until {until:%Y-%m-%d %H:%M} UTC: its matches are kept, not sent."
    elif action == "unsnooze":
        await c.rules.snooze(rule.name, None)
        rule = rule.model_copy(update={"snoozed_until": None})
        message = f"Rule “{rule.name}” is no longer snoozed."
    elif action == "delete":
        await c.rules.remove(rule.name)
        if request.headers.get("hx-request") == "true":
            return render(request, "_flash.html", kind="ok", message=f"Rule “{rule.name}” deleted.")
        return see_other("/rules")
    else:
        return problem(
            request, 404, "No such action", f"Rules can be enabled, disabled, snoozed or deleted, not {action!r}."
        )
    if request.headers.get("hx-request") == "true":
        return render(request, "_rule_row.html", rule=rule, snoozes=SNOOZES, now=_now(), message=message)
    return see_other("/rules")


# --- feeds -----------------------------------------------------------------------------------------------


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
    counts = Counter(f.health for f in feeds)
    return render(
        request,
        "feeds.html",
        feeds=feeds,
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
        counts={},
        message=None,
        error=message,
        now=time.time(),
        page_title="Feeds",
    )
