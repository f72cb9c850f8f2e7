"""The Elasticsearch cluster of scripts/elasticsearch.sh --nodes 3: one cluster, and it survives kill -9.

One session cluster (tests/ha/conftest.py) serves every test; each test starts from all nodes running
(healthy_es_cluster restarts what an earlier test killed). Times are measured from just before the kill
command, so they include the script's own few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch
from ha_servers import EsCluster, Figures, rss_mb
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

INDEX_SETTINGS = {"number_of_shards": 3, "number_of_replicas": 1}


@contextlib.asynccontextmanager
async def node_client(url: str) -> AsyncIterator[AsyncElasticsearch]:
    """One node only, no retries: what that node itself answers."""
    client = AsyncElasticsearch(url, request_timeout=5, max_retries=0)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def cluster_client(cluster: EsCluster) -> AsyncIterator[AsyncElasticsearch]:
    """Every node, as a service is meant to be given them: a dead node's requests go to the others."""
    client = AsyncElasticsearch(cluster.urls, request_timeout=30, max_retries=5, retry_on_timeout=True)
    try:
        yield client
    finally:
        await client.close()


async def health(url: str) -> dict:
    async with node_client(url) as es:
        return dict(await es.cluster.health())


async def master_name(url: str) -> str:
    async with node_client(url) as es:
        rows = await es.cat.master(format="json")
        return str(rows[0]["node"])


async def is_green_with(url: str, nodes: int) -> bool:
    h = await health(url)
    return h["status"] == "green" and h["number_of_nodes"] == nodes


async def fresh_index(es: AsyncElasticsearch, name: str, docs: int) -> None:
    await es.options(ignore_status=404).indices.delete(index=name)
    await es.indices.create(index=name, settings=INDEX_SETTINGS)
    if docs:
        ops: list[dict] = []
        for i in range(docs):
            ops += [{"index": {"_index": name, "_id": f"d{i}"}}, {"n": i, "text": f"rocket attack report {i}"}]
        resp = await es.bulk(operations=ops, refresh=True)
        assert not resp["errors"]
    h = await es.cluster.health(index=name, wait_for_status="green", timeout="60s")
    assert h["status"] == "green", h


async def count(es: AsyncElasticsearch, index: str) -> int:
    return int((await es.count(index=index))["count"])


async def shard_nodes(es: AsyncElasticsearch, index: str) -> list[dict]:
    return [dict(r) for r in await es.cat.shards(index=index, format="json", h="shard,prirep,state,node")]


def record_memory(cluster: EsCluster, figures: Figures, when: str) -> None:
    for i in cluster.running():
        pid = cluster.pid(i)
        assert pid is not None
        figures.add(f"Elasticsearch node {i} resident memory (512 MB heap), {when}", rss_mb(pid), "MB")


async def test_three_nodes_form_one_green_cluster(healthy_es_cluster: EsCluster, figures: Figures) -> None:
    cluster = healthy_es_cluster
    assert cluster.size == 3 and len(set(cluster.urls)) == 3
    uuids, masters = set(), set()
    for url in cluster.urls:
        h = await health(url)
        assert (h["cluster_name"], h["number_of_nodes"], h["number_of_data_nodes"]) == ("newsflow", 3, 3), h
        assert h["status"] == "green", h
        async with node_client(url) as es:
            state = await es.cluster.state(metric="metadata", filter_path="metadata.cluster_uuid")
            uuids.add(state["metadata"]["cluster_uuid"])
        masters.add(await master_name(url))
    # Three single-node clusters would each answer green with their own uuid and master.
    assert len(uuids) == 1 and len(masters) == 1, (uuids, masters)
    assert masters == {f"newsflow-{cluster.master()}"}

    async with cluster_client(cluster) as es:
        # Languages are hunspell dictionaries in each node's config/: a node without them could not open its
        # shards of this index, and the cluster would not be green.
        await es.indices.create(
            index="ha-hunspell",
            settings={
                "number_of_shards": 3,
                "number_of_replicas": 1,
                "analysis": {
                    "filter": {"de_stem": {"type": "hunspell", "locale": "de_DE"}},
                    "analyzer": {"de": {"tokenizer": "standard", "filter": ["lowercase", "de_stem"]}},
                },
            },
        )
        h = await es.cluster.health(index="ha-hunspell", wait_for_status="green", timeout="60s")
        assert h["status"] == "green", h
        assert {s["node"] for s in await shard_nodes(es, "ha-hunspell")} == {f"newsflow-{i}" for i in range(1, 4)}
        for url in cluster.urls:
            async with node_client(url) as own:
                tokens = await own.indices.analyze(index="ha-hunspell", analyzer="de", text="Raketen")
                assert "rakete" in [t["token"] for t in tokens["tokens"]], tokens
        await es.indices.delete(index="ha-hunspell")

        await fresh_index(es, "ha-green", 60)
        shards = await shard_nodes(es, "ha-green")
        assert len(shards) == 6 and all(s["state"] == "STARTED" for s in shards), shards
        # Every node holds data, and no shard has both its copies on one node.
        assert {s["node"] for s in shards} == {f"newsflow-{i}" for i in range(1, 4)}
        for n in range(3):
            assert len({s["node"] for s in shards if s["shard"] == str(n)}) == 2, shards
        assert await count(es, "ha-green") == 60
        await es.indices.delete(index="ha-green")
    record_memory(cluster, figures, "started")


def test_script_interface_on_a_running_cluster(healthy_es_cluster: EsCluster) -> None:
    cluster = healthy_es_cluster
    code, lines = cluster.status()
    assert code == 0, lines
    for i in range(1, 4):
        assert re.fullmatch(rf"node {i} running {cluster.url(i)} pid {cluster.pid(i)} rss \d+ MB", lines[i - 1])
    assert lines[3] == "cluster green with 3 of 3 nodes running"
    # Starting what runs changes nothing and answers as the first start did.
    again = cluster.script("start", "--nodes", "3")
    assert again == ",".join(cluster.urls)
    assert cluster.script("start-node", "2") == cluster.url(2)
    master = cluster.script("master")
    assert re.fullmatch(r"[123] http://127\.0\.0\.1:\d+", master) and master.split()[1] in cluster.urls
    with pytest.raises(RuntimeError, match="holds a cluster of 3 nodes"):
        cluster.script("start", "--nodes", "1")
    with pytest.raises(RuntimeError, match="node 4 does not exist"):
        cluster.script("kill-node", "4")


async def test_kill_a_data_node_yellow_searchable_then_it_rejoins(
    healthy_es_cluster: EsCluster, figures: Figures
) -> None:
    cluster = healthy_es_cluster
    master = cluster.master()
    victim = next(i for i in range(1, 4) if i != master)
    survivor_url = cluster.url(master)
    async with cluster_client(cluster) as es:
        await fresh_index(es, "ha-data", 300)
        assert any(s["node"] == f"newsflow-{victim}" for s in await shard_nodes(es, "ha-data"))

        t0 = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim)
        assert cluster.pid(victim) is None
        code, lines = await asyncio.to_thread(cluster.status)
        assert code == 4 and lines[victim - 1] == f"node {victim} stopped {cluster.url(victim)}", lines

        async def node_gone() -> dict | None:
            h = await health(survivor_url)
            return h if h["number_of_nodes"] == 2 else None

        await wait_until(node_gone, 60, "the cluster to drop the killed node")
        left_s = time.monotonic() - t0
        h = await health(survivor_url)
        # Its shards' other copies took over: nothing is missing, only replicas are (yellow, not red).
        assert h["status"] == "yellow" and h["unassigned_primary_shards"] == 0, h
        assert await count(es, "ha-data") == 300
        hits = await es.search(index="ha-data", query={"match": {"text": "rocket"}}, size=0, track_total_hits=True)
        assert hits["hits"]["total"]["value"] == 300
        ops: list[dict] = []
        for i in range(300, 400):
            ops += [{"index": {"_index": "ha-data", "_id": f"d{i}"}}, {"n": i, "text": f"rocket attack report {i}"}]
        assert not (await es.bulk(operations=ops, refresh=True))["errors"]
        assert await count(es, "ha-data") == 400

        t1 = time.monotonic()
        await asyncio.to_thread(cluster.start, victim)  # returns once the cluster is green with 3 nodes
        rejoin_s = time.monotonic() - t1
        assert await is_green_with(cluster.url(victim), 3)
        # The writes made while it was away reached its copies too: it answers all 400 itself.
        async with node_client(cluster.url(victim)) as own:
            assert await count(own, "ha-data") == 400
        assert any(s["node"] == f"newsflow-{victim}" for s in await shard_nodes(es, "ha-data"))
        await es.indices.delete(index="ha-data")
    figures.add("Elasticsearch kill -9 data node: cluster yellow with 2 nodes after", left_s)
    figures.add("Elasticsearch data node restarted: rejoined and green after", rejoin_s)


async def test_kill_the_elected_master_a_new_one_is_elected_and_writes_continue(
    healthy_es_cluster: EsCluster, figures: Figures
) -> None:
    cluster = healthy_es_cluster
    old = cluster.master()
    survivors = [i for i in range(1, 4) if i != old]
    acked: dict[str, float] = {}
    failures: list[str] = []
    stop = asyncio.Event()

    record_memory(cluster, figures, "after the data node test")
    async with cluster_client(cluster) as es:
        await fresh_index(es, "ha-master", 0)

        async def writer() -> None:
            # One document at a time, as an indexer's retries would: the same id again until acknowledged.
            i = 0
            while not stop.is_set():
                doc_id = f"w{i}"
                try:
                    await es.index(index="ha-master", id=doc_id, document={"n": i})
                    acked[doc_id] = time.monotonic()
                    i += 1
                except Exception as e:
                    failures.append(f"{doc_id}: {e!r}"[:200])
                await asyncio.sleep(0.02)

        async def acked_since(t: float, n: int = 1) -> bool:
            return sum(1 for at in acked.values() if at > t) >= n

        async def new_master() -> bool:
            return await master_name(cluster.url(survivors[0])) in {f"newsflow-{i}" for i in survivors}

        task = asyncio.create_task(writer())
        await wait_until(lambda: acked_since(0, 20), 30, "the first writes")
        t0 = time.monotonic()
        await asyncio.to_thread(cluster.kill, old)
        await wait_until(new_master, 60, "a new elected master")
        elected_s = time.monotonic() - t0
        elected_at = time.monotonic()
        # Writes after the election: what the cluster accepts once it has a master again.
        await wait_until(lambda: acked_since(elected_at, 20), 60, "writes after the election")
        acked_at_kill = sum(1 for t in acked.values() if t <= t0)
        stop.set()
        await task
        times = sorted(acked.values())
        longest_gap = max(b - a for a, b in itertools.pairwise(times))

        new = cluster.master()
        assert new in survivors, new
        assert await master_name(cluster.url(survivors[1])) == f"newsflow-{new}"
        # Writes went on, and every acknowledged one is there (the copies on the dead master included).
        assert len(acked) > acked_at_kill + 10, (len(acked), acked_at_kill)
        await es.indices.refresh(index="ha-master")
        assert await count(es, "ha-master") == len(acked)
        found = await es.mget(index="ha-master", ids=list(acked))
        assert all(d["found"] for d in found["docs"])

        # The old master stays down: a rejoin is what the data node test proves, and the next test that
        # needs all three nodes restarts it (healthy_es_cluster).
        await es.indices.delete(index="ha-master")
    print(f"write failures seen by the client while the master was down: {len(failures)} {failures[:3]}")
    figures.add("Elasticsearch kill -9 elected master: new master elected after", elected_s)
    figures.add("Elasticsearch kill -9 elected master: longest pause between acknowledged writes", longest_gap)
