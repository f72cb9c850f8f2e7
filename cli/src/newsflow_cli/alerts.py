"""`newsflow alerts list|show|tail`: what fired (the alerts record index) and what became of it (the
notifier's state in Redis: the story it joined, the digest it went into, every delivery per channel)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow_alerting.fate import fate
from newsflow_cli.common import fail, load_settings, run
from newsflow_shared import streams
from newsflow_shared.runtime import DATA_FIELD, make_redis

app = typer.Typer(no_args_is_help=True, help="Alerts: what fired, and where it was sent.")


async def _list(rule: str | None, since: str | None, size: int) -> list[dict[str, Any]]:
    from newsflow_alerting.state import NotifierState
    from newsflow_search.es import make_client
    from newsflow_search.query import parse_since

    s = load_settings()
    es, redis = make_client(s), make_redis(s)
    try:
        flt: list[dict[str, Any]] = [{"term": {"kind": "fingerprint"}}, {"term": {"fired": True}}]
        if rule:
            flt.append({"term": {"rule_name": rule}})
        if since:
            flt.append({"range": {"created_at": {"gte": parse_since(since)}}})
        resp = await es.options(ignore_status=404).search(
            index=s.alerts_index, query={"bool": {"filter": flt}}, size=size, sort=[{"created_at": "desc"}]
        )
        state = NotifierState(redis)
        rows = []
        for h in resp.get("hits", {}).get("hits", []):
            alert = h["_source"].get("alert") or {}
            rows.append({"alert": alert, **await fate(state, alert.get("alert_id", ""))})
        return rows
    finally:
        await es.close()
        await redis.aclose()


@app.command("list")
def list_(
    rule: str | None = typer.Option(None, "--rule", help="only this rule's alerts"),
    since: str | None = typer.Option(None, "--since", help="7d, 12h, 30m or a date"),
    size: int = typer.Option(20, "--size", "-n", min=1, max=10_000),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per alert"),
) -> None:
    """The newest alerts, with what the notifier made of each (sent, digested, joined a story, snoozed)."""
    rows = run(_list(rule, since, size))
    if json_out:
        for r in rows:
            typer.echo(json.dumps(r, default=str, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} alert(s), newest first")
    for col in ("matched", "id", "rule", "title", "outlet", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        a = r["alert"]
        table.add_row(
            str(a.get("matched_at", ""))[:19].replace("T", " "),
            str(a.get("alert_id", ""))[:12],
            escape(a.get("rule_name") or ""),
            escape(a.get("title") or a.get("url") or ""),
            escape(a.get("domain") or ""),
            escape(r["status"]),
        )
    Console(width=200).print(table)


async def _show(alert_id: str) -> dict[str, Any] | None:
    from newsflow_alerting.state import NotifierState
    from newsflow_search.es import make_client

    s = load_settings()
    es, redis = make_client(s), make_redis(s)
    try:
        resp = await es.options(ignore_status=404).search(
            index=s.alerts_index,
            query={"bool": {"filter": [{"term": {"kind": "fingerprint"}}, {"prefix": {"alert_id": alert_id}}]}},
            size=2,
        )
        hits = resp.get("hits", {}).get("hits", [])
        if len(hits) != 1:
            return {"ambiguous": len(hits)} if hits else None
        alert = hits[0]["_source"]["alert"]
        state = NotifierState(redis)
        became = await fate(state, alert["alert_id"])
        story = await state.story(became.get("story_id") or alert["alert_id"])
        also = [m.model_dump(mode="json") for m in story.also] if story else []
        return {"alert": alert, **became, "also_reported_by": also}
    finally:
        await es.close()
        await redis.aclose()


@app.command("show")
def show(
    alert_id: str = typer.Argument(..., help="an alert id (or its first characters, as `alerts list` shows)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """One alert: the article, its story ("also reported by"), and each channel's delivery."""
    found = run(_show(alert_id))
    if found is None:
        fail(f"no alert {alert_id!r}")
        return
    if "ambiguous" in found:
        fail(f"{alert_id!r} is the start of more than one alert id: give more of it")
        return
    if json_out:
        typer.echo(json.dumps(found, default=str, ensure_ascii=False, indent=2))
        return
    a, con = found["alert"], Console(width=200)
    con.print(f"[bold]{escape(a.get('title') or a['url'])}[/bold]", highlight=False)
    con.print(f"  {a['url']}", highlight=False)
    con.print(f"  rule {escape(a['rule_name'])!r} ({escape(a['query'])}), alert {a['alert_id']}", highlight=False)
    con.print(f"  matched {str(a.get('matched_at'))[:19]}, published {str(a.get('published_at'))[:19]}")
    if a.get("snippet"):
        con.print("  " + escape(a["snippet"]).replace("«", "[bold yellow]").replace("»", "[/bold yellow]"))
    con.print(f"status: {escape(found['status'])}" + (f" ({escape(found['detail'])})" if found.get("detail") else ""))
    for m in found["also_reported_by"]:
        con.print(f"  also reported by {escape(m.get('domain') or '')}: {m['url']}", highlight=False)
    for _key, d in found["deliveries"].items():
        latency = f", {d['latency_s']:.2f} s after indexing" if d.get("latency_s") is not None else ""
        con.print(
            f"  {escape(d['channel'])}: {d['status']} after {d['attempts']} attempt(s), {escape(d['detail'])}"
            f" at {d['last_at'][:19]}{latency}",
            highlight=False,
        )


async def _tail(rule: str | None, count: int | None, timeout_s: float | None) -> int:
    from newsflow_shared.models import Alert

    redis = make_redis(load_settings())
    shown = 0
    last: bytes | str = "$"
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    try:
        await redis.ping()
        typer.echo(f"following {streams.ALERTS} (Ctrl-C to stop)", err=True)
        while count is None or shown < count:
            block = 1000 if deadline is None else max(1, int((deadline - loop.time()) * 1000))
            if deadline is not None and loop.time() >= deadline:
                break
            got = await redis.xread({streams.ALERTS: last}, block=block, count=100)
            for _stream, entries in got:
                for mid, fields in entries:
                    last = mid
                    with contextlib.suppress(ValueError, KeyError):
                        a = Alert.model_validate_json(fields[DATA_FIELD])
                        if rule and a.rule_name != rule:
                            continue
                        when = a.matched_at.astimezone(UTC).strftime("%H:%M:%S")
                        typer.echo(f"{when}  {a.rule_name}  {a.title or ''}  {a.url}  ({a.alert_id[:12]})")
                        shown += 1
    finally:
        await redis.aclose()
    return shown


@app.command("tail")
def tail(
    rule: str | None = typer.Option(None, "--rule", help="only this rule's alerts"),
    count: int | None = typer.Option(None, "--count", help="stop after this many"),
    timeout: float | None = typer.Option(None, "--timeout", help="stop after this many seconds"),
) -> None:
    """Follow alerts as they fire (Ctrl-C to stop)."""
    with contextlib.suppress(KeyboardInterrupt):
        run(_tail(rule, count, timeout))
