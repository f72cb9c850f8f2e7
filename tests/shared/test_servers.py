"""The foundation's real servers: a Redis consumer group and an Elasticsearch node with hunspell."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch, helpers

pytestmark = pytest.mark.integration


async def test_consumer_group_receives_acks_and_leaves_nothing_pending(redis: aioredis.Redis) -> None:
    await redis.xgroup_create("t.stream", "g", id="0", mkstream=True)
    ids = [await redis.xadd("t.stream", {"n": str(i)}) for i in range(5)]
    got = await redis.xreadgroup("g", "c1", {"t.stream": ">"}, count=10)
    received = [mid for _, entries in got for mid, _ in entries]
    assert received == ids
    assert (await redis.xpending("t.stream", "g"))["pending"] == 5
    assert await redis.xack("t.stream", "g", *received) == 5
    assert (await redis.xpending("t.stream", "g"))["pending"] == 0


async def test_elasticsearch_node_hunspell_stemming_and_search(es: AsyncElasticsearch) -> None:
    nodes = await es.nodes.info()
    (node,) = nodes["nodes"].values()
    assert node["version"].startswith("8.")
    await es.indices.put_index_template(
        name="t-template",
        index_patterns=["t-*"],
        template={
            "settings": {
                "number_of_replicas": 0,
                "analysis": {
                    "filter": {"en_stem": {"type": "hunspell", "locale": "en_US", "dedup": True}},
                    "analyzer": {"en": {"tokenizer": "standard", "filter": ["lowercase", "en_stem"]}},
                },
            },
            "mappings": {
                "properties": {"text": {"type": "text", "fields": {"en": {"type": "text", "analyzer": "en"}}}}
            },
        },
    )
    docs = [
        {"_index": "t-1", "_id": "1", "text": "Six rockets were fired at the airport"},
        {"_index": "t-1", "_id": "2", "text": "The council approved the budget"},
    ]
    ok, errors = await helpers.async_bulk(es, docs, refresh="wait_for")
    assert ok == 2 and not errors
    mapping = await es.indices.get_mapping(index="t-1")
    assert mapping["t-1"]["mappings"]["properties"]["text"]["fields"]["en"]["analyzer"] == "en"

    plain = await es.search(index="t-1", query={"match": {"text": "rockets"}})
    assert [h["_id"] for h in plain["hits"]["hits"]] == ["1"]
    # "rocket" is not a token of the document: only the stemmed sub-field can find it.
    unstemmed = await es.search(index="t-1", query={"match": {"text": "rocket"}})
    assert unstemmed["hits"]["total"]["value"] == 0
    stemmed = await es.search(index="t-1", query={"match": {"text.en": "rocket"}})
    assert [h["_id"] for h in stemmed["hits"]["hits"]] == ["1"]
