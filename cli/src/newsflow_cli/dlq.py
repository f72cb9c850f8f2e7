"""`newsflow dlq`: see, replay and drop dead-lettered messages.

A dead letter keeps the original stream entry's fields as they were, so replaying it appends exactly
that entry to its stream again; the consumer groups pick it up like any new message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from newsflow_cli.common import fail, load_settings, run
from newsflow_shared import streams
from newsflow_shared.models import DeadLetter
from newsflow_shared.runtime import DATA_FIELD, DATA_KEY, make_redis

app = typer.Typer(no_args_is_help=True)


def _dlq_name(stream: str) -> str:
    name = stream if stream.endswith(streams.DLQ_SUFFIX) else streams.dlq(stream)
    if name not in streams.DEAD_LETTER_STREAMS:
        known = ", ".join(s.removesuffix(streams.DLQ_SUFFIX) for s in streams.DEAD_LETTER_STREAMS)
        fail(f"unknown stream {stream!r}: one of {known}")
    return name


async def _read(dlq_names: list[str], limit: int) -> list[tuple[str, str, DeadLetter]]:
    redis = make_redis(load_settings())
    try:
        out = []
        for name in dlq_names:
            for mid, fields in await redis.xrevrange(name, count=limit):
                out.append((name, mid.decode(), DeadLetter.model_validate_json(fields[DATA_FIELD])))
        return out
    finally:
        await redis.aclose()


@app.command("list")
def list_(
    stream: str | None = typer.Argument(None, help="news.entries, news.raw or news.parsed (default: all)"),
    limit: int = typer.Option(50, help="newest N per stream"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """List dead letters, newest first, with their reason and error."""
    names = [_dlq_name(stream)] if stream else list(streams.DEAD_LETTER_STREAMS)
    rows = run(_read(names, limit))
    if json_out:
        for name, mid, d in rows:
            typer.echo(json.dumps({"dlq": name, "id": mid, **d.model_dump(mode="json")}))
        return
    table = Table(title=f"dead letters ({len(rows)})")
    for col in ("dlq id", "stream", "reason", "attempts", "service", "last failure", "url", "error"):
        table.add_column(col, overflow="fold")
    for _name, mid, d in rows:
        try:
            url = json.loads(d.original.get(DATA_KEY) or d.original.get("data") or "{}").get("url", "")
        except (ValueError, AttributeError):
            url = ""
        table.add_row(
            mid,
            d.stream,
            d.reason,
            str(d.attempts),
            d.service,
            d.last_failure_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            url,
            d.error[:160],
        )
    Console().print(table)


async def _replay(name: str, ids: list[str], all_: bool, reason: str | None) -> tuple[int, int]:
    redis = make_redis(load_settings())
    replayed = skipped = 0
    try:
        entries = (
            await redis.xrange(name)
            if all_ or reason
            else [e for mid in ids for e in await redis.xrange(name, min=mid, max=mid)]
        )
        for mid, fields in entries:
            d = DeadLetter.model_validate_json(fields[DATA_FIELD])
            if reason and d.reason != reason:
                skipped += 1
                continue
            # Append first, delete second: a crash in between replays twice, which is idempotent.
            await redis.xadd(d.stream, {k.encode(): str(v).encode() for k, v in d.original.items()})
            await redis.xdel(name, mid)
            replayed += 1
    finally:
        await redis.aclose()
    return replayed, skipped


@app.command()
def replay(
    stream: str = typer.Argument(..., help="news.entries, news.raw or news.parsed"),
    ids: list[str] = typer.Option([], "--id", help="dead-letter ids to replay (repeatable)"),
    all_: bool = typer.Option(False, "--all", help="replay every dead letter of the stream"),
    reason: str | None = typer.Option(None, "--reason", help="replay only those with this reason"),
) -> None:
    """Put dead letters back on their stream to be processed again."""
    if not ids and not all_ and not reason:
        fail("say which: --id ID (repeatable), --reason REASON or --all")
    replayed, _ = run(_replay(_dlq_name(stream), ids, all_, reason))
    typer.echo(f"replayed {replayed} message(s) onto {_dlq_name(stream).removesuffix(streams.DLQ_SUFFIX)}")


async def _drop(name: str, ids: list[str], all_: bool, reason: str | None, older_than_days: float | None) -> int:
    redis = make_redis(load_settings())
    dropped = 0
    try:
        if all_ and not reason and older_than_days is None:
            n = await redis.xlen(name)
            await redis.delete(name)
            return int(n)
        if ids:
            return int(await redis.xdel(name, *ids))
        now = datetime.now(UTC)
        for mid, fields in await redis.xrange(name):
            d = DeadLetter.model_validate_json(fields[DATA_FIELD])
            if reason and d.reason != reason:
                continue
            if older_than_days is not None and (now - d.last_failure_at).total_seconds() < older_than_days * 86400:
                continue
            dropped += int(await redis.xdel(name, mid))
    finally:
        await redis.aclose()
    return dropped


@app.command()
def drop(
    stream: str = typer.Argument(..., help="news.entries, news.raw or news.parsed"),
    ids: list[str] = typer.Option([], "--id", help="dead-letter ids to drop (repeatable)"),
    all_: bool = typer.Option(False, "--all", help="drop every dead letter of the stream"),
    reason: str | None = typer.Option(None, "--reason", help="drop only those with this reason"),
    older_than_days: float | None = typer.Option(None, "--older-than-days"),
) -> None:
    """Discard dead letters for good."""
    if not ids and not all_ and not reason and older_than_days is None:
        fail("say which: --id ID (repeatable), --reason REASON, --older-than-days N or --all")
    n = run(_drop(_dlq_name(stream), ids, all_, reason, older_than_days))
    typer.echo(f"dropped {n} dead letter(s) from {_dlq_name(stream)}")
