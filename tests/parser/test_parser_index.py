"""The extraction path is part of the indexed document: an operator can search for fallback articles.

Against the real Elasticsearch node started by the session fixtures, with the indexer's own template.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from newsflow_extract.extract import extract
from newsflow_indexer.settings import IndexerSettings
from newsflow_search.documents import to_document
from newsflow_search.index_setup import ensure_index
from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"


async def test_extraction_method_is_a_searchable_keyword(es: AsyncElasticsearch, settings: CommonSettings) -> None:
    idx = IndexerSettings(redis_url=settings.redis_url, elasticsearch_url=settings.elasticsearch_url)
    await ensure_index(es, idx)
    own = extract((FIXTURES / "cms_politics.html").read_text(encoding="utf-8"), "https://news.example/politics/1")
    fallback = extract((FIXTURES / "photo_story.html").read_text(encoding="utf-8"), "https://harbour.example/marsh")
    for article in (own, fallback):
        await es.index(index=idx.index_alias, id=article.article_id, document=to_document(article), refresh=True)

    found = await es.search(index=idx.index_alias, query={"term": {"extraction_method": "trafilatura"}})
    assert [h["_id"] for h in found["hits"]["hits"]] == [fallback.article_id]
    counts = await es.search(index=idx.index_alias, size=0, aggs={"paths": {"terms": {"field": "extraction_method"}}})
    buckets = {b["key"]: b["doc_count"] for b in counts["aggregations"]["paths"]["buckets"]}
    assert buckets == {"own": 1, "trafilatura": 1}
