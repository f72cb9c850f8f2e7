"""One alert per story across outlets: is a new match another outlet's report of an event the rule already
alerted on within the window?

Elasticsearch's `more_like_this` (server core) decides: the new article's title, description and lede are
the "like" text; MLT keeps its most telling terms by tf-idf over the whole index (names of places and
people, numbers; not the words every story of the kind shares) and asks that a share of them
(`minimum_should_match`) occur in a candidate. Candidates are only the rule's articles of open stories
(activity within the window), given as an `ids` filter, so the query is cheap and can never group across
rules or across days. The figures behind the defaults: docs/ALERTING.md ("Story grouping").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

log = logging.getLogger("newsflow.alerting.stories")

LIKE_FIELDS = ("title", "description", "text")


@dataclass(frozen=True)
class Grouping:
    """How alike two reports must be to count as one story (tuned on the labelled set, see the docs)."""

    minimum_should_match: str = "30%"
    max_query_terms: int = 25
    lede_chars: int = 600
    min_word_length: int = 3


def like_text(source: dict[str, Any], lede_chars: int) -> str:
    """Title, description and the opening of the body: what an outlet says first about an event."""
    parts = [source.get("title") or "", source.get("description") or "", (source.get("text") or "")[:lede_chars]]
    return "\n".join(p for p in parts if p)


def mlt_query(text: str, candidates: Sequence[str], g: Grouping) -> dict[str, Any]:
    return {
        "bool": {
            "must": [
                {
                    "more_like_this": {
                        "fields": list(LIKE_FIELDS),
                        "like": text,
                        # One report is short: a term that occurs once in it still counts, and a name that
                        # occurs in only one other article is exactly what ties two reports together.
                        "min_term_freq": 1,
                        "min_doc_freq": 1,
                        "min_word_length": g.min_word_length,
                        "max_query_terms": g.max_query_terms,
                        "minimum_should_match": g.minimum_should_match,
                    }
                }
            ],
            "filter": [{"ids": {"values": list(candidates)}}],
        }
    }


class StoryMatcher:
    def __init__(self, es: AsyncElasticsearch, alias: str = "news", grouping: Grouping | None = None) -> None:
        self.es = es
        self.alias = alias
        self.grouping = grouping or Grouping()

    async def sources(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        resp = await self.es.search(
            index=self.alias,
            query={"ids": {"values": list(ids)}},
            size=len(ids),
            source=["title", "description", "text", "published_at", "indexed_at", "domain", "url"],
            track_total_hits=False,
        )
        return {h["_id"]: h["_source"] for h in resp["hits"]["hits"]}

    async def most_alike(self, article_id: str, candidates: Sequence[str]) -> str | None:
        """The candidate most like `article_id`, if one is alike enough; None otherwise."""
        candidates = [c for c in candidates if c != article_id]
        if not candidates:
            return None
        source = (await self.sources([article_id])).get(article_id)
        if source is None:
            return None
        text = like_text(source, self.grouping.lede_chars)
        if not text:
            return None
        resp = await self.es.search(
            index=self.alias,
            query=mlt_query(text, candidates, self.grouping),
            size=1,
            source=False,
            track_total_hits=False,
        )
        hits = resp["hits"]["hits"]
        return hits[0]["_id"] if hits else None

    async def group(self, articles: Sequence[tuple[str, float]], window_s: float) -> dict[str, str]:
        """Stories of a time-ordered list of (article id, time): article id -> its story's first article.

        What the notifier decides one alert at a time, for a list at once (`newsflow rules test`): each
        article joins the story of the most alike earlier article within the window, or starts one.
        """
        sources = {}
        ids = [a for a, _t in articles]
        for i in range(0, len(ids), 500):
            sources |= await self.sources(ids[i : i + 500])
        story: dict[str, str] = {}
        searches: list[dict[str, Any]] = []
        asked: list[str] = []
        for n, (aid, t) in enumerate(articles):
            earlier = [a for a, t0 in articles[:n] if t - t0 <= window_s]
            text = like_text(sources.get(aid, {}), self.grouping.lede_chars)
            if earlier and text:
                searches += [
                    {"index": self.alias},
                    {"query": mlt_query(text, earlier, self.grouping), "size": 1, "_source": False},
                ]
                asked.append(aid)
        best: dict[str, str] = {}
        for i in range(0, len(searches), 400):
            resp = await self.es.msearch(searches=searches[i : i + 400])
            for aid, r in zip(asked[i // 2 : i // 2 + 200], resp["responses"], strict=False):
                hits = r.get("hits", {}).get("hits", [])
                if hits:
                    best[aid] = hits[0]["_id"]
        for aid, _t in articles:
            story[aid] = story.get(best[aid], best[aid]) if aid in best else aid
        return story
