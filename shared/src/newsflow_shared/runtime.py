"""The stream runtime every stage runs on: consume, hand to the stage's logic, publish, then ack.

Services give the runtime their handlers and nothing else; the delivery guarantees live here once:

- at-least-once: an input is acknowledged only after everything it produced is in Redis (and, for the
  indexer, after its document is durable: the handler returns only then);
- reclaim: FastStream reads new entries (XREADGROUP) but never re-reads an entry whose handler failed,
  and a subscriber with `min_idle_time` only claims. So each consumer also runs a claimer that takes over
  entries left pending longer than `claim_idle_ms` by any consumer (dead, stuck, or this one after a
  failure) with XAUTOCLAIM, and counts deliveries;
- dead letters: a PermanentError, an undecodable message, or more than `max_deliveries` deliveries moves
  the input to `<stream>.dlq` with the error and then acknowledges it;
- ownership: while a handler holds entries (a slow page, a bulk retried while Elasticsearch is down), a
  heartbeat re-claims them to itself with JUSTID (which does not count as a delivery) so that no other
  replica's claimer steals live work;
- backpressure: `publish` waits while the output stream's groups have more unprocessed entries than
  `backpressure_max_lag`, so a fast stage slows down instead of anything being trimmed away;
- trimming: a stream is trimmed only below the oldest entry some group still needs (XTRIM MINID), never
  by length, so unprocessed entries are never lost (docs/RELIABILITY.md);
- NOGROUP (a Redis flushed empty) is repaired by re-creating the groups at position 0;
- SIGTERM: stop reading, let in-flight handlers finish within the graceful timeout, leave the rest
  pending for the claimers, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import REGISTRY, generate_latest
from pydantic import BaseModel
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from newsflow_shared import metrics, streams
from newsflow_shared.models import DeadLetter, Message
from newsflow_shared.settings import CommonSettings

log = logging.getLogger("newsflow.runtime")

DATA_FIELD = b"data"
Output = tuple[str, BaseModel]
Hook = Callable[["ServiceContext"], Awaitable[None]]
Handler = Callable[[Any], Awaitable[Sequence[Output]]]
BatchHandler = Callable[[list[Any]], Awaitable[Sequence[Sequence[Output] | BaseException]]]


class PermanentError(Exception):
    """Input that can never succeed (not HTML, too large, a mapping error): dead-lettered at once."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class Stopping(Exception):
    """Raised inside a handler's publish when the service is shutting down: the input stays pending."""


@dataclass
class Consumer:
    stream: str
    group: str
    model: type[Message]
    handle: Handler | None = None
    handle_batch: BatchHandler | None = None
    batch_size: int = 1
    batch_linger_s: float = 0.0
    concurrency: int = 1
    output_streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError("give exactly one of handle / handle_batch")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")

    @property
    def read_count(self) -> int:
        return self.batch_size if self.handle_batch else max(self.batch_size, self.concurrency)


def encode(model: BaseModel) -> dict[bytes, bytes]:
    """A stream entry: one field holding the model's JSON (readable with redis-cli, replayable as is)."""
    return {DATA_FIELD: model.model_dump_json().encode("utf-8")}


def make_redis(url: str) -> aioredis.Redis:
    """A client that rides out a Redis restart: commands retry with backoff instead of failing at once."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
        socket_connect_timeout=5,
    )


async def ensure_groups(redis: aioredis.Redis, groups: dict[str, Sequence[str]] | None = None) -> list[str]:
    """Create the consumer groups at position 0 (MKSTREAM) where missing; return the ones created.

    Position 0, not `$`: a group created after producers started must still see their entries.
    """
    created = []
    for stream, names in (groups if groups is not None else streams.GROUPS).items():
        for group in names:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
                created.append(f"{stream}:{group}")
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
    return created


async def stream_backlog(redis: aioredis.Redis, stream: str) -> int:
    """Entries of `stream` that some group has not finished: unread (lag) plus read-but-unacked."""
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0
    worst = 0
    length = None
    for g in infos:
        lag = g.get("lag")
        if lag is None:  # Redis cannot tell after arbitrary deletions: assume everything is unread
            length = length if length is not None else await redis.xlen(stream)
            lag = length
        worst = max(worst, int(lag) + int(g.get("pending", 0)))
    return worst


# Mark the key and append in one step: a retry after a lost reply (a Redis restart, a crash between
# publish and ack followed by redelivery) finds the key set and appends nothing.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  if ARGV[2] == '0' then
    return redis.call('XADD', KEYS[2], '*', 'data', ARGV[1])
  end
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[1])
end
return false
"""


def _id_tuple(mid: bytes | str) -> tuple[int, int]:
    s = mid.decode() if isinstance(mid, bytes) else mid
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


async def safe_trim(redis: aioredis.Redis, stream: str) -> int:
    """Trim entries every group has acknowledged, and nothing else. Returns entries removed.

    The minimum id still needed is, over all groups, the oldest pending entry or the first entry after the
    group's last-delivered id. A stream without groups is left alone (nobody has said what it needs).
    """
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError:
        return 0
    if not infos:
        return 0
    needed: tuple[int, int] | None = None
    for g in infos:
        if int(g.get("pending", 0)) > 0:
            summary = await redis.xpending(stream, g["name"])
            first = _id_tuple(summary["min"])
        else:
            ms, seq = _id_tuple(g["last-delivered-id"])
            first = (ms, seq + 1)
        needed = first if needed is None else min(needed, first)
    assert needed is not None
    return int(await redis.xtrim(stream, minid=f"{needed[0]}-{needed[1]}", approximate=False))


async def remove_stale_consumers(redis: aioredis.Redis, stream: str, group: str, idle_s: float) -> list[str]:
    """Delete consumers idle longer than `idle_s` that hold nothing pending (so nothing can be lost)."""
    removed = []
    for c in await redis.xinfo_consumers(stream, group):
        if int(c.get("pending", 0)) == 0 and int(c.get("idle", 0)) >= idle_s * 1000:
            await redis.xgroup_delconsumer(stream, group, c["name"])
            removed.append(_text(c["name"]))
    return removed


def _describe(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc) or repr(exc)


class ServiceContext:
    """What handlers and background tasks get: settings, Redis, publish with backpressure, shutdown flag."""

    def __init__(self, service: str, settings: CommonSettings, redis: aioredis.Redis) -> None:
        self.service = service
        self.settings = settings
        self.redis = redis
        self.stopping = asyncio.Event()
        self._backlog_cache: dict[str, tuple[float, int]] = {}
        self.backpressure_streams: set[str] = set()
        self._publish_once = redis.register_script(_PUBLISH_ONCE)

    async def _backlog(self, stream: str) -> int:
        now = time.monotonic()
        cached = self._backlog_cache.get(stream)
        if cached and now - cached[0] < 0.25:
            return cached[1]
        value = await stream_backlog(self.redis, stream)
        self._backlog_cache[stream] = (now, value)
        return value

    async def wait_for_room(self, stream: str) -> None:
        limit = self.settings.backpressure_max_lag
        if await self._backlog(stream) <= limit:
            return
        started = time.monotonic()
        log.info("backpressure: waiting for %s to drain below %d", stream, limit)
        delay = 0.05
        while await self._backlog(stream) > limit:
            if self.stopping.is_set():
                raise Stopping(f"shutting down while {stream} is full")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        metrics.BACKPRESSURE_SECONDS.labels(self.service, stream).inc(time.monotonic() - started)

    async def publish(self, stream: str, model: BaseModel, *, maxlen: int | None = None) -> str:
        """Append `model` to `stream`, first waiting for room when the stream is under backpressure.

        `maxlen` is for notification streams nobody is obliged to read (news.alerts); pipeline streams are
        never capped by length (see `safe_trim`). A model with an `idempotency_key` (an alert) is
        published at most once per key: returns "" when it already was.
        """
        if stream in self.backpressure_streams:
            await self.wait_for_room(stream)
        if maxlen is None:
            maxlen = streams.MAXLEN.get(stream)
        key = getattr(model, "idempotency_key", None)
        if key is not None:
            ttl = int(self.settings.publish_dedup_ttl_days * 86400)
            mid = await self._publish_once(
                keys=[f"{streams.PUBLISHED_PREFIX}{stream}:{key}", stream],
                args=[encode(model)[DATA_FIELD], maxlen or 0, ttl],
            )
            if mid is None:
                log.info("not published again: %s %s is already on %s", type(model).__name__, key, stream)
                return ""
        else:
            mid = await self.redis.xadd(stream, encode(model), maxlen=maxlen, approximate=maxlen is not None)
        if (cached := self._backlog_cache.get(stream)) is not None:
            # Count our own writes until the next measurement, so a burst cannot overshoot the limit.
            self._backlog_cache[stream] = (cached[0], cached[1] + 1)
        return mid.decode() if isinstance(mid, bytes) else str(mid)

    async def dead_letter(
        self,
        stream: str,
        original: dict[Any, Any],
        reason: str,
        exc: BaseException | None = None,
        *,
        attempts: int = 1,
        group: str | None = None,
        message_id: str | None = None,
        first_failure_at: datetime | None = None,
        error_type: str | None = None,
        error: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        etype, etext = _describe(exc) if exc is not None else (error_type or "Error", error or reason)
        record = DeadLetter(
            stream=stream,
            group=group,
            message_id=message_id,
            original={_text(k): _text(v) for k, v in original.items()},
            reason=reason,
            error_type=error_type or etype,
            error=error or etext,
            service=self.service,
            attempts=max(1, attempts),
            first_failure_at=first_failure_at or now,
            last_failure_at=now,
        )
        await self.redis.xadd(streams.dlq(stream), encode(record))
        metrics.DEAD_LETTERS.labels(stream, reason).inc()


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


def _article_fields(model: Any) -> dict[str, Any]:
    """The `article_id` and `url` of a message, for log lines that must be traceable across services."""
    out: dict[str, Any] = {}
    for name in ("article_id", "url"):
        value = getattr(model, name, None)
        if value is None and hasattr(model, "entry"):
            value = getattr(model.entry, name, None)
        if value is not None:
            out[name] = value
    return out


class _Stage:
    """One consumer's machinery: dispatch, settle, claim, heartbeat."""

    def __init__(self, svc: Service, c: Consumer) -> None:
        self.svc = svc
        self.c = c
        self.failures_key = f"{streams.FAILURES_PREFIX}{c.stream}:{c.group}"
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def ctx(self) -> ServiceContext:
        assert self.svc.ctx is not None
        return self.svc.ctx

    @property
    def consumer_name(self) -> str:
        return self.svc.settings.consumer_name

    # -- entry points -------------------------------------------------------------------------------

    async def on_batch(self, ids: list[bytes], fields: list[dict[bytes, bytes]]) -> None:
        entries = list(zip(ids, fields, strict=True))
        if self.c.handle_batch and self.c.batch_linger_s > 0 and len(entries) < self.c.batch_size:
            entries += await self._linger(self.c.batch_size - len(entries))
        await self.process(entries)

    async def _linger(self, want: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Fill a batch for up to `batch_linger_s`: fewer, larger bulk requests under steady load."""
        got: list[tuple[bytes, dict[bytes, bytes]]] = []
        deadline = time.monotonic() + self.c.batch_linger_s
        while want > 0 and not self.ctx.stopping.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            resp = await self.ctx.redis.xreadgroup(
                self.c.group, self.consumer_name, {self.c.stream: ">"}, count=want, block=left_ms
            )
            for _stream, items in resp or []:
                got.extend(items)
                want -= len(items)
            if not resp:
                break
        return got

    async def process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if not entries:
            return
        self.inflight += 1
        self.idle.clear()
        try:
            async with self._holding([mid for mid, _ in entries]):
                await self._process(entries)
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.set()

    # -- processing ---------------------------------------------------------------------------------

    async def _process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        decoded: list[tuple[bytes, dict[bytes, bytes], Any]] = []
        for mid, fields in entries:
            try:
                model = self.c.model.model_validate_json(fields[DATA_FIELD])
            except Exception as e:  # undecodable: no retry can fix it
                log.error("undecodable message %s on %s: %s", _text(mid), self.c.stream, e)
                await self._dead_letter(mid, fields, "invalid-message", e, attempts=1)
                continue
            decoded.append((mid, fields, model))
        if not decoded:
            return
        labels = (self.svc.name, self.c.stream)
        if self.c.handle_batch is not None:
            started = time.perf_counter()
            try:
                results: Sequence[Any] = await self.c.handle_batch([m for _, _, m in decoded])
                if len(results) != len(decoded):
                    raise RuntimeError(f"batch handler returned {len(results)} results for {len(decoded)}")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                results = [e] * len(decoded)
            metrics.HANDLER_SECONDS.labels(*labels).observe(time.perf_counter() - started)
            for (mid, fields, model), result in zip(decoded, results, strict=True):
                await self._settle(mid, fields, model, result)
            return

        sem = asyncio.Semaphore(self.c.concurrency)

        async def one(mid: bytes, fields: dict[bytes, bytes], model: Any) -> None:
            async with sem:
                started = time.perf_counter()
                try:
                    assert self.c.handle is not None
                    result: Any = await self.c.handle(model)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    result = e
                metrics.HANDLER_SECONDS.labels(*labels).observe(time.perf_counter() - started)
                await self._settle(mid, fields, model, result)

        await asyncio.gather(*(one(*d) for d in decoded))

    async def _settle(self, mid: bytes, fields: dict[bytes, bytes], model: Any, result: Any) -> None:
        svc, stream = self.svc.name, self.c.stream
        where = {"stream": stream, "message_id": _text(mid), **_article_fields(model)}
        if isinstance(result, PermanentError):
            attempts = await self._deliveries(mid)
            log.warning("dead-lettered (%s): %s", result.reason, result, extra=where)
            await self._dead_letter(mid, fields, result.reason, result, attempts=attempts)
            metrics.MESSAGES.labels(svc, stream, "dead_letter").inc()
            return
        if isinstance(result, BaseException):
            await self._record_failure(mid, result)
            metrics.MESSAGES.labels(svc, stream, "retry").inc()
            etype, etext = _describe(result)
            log.warning(
                "handler failed, will retry after %d ms: %s: %s",
                self.svc.settings.claim_idle_ms,
                etype,
                etext,
                extra=where,
            )
            return
        try:
            for out_stream, out in result or ():
                await self.ctx.publish(out_stream, out)
        except Stopping:
            log.info("shutting down: left pending for redelivery", extra=where)
            return
        except Exception as e:
            await self._record_failure(mid, e)
            metrics.MESSAGES.labels(svc, stream, "retry").inc()
            log.warning("publish failed, will retry: %s", e, extra=where)
            return
        await self.ctx.redis.xack(stream, self.c.group, mid)
        await self.ctx.redis.hdel(self.failures_key, mid)
        metrics.MESSAGES.labels(svc, stream, "ok").inc()

    async def _record_failure(self, mid: bytes, exc: BaseException) -> None:
        """Remember the first and last failure so that a dead letter can say what kept going wrong."""
        with contextlib.suppress(Exception):
            now = datetime.now(UTC).isoformat()
            prev = await self.ctx.redis.hget(self.failures_key, mid)
            first = json.loads(prev)["first"] if prev else now
            etype, etext = _describe(exc)
            await self.ctx.redis.hset(
                self.failures_key, mid, json.dumps({"first": first, "type": etype, "error": etext[:2000]})
            )

    async def _deliveries(self, mid: bytes) -> int:
        rows = await self.ctx.redis.xpending_range(self.c.stream, self.c.group, min=mid, max=mid, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _dead_letter(
        self, mid: bytes, fields: dict[bytes, bytes], reason: str, exc: BaseException | None, *, attempts: int
    ) -> None:
        first = None
        etype = etext = None
        prev = await self.ctx.redis.hget(self.failures_key, mid)
        if prev:
            info = json.loads(prev)
            first = datetime.fromisoformat(info["first"])
            if exc is None:
                etype, etext = info["type"], info["error"]
        await self.ctx.dead_letter(
            self.c.stream,
            fields,
            reason,
            exc,
            attempts=attempts,
            group=self.c.group,
            message_id=_text(mid),
            first_failure_at=first,
            error_type=etype,
            error=etext,
        )
        await self.ctx.redis.xack(self.c.stream, self.c.group, mid)
        await self.ctx.redis.hdel(self.failures_key, mid)

    # -- ownership ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _holding(self, ids: list[bytes]) -> AsyncIterator[None]:
        interval = max(0.05, self.svc.settings.claim_idle_ms / 3000)

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(Exception):
                    await self.ctx.redis.xclaim(self.c.stream, self.c.group, self.consumer_name, 0, ids, justid=True)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- claimer ------------------------------------------------------------------------------------

    async def claim_loop(self) -> None:
        s = self.svc.settings
        while not self.ctx.stopping.is_set():
            try:
                await self.claim_once()
            except ResponseError as e:
                if "NOGROUP" in str(e):
                    log.warning("consumer group %s missing on %s: re-creating it", self.c.group, self.c.stream)
                    await ensure_groups(self.ctx.redis, {self.c.stream: (self.c.group,)})
                else:
                    log.error("claimer error on %s: %s", self.c.stream, e)
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning("claimer: Redis unavailable (%s); retrying", e)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claimer error on %s", self.c.stream)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ctx.stopping.wait(), s.claim_interval_s)

    async def claim_once(self) -> int:
        """Take over entries pending longer than claim_idle_ms; dead-letter those delivered too often."""
        s = self.svc.settings
        start: bytes | str = "0-0"
        total = 0
        while not self.ctx.stopping.is_set():
            resp = await self.ctx.redis.xautoclaim(
                self.c.stream,
                self.c.group,
                self.consumer_name,
                s.claim_idle_ms,
                start_id=start,
                count=self.c.read_count,
            )
            start, claimed = resp[0], resp[1]
            deleted = resp[2] if len(resp) > 2 else []
            if deleted:  # trimmed or deleted while pending: nothing left to process
                await self.ctx.redis.xack(self.c.stream, self.c.group, *deleted)
            if claimed:
                total += len(claimed)
                metrics.RECLAIMED.labels(self.svc.name, self.c.stream).inc(len(claimed))
                rows = await self.ctx.redis.xpending_range(
                    self.c.stream,
                    self.c.group,
                    min=claimed[0][0],
                    max=claimed[-1][0],
                    count=len(claimed) * 4 + 10,
                    consumername=self.consumer_name,
                )
                times = {r["message_id"]: int(r["times_delivered"]) for r in rows}
                retry = []
                for mid, fields in claimed:
                    delivered = times.get(mid, 1)
                    if delivered > s.max_deliveries:
                        log.error(
                            "giving up on %s after %d attempts",
                            _text(mid),
                            delivered - 1,
                            extra={"stream": self.c.stream, "message_id": _text(mid)},
                        )
                        await self._dead_letter(mid, fields, "max-deliveries", None, attempts=delivered - 1)
                        metrics.MESSAGES.labels(self.svc.name, self.c.stream, "dead_letter").inc()
                    else:
                        retry.append((mid, fields))
                for i in range(0, len(retry), self.c.read_count):
                    await self.process(retry[i : i + self.c.read_count])
            if start in (b"0-0", "0-0"):
                break
        return total


class Service:
    """A stage process: consumers, background tasks, health and metrics, graceful shutdown."""

    def __init__(self, name: str, settings: CommonSettings) -> None:
        self.name = name
        self.settings = settings
        self.consumers: list[Consumer] = []
        self._tasks: list[Hook] = []
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self.ctx: ServiceContext | None = None
        self.stages: list[_Stage] = []
        self.metrics_port: int | None = None
        self.ready = asyncio.Event()

    def consumer(self, c: Consumer) -> Consumer:
        self.consumers.append(c)
        return c

    def task(self, fn: Hook) -> Hook:
        self._tasks.append(fn)
        return fn

    def on_startup(self, fn: Hook) -> Hook:
        self._startup.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        self._shutdown.append(fn)
        return fn

    def health_check(self, name: str, fn: Callable[[], Awaitable[bool]]) -> None:
        self._checks[name] = fn

    # -- running ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT. Blocking; the process entry point of every service."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self.serve())

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        s = self.settings
        redis = make_redis(s.redis_url)
        self.ctx = ctx = ServiceContext(self.name, s, redis)
        for c in self.consumers:
            ctx.backpressure_streams.update(c.output_streams)
        loop = asyncio.get_running_loop()
        if stop is None:
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)

        await self._wait_for_redis(redis, stop)
        if stop.is_set():
            await redis.aclose()
            return
        await ensure_groups(redis, {c.stream: (c.group,) for c in self.consumers})
        for fn in self._startup:
            await fn(ctx)

        broker = RedisBroker(
            s.redis_url,
            graceful_timeout=s.graceful_timeout_s,
            middlewares=[RedisPrometheusMiddleware(registry=REGISTRY, app_name=self.name)],
            logger=logging.getLogger(f"newsflow.{self.name}.faststream"),
        )
        for c in self.consumers:
            stage = _Stage(self, c)
            self.stages.append(stage)
            self._subscribe(broker, stage)

        http = await asyncio.start_server(self._http, s.metrics_host, s.metrics_port)
        self.metrics_port = http.sockets[0].getsockname()[1]
        background = [
            asyncio.create_task(self._supervise(fn), name=getattr(fn, "__name__", "task")) for fn in self._tasks
        ]
        background += [asyncio.create_task(st.claim_loop(), name=f"claim:{st.c.stream}") for st in self.stages]
        background.append(asyncio.create_task(self._maintenance(), name="maintenance"))
        await broker.start()
        self.ready.set()
        log.info(
            "%s started: consumer %s, health and metrics on port %d",
            self.name,
            s.consumer_name,
            self.metrics_port,
            extra={"metrics_port": self.metrics_port, "consumer": s.consumer_name},
        )
        try:
            await stop.wait()
        finally:
            await self._shutdown_all(broker, background, http)
            await redis.aclose()

    async def _shutdown_all(
        self, broker: RedisBroker, background: list[asyncio.Task[Any]], http: asyncio.AbstractServer
    ) -> None:
        assert self.ctx is not None
        log.info(
            "%s stopping: no new messages; waiting up to %.0f s for in-flight work",
            self.name,
            self.settings.graceful_timeout_s,
        )
        started = time.monotonic()
        self.ctx.stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.stop(), self.settings.graceful_timeout_s)
        remaining = max(0.5, self.settings.graceful_timeout_s - (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(st.idle.wait() for st in self.stages)), remaining)
        for t in background:
            t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for fn in self._shutdown:
            try:
                await fn(self.ctx)
            except Exception:
                log.exception("shutdown hook failed")
        http.close()
        log.info("%s stopped after %.1f s", self.name, time.monotonic() - started)

    async def _wait_for_redis(self, redis: aioredis.Redis, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await redis.ping()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.error(
                    "cannot reach Redis at %s (%s): check NEWSFLOW_REDIS_URL; retrying in %.0f s",
                    self.settings.redis_url,
                    e,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10)

    def _subscribe(self, broker: RedisBroker, stage: _Stage) -> None:
        c = stage.c
        sub = broker.subscriber(
            stream=StreamSub(
                c.stream,
                group=c.group,
                consumer=self.settings.consumer_name,
                batch=True,
                max_records=c.read_count,
                polling_interval=500,
            ),
            ack_policy=AckPolicy.MANUAL,
        )

        async def on_message(body: Any, message: RedisBatchStreamMessage = Context("message")) -> None:
            raw = message.raw_message
            await stage.on_batch(list(raw["message_ids"]), list(raw["data"]))

        on_message.__name__ = f"{self.name}_{c.stream.replace('.', '_')}"
        sub(on_message)

    async def _supervise(self, fn: Hook) -> None:
        """Keep a background task alive: a crash is logged and the task restarted, never silently gone."""
        assert self.ctx is not None
        delay = 1.0
        while not self.ctx.stopping.is_set():
            try:
                await fn(self.ctx)
                if self.ctx.stopping.is_set():
                    return
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in %.0f s", getattr(fn, "__name__", fn), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ctx.stopping.wait(), delay)
            delay = min(delay * 2, 30)

    async def _maintenance(self) -> None:
        """Gauges, NOGROUP repair and safe trimming of this service's input streams."""
        assert self.ctx is not None
        redis = self.ctx.redis
        inputs = {c.stream: c.group for c in self.consumers}
        watched = set(inputs) | {o for c in self.consumers for o in c.output_streams}
        last_trim = 0.0
        while not self.ctx.stopping.is_set():
            try:
                await ensure_groups(redis, {s: (g,) for s, g in inputs.items()})
                for stream in watched:
                    metrics.STREAM_LENGTH.labels(stream).set(await redis.xlen(stream))
                    try:
                        infos = await redis.xinfo_groups(stream)
                    except ResponseError:
                        continue
                    for g in infos:
                        name = _text(g["name"])
                        metrics.STREAM_LAG.labels(stream, name).set(int(g.get("lag") or 0))
                        metrics.STREAM_PENDING.labels(stream, name).set(int(g.get("pending") or 0))
                if time.monotonic() - last_trim >= self.settings.stream_trim_interval_s:
                    last_trim = time.monotonic()
                    for stream, group in inputs.items():
                        await safe_trim(redis, stream)
                        await remove_stale_consumers(redis, stream, group, self.settings.stale_consumer_s)
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning("maintenance: Redis unavailable (%s)", e)
            except Exception:
                log.exception("maintenance error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ctx.stopping.wait(), 2.0)

    # -- health and metrics -------------------------------------------------------------------------

    async def health(self) -> tuple[bool, dict[str, Any]]:
        assert self.ctx is not None
        checks: dict[str, bool] = {}

        async def run(name: str, fn: Callable[[], Awaitable[Any]]) -> None:
            try:
                checks[name] = bool(await asyncio.wait_for(fn(), 2.0))
            except Exception:
                checks[name] = False

        await asyncio.gather(run("redis", self.ctx.redis.ping), *(run(n, f) for n, f in self._checks.items()))
        ok = all(checks.values()) and self.ready.is_set() and not self.ctx.stopping.is_set()
        return ok, {
            "status": "ok" if ok else "unavailable",
            "service": self.name,
            "consumer": self.settings.consumer_name,
            "checks": checks,
            "stopping": self.ctx.stopping.is_set(),
        }

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while await asyncio.wait_for(reader.readline(), 5) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else "/"
            if path == "/metrics":
                status, ctype, body = 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(REGISTRY)
            elif path in ("/health", "/health/ready", "/ready"):
                ok, info = await self.health()
                status, ctype, body = (200 if ok else 503), "application/json", json.dumps(info).encode()
            elif path in ("/health/live", "/live"):
                status, ctype, body = 200, "application/json", b'{"status":"alive"}'
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except Exception as e:
            log.debug("http: %s", e)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def run_main(name: str, settings_cls: type[CommonSettings], build: Callable[[Any], Service]) -> None:
    """A service's process entry point: settings from the environment, logging, then run.

    A configuration mistake (a malformed NEWSFLOW_REDIS_URL, a negative interval) ends the process with
    one line saying which variable is wrong, not a traceback.
    """
    import sys

    from pydantic import ValidationError

    from newsflow_shared.logging import configure_logging

    try:
        settings = settings_cls()
    except ValidationError as e:
        for err in e.errors():
            var = "NEWSFLOW_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"newsflow-{name}: bad configuration: {var}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(name, settings.log_level, settings.log_format)
    build(settings).run()
