"""`newsflow status`: the pipeline at a glance.

Streams (length, each group's pending, lag and oldest pending entry, consumers and their idle time),
dead letters, feed health, Elasticsearch (health, documents, size of the `news` alias), rules and the
last alerts. A table in a terminal, `--json` for machines. An unreachable Redis or Elasticsearch is one
line in the output and the rest is still shown; the exit code is 1 then, 0 when everything answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import typer

from newsflow_cli.common import CliSettings
from newsflow_shared import streams
from newsflow_shared.redact import redact
from newsflow_shared.runtime import DATA_KEY, make_redis

# A feed is "slow" when it is overdue by this much beyond its interval: the pollers are not keeping up
# with it (too many feeds for the replicas, or a server that keeps them waiting).
SLOW_GRACE_S = 60.0
LAST_ALERTS = 5


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _short(e: BaseException) -> str:
    from elastic_transport import ConnectionError as ESConnectionError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(e, ESConnectionError | RedisConnectionError | OSError):
        return "connection failed"
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


async def _stream_info(r: Any, name: str, now_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {"stream": name, "exists": False, "length": 0, "entries_added": 0, "groups": []}
    if not await r.exists(name):
        return out
    info = await r.xinfo_stream(name)
    out.update(
        exists=True,
        length=int(info.get("length", 0)),
        entries_added=int(info.get("entries-added", info.get("length", 0))),
    )
    for g in await r.xinfo_groups(name):
        gname = g["name"]
        pending = int(g.get("pending") or 0)
        lag = g.get("lag")
        oldest_age = None
        if pending:
            first = await r.xpending_range(name, gname, min="-", max="+", count=1)
            if first:
                oldest_age = max(0.0, (now_ms - _id_ms(first[0]["message_id"])) / 1000)
        consumers = [
            {
                "name": c["name"],
                "pending": int(c.get("pending") or 0),
                "idle_s": round(int(c.get("idle") or 0) / 1000, 1),
                # Redis >= 7.2 tells how long since the consumer last read anything at all.
                "inactive_s": round(int(c["inactive"]) / 1000, 1) if c.get("inactive") not in (None, -1) else None,
            }
            for c in await r.xinfo_consumers(name, gname)
        ]
        out["groups"].append(
            {
                "group": gname,
                "pending": pending,
                # None when Redis cannot tell (after a trim or deletion); the entries are still tracked.
                "lag": None if lag is None else int(lag),
                "oldest_pending_age_s": None if oldest_age is None else round(oldest_age, 1),
                "last_delivered_id": g.get("last-delivered-id"),
                "consumers": consumers,
            }
        )
    return out


def _classify_feeds(infos: list[Any], now: float) -> dict[str, Any]:
    healthy, slow, failing = [], [], []
    for f in infos:
        st = f.state
        interval = f.config.interval_s or st.current_interval_s or 0.0
        overdue = f.due_at is not None and not f.leased and now - f.due_at > max(SLOW_GRACE_S, interval)
        entry = {
            "url": f.url,
            "title": st.title or f.config.title,
            "polls": st.polls,
            "not_modified": st.not_modified,
            "items_seen": st.items_seen,
            "last_status": st.last_status,
            "last_success_age_s": None if st.last_success_at is None else round(now - st.last_success_at, 1),
        }
        if st.consecutive_failures or st.unhealthy:
            failing.append(
                {
                    **entry,
                    "consecutive_failures": st.consecutive_failures,
                    "unhealthy": st.unhealthy,
                    "last_error": st.last_error,
                }
            )
        elif overdue:
            slow.append({**entry, "overdue_s": round(now - f.due_at, 1)})
        else:
            healthy.append(entry)
    return {
        "total": len(infos),
        "healthy": len(healthy),
        "slow": len(slow),
        "failing": len(failing),
        "unhealthy": sum(1 for f in failing if f["unhealthy"]),
        "polls": sum(f.state.polls for f in infos),
        "not_modified": sum(f.state.not_modified for f in infos),
        "items_seen": sum(f.state.items_seen for f in infos),
        "slow_feeds": slow,
        "failing_feeds": failing,
    }


async def _redis_part(settings: CliSettings, report: dict[str, Any]) -> None:

    from newsflow_feeds.registry import FeedRegistry

    r = make_redis(settings, decode_responses=True)
    try:
        await r.ping()
        report["redis"]["ok"] = True
        now_ms = int(time.time() * 1000)
        report["streams"] = [await _stream_info(r, s, now_ms) for s in streams.PIPELINE]
        dlq = {s: int(await r.xlen(s)) for s in streams.DEAD_LETTER_STREAMS}
        report["dead_letters"] = {"total": sum(dlq.values()), "streams": dlq}
        try:
            report["feeds"] = _classify_feeds(await FeedRegistry(r).list(), time.time())
        except Exception as e:  # a feed record another version wrote: say so, keep the rest
            report["errors"].append(f"feeds: cannot read the feed registry ({_short(e)})")
        if report["alerts"]["source"] is None:
            await _alerts_from_stream(r, report)
    except Exception as e:
        report["redis"]["ok"] = False
        report["redis"]["error"] = _short(e)
        report["errors"].append(
            f"Redis at {redact(settings.redis_url)} is unreachable ({_short(e)}); "
            "is it running? Set NEWSFLOW_REDIS_URL."
        )
    finally:
        await r.aclose()


async def _alerts_from_stream(r: Any, report: dict[str, Any]) -> None:
    """Fallback when Elasticsearch did not answer: the alerts stream still has the recent ones."""
    last = []
    for _id, fields in await r.xrevrange(streams.ALERTS, count=LAST_ALERTS):
        try:
            a = json.loads(fields[DATA_KEY])
        except (KeyError, ValueError):
            continue
        last.append(
            {
                "rule": a.get("rule_name"),
                "title": a.get("title"),
                "url": a.get("url"),
                "matched_at": a.get("matched_at"),
            }
        )
    report["alerts"].update(source="stream", last=last, total=None)


async def _es_part(settings: CliSettings, report: dict[str, Any]) -> None:
    from newsflow_search.es import make_client
    from newsflow_search.rules import RuleStore

    s = settings
    es = make_client(s, request_timeout=10)
    part = report["elasticsearch"]
    part["index"] = s.index_alias
    try:
        health = await es.cluster.health(timeout="5s")
        part.update(ok=True, status=health.get("status"), nodes=health.get("number_of_nodes"))
        count = await es.options(ignore_status=404).count(index=s.index_alias)
        part["documents"] = int(count.get("count", 0))
        stats = await es.options(ignore_status=404).indices.stats(index=s.index_alias, metric="store,docs")
        if "_all" in stats:
            part["size_bytes"] = int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
            part["indices"] = sorted(stats.get("indices", {}))
        rules = (
            await RuleStore(es, index=s.rules_index, news_alias=s.index_alias).all()
            if await es.indices.exists(index=s.rules_index)
            else []
        )
        report["rules"] = {
            "count": len(rules),
            "enabled": sum(r.enabled for r in rules),
            "names": [r.name for r in rules][:50],
        }
        if await es.indices.exists(index=s.alerts_index):
            # One "fingerprint" record per fired alert (one per rule and story); see newsflow_indexer.alerts.
            fired = {"bool": {"filter": [{"term": {"kind": "fingerprint"}}, {"term": {"fired": True}}]}}
            total = await es.count(index=s.alerts_index, query=fired)
            hits = await es.search(
                index=s.alerts_index,
                query=fired,
                size=LAST_ALERTS,
                sort=[{"created_at": "desc"}],
                source=["alert", "rule_name", "url", "created_at"],
            )
            last = []
            for h in hits["hits"]["hits"]:
                src = h["_source"]
                a = src.get("alert") or {}
                last.append(
                    {
                        "rule": src.get("rule_name"),
                        "title": a.get("title"),
                        "url": src.get("url"),
                        "matched_at": a.get("matched_at") or src.get("created_at"),
                    }
                )
            report["alerts"].update(source="elasticsearch", total=int(total["count"]), last=last)
    except Exception as e:
        part["ok"] = False
        part["error"] = _short(e)
        report["errors"].append(
            f"Elasticsearch at {redact(settings.elasticsearch_url)} is unreachable or failing "
            f"({_short(e)}); is it running? Set NEWSFLOW_ELASTICSEARCH_URL."
        )
    finally:
        await es.close()


async def collect(settings: CliSettings) -> dict[str, Any]:
    """Everything `newsflow status` shows, as one JSON-able dict."""
    report: dict[str, Any] = {
        "generated_at": time.time(),
        "redis": {"url": redact(settings.redis_url), "ok": None, "error": None},
        "streams": [],
        "dead_letters": {"total": None, "streams": {}},
        "feeds": None,
        "elasticsearch": {
            "url": redact(settings.elasticsearch_url),
            "ok": None,
            "error": None,
            "status": None,
            "documents": None,
            "size_bytes": None,
            "indices": [],
        },
        "rules": None,
        "alerts": {"source": None, "total": None, "last": []},
        "errors": [],
    }
    # Elasticsearch first: the alerts fall back to the stream only when it did not answer.
    await _es_part(settings, report)
    await _redis_part(settings, report)
    return report


# --- rendering -----------------------------------------------------------------------------------


def _age(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render(report: dict[str, Any]) -> None:
    from rich.console import Console

    con = Console()
    for err in report["errors"]:
        con.print(f"[red]newsflow: {err}[/red]", highlight=False)
    if report["streams"]:
        _render_streams(con, report["streams"])
    _render_dead_letters(con, report["dead_letters"])
    if report["feeds"] is not None:
        _render_feeds(con, report["feeds"])
    _render_search(con, report["elasticsearch"], report["rules"])
    _render_alerts(con, report["alerts"])


def _render_streams(con: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title="Streams", title_justify="left")
    for col in ("stream", "length", "added", "group", "pending", "lag", "oldest", "consumers"):
        t.add_column(
            col,
            justify="left" if col in ("stream", "group") else "right",
            no_wrap=True,
            min_width={"stream": 12, "group": 14}.get(col),
        )
    consumers = Table(title="Consumers", title_justify="left")
    for col in ("stream", "group", "consumer", "pending", "idle"):
        consumers.add_column(
            col, justify="right" if col in ("pending", "idle") else "left", no_wrap=col != "consumer", overflow="fold"
        )
    for s in rows:
        for i, g in enumerate(s["groups"] or [None]):
            first = (s["stream"], str(s["length"]), str(s["entries_added"])) if i == 0 else ("", "", "")
            if g is None:
                # A pipeline stream without its group lost entries' tracking (run `newsflow init`);
                # news.alerts has none by design: its readers are outside Newsflow.
                missing = s["stream"] in streams.GROUPS
                label = "[red]missing: newsflow init[/red]" if missing else "[dim]none (external)[/dim]"
                t.add_row(*first, label, "", "", "", "")
                continue
            lag = "?" if g["lag"] is None else str(g["lag"])
            age = _age(g["oldest_pending_age_s"])
            t.add_row(*first, g["group"], str(g["pending"]), lag, age, str(len(g["consumers"])))
            for c in g["consumers"]:
                consumers.add_row(s["stream"], g["group"], c["name"], str(c["pending"]), _age(c["idle_s"]))
    con.print(t)
    if consumers.row_count:
        con.print(consumers)


def _render_dead_letters(con: Any, dl: dict[str, Any]) -> None:
    if dl["total"] is None:
        return
    parts = ", ".join(f"{k} {v}" for k, v in dl["streams"].items())
    color = "red" if dl["total"] else "green"
    hint = "  (newsflow dlq list)" if dl["total"] else ""
    con.print(f"[bold]Dead letters:[/bold] [{color}]{dl['total']}[/{color}]  {parts}{hint}", highlight=False)


def _render_feeds(con: Any, f: dict[str, Any]) -> None:
    con.print(
        f"[bold]Feeds:[/bold] {f['total']} total: [green]{f['healthy']} healthy[/green], "
        f"[yellow]{f['slow']} slow[/yellow], [red]{f['failing']} failing[/red]"
        f" ({f['unhealthy']} unhealthy); {f['polls']} polls, {f['not_modified']} not modified, "
        f"{f['items_seen']} new items",
        highlight=False,
    )
    for feed in f["failing_feeds"][:10]:
        con.print(
            f"  [red]failing[/red] {feed['url']}: {feed['consecutive_failures']} failures, "
            f"last error: {feed['last_error']}",
            highlight=False,
        )
    for feed in f["slow_feeds"][:10]:
        con.print(f"  [yellow]slow[/yellow] {feed['url']}: overdue by {_age(feed['overdue_s'])}", highlight=False)


def _render_search(con: Any, es: dict[str, Any], rules: dict[str, Any] | None) -> None:
    if es["ok"]:
        color = {"green": "green", "yellow": "yellow"}.get(es["status"] or "", "red")
        con.print(
            f"[bold]Elasticsearch:[/bold] {es['url']} [{color}]{es['status']}[/{color}]; "
            f"alias '{es['index']}': {es['documents'] if es['documents'] is not None else '-'} documents, "
            f"{_size(es['size_bytes'])} ({', '.join(es['indices']) or 'no index yet'})",
            highlight=False,
        )
    if rules is not None:
        con.print(
            f"[bold]Rules:[/bold] {rules['count']} ({rules['enabled']} enabled)"
            + (f": {', '.join(rules['names'][:10])}" if rules["names"] else ""),
            highlight=False,
        )


def _render_alerts(con: Any, al: dict[str, Any]) -> None:
    from rich.table import Table

    if al["source"] is None:
        return
    total = "recent ones from news.alerts" if al["total"] is None else f"{al['total']} fired"
    con.print(f"[bold]Alerts:[/bold] {total}" + (", last:" if al["last"] else ""), highlight=False)
    if not al["last"]:
        return
    t = Table(show_header=True, box=None, pad_edge=False)
    for col in ("matched", "rule", "title", "url"):
        t.add_column(col, overflow="fold")
    for a in al["last"]:
        matched = str(a.get("matched_at") or "")[:19].replace("T", " ")
        t.add_row(matched, a.get("rule") or "", a.get("title") or "", a.get("url") or "")
    con.print(t)


def status(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Streams, consumer groups and lag, dead letters, feed health, Elasticsearch, rules and last alerts."""
    from newsflow_cli.common import load_settings

    settings = load_settings()
    report = asyncio.run(collect(settings))
    if json_out:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        render(report)
    if report["errors"]:
        raise typer.Exit(1)
