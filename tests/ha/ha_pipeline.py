"""The pipeline on the HA servers, for tests/ha/test_pipeline_faults.py: the services as processes, given
every Elasticsearch node and Redis through Sentinel only, fed by the demo feed server; and the probes
that time a fault (when did the pipeline move again) and judge its result (nothing lost, nothing twice).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from elasticsearch import AsyncElasticsearch
from ha_servers import EsCluster, Figures, RedisHA

from newsflow_devtools.demo.server import DemoFeedServer
from newsflow_search.rules import Rule
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.models import Alert
from newsflow_shared.runtime import DATA_FIELD
from newsflow_shared.urls import canonicalize

# Rules that fire: "rocket attack" on the one article modelled on the seed page, the others on hundreds.
RULES = {"rocket attack": '"rocket attack"', "markets": "market*", "storm": "storm OR flood"}
# A port nothing listens on: a service that reached Redis other than through the Sentinels would fail.
NO_REDIS = "redis://127.0.0.1:1/0"


@dataclass
class HaRun:
    """One test's pipeline environment on the session's cluster and Sentinel-watched Redis."""

    env: dict[str, str]
    redis: aioredis.Redis  # through Sentinel, as the services: it follows a failover
    es: AsyncElasticsearch  # every node, with retries: a dead node's requests go to the others
    log_dir: Path
    cluster: EsCluster
    redis_ha: RedisHA
    figures: Figures
    # The demo server's downloads per article page just before the kill, to tell re-fetches the fault caused
    # from those of the run before it.
    at_kill: Counter[str] | None = None

    def report(self, what: str, value: float | str, unit: str = "s") -> None:
        if isinstance(value, str):
            self.figures.rows.append((what, value))
            print(f"{what}: {value}")
        else:
            self.figures.add(what, value, unit)


def wall_ms() -> int:
    return int(time.time() * 1000)


async def doc_count(es: AsyncElasticsearch) -> int:
    return int((await es.count(index="news"))["count"])


async def searchable_since(es: AsyncElasticsearch, field_name: str, since_ms: int) -> bool:
    """A document whose `field_name` (fetched_at, indexed_at) is after `since_ms` is searchable."""
    query = {"range": {field_name: {"gt": since_ms, "format": "epoch_millis"}}}
    return int((await es.count(index="news", query=query))["count"]) > 0


async def appended_since(redis: aioredis.Redis, stream: str, since_ms: int) -> bool:
    """`stream` got an entry after `since_ms` (entry ids start with the primary's clock in ms; trimming
    does not move the last generated id)."""
    last = (await redis.xinfo_stream(stream))["last-generated-id"]
    last = last.decode() if isinstance(last, bytes) else str(last)
    return int(last.split("-")[0]) > since_ms


def downloads(srv: DemoFeedServer) -> Counter[str]:
    """Requests the demo server answered per article page: more than one means fetched again."""
    return Counter({a.path: srv.requests[a.path] for a in srv.corpus})


async def alerts_on_stream(redis: aioredis.Redis) -> list[Alert]:
    return [Alert.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.ALERTS)]


async def check_exactly_once(run: HaRun, srv: DemoFeedServer) -> dict[str, Any]:
    """Every article searchable once under its id, every alert once, each rule fired for exactly what a
    search for its words finds. Returns what it found, for the report; asserts the rest."""
    es, n = run.es, len(srv.corpus)
    await es.indices.refresh(index="news")
    expected = {article_id(canonicalize(u)) for u in srv.article_urls}
    found = await es.search(index="news", size=n + 10, source=False, query={"match_all": {}})
    ids = [h["_id"] for h in found["hits"]["hits"]]
    assert len(ids) == len(set(ids)) == await doc_count(es)
    missing = expected - set(ids)
    assert not missing, f"{len(missing)} of {n} articles never became searchable"
    assert set(ids) == expected

    alerts = await alerts_on_stream(run.redis)
    alert_ids = [a.alert_id for a in alerts]
    assert len(alert_ids) == len(set(alert_ids)), "duplicate alerts on news.alerts"
    for name, query in RULES.items():
        matching = int((await es.count(index="news", query=Rule(name=name, query=query).es_query()))["count"])
        mine = [a for a in alerts if a.rule_name == name]
        # One alert per matching article, or one per group of syndicated copies with the others attached.
        fired = len(mine) + sum(len(a.duplicates) for a in mine)
        assert fired == matching, (name, fired, matching)
    assert sum(1 for a in alerts if a.rule_name == "rocket attack") == 1
    fetched = downloads(srv)
    before = run.at_kill if run.at_kill is not None else fetched
    return {
        "documents": len(ids),
        "alerts": len(alerts),
        "fetched_again": sum(1 for c in fetched.values() if c > 1),
        "extra_downloads": sum(c - 1 for c in fetched.values() if c > 1),
        # Downloaded before the kill and again after it: the work the fault made the pipeline redo.
        "fetched_again_after_kill": sum(1 for p, c in fetched.items() if before[p] >= 1 and c > before[p]),
        "never_downloaded": sum(1 for c in fetched.values() if c == 0),
    }


class Receiver:
    """A webhook receiver on loopback: what the notifier delivered, counted by `Idempotency-Key`
    (`<alert id>:<channel key>`, the same on every attempt of one message)."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.arrivals: list[float] = []  # wall clock, seconds
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Receiver:
        async def receive(request: web.Request) -> web.Response:
            await request.read()
            self.keys[request.headers.get("Idempotency-Key", "")] += 1
            self.arrivals.append(time.time())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def since(self, wall_s: float) -> bool:
        return any(t > wall_s for t in self.arrivals)


def alert_rules(receiver: Receiver) -> list[Rule]:
    """RULES, each sending every alert to the receiver at once (no storm guard)."""
    return [
        Rule(name=name, query=query, storm_guard="off", channels=[f"{receiver.url}/{i}"])
        for i, (name, query) in enumerate(RULES.items())
    ]


async def check_delivered(run: HaRun, receiver: Receiver, rules: list[Rule]) -> dict[str, int]:
    """Every alert on news.alerts reached the receiver at least once; returns the repeats."""
    channel = {r.name: r.channels[0].key for r in rules}
    wanted = {f"{a.alert_id}:{channel[a.rule_name]}" for a in await alerts_on_stream(run.redis)}
    missing = wanted - set(receiver.keys)
    assert not missing, f"{len(missing)} of {len(wanted)} alerts never delivered"
    assert set(receiver.keys) == wanted, "the receiver got messages for no alert"
    return {"delivered": len(wanted), "repeats": sum(c - 1 for c in receiver.keys.values())}
