"""Search over the `news` alias: what `newsflow search` and `newsflow rules test` print."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from newsflow_search.query import HIGHLIGHT, best_snippet, build_query, parse_since

SOURCE_FIELDS = [
    "article_id",
    "url",
    "title",
    "published_at",
    "indexed_at",
    "domain",
    "feed_title",
    "site_name",
    "language",
    "section",
    "authors",
]


@dataclass
class Hit:
    article_id: str
    score: float | None
    title: str | None
    url: str
    published_at: str | None
    source: str | None  # site name, feed title or domain
    language: str | None
    section: str | None
    snippet: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    total: int
    took_ms: int
    hits: list[Hit]


def search_body(
    query: str, since: str | None = None, lang: str | None = None, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    f = dict(filters or {})
    if lang:
        f["language"] = lang
    return {
        "query": build_query(query, f, since=parse_since(since)),
        "highlight": HIGHLIGHT,
        "_source": SOURCE_FIELDS,
        "track_total_hits": True,
    }


async def search(
    es: AsyncElasticsearch,
    query: str,
    since: str | None = None,
    lang: str | None = None,
    size: int = 10,
    alias: str = "news",
    filters: dict[str, Any] | None = None,
    newest_first: bool = False,
) -> SearchResult:
    body = search_body(query, since, lang, filters)
    sort = [{"published_at": {"order": "desc", "missing": "_last"}}, "_score"] if newest_first else None
    resp = await es.search(index=alias, size=size, sort=sort, **body)
    hits = []
    for h in resp["hits"]["hits"]:
        s = h.get("_source", {})
        hits.append(
            Hit(
                article_id=h["_id"],
                score=h.get("_score"),
                title=s.get("title"),
                url=s.get("url", ""),
                published_at=s.get("published_at"),
                source=s.get("site_name") or s.get("feed_title") or s.get("domain"),
                language=s.get("language"),
                section=s.get("section"),
                snippet=best_snippet(h.get("highlight")),
            )
        )
    return SearchResult(total=resp["hits"]["total"]["value"], took_ms=resp.get("took", 0), hits=hits)
