"""`newsflow dlq`: see, replay and drop dead-lettered messages.

A dead letter keeps the original stream entry's fields as they were, so replaying it appends exactly
that entry to its stream again; the consumer groups pick it up like any new message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from redis.asyncio import Redis
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


@dataclass(frozen=True)
class Selection:
    """Which dead letters `replay` and `drop` act on: the ids named, or all of the stream's, narrowed
    by reason and age (both commands choose the same way)."""

    ids: tuple[str, ...] = ()
    all_: bool = False
    reason: str | None = None
    older_than_days: float | None = None

    def narrowed(self) -> bool:
        return bool(self.reason) or self.older_than_days is not None

    def keeps(self, d: DeadLetter, now: datetime) -> bool:
        if self.reason and d.reason != self.reason:
            return False
        age_s = (now - d.last_failure_at).total_seconds()
        return self.older_than_days is None or age_s >= self.older_than_days * 86400


async def _selected(redis: Redis, name: str, sel: Selection) -> list[tuple[bytes, DeadLetter]]:
    if sel.ids:
        entries = [e for mid in sel.ids for e in await redis.xrange(name, min=mid, max=mid)]
    else:
        entries = await redis.xrange(name)
    now = datetime.now(UTC)
    letters = ((mid, DeadLetter.model_validate_json(fields[DATA_FIELD])) for mid, fields in entries)
    return [(mid, d) for mid, d in letters if sel.keeps(d, now)]


def _chosen(stream: str, ids: list[str] | None, all_: bool, reason: str | None, older: float | None) -> Selection:
    if not ids and not all_ and not reason and older is None:
        fail("say which: --id ID (repeatable), --reason REASON, --older-than-days N or --all")
    return Selection(tuple(ids or ()), all_, reason, older)


async def _replay(name: str, sel: Selection) -> int:
    redis = make_redis(load_settings())
    try:
        chosen = await _selected(redis, name, sel)
        for mid, d in chosen:
            # Append first, delete second: a crash in between replays twice, which is idempotent.
            await redis.xadd(d.stream, {k.encode(): str(v).encode() for k, v in d.original.items()})
            await redis.xdel(name, mid)
        return len(chosen)
    finally:
        await redis.aclose()


async def _drop(name: str, sel: Selection) -> int:
    redis = make_redis(load_settings())
    try:
        if sel.all_ and not sel.ids and not sel.narrowed():
            n = await redis.xlen(name)
            await redis.delete(name)
            return int(n)
        mids = [mid for mid, _ in await _selected(redis, name, sel)]
        return int(await redis.xdel(name, *mids)) if mids else 0
    finally:
        await redis.aclose()


Stream = Annotated[str, typer.Argument(help="news.entries, news.raw or news.parsed")]
Ids = Annotated[list[str] | None, typer.Option("--id", help="these dead-letter ids (repeatable)")]
All = Annotated[bool, typer.Option("--all", help="every dead letter of the stream")]
Reason = Annotated[str | None, typer.Option("--reason", help="only those with this reason")]
OlderThan = Annotated[
    float | None, typer.Option("--older-than-days", help="only those whose last failure is N days old or older")
]


@app.command()
def replay(
    stream: Stream, ids: Ids = None, all_: All = False, reason: Reason = None, older_than_days: OlderThan = None
) -> None:
    """Put dead letters back on their stream to be processed again."""
    sel = _chosen(stream, ids, all_, reason, older_than_days)
    replayed = run(_replay(_dlq_name(stream), sel))
    typer.echo(f"replayed {replayed} message(s) onto {_dlq_name(stream).removesuffix(streams.DLQ_SUFFIX)}")


@app.command()
def drop(
    stream: Stream, ids: Ids = None, all_: All = False, reason: Reason = None, older_than_days: OlderThan = None
) -> None:
    """Discard dead letters for good."""
    sel = _chosen(stream, ids, all_, reason, older_than_days)
    n = run(_drop(_dlq_name(stream), sel))
    typer.echo(f"dropped {n} dead letter(s) from {_dlq_name(stream)}")
