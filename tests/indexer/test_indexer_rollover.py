"""One document per canonical URL across a rollover of the `news` alias; writes only through the alias."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import AsyncElasticsearch
from indexer_helpers import make_article, rocket_article

from newsflow_indexer.handler import Indexer
from newsflow_indexer.settings import IndexerSettings
from newsflow_indexer.writer import BulkWriter
from newsflow_shared.runtime import PermanentError

pytestmark = pytest.mark.integration


async def write_index(es: AsyncElasticsearch, alias: str) -> str | None:
    """The backing index the alias writes to now."""
    resp = await es.indices.get_alias(name=alias)
    return next((index for index, info in resp.items() if info["aliases"][alias].get("is_write_index")), None)


async def test_update_after_rollover_replaces_in_place_and_new_articles_go_to_the_new_index(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await ix.handle_batch([rocket_article(parsed_at=t0)])
    rolled = await ready_es.indices.rollover(alias="news")
    assert rolled["rolled_over"] and await write_index(ready_es, "news") == "news-000002"

    newer = rocket_article(parsed_at=t0 + timedelta(minutes=5), title="Updated after the rollover")
    fresh = make_article("https://other.example.org/new", "A new article after the rollover.")
    results = await ix.handle_batch([newer, fresh])
    assert all(isinstance(r, list) for r in results)
    await ready_es.indices.refresh(index="news")
    hits = (await ready_es.search(index="news", query={"match_all": {}}, size=10))["hits"]["hits"]
    where = {h["_id"]: (h["_index"], h["_source"]["title"]) for h in hits}
    assert len(hits) == 2
    assert where[newer.article_id] == ("news-000001", "Updated after the rollover")
    assert where[fresh.article_id][0] == "news-000002"
    # An older parse arriving late is refused wherever the document lives.
    out = await BulkWriter(ready_es, idx_settings).write([rocket_article(parsed_at=t0)])
    assert out[newer.article_id].status == "exists"


async def test_no_index_is_created_by_a_write_when_the_alias_is_missing(
    es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    # Only the template exists (as after a half-done init): the write must fail, not create `news`.
    from newsflow_search.index_setup import TEMPLATE_NAME, news_template

    await es.indices.put_index_template(name=TEMPLATE_NAME, **news_template(idx_settings))
    await es.indices.create(index="news-000001")  # a backing index without the alias
    out = await BulkWriter(es, idx_settings).write([rocket_article()])
    (o,) = out.values()
    assert o.status == "failed" and "404" in (o.error or "")
    assert not await es.indices.exists(index="news")


async def test_mapping_failure_is_permanent_for_that_article_only(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    ix = Indexer(ready_es, idx_settings)
    ok = [make_article(f"https://ok.example.org/{i}", f"Ordinary article {i}.") for i in range(3)]
    bad = make_article("https://bad.example.org/1", "Fine text, impossible count.", word_count=2**40)
    results = await ix.handle_batch([ok[0], bad, ok[1], ok[2]])
    assert isinstance(results[1], PermanentError) and results[1].reason == "mapping"
    assert "word_count" in str(results[1])
    assert [r for i, r in enumerate(results) if i != 1] == [[], [], []]
    await ready_es.indices.refresh(index="news")
    assert (await ready_es.count(index="news"))["count"] == 3


async def test_a_request_refused_as_a_whole_is_split_until_the_culprit_stands_alone(
    ready_es: AsyncElasticsearch, idx_settings: IndexerSettings
) -> None:
    # Validation bounds the id at the stream boundary; this checks the writer's own defence, for a document
    # that slips past it: Elasticsearch refuses the whole bulk request for one _id over 512 bytes.
    ok = [make_article(f"https://ok.example.org/{i}", f"Ordinary article {i}.") for i in range(20)]
    culprit = ok[7].model_copy(update={"article_id": "f" * 600})
    outcomes = await BulkWriter(ready_es, idx_settings).write([*ok[:7], culprit, *ok[7:]])
    assert outcomes["f" * 600].status == "rejected" and "512" in (outcomes["f" * 600].error or "")
    assert [outcomes[a.article_id].status for a in ok] == ["indexed"] * 20
    await ready_es.indices.refresh(index="news")
    assert (await ready_es.count(index="news"))["count"] == 20
