"""`newsflow rules add|list|remove|test`: alert rules, saved searches in their own index."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow_cli.common import fail, load_settings, run

app = typer.Typer(no_args_is_help=True, help="Alert rules: Lucene queries evaluated on every indexed batch.")


async def _with_store(fn: Any) -> Any:
    from newsflow_search.es import make_client
    from newsflow_search.index_setup import ensure_index
    from newsflow_search.rules import RuleStore

    settings = load_settings()
    es = make_client(settings)
    try:
        if not await es.indices.exists(index=settings.rules_index):
            await ensure_index(es, settings)
        return await fn(RuleStore(es, settings.rules_index, settings.index_alias), settings, es)
    finally:
        await es.close()


def _change_rule(name: str, change: Callable[[Any], Awaitable[Any]]) -> None:
    """`change(store)` on the rule `name`, which answers whether that rule exists."""

    async def go(store: Any, settings: Any, es: Any) -> bool:
        return bool(await change(store))

    if not run(_with_store(go)):
        fail(f"no rule named {name!r}")


@app.command("add")
def add(
    name: str | None = typer.Argument(None, help="rule name (unique; adding it again replaces it)"),
    query: str | None = typer.Argument(None, help='Lucene query string: "rocket attack", drone AND militia*'),
    lang: list[str] = typer.Option([], "--lang", help="only articles in these languages"),
    feed: list[str] = typer.Option([], "--feed", help="only articles from these feed URLs"),
    domain: list[str] = typer.Option([], "--domain", help="only articles from these domains"),
    section: list[str] = typer.Option([], "--section", help="only articles in these sections"),
    webhook: list[str] = typer.Option([], "--webhook", help="POST the alert as JSON to this URL"),
    webhook_secret: str | None = typer.Option(None, "--webhook-secret", help="sign --webhook bodies (HMAC-SHA256)"),
    slack: list[str] = typer.Option([], "--slack", help="a Slack incoming-webhook URL"),
    teams: list[str] = typer.Option([], "--teams", help="a Microsoft Teams incoming-webhook URL"),
    discord: list[str] = typer.Option([], "--discord", help="a Discord webhook URL"),
    email: list[str] = typer.Option([], "--email", help="send e-mail to this address (SMTP: the notifier's)"),
    digest: str | None = typer.Option(
        None, "--digest", help='a digest instead of each story: 30m, or "08:00 Europe/Berlin"'
    ),
    storm_guard: str | None = typer.Option(None, "--storm-guard", help="off, or MAX/WITHIN such as 5/10m"),
    log: bool = typer.Option(True, "--log/--no-log", help="also write the alert to the notifier's log"),
    file: Path | None = typer.Option(
        None, "--file", "-f", exists=True, dir_okay=False, help="add every rule of a rules.yaml instead"
    ),
) -> None:
    """Add or replace a rule (or all the rules of a rules.yaml with --file)."""
    from newsflow_search.rules import InvalidRule, load_rules_file

    if file is not None:
        try:
            rules = load_rules_file(file)
        except ValueError as e:
            fail(str(e))
            return
    elif name and query:
        channels: list[dict[str, Any]] = [{"type": "webhook", "url": u, "secret": webhook_secret} for u in webhook]
        for kind, urls in (("slack", slack), ("teams", teams), ("discord", discord)):
            channels += [{"type": kind, "url": u} for u in urls]
        channels += [{"type": "email", "to": email}] if email else []
        channels += [{"type": "log"}] if log else []
        filters = {"language": lang, "feed": feed, "domain": domain, "section": section}
        rules = [_rule_or_fail(_spec(name, query, channels, filters, digest, storm_guard))]
    else:
        fail("give NAME and QUERY, or --file rules.yaml")
        return
    _check_destinations(rules)

    async def go(store: Any, settings: Any, es: Any) -> list[tuple[str, bool]]:
        for r in rules:  # every query first: nothing of a file is saved unless all of it is good
            await store.validate(r)
        return [(r.name, await store.add(r, source=str(file) if file else "cli", validate=False)) for r in rules]

    try:
        done = run(_with_store(go))
    except InvalidRule as e:
        fail(str(e))
        return
    for rule_name, created in done:
        typer.echo(f"{'added' if created else 'replaced'} rule {rule_name!r}")


def _spec(
    name: str, query: str, channels: list[Any], filters: dict[str, Any], digest: str | None, storm_guard: str | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "query": query, "channels": channels, "filters": filters}
    if digest:
        spec["digest"] = digest
    if storm_guard:
        spec["storm_guard"] = _storm_guard(storm_guard)
    return spec


def _storm_guard(text: str) -> Any:
    if text.lower() in ("off", "on"):
        return text.lower()
    max_, _, within = text.partition("/")
    if not max_.isdigit() or not within:
        fail(f"--storm-guard: off, or MAX/WITHIN such as 5/10m (got {text!r})")
    return {"max": int(max_), "within": within}


def _rule_or_fail(spec: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from newsflow_search.rules import Rule, first_error

    try:
        return Rule.model_validate(spec)
    except ValidationError as e:
        fail(f"invalid rule {spec.get('name')!r}: {first_error(e)}")


def _check_destinations(rules: list[Any]) -> None:
    """Refuse a destination the SSRF guard would refuse at send time, now, in one line (issue 14)."""
    import asyncio

    from newsflow_http.destinations import BlockedDestination, check_destination, policy_of
    from newsflow_search.rules import URL_CHANNELS

    policy = policy_of(load_settings())

    async def check() -> None:
        for r in rules:
            for ch in r.channels:
                if ch.type in URL_CHANNELS:
                    try:
                        await check_destination(ch.url, policy)
                    except BlockedDestination as e:
                        fail(f"rule {r.name!r}: {ch.type} {e}")

    asyncio.run(check())


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="one JSON object per rule")) -> None:
    """List the rules, their queries, filters and channels."""

    async def go(store: Any, settings: Any, es: Any) -> Any:
        return await store.all()

    rules = run(_with_store(go))
    if json_out:
        for r in rules:
            doc = {"rule_id": r.id, **r.model_dump(mode="json"), "channels": [c.public() for c in r.channels]}
            typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    table = Table(title=f"{len(rules)} rule(s)")
    for col in ("name", "query", "filters", "channels", "mode", "enabled"):
        table.add_column(col, overflow="fold")
    for r in rules:
        filters = ", ".join(f"{k}={'|'.join(v)}" for k, v in r.filters.as_dict().items())
        table.add_row(
            escape(r.name),
            escape(r.query),
            escape(filters),
            escape(", ".join(c.label() for c in r.channels)),
            escape(_mode_text(r)),
            "yes" if r.enabled else "no",
        )
    Console().print(table)


def _mode_text(r: Any) -> str:
    from datetime import UTC

    text = f"digest {r.digest.describe()}" if r.mode == "digest" else "immediate"
    if r.mode == "immediate":
        text += f"; storm guard {r.storm_guard.describe()}"
    if r.snoozed():
        text += f"; snoozed until {r.snoozed_until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return text


@app.command("remove")
def remove(name: str = typer.Argument(..., help="rule name")) -> None:
    """Delete a rule. Alerts it already fired stay in news.alerts and the alerts index."""
    _change_rule(name, lambda store: store.remove(name))
    typer.echo(f"removed rule {name!r}")


@app.command("snooze")
def snooze(
    name: str = typer.Argument(..., help="rule name"),
    duration: str = typer.Argument(..., help="how long: 30m, 2h, 1d"),
) -> None:
    """Send nothing for this rule for a while; its matches are still recorded (`newsflow alerts list`)."""
    from datetime import UTC, datetime, timedelta

    from newsflow_search.rules import parse_minutes

    try:
        minutes = parse_minutes(duration, "snooze")
    except ValueError as e:
        fail(str(e))
        return
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)
    _change_rule(name, lambda store: store.snooze(name, until))
    typer.echo(f"rule {name!r} snoozed until {until:%Y-%m-%d %H:%M} UTC")


@app.command("unsnooze")
def unsnooze(name: str = typer.Argument(..., help="rule name")) -> None:
    """End a rule's snooze now."""
    _change_rule(name, lambda store: store.snooze(name, None))
    typer.echo(f"rule {name!r} is no longer snoozed")


@app.command("test")
def test(
    rule_or_query: str = typer.Argument(..., help="a rule's name, or a query to try before saving it"),
    since: str = typer.Option("7d", "--since", help="how far back: 7d, 12h, 30m, 2w or a date"),
    size: int = typer.Option(20, "--size", "-n", min=1, max=1000),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per matching article"),
) -> None:
    """Show which recent articles a rule (or a query) would have matched, and how many messages it would
    have sent under its mode (stories grouped across outlets, digests, storm guard)."""
    from elasticsearch import BadRequestError

    from newsflow_search.rules import Rule
    from newsflow_search.search import search as run_search

    async def go(store: Any, settings: Any, es: Any) -> Any:
        rule = await store.get(rule_or_query)
        query, filters = (rule.query, rule.filters.as_dict()) if rule else (rule_or_query, {})
        try:
            res = await run_search(
                es, query, since=since, size=size, alias=settings.index_alias, filters=filters, newest_first=True
            )
            sim = await _would_send(es, settings, rule or Rule(name="(query)", query=query), since)
        except BadRequestError as e:
            fail(f"Elasticsearch refused the query {query!r}: {e.message}")
        return rule, query, res, sim

    rule, query, res, sim = run(_with_store(go))
    if json_out:
        for h in res.hits:
            typer.echo(json.dumps(h.as_dict(), ensure_ascii=False))
        return
    what = f"rule {rule.name!r} ({query})" if rule else f"query {query!r}"
    console = Console()
    console.print(f"{what}: {res.total} article(s) since {since}")
    console.print(escape(sim))
    for h in res.hits:
        date = (h.published_at or "")[:16].replace("T", " ")
        console.print(f"- {date}  [bold]{escape(h.title or '(no title)')}[/bold]  [dim]{escape(h.url)}[/dim]")
        if h.snippet:
            console.print("    " + escape(h.snippet).replace("«", "[bold yellow]").replace("»", "[/bold yellow]"))


async def _would_send(es: Any, settings: Any, rule: Any, since: str) -> str:
    """One line: how many messages the rule would have sent since `since` under its mode."""
    from newsflow_alerting.simulate import outlook
    from newsflow_search.query import parse_since

    seen = await outlook(es, settings.index_alias, rule, parse_since(since) or "now-7d")
    sent = seen.sent
    mode = (
        f"digest {rule.digest.describe()}"
        if rule.mode == "digest"
        else (f"immediate, storm guard {rule.storm_guard.describe()}")
    )
    parts = [f"{sent.immediate} at once"] if rule.mode == "immediate" else []
    if sent.digests:
        parts.append(f"{sent.digests} digests")
    if sent.storm_digests:
        parts.append(f"{sent.storm_digests} storm digests")
    capped = f" (the first {seen.replayed} matches only)" if seen.capped else ""
    return (
        f"would have sent {sent.messages} message(s) per channel ({', '.join(parts) or 'none'}) for "
        f"{seen.stories} stories of {seen.replayed} matching articles{capped}, mode {mode}"
    )
