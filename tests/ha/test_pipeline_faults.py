"""Lose one server with articles flowing (issue 21): fetcher, parser, indexer and notifier as processes,
given every Elasticsearch node and Redis through Sentinel only, 2,000 articles from the demo feed
server, three rules firing to a webhook receiver. One fault per test; the dead server is restarted while
the pipeline runs. The end state must be every article searchable once, every alert once on news.alerts
and delivered at least once, with no service restarted by hand.

Times are measured from just before the kill command and printed with the other HA figures. "Moving
again" is the first document *written* after the kill being searchable (`indexed_at`), beside the same
measure taken just before the kill, without a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from e2e.conftest import add_feeds, backlog, drained, running, wait_for
from elasticsearch import AsyncElasticsearch
from ha_pipeline import (
    HaRun,
    Receiver,
    alert_rules,
    alerts_on_stream,
    appended_since,
    check_delivered,
    check_exactly_once,
    doc_count,
    downloads,
    searchable_since,
    wall_ms,
)

from newsflow_devtools.demo.server import DemoFeedServer
from newsflow_devtools.processes import ALL_SERVICES, Pipeline
from newsflow_search.rules import Rule, RuleStore
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.urls import canonicalize

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

# "A few thousand articles flowing" (issue 21); NEWSFLOW_HA_ARTICLES trades it for time on a slow machine.
N = int(os.environ.get("NEWSFLOW_HA_ARTICLES", "2000"))
# Listed in the feeds at the start; a tenth more just before the no-fault measure (so that there is something new
# to write however fast the first ones went through); the rest from the kill on.
FIRST, BEFORE_KILL = N // 2, N // 2 + N // 10


async def _at_least(es: AsyncElasticsearch, n: int) -> bool:
    return await doc_count(es) >= n


async def _timed(t0: float, probe: Callable[[], Awaitable[bool]], what: str, within: float = 120) -> float:
    await wait_for(probe, within, what, every=0.1)
    return time.monotonic() - t0


async def _written_after_now(run: HaRun) -> float:
    """Seconds until a document written from now on is searchable: the pipeline's pulse."""
    since, t0 = wall_ms(), time.monotonic()
    return await _timed(t0, lambda: searchable_since(run.es, "indexed_at", since), "a document written now")


@contextlib.asynccontextmanager
async def _pipeline(run: HaRun, srv: DemoFeedServer) -> AsyncIterator[tuple[Pipeline, Receiver, list[Rule]]]:
    async with Receiver() as receiver:
        rules = alert_rules(receiver)
        store = RuleStore(run.es)
        for rule in rules:
            await store.add(rule)
        await add_feeds(run.redis, srv.feed_urls)
        async with running(run.env, run.log_dir, services=ALL_SERVICES) as p:
            await wait_for(lambda: _at_least(run.es, N // 4), within=300, what=f"{N // 4} documents")
            yield p, receiver, rules
            await wait_for(lambda: _at_least(run.es, N), within=420, what=f"{N} documents")
            await wait_for(lambda: drained(run.redis), 120, "streams drained", describe=lambda: backlog(run.redis))
            await wait_for(lambda: _all_delivered(run, receiver, rules), 60, "every alert delivered")
            # "By themselves": each service is the process the test started, never restarted.
            assert all(x.running and x.starts == 1 for x in p), [(x.name, x.starts, x.running) for x in p]


async def _judge(run: HaRun, srv: DemoFeedServer, receiver: Receiver, rules: list[Rule], label: str) -> None:
    found = await check_exactly_once(run, srv)
    await _index_size(run, label)
    sent = await check_delivered(run, receiver, rules)
    run.report(
        f"{label}: result",
        f"{found['documents']} of {N} searchable once; {found['alerts']} alerts once each, all delivered "
        f"({sent['repeats']} repeated); lost 0; {found['fetched_again']} articles fetched again "
        f"({found['extra_downloads']} extra downloads), {found['fetched_again_after_kill']} of them "
        "downloaded before the kill and again after it",
    )


async def _index_size(run: HaRun, label: str) -> None:
    """Store size of the news index with its replica, for docs/SCALING.md's documents per node."""
    rows = await run.es.cat.indices(index="news", format="json", bytes="b", h="docs.count,store.size,pri.store.size")
    docs, total, primaries = (sum(int(r[k]) for r in rows) for k in ("docs.count", "store.size", "pri.store.size"))
    run.report(
        f"{label}: news index size",
        f"{docs} documents, {total / 2**20:.1f} MB with the replica ({primaries / docs / 1024:.1f} KB per document "
        "per copy, not force-merged)",
    )


async def _all_delivered(run: HaRun, receiver: Receiver, rules: list[Rule]) -> bool:
    try:
        await check_delivered(run, receiver, rules)
    except AssertionError:
        return False
    return True


# -- Elasticsearch ---------------------------------------------------------------------------------


@dataclass
class SearchProbe:
    """An analyst searching every 0.2 s: each search must be answered; partial answers are counted."""

    es: AsyncElasticsearch
    answered: int = 0
    partial: int = 0
    failed: int = 0

    async def _loop(self) -> None:
        while True:
            try:
                r = await self.es.search(index="news", q="market*", size=5)
                self.answered += 1
                self.partial += int(r["_shards"].get("failed", 0) > 0)
            except Exception:
                self.failed += 1
            await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SearchProbe]:
        task = asyncio.create_task(self._loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _primaries(run: HaRun) -> dict[int, int]:
    """Started primaries of the news index per node number (as the script counts nodes)."""
    rows = await run.es.nodes.info(metric="http")
    by_port = {n["http"]["publish_address"].rsplit(":", 1)[1]: n["name"] for n in rows["nodes"].values()}
    number = {by_port[url.rsplit(":", 1)[1]]: i for i, url in enumerate(run.cluster.urls, start=1)}
    out = dict.fromkeys(number.values(), 0)
    for row in await run.es.cat.shards(index="news", format="json", h="prirep,state,node"):
        if row["prirep"] == "p" and row["state"] == "STARTED":
            out[number[row["node"]]] += 1
    return out


async def _data_node(run: HaRun) -> int:
    """The node, other than the elected master, holding the most primaries of the news index."""
    master = await asyncio.to_thread(run.cluster.master)
    primaries = await _primaries(run)
    return max((i for i in primaries if i != master), key=lambda i: primaries[i])


async def _master(run: HaRun) -> int:
    return await asyncio.to_thread(run.cluster.master)


async def _elasticsearch_node_fault(run: HaRun, label: str, seed: int, pick: Callable[[HaRun], Awaitable[int]]) -> None:
    # Most stories appear from the kill on: ingestion must go on with the node down, not only drain what was
    # already read. (With all of them listed at once, a 2,000-entry backlog waited on backpressure and the demo
    # pages were downloaded up to four times over: docs/SCALING.md.)
    async with DemoFeedServer(n_articles=N, seed=seed, visible=FIRST) as srv:
        async with _pipeline(run, srv) as (_p, receiver, rules):
            victim = await pick(run)
            held = (await _primaries(run))[victim]
            srv.reveal(BEFORE_KILL)
            pulse = await _written_after_now(run)
            async with SearchProbe(run.es).running() as searches:
                run.at_kill = downloads(srv)
                killed_ms, t0 = wall_ms(), time.monotonic()
                await asyncio.to_thread(run.cluster.kill, victim)
                srv.reveal(N)
                at_kill = await doc_count(run.es)
                moving = await _timed(t0, lambda: searchable_since(run.es, "indexed_at", killed_ms), "moving again")
                run.report(f"ES {label} killed ({held} of 3 primaries) -> first document written after it "
                           f"searchable (no fault: {pulse:.1f} s)", moving)  # fmt: skip
                # Ingestion goes on with the node down, not only the batch that was waiting.
                await wait_for(lambda: _at_least(run.es, at_kill + N // 4), 300, "documents with a node down")
            t1 = time.monotonic()
            await asyncio.to_thread(run.cluster.start, victim)  # returns once the cluster is green again
            run.report(f"ES {label} restarted -> rejoined, cluster green", time.monotonic() - t1)
        await _judge(run, srv, receiver, rules, f"ES {label}")
    health = await run.es.cluster.health()
    assert (health["status"], health["number_of_nodes"]) == ("green", 3), health
    assert searches.answered > 0 and searches.failed == 0, searches
    # Not asserted to be zero: a search that reaches a shard copy on the node in the instant it dies, before the
    # master has noticed, is answered without that shard (`_shards.failed` > 0), and Newsflow's searches do not
    # retry such an answer yet (seen in 2 of 4 runs of the master kill; see docs/SCALING.md).
    run.report(
        f"ES {label}: searches while it was down",
        f"{searches.answered} answered, 0 failed, {searches.partial} partial (a shard missing)",
    )


async def test_kill_9_an_elasticsearch_data_node(ha_run: HaRun) -> None:
    await _elasticsearch_node_fault(ha_run, "data node", 31, _data_node)


async def test_kill_9_the_elected_elasticsearch_master(ha_run: HaRun) -> None:
    await _elasticsearch_node_fault(ha_run, "elected master", 32, _master)


# -- Redis -----------------------------------------------------------------------------------------


async def _promoted(run: HaRun, old: int) -> bool:
    return await asyncio.to_thread(run.redis_ha.master) != old


async def _searchable_among(run: HaRun, ids: list[str]) -> bool:
    return int((await run.es.count(index="news", query={"ids": {"values": ids}}))["count"]) > 0


async def _delivered_among(run: HaRun, receiver: Receiver, article_ids: set[str]) -> bool:
    """An alert on one of `article_ids` reached the receiver (its key starts with the alert id)."""
    alerts = {a.alert_id for a in await alerts_on_stream(run.redis) if a.article_id in article_ids}
    return any(key.split(":", 1)[0] in alerts for key in receiver.keys)


async def _redis_moving_again(
    run: HaRun, receiver: Receiver, killed_ms: int, t0: float, old: int, after: list[str]
) -> None:
    """Each stage's first output after the kill, measured concurrently. The end-to-end measures are on
    articles that appear in the feeds only after the kill (`after`, their ids): the services had read
    batches before it and finish those from memory, so a document merely *written* after the kill says
    nothing about the pipeline having found the new primary."""

    def appended(stream: str) -> Callable[[], Awaitable[bool]]:
        return lambda: appended_since(run.redis, stream, killed_ms)

    stages = {
        "Sentinel names the replica": lambda: _promoted(run, old),
        f"first new entry on {streams.ENTRIES} (the poller)": appended(streams.ENTRIES),
        f"first new entry on {streams.RAW} (downloads)": appended(streams.RAW),
        f"first new entry on {streams.PARSED} (the parser)": appended(streams.PARSED),
        "first article published after it searchable (every stage)": lambda: _searchable_among(run, after),
        "first alert on such an article delivered (the notifier)": lambda: _delivered_among(run, receiver, set(after)),
    }
    took = await asyncio.gather(*(_timed(t0, probe, what) for what, probe in stages.items()))
    for what, seconds in zip(stages, took, strict=True):
        run.report(f"Redis primary killed -> {what}", seconds)


async def test_kill_9_the_redis_primary(ha_run: HaRun) -> None:
    run, ha = ha_run, ha_run.redis_ha
    # Most stories appear after the kill: the poller, too, must find the new primary by itself.
    async with DemoFeedServer(n_articles=N, seed=33, visible=FIRST) as srv:
        async with _pipeline(run, srv) as (_p, receiver, rules):
            srv.reveal(BEFORE_KILL)
            pulse = await _written_after_now(run)
            run.report("Redis: a document written from a given moment searchable, no fault", pulse)
            after = [article_id(canonicalize(u)) for u in srv.article_urls[BEFORE_KILL:]]
            run.at_kill = downloads(srv)
            killed_ms, t0 = wall_ms(), time.monotonic()
            old = await asyncio.to_thread(ha.kill_primary)
            srv.reveal(N)
            await _redis_moving_again(run, receiver, killed_ms, t0, old, after)
            t1 = time.monotonic()
            await asyncio.to_thread(ha.start_server, old)  # returns once it is a linked replica
            run.report("Redis old primary restarted -> a linked replica", time.monotonic() - t1)
        run.report("Redis primary killed -> every article searchable, streams drained", time.monotonic() - t0)
        await _judge(run, srv, receiver, rules, "Redis primary killed")
    assert ha.master() != old
