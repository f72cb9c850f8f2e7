"""Search for people: one search as a page shows it (hits, facets with counts, a histogram over time, paging
deep with `search_after`) and as an export streams it (a point in time walked with `search_after`).

The text query is `query.build_query`'s, so a search finds exactly what a rule with the same words fires on.
Facet filters go in `post_filter`, and each facet counts under every filter but its own, so choosing one
source still shows how many matches the other sources have (the usual multi-select facet).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch, BadRequestError

from newsflow_search.query import date_clause, query_string

Sort = Literal["relevance", "newest"]
# Facet name in URLs and pages -> keyword field. Authors are not a rule filter; `Search.rule_query` turns
# them into query syntax when a search is saved as a rule.
FACETS: dict[str, str] = {"domain": "domain", "language": "language", "section": "section", "author": "authors"}
FACET_SIZE = 12
# Highlight markers no article contains (Unicode private use), so a page can escape the text first and then
# turn exactly these into <mark> (French text is full of the « » that `newsflow search` uses).
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
HIT_FIELDS = [
    "article_id",
    "url",
    "title",
    "description",
    "published_at",
    "indexed_at",
    "domain",
    "site_name",
    "feed_title",
    "language",
    "section",
    "authors",
    "word_count",
]
HIGHLIGHT: dict[str, Any] = {
    "pre_tags": [MARK_OPEN],
    "post_tags": [MARK_CLOSE],
    "fragment_size": 220,
    "number_of_fragments": 1,
    "no_match_size": 0,
    "fields": {"title": {"number_of_fragments": 0}, "text": {}, "text_*": {}, "captions.text": {}, "captions_*": {}},
}
_ID = re.compile(r"^[0-9a-f]{32}$")


class SearchError(ValueError):
    """Something about the search to tell the person who typed it (a query Lucene cannot parse, a stale link)."""


@dataclass(frozen=True)
class Search:
    q: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # facet name -> chosen values
    gte: datetime | None = None
    lt: datetime | None = None
    sort: Sort = "relevance"
    size: int = 20

    @property
    def effective_sort(self) -> Sort:
        # Without words every match scores the same: "relevance" would be an arbitrary order.
        return self.sort if self.q.strip() else "newest"

    def text_query(self) -> dict[str, Any]:
        """The words and the date range: what every facet counts within."""
        must = [query_string(self.q)] if self.q.strip() else []
        flt = [date_clause(_iso(self.gte), _iso(self.lt))] if self.gte or self.lt else []
        return {"bool": {"must": must, "filter": flt}}

    def facet_clauses(self, skip: str | None = None) -> list[dict[str, Any]]:
        return [
            {"terms": {FACETS[name]: list(values)}}
            for name, values in self.filters.items()
            if values and name != skip and name in FACETS
        ]

    def query(self) -> dict[str, Any]:
        """Everything the search narrows by, as one query (exports, previews)."""
        q = self.text_query()
        q["bool"]["filter"] = [*q["bool"]["filter"], *self.facet_clauses()]
        return q

    def sort_clause(self) -> list[dict[str, Any]]:
        # article_id breaks ties, so `search_after` never skips or repeats a hit between pages.
        first = {"_score": "desc"} if self.effective_sort == "relevance" else _NEWEST
        return [first, {"article_id": "asc"}]

    def rule_filters(self) -> dict[str, list[str]]:
        """The facets a rule can filter on (`query.FILTER_FIELDS`)."""
        return {k: list(v) for k, v in self.filters.items() if v and k in ("domain", "language", "section")}

    def rule_query(self) -> str:
        """The words of a rule that fires on what this search finds (authors become query syntax)."""
        authors = self.filters.get("author") or ()
        if not authors:
            return self.q.strip()
        names = " OR ".join(_quoted(a) for a in authors)
        clause = f"authors:({names})"
        return f"({self.q.strip()}) AND {clause}" if self.q.strip() else clause

    def page_body(self, after: list[Any] | None = None, offset: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": self.text_query(),
            "post_filter": {"bool": {"filter": self.facet_clauses()}},
            "aggs": self._aggs(),
            "sort": self.sort_clause(),
            "size": self.size,
            "_source": HIT_FIELDS,
            "track_total_hits": True,
        }
        if self.q.strip():
            body["highlight"] = HIGHLIGHT
        if after is not None:
            body["search_after"] = after
        elif offset:
            body["from"] = offset
        return body

    def _aggs(self) -> dict[str, Any]:
        aggs: dict[str, Any] = {
            f"facet_{name}": {
                "filter": {"bool": {"filter": self.facet_clauses(skip=name)}},
                "aggs": {"values": {"terms": {"field": fld, "size": FACET_SIZE}}},
            }
            for name, fld in FACETS.items()
        }
        over: dict[str, Any] = {"span": {"stats": {"field": "published_at"}}}
        if self.gte:
            # The range is known ("the last 7 days" ends now): one round trip. Without a start, `run` asks
            # again once the span of the matches is known.
            lt = self.lt or _next_day(datetime.now(UTC))
            over["buckets"] = histogram_agg(interval_for(lt - self.gte), self.gte, lt)
        aggs["over_time"] = {"filter": {"bool": {"filter": self.facet_clauses()}}, "aggs": over}
        return aggs


_NEWEST = {"published_at": {"order": "desc", "missing": "_last"}}


def _next_day(t: datetime) -> datetime:
    """Midnight UTC after `t`: today's bar is a whole day, as every other."""
    return datetime.combine(t.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t else None


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def interval_for(span: timedelta) -> str:
    """Days for up to three months, weeks up to two years, months beyond: 100 bars at most, usually."""
    if span <= timedelta(days=92):
        return "day"
    return "week" if span <= timedelta(days=731) else "month"


def histogram_agg(interval: str, gte: datetime | None, lt: datetime | None) -> dict[str, Any]:
    agg: dict[str, Any] = {"field": "published_at", "calendar_interval": interval, "min_doc_count": 0}
    if gte and lt:
        # Empty days at the range's edges are bars too: a quiet week must look quiet, not absent.
        agg["extended_bounds"] = {"min": _iso(gte), "max": _iso(lt - timedelta(milliseconds=1))}
    return {"date_histogram": agg}


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class Hit:
    article_id: str
    source: dict[str, Any]
    title_marked: str | None  # the title with highlight markers, when the words are in it
    snippet: str | None  # a fragment with highlight markers
    sort: list[Any]


@dataclass
class FacetValue:
    value: str
    count: int | None  # None: chosen, but not among the top values any more
    selected: bool


@dataclass
class Bucket:
    start: datetime
    count: int


@dataclass
class Page:
    total: int
    took_ms: int
    hits: list[Hit]
    facets: dict[str, list[FacetValue]]
    histogram: list[Bucket]
    interval: str  # day, week or month

    @property
    def last_sort(self) -> list[Any] | None:
        return self.hits[-1].sort if self.hits else None


def parse_page(resp: Mapping[str, Any], search: Search) -> Page:
    aggs = resp.get("aggregations", {})
    facets = {name: _facet(aggs.get(f"facet_{name}", {}), search.filters.get(name, ())) for name in FACETS}
    histogram, interval = parse_histogram(aggs.get("over_time", {}), search)
    return Page(
        total=int(resp["hits"]["total"]["value"]),
        took_ms=int(resp.get("took", 0)),
        hits=[_hit(h) for h in resp["hits"]["hits"]],
        facets=facets,
        histogram=histogram,
        interval=interval,
    )


def _hit(h: Mapping[str, Any]) -> Hit:
    hl = h.get("highlight") or {}
    titles = hl.get("title") or []
    body = {k: v for k, v in hl.items() if k != "title"}
    order = sorted(body, key=lambda f: (0 if f.startswith("text") else 1, "_" not in f))
    snippet = next((" ".join(body[f][0].split()) for f in order if body[f]), None)
    return Hit(
        article_id=h["_id"],
        source=h.get("_source", {}),
        title_marked=titles[0] if titles else None,
        snippet=snippet,
        sort=list(h.get("sort", [])),
    )


def _facet(agg: Mapping[str, Any], chosen: tuple[str, ...]) -> list[FacetValue]:
    out = [
        FacetValue(str(b["key"]), int(b["doc_count"]), str(b["key"]) in chosen)
        for b in agg.get("values", {}).get("buckets", [])
    ]
    shown = {v.value for v in out}
    out += [FacetValue(v, None, True) for v in chosen if v not in shown]
    return out


def parse_histogram(over: Mapping[str, Any], search: Search) -> tuple[list[Bucket], str]:
    buckets = over.get("buckets", {}).get("buckets", [])
    known = interval_for((search.lt or _next_day(datetime.now(UTC))) - search.gte) if search.gte else "day"
    interval = str(over.get("interval") or known)
    return [Bucket(datetime.fromtimestamp(b["key"] / 1000, UTC), int(b["doc_count"])) for b in buckets], interval


# --- paging ----------------------------------------------------------------------------------------------


def encode_cursor(sort_values: list[Any]) -> str:
    """The position after a page's last hit, for a URL (`search_after` values, compact JSON, base64url)."""
    raw = json.dumps(sort_values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> list[Any]:
    """The sort values of a cursor, checked: a hand-edited or truncated link is a SearchError, not a 500."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise SearchError("this page link is damaged; showing the first page") from None
    ok = (
        isinstance(values, list)
        and len(values) == 2
        and (values[0] is None or (isinstance(values[0], int | float) and not isinstance(values[0], bool)))
        and isinstance(values[1], str)
        and _ID.match(values[1])
    )
    if not ok:
        raise SearchError("this page link is damaged; showing the first page")
    return values


# --- running ---------------------------------------------------------------------------------------------


def query_error(e: BadRequestError) -> str:
    """What Elasticsearch disliked about a query, in one line a person can act on."""
    info = e.info if isinstance(e.info, dict) else {}
    err = info.get("error") if isinstance(info.get("error"), dict) else {}
    causes = [*(err.get("root_cause") or []), *(f.get("reason") for f in err.get("failed_shards") or []), err]
    reasons: list[str] = []
    for cause in causes:
        while isinstance(cause, dict):
            if cause.get("reason"):
                reasons.append(str(cause["reason"]).splitlines()[0])
            cause = cause.get("caused_by")
    lucene = [r for r in reasons if r.startswith("Encountered ")]
    if lucene:
        if '"<EOF>"' in lucene[-1]:
            return "the query ends too early: an unclosed bracket or quote, or an operator with nothing after it?"
        m = re.match(r'Encountered " \S+ "(.*?)\s*"" at line \d+, column (\d+)', lucene[-1])
        if m:
            return f"unexpected {m[1]!r} at character {int(m[2]) + 1}"
        return lucene[-1][:300]
    if any("Lexical error" in r for r in reasons):
        return "a quote is not closed"
    text = next((r for r in reversed(reasons) if "Cannot parse" in r), reasons[0] if reasons else "")
    return (text or "the query is not valid")[:300]


async def run(
    es: AsyncElasticsearch, alias: str, search: Search, after: list[Any] | None = None, offset: int = 0
) -> Page:
    try:
        resp = await es.search(index=alias, **search.page_body(after, offset))
        over = resp.get("aggregations", {}).get("over_time", {})
        if "buckets" not in over and (over.get("span") or {}).get("count"):
            span = over["span"]
            bounds = (_from_ms(span["min"]), _from_ms(span["max"]) + timedelta(milliseconds=1))
            if search.gte or search.lt:
                bounds = (search.gte or bounds[0], search.lt or bounds[1])
            over["interval"] = interval_for(bounds[1] - bounds[0])
            hist = await es.search(
                index=alias, size=0, query=search.query(), aggs={"buckets": histogram_agg(over["interval"], *bounds)}
            )
            over["buckets"] = hist["aggregations"]["buckets"]
    except BadRequestError as e:
        raise SearchError(query_error(e)) from None
    return parse_page(resp, search)


def _from_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value) / 1000, UTC)


async def count(es: AsyncElasticsearch, alias: str, query: dict[str, Any]) -> int:
    try:
        return int((await es.count(index=alias, query=query))["count"])
    except BadRequestError as e:
        raise SearchError(query_error(e)) from None


async def export(
    es: AsyncElasticsearch, alias: str, search: Search, limit: int, batch: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Every match (at most `limit`), newest first, `_source` fields of HIT_FIELDS plus `article_id`.

    A point in time keeps the pages consistent while the indexer writes; `search_after` walks it."""
    try:
        pit = (await es.open_point_in_time(index=alias, keep_alive="2m"))["id"]
    except BadRequestError as e:
        raise SearchError(query_error(e)) from None
    sent = 0
    after: list[Any] | None = None
    try:
        while sent < limit:
            kwargs: dict[str, Any] = {
                "query": search.query(),
                "pit": {"id": pit, "keep_alive": "2m"},
                "sort": [_NEWEST],
                "size": min(batch, limit - sent),
                "_source": HIT_FIELDS,
                "track_total_hits": False,
            }
            if after is not None:
                kwargs["search_after"] = after
            try:
                resp = await es.search(**kwargs)
            except BadRequestError as e:
                raise SearchError(query_error(e)) from None
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            for h in hits:
                yield {"article_id": h["_id"], **h.get("_source", {})}
            sent += len(hits)
            if len(hits) < kwargs["size"]:
                return
            after = hits[-1]["sort"]
    finally:
        await es.close_point_in_time(id=pit)


__all__ = [
    "FACETS",
    "MARK_CLOSE",
    "MARK_OPEN",
    "Bucket",
    "FacetValue",
    "Hit",
    "Page",
    "Search",
    "SearchError",
    "count",
    "decode_cursor",
    "encode_cursor",
    "export",
    "parse_page",
    "query_error",
    "run",
]
