"""What a service process does: declare consumers and tasks, make clients in a lifespan, run as a
FastStream app on a Redis broker, serve health and metrics, and stop gracefully on SIGTERM.

A service module reads like a FastStream app::

    service = Service("parser", ParserSettings)

    @service.lifespan
    async def clients(runtime: Runtime) -> AsyncIterator[dict[str, object]]:
        pool = ExtractionPool(...)
        yield {"pages": PageHandler(pool, runtime.settings)}
        pool.close()

    @service.consumer(streams.RAW, group=streams.PARSER_GROUP, publishes=streams.PARSED)
    async def parse(raw: RawPage, pages: Annotated[PageHandler, Context("pages")]) -> ParsedArticle:
        return await pages.handle(raw)

A consumer is a typed async function: it takes the stream's message model (and dependencies made in the
lifespan, injected by FastStream) and returns the models it produces; the declaration names the streams
they go to, and a return type that does not match them fails at start-up. Each consumer becomes two
FastStream subscribers of its consumer group: one reads new entries, one claims entries left pending
longer than `claim_idle_ms` (`min_idle_time`). What happens to each message is `delivery`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import socket
import sys
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
import uvicorn
from faststream import AckPolicy, ContextRepo, apply_types
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.broker.sentinel_broker import RedisSentinelBroker
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import REGISTRY, make_asgi_app
from pydantic import BaseModel, ValidationError
from redis.exceptions import ResponseError

from newsflow_shared import metrics, streams
from newsflow_shared.errors import Stopping
from newsflow_shared.logging import configure_logging
from newsflow_shared.models import STREAM_MODELS
from newsflow_shared.redact import redact
from newsflow_shared.retry import retrying
from newsflow_shared.runtime.codec import BareJson, decode
from newsflow_shared.runtime.delivery import Delivery, Holdings, middleware_for
from newsflow_shared.runtime.housekeeping import (
    REDIS_DOWN,
    ensure_groups,
    make_redis,
    remove_stale_consumers,
    safe_trim,
    text,
)
from newsflow_shared.runtime.publisher import Publisher
from newsflow_shared.settings import CommonSettings

log = logging.getLogger("newsflow.runtime")
S = TypeVar("S", bound=CommonSettings)
Lifespan = Callable[["Runtime"], AsyncIterator[Mapping[str, object]]]
MAINTENANCE_INTERVAL_S = 2.0


class ServiceDefinitionError(Exception):
    """A consumer whose declaration and signature disagree: found at start-up, never in production."""


@dataclass
class Runtime:
    """What a process gives its handlers, tasks and lifespan: reachable as `Context("runtime")`."""

    service: str
    settings: Any
    redis: aioredis.Redis
    publisher: Publisher
    stopping: asyncio.Event
    # Objects the caller of `serve` provides (a test's DNS resolver); lifespans may use them.
    provided: Mapping[str, object] = field(default_factory=dict)

    async def publish(self, stream: str, model: BaseModel) -> str:
        return await self.publisher.publish(stream, model)


@dataclass
class Consumer:
    stream: str
    group: str
    handler: Callable[..., Awaitable[Any]]
    publishes: Mapping[str, type[BaseModel]]
    concurrency: Callable[[Any], int]
    model: type[BaseModel] = field(init=False)
    routes: dict[type[BaseModel], str] = field(init=False)

    def check(self) -> None:
        """The handler takes the stream's model and returns exactly the models its outputs carry."""
        hints = typing.get_type_hints(self.handler)
        params = list(inspect.signature(self.handler).parameters)
        if not params or params[0] not in hints:
            raise ServiceDefinitionError(f"{self.handler.__name__}: the first parameter must be the message model")
        self.model = hints[params[0]]
        expected = STREAM_MODELS.get(self.stream)
        if expected is not None and self.model is not expected:
            raise ServiceDefinitionError(
                f"{self.handler.__name__} takes {self.model.__name__}, but {self.stream} carries {expected.__name__}"
            )
        returned = _models_in(hints.get("return"))
        declared = set(self.publishes.values())
        if returned != declared:
            raise ServiceDefinitionError(
                f"{self.handler.__name__} returns {sorted(m.__name__ for m in returned) or 'nothing'} but declares "
                f"outputs {dict((s, m.__name__) for s, m in self.publishes.items()) or 'none'}"
            )
        self.routes = {model: stream for stream, model in self.publishes.items()}


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    if annotation is None or annotation is type(None):
        return set()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    found: set[type[BaseModel]] = set()
    for arg in typing.get_args(annotation):
        found |= _models_in(arg)
    return found


def _outputs(publishes: str | Sequence[str] | Mapping[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    if isinstance(publishes, Mapping):
        return dict(publishes)
    names = [publishes] if isinstance(publishes, str) else list(publishes)
    missing = [n for n in names if n not in STREAM_MODELS]
    if missing:
        raise ServiceDefinitionError(f"no message model is registered for {missing}: pass {{stream: Model}}")
    return {n: STREAM_MODELS[n] for n in names}


def _setting(value: int | Callable[[Any], int]) -> Callable[[Any], int]:
    return value if callable(value) else (lambda _s: value)


class Service(Generic[S]):
    """A stage process: its consumers, background tasks, lifespan, health checks."""

    def __init__(self, name: str, settings_cls: type[S]) -> None:
        self.name = name
        self.settings_cls = settings_cls
        self.consumers: list[Consumer] = []
        self.tasks: list[tuple[Callable[..., Awaitable[None]], tuple[str, ...]]] = []
        self.lifespans: list[Lifespan] = []
        self.checks: dict[str, Callable[..., Awaitable[bool]]] = {}

    # -- declaring ----------------------------------------------------------------------------------

    def consumer(
        self,
        stream: str,
        *,
        group: str,
        publishes: str | Sequence[str] | Mapping[str, type[BaseModel]] = (),
        concurrency: int | Callable[[S], int] = 1,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Declare `fn` the consumer of `stream` in `group`; it may handle `concurrency` messages at once."""

        def register(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            self.consumers.append(Consumer(stream, group, fn, _outputs(publishes), _setting(concurrency)))
            return fn

        return register

    def task(self, *, publishes: Sequence[str] = ()) -> Callable[[Callable[..., Awaitable[None]]], Any]:
        """A background task (the feed poller), kept running and restarted after a crash; `publishes`
        names the streams it writes to, which then apply backpressure to it."""

        def register(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
            self.tasks.append((fn, tuple(publishes)))
            return fn

        return register

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """Make clients before the first message and close them after the last: an async generator that
        yields the dependencies handlers, tasks and health checks reach through `Context(name)`."""
        self.lifespans.append(fn)
        return fn

    def health_check(self, name: str) -> Callable[[Callable[..., Awaitable[bool]]], Any]:
        def register(fn: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
            self.checks[name] = fn
            return fn

        return register

    # -- running ------------------------------------------------------------------------------------

    def instance(self, settings: S, *, provide: Mapping[str, object] | None = None) -> Instance[S]:
        """One running copy of the service (a process runs one; a test may run several replicas)."""
        return Instance(self, settings, provide or {})

    def main(self) -> None:
        """The process entry point: settings from the environment, logging, run until SIGTERM."""
        settings = load_settings(self.name, self.settings_cls)
        configure_logging(self.name, settings.log_level, settings.log_format)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self.instance(settings).serve(handle_signals=True))


class Instance(Generic[S]):
    """A service running with its settings: broker, app, subscribers, background tasks."""

    def __init__(self, service: Service[S], settings: S, provide: Mapping[str, object]) -> None:
        self.service = service
        self.name = service.name
        self.settings = settings
        self.provide = provide
        self.consumers = service.consumers
        self.runtime: Runtime | None = None
        self.metrics_port: int | None = None
        self.ready = asyncio.Event()
        self._subscribers: list[tuple[Any, Consumer]] = []
        self._holdings: list[Holdings] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def serve(self, stop: asyncio.Event | None = None, *, handle_signals: bool = False) -> None:
        """Run until `stop` is set (tests) or SIGTERM/SIGINT arrives (`handle_signals`)."""
        settings = self.settings
        for c in self.consumers:
            c.check()
        stopping = asyncio.Event()
        redis = make_redis(settings)
        try:
            with _signals(stopping, handle_signals):
                if await self._wait_for_redis(redis, settings, stop, stopping):
                    await self._serve(settings, redis, stop, stopping, self.provide)
        finally:
            await redis.aclose()

    async def _wait_for_redis(
        self, redis: aioredis.Redis, settings: S, stop: asyncio.Event | None, stopping: asyncio.Event
    ) -> bool:
        watcher = asyncio.create_task(_forward(stop, stopping)) if stop is not None else None
        try:
            await retrying(
                redis.ping,
                what=f"reaching Redis at {redact(settings.redis_url)} (NEWSFLOW_REDIS_URL)",
                retry_on=lambda e: isinstance(e, REDIS_DOWN),
                initial_s=0.5,
                max_s=10.0,
                stopping=stopping,
                logger=log,
            )
            return True
        except Stopping:
            return False
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _serve(
        self,
        settings: S,
        redis: aioredis.Redis,
        stop: asyncio.Event | None,
        stopping: asyncio.Event,
        provide: Mapping[str, object],
    ) -> None:
        await ensure_groups(redis, {c.stream: (c.group,) for c in self.consumers})
        backpressure = {
            s
            for c in self.consumers
            for s in c.publishes
            if s not in streams.MAXLEN and s not in streams.NO_BACKPRESSURE
        }
        backpressure |= {s for _fn, outs in self.service.tasks for s in outs}
        publisher = Publisher(
            self.name,
            redis,
            max_lag=settings.backpressure_max_lag,
            dedup_ttl_s=int(settings.publish_dedup_ttl_days * 86400),
            stopping=stopping,
            backpressure=backpressure,
            wait_replicas=settings.wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
        )
        self.runtime = Runtime(self.name, settings, redis, publisher, stopping, provide)
        app = self._app(settings, self.runtime)
        sock = socket.socket(socket.AF_INET6 if ":" in settings.metrics_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.metrics_host, settings.metrics_port))
        self.metrics_port = sock.getsockname()[1]
        server = _Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=int(settings.graceful_timeout_s) + 5,
            )
        )
        watcher = asyncio.create_task(_stop_server(stop, stopping, server))
        try:
            await server.serve(sockets=[sock])
        except SystemExit as e:  # uvicorn's way of saying the lifespan failed; it logged why
            raise RuntimeError(f"{self.name} could not start (see the error above)") from e
        finally:
            watcher.cancel()
            self.ready.clear()

    def _app(self, settings: S, rt: Runtime) -> AsgiFastStream:
        deliveries: dict[int, tuple[Delivery, bool]] = {}
        broker = broker_for(
            settings,
            message_format=BareJson,
            graceful_timeout=settings.graceful_timeout_s,
            middlewares=(RedisPrometheusMiddleware(registry=REGISTRY, app_name=self.name), middleware_for(deliveries)),
            logger=logging.getLogger(f"newsflow.{self.name}.faststream"),
            log_level=logging.DEBUG,  # one line per message is FastStream's default; ours log what matters
        )
        self._holdings = [self._subscribe(broker, c, settings, rt, deliveries) for c in self.consumers]
        return _App(
            self.name,
            broker,
            lifespan=self._lifespan,
            after_startup=[self._started],
            on_shutdown=[self._stopping],
            after_shutdown=[self._stopped],
            asgi_routes=[
                ("/health", self._health_route(rt, ready=True)),
                ("/health/ready", self._health_route(rt, ready=True)),
                ("/health/live", self._health_route(rt, ready=False)),
                ("/metrics", make_asgi_app(REGISTRY)),
            ],
            logger=logging.getLogger(f"newsflow.{self.name}.faststream"),
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, context: ContextRepo) -> AsyncIterator[None]:
        rt = self.running_runtime
        context.set_global("runtime", rt)
        context.set_global("settings", self.settings)
        async with contextlib.AsyncExitStack() as stack:
            for fn in self.service.lifespans:
                deps = await stack.enter_async_context(contextlib.asynccontextmanager(fn)(rt))
                for name, dep in (deps or {}).items():
                    context.set_global(name, dep)
            yield

    async def _started(self, context: ContextRepo) -> None:
        rt = self.running_runtime
        for fn, _outs in self.service.tasks:
            self._tasks.append(asyncio.create_task(self._supervise(apply_types(fn, context__=context), rt)))
        self._tasks.extend(asyncio.create_task(h.run(rt.stopping)) for h in self._holdings)
        self._tasks.append(asyncio.create_task(self._maintenance(rt)))
        self.ready.set()
        consumer = self.settings.consumer_name
        log.info("%s started: consumer %s, health and metrics on port %d", self.name, consumer, self.metrics_port,
                 extra={"metrics_port": self.metrics_port, "consumer": consumer})  # fmt: skip

    async def _stopping(self) -> None:
        log.info("%s stopping: no new messages; waiting up to %.0f s for in-flight work", self.name,
                 self.settings.graceful_timeout_s)  # fmt: skip
        self.ready.clear()
        self.running_runtime.stopping.set()

    async def _stopped(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("%s stopped", self.name)

    @property
    def running_runtime(self) -> Runtime:
        assert self.runtime is not None, "the service is not running"
        return self.runtime

    def _subscribe(
        self, broker: RedisBroker, c: Consumer, settings: S, rt: Runtime, deliveries: dict[int, tuple[Delivery, bool]]
    ) -> Holdings:
        workers = max(1, c.concurrency(settings))
        holdings = Holdings(
            rt.redis,
            c.stream,
            c.group,
            settings.consumer_name,
            interval_s=max(0.05, settings.claim_idle_ms / 3000),
            # An entry FastStream read but no handler has seen: waiting for a free worker (kept), or lost
            # with a read reply in a Redis restart (let go after this, for a claimer to take over).
            grace_s=max(10 * settings.claim_idle_ms / 1000, 30.0),
        )
        delivery = Delivery(
            self.name,
            holdings,
            rt.publisher,
            c.routes,
            max_deliveries=settings.max_deliveries,
            retry_after_ms=settings.claim_idle_ms,
        )
        model = c.model

        async def decoder(msg: Any, original: Any = None) -> Any:
            return decode(model, msg.body)

        reading = StreamSub(
            c.stream, group=c.group, consumer=settings.consumer_name, max_records=workers, polling_interval=500
        )
        claiming = StreamSub(
            c.stream,
            group=c.group,
            consumer=settings.consumer_name,
            min_idle_time=settings.claim_idle_ms,
            polling_interval=int(settings.claim_interval_s * 1000),
        )
        for sub_spec, claimed in ((reading, False), (claiming, True)):
            sub = broker.subscriber(
                stream=sub_spec,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                decoder=decoder,
                **({"max_workers": workers} if workers > 1 else {}),
            )
            sub(c.handler)
            deliveries[id(sub)] = (delivery, claimed)
            self._subscribers.append((sub, c))
        return holdings

    def _health_route(self, rt: Runtime, *, ready: bool) -> Any:
        checks = dict(self.service.checks)

        @get(include_in_schema=False)
        async def health(context: ContextRepo) -> AsgiResponse:
            import json

            if not ready:
                return AsgiResponse(b'{"status":"alive"}', 200, {"Content-Type": "application/json"})
            results: dict[str, bool] = {}

            async def run(name: str, fn: Callable[..., Awaitable[Any]]) -> None:
                try:
                    results[name] = bool(await asyncio.wait_for(fn(), 2.0))
                except Exception:
                    results[name] = False

            await asyncio.gather(
                run("redis", rt.redis.ping), *(run(n, apply_types(f, context__=context)) for n, f in checks.items())
            )
            ok = all(results.values()) and self.ready.is_set() and not rt.stopping.is_set()
            body = {
                "status": "ok" if ok else "unavailable",
                "service": self.name,
                "consumer": rt.settings.consumer_name,
                "checks": results,
                "stopping": rt.stopping.is_set(),
            }
            return AsgiResponse(json.dumps(body).encode(), 200 if ok else 503, {"Content-Type": "application/json"})

        return health

    async def _supervise(self, fn: Callable[[], Awaitable[None]], rt: Runtime) -> None:
        """Keep a background task alive: a crash is logged and the task restarted, never silently gone."""
        with contextlib.suppress(Stopping):
            await retrying(
                fn,
                what=f"{self.name} background task {getattr(fn, '__name__', fn)}",
                retry_on=lambda e: isinstance(e, Exception) and not isinstance(e, Stopping),
                initial_s=1.0,
                max_s=30.0,
                stopping=rt.stopping,
                logger=log,
            )

    async def _maintenance(self, rt: Runtime) -> None:
        """Gauges, consumer groups and subscribers brought back after a flush, safe trimming."""
        inputs = {c.stream: c.group for c in self.consumers}
        watched = set(inputs) | {o for c in self.consumers for o in c.publishes}
        last_trim = 0.0
        while not rt.stopping.is_set():
            try:
                await ensure_groups(rt.redis, {s: (g,) for s, g in inputs.items()})
                await self._restart_stopped_subscribers(rt)
                await _gauges(rt.redis, watched)
                if time.monotonic() - last_trim >= rt.settings.stream_trim_interval_s:
                    last_trim = time.monotonic()
                    for stream, group in inputs.items():
                        await safe_trim(rt.redis, stream)
                        await remove_stale_consumers(rt.redis, stream, group, rt.settings.stale_consumer_s)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as e:
                log.warning("maintenance: Redis unavailable (%s)", e)
            except Exception:
                log.exception("maintenance error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.stopping.wait(), MAINTENANCE_INTERVAL_S)

    async def _restart_stopped_subscribers(self, rt: Runtime) -> None:
        for sub, c in self._subscribers:
            if not sub.running and not rt.stopping.is_set():
                log.warning(
                    "consumer group %s on %s was gone: re-created at position 0, consuming again", c.group, c.stream
                )
                await sub.start()


def broker_for(settings: CommonSettings, **options: Any) -> RedisBroker:
    """FastStream's broker for the settings: through Sentinel when Sentinels are given."""
    if settings.redis_sentinels:
        return RedisSentinelBroker(
            settings.redis_url,
            sentinels=settings.sentinel_addresses,
            sentinel_master_name=settings.redis_sentinel_master,
            **options,
        )
    return RedisBroker(settings.redis_url, **options)


async def _gauges(redis: aioredis.Redis, watched: set[str]) -> None:
    for stream in watched:
        metrics.STREAM_LENGTH.labels(stream).set(await redis.xlen(stream))
        try:
            infos = await redis.xinfo_groups(stream)
        except ResponseError:
            continue
        for g in infos:
            name = text(g["name"])
            metrics.STREAM_LAG.labels(stream, name).set(int(g.get("lag") or 0))
            metrics.STREAM_PENDING.labels(stream, name).set(int(g.get("pending") or 0))


async def _forward(stop: asyncio.Event | None, stopping: asyncio.Event) -> None:
    if stop is not None:
        await stop.wait()
        stopping.set()


async def _stop_server(stop: asyncio.Event | None, stopping: asyncio.Event, server: uvicorn.Server) -> None:
    waits = [asyncio.ensure_future(stopping.wait())]
    if stop is not None:
        waits.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    server.should_exit = True


@contextlib.contextmanager
def _signals(stopping: asyncio.Event, enabled: bool) -> Iterator[None]:
    """SIGTERM and SIGINT start a graceful stop (the shutdown then exits 0)."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class _App(AsgiFastStream):
    def __init__(self, service: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service

    def exit(self) -> None:
        # FastStream asks the app to exit when a consumer group vanished (a flushed Redis). The
        # maintenance loop re-creates the group at position 0 and restarts the subscriber instead.
        log.warning("%s: a subscriber stopped; it is restarted once its group is back", self.service)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are the service's (see _signals): uvicorn would re-raise them after shutting down,
        # turning a clean stop into exit status 143.
        yield


def load_settings(name: str, settings_cls: type[S]) -> S:
    """Settings from the environment; a mistake ends the process with one line naming the variable."""
    try:
        return settings_cls()
    except ValidationError as e:
        for err in e.errors():
            var = "NEWSFLOW_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"newsflow-{name}: bad configuration: {var}: {redact(str(err['msg']))}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["Consumer", "Instance", "Runtime", "Service", "ServiceDefinitionError", "load_settings"]
