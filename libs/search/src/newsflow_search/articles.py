"""One article as a reader sees it: the stored document, its syndicated copies, other outlets' coverage of the
same story, and the alerts it fired. Two round trips: the document, then one `_msearch` for the rest."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch

from newsflow_search.documents import body_blocks

ARTICLE_ID = re.compile(r"^[0-9a-f]{32}$")
LIST_FIELDS = ["article_id", "url", "title", "domain", "site_name", "published_at", "language"]
# Other outlets' reports of the story: published within this long of the article.
COVERAGE_WINDOW = timedelta(days=3)
NO_FINGERPRINT = {"", "0" * 16}


@dataclass
class FiredAlert:
    alert_id: str
    rule_id: str
    rule_name: str
    created_at: str | None
    duplicate_of: str | None  # a copy of a story that had alerted already: nothing was sent for it
    record: dict[str, Any]


@dataclass
class ArticleView:
    article_id: str
    index: str
    doc: dict[str, Any]
    blocks: list[tuple[str, str]]
    copies: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[FiredAlert] = field(default_factory=list)


async def get_article(
    es: AsyncElasticsearch, alias: str, alerts_index: str, article_id: str, related: int = 8
) -> ArticleView | None:
    """None when no article has that id (or the id is not one Newsflow makes)."""
    if not ARTICLE_ID.match(article_id):
        return None
    # A search, not a GET: after a rollover the alias spans several backing indices.
    resp = await es.search(index=alias, query={"ids": {"values": [article_id]}}, size=1)
    hits = resp["hits"]["hits"]
    if not hits:
        return None
    doc = hits[0]["_source"]
    view = ArticleView(article_id, hits[0]["_index"], doc, body_blocks(doc))
    searches = [
        {"index": alias},
        {"query": _copies_query(doc, article_id), "size": related, "_source": LIST_FIELDS},
        {"index": alias},
        {"query": _coverage_query(view), "size": related, "_source": LIST_FIELDS},
        {"index": alerts_index, "ignore_unavailable": True},
        {
            "query": {"bool": {"filter": [{"term": {"article_id": article_id}}, {"term": {"kind": "article"}}]}},
            "size": 50,
            "sort": [{"created_at": "desc"}],
        },
    ]
    copies, coverage, alerts = (await es.msearch(searches=searches))["responses"]
    view.copies = _sources(copies)
    view.coverage = _sources(coverage)
    view.alerts = [_fired(h["_source"]) for h in alerts.get("hits", {}).get("hits", [])]
    return view


def _copies_query(doc: dict[str, Any], article_id: str) -> dict[str, Any]:
    """Syndicated copies: the same text (content hash) or nearly (the parser's SimHash) at other URLs."""
    should: list[dict[str, Any]] = []
    if doc.get("content_hash"):
        should.append({"term": {"content_hash": doc["content_hash"]}})
    if str(doc.get("simhash") or "") not in NO_FINGERPRINT:
        should.append({"term": {"simhash": doc["simhash"]}})
    if not should:
        return {"bool": {"must_not": {"match_all": {}}}}
    return {"bool": {"should": should, "minimum_should_match": 1, "must_not": {"ids": {"values": [article_id]}}}}


def _coverage_query(view: ArticleView) -> dict[str, Any]:
    """Same story, other words: articles like this one (more_like_this on title and standfirst) from near its
    date, its copies left out."""
    doc = view.doc
    must_not: list[dict[str, Any]] = [{"ids": {"values": [view.article_id]}}]
    if str(doc.get("simhash") or "") not in NO_FINGERPRINT:
        must_not.append({"term": {"simhash": doc["simhash"]}})
    if doc.get("content_hash"):
        must_not.append({"term": {"content_hash": doc["content_hash"]}})
    flt: list[dict[str, Any]] = []
    when = _date(doc.get("published_at") or doc.get("indexed_at"))
    if when is not None:
        flt.append(
            {
                "range": {
                    "published_at": {
                        "gte": (when - COVERAGE_WINDOW).isoformat(),
                        "lte": (when + COVERAGE_WINDOW).isoformat(),
                    }
                }
            }
        )
    mlt = {
        "more_like_this": {
            # The headline and the standfirst name the event; the body's words are shared by every report of
            # its kind. Liking the body too cost 100-400 ms a page with 100,000 articles (docs/WEB.md,
            # "Performance"): every article's common words match thousands of others.
            "fields": ["title", "description"],
            "like": [{"_index": view.index, "_id": view.article_id}],
            "min_term_freq": 1,
            "min_doc_freq": 2,
            "max_query_terms": 20,
            # Sharing a topic's words is not enough: most of the article's distinctive terms must recur.
            "minimum_should_match": "60%",
        }
    }
    return {"bool": {"must": [mlt], "filter": flt, "must_not": must_not}}


def _sources(resp: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"article_id": h["_id"], **h["_source"]} for h in resp.get("hits", {}).get("hits", [])]


def _fired(src: dict[str, Any]) -> FiredAlert:
    return FiredAlert(
        alert_id=src.get("alert_id", ""),
        rule_id=src.get("rule_id", ""),
        rule_name=src.get("rule_name", ""),
        created_at=src.get("created_at"),
        duplicate_of=src.get("duplicate_of"),
        record=src,
    )


def _date(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
