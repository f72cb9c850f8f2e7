"""Alert rules evaluated against each indexed batch, with durable dedup in the alerts record index.

One `_msearch` per batch: every rule's query (the same one `newsflow search` runs), named, in one
search filtered to the batch's ids; each hit says which rules it matched. Matches are recorded in the
alerts index with `op_type=create`:

- `_id = alert_id` (hash of rule and article): one alert per (rule, article), ever, even when the
  article is re-parsed or re-indexed later;
- `_id = fp-<hash of rule and simhash>`: one alert per (rule, story); syndicated copies of a story
  (same near-duplicate fingerprint) are attached to the first one instead of firing again.

A record remembers the delivery key of the message that created it (article id, parse time and content
hash). When that same message comes back (a redelivery after a crash between recording and publishing),
its alerts are produced again unless news.alerts already holds them (checked from the record's creation
time on), so a crash neither loses an alert nor repeats it; a re-parse or a second publication of the
article has another key and fires nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk

from newsflow_alerting.stories import facts as story_facts
from newsflow_indexer import metrics
from newsflow_indexer.settings import IndexerSettings
from newsflow_indexer.writer import TransientBulkError
from newsflow_search.documents import stemmed_language
from newsflow_search.query import HIGHLIGHT, best_snippet
from newsflow_search.rules import Rule
from newsflow_shared import streams
from newsflow_shared.models import Alert, ParsedArticle
from newsflow_shared.runtime import DATA_FIELD

log = logging.getLogger("newsflow.indexer.alerts")

HIT_FIELDS = ["article_id", "url", "title", "published_at", "language", "domain", "simhash", "feed_url"]
_HIT_OPTIONS: dict[str, Any] = {
    "_source": HIT_FIELDS,
    # No highlighting here: most matches of a batch are not new alerts, and highlighting costs
    # milliseconds per hit; snippets are fetched for new alerts only.
    "track_total_hits": False,
}
# Rules per search when a batch is matched (see `AlertEngine.match`): enough for one search to serve a
# usual rule set, few enough to stay far below Elasticsearch's limit on boolean clauses.
RULES_PER_SEARCH = 100
Publish = Callable[[Alert], Awaitable[Any]]
NO_FINGERPRINT = {"", "0" * 16}


def alert_id(rule_id: str, article_id: str) -> str:
    return hashlib.sha256(f"{rule_id}:{article_id}".encode()).hexdigest()[:32]


def fingerprint_id(rule_id: str, simhash: str) -> str:
    return "fp-" + hashlib.sha256(f"{rule_id}:simhash:{simhash}".encode()).hexdigest()[:32]


def delivery_key(article: ParsedArticle) -> str:
    return hashlib.sha256(
        f"{article.article_id}|{article.parsed_at.isoformat()}|{article.content_hash}".encode()
    ).hexdigest()[:32]


@dataclass
class Match:
    rule: Rule
    article_id: str
    source: dict[str, Any]
    snippet: str | None
    key: str

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule.id, self.article_id)

    @property
    def fingerprint(self) -> str:
        fp = str(self.source.get("simhash") or "")
        return "" if fp in NO_FINGERPRINT else fp

    def alert(self, duplicates: list[str], indexed_at: datetime | None = None, facts: list[str] | None = None) -> Alert:
        s = self.source
        return Alert(
            alert_id=self.alert_id,
            rule_id=self.rule.id,
            rule_name=self.rule.name,
            query=self.rule.query,
            article_id=self.article_id,
            url=s.get("url", ""),
            title=s.get("title"),
            published_at=s.get("published_at"),
            snippet=self.snippet,
            language=s.get("language"),
            domain=s.get("domain"),
            duplicates=duplicates,
            indexed_at=indexed_at,
            facts=facts,
        )


def _sort_key(m: Match) -> tuple[str, str]:
    # The earliest publication of a story is the one that alerts; the others are its copies.
    return (str(m.source.get("published_at") or "9999"), m.article_id)


def _named_search(rules: list[Rule], ids: list[str], languages: list[str] | None) -> dict[str, Any]:
    """One search for the batch's `ids` matching any of `rules`, each rule's query named by its id."""
    named = [_with_name(rule.es_query(present_languages=languages), rule.id) for rule in rules]
    query = {"bool": {"filter": [{"ids": {"values": ids}}], "should": named, "minimum_should_match": 1}}
    return {"query": query, **_HIT_OPTIONS, "size": len(ids)}


def _with_name(query: dict[str, Any], name: str) -> dict[str, Any]:
    (kind, body), *rest = query.items()
    assert not rest, query
    return {kind: {**body, "_name": name}}


def _raise_if_transient(response: dict[str, Any]) -> None:
    status = response.get("status", 0)
    if status in (429, 502, 503, 504):
        # Not the rules' fault: the whole batch is retried.
        raise TransientBulkError(f"rule search refused with {status}: {response['error']}")


def _stories(new: list[Match]) -> dict[str, list[Match]]:
    """One group per (rule, story): syndicated copies share a fingerprint; the earliest one comes first."""
    groups: dict[str, list[Match]] = defaultdict(list)
    for m in new:
        fp = m.fingerprint
        groups[fingerprint_id(m.rule.id, fp) if fp else "solo-" + m.alert_id].append(m)
    for members in groups.values():
        members.sort(key=_sort_key)
    return groups


def _story_alert(members: list[Match], articles: dict[str, ParsedArticle], indexed_at: datetime | None) -> Alert:
    """The alert of a story: its earliest member's, listing the copies, with the facts for story grouping."""
    primary = members[0]
    art = articles.get(primary.article_id)
    facts = sorted(story_facts(art.title, art.description, art.text)) if art else None
    return primary.alert([m.source.get("url", "") for m in members[1:]], indexed_at, facts)


def _article_record(m: Match, now: str) -> dict[str, Any]:
    return {
        "kind": "article",
        "alert_id": m.alert_id,
        "rule_id": m.rule.id,
        "rule_name": m.rule.name,
        "article_id": m.article_id,
        "url": m.source.get("url"),
        "fingerprint": m.fingerprint,
        "delivery_key": m.key,
        "created_at": now,
    }


def _claim(primary: Match, alert: Alert, now: str) -> dict[str, Any]:
    """The story's record (`_id` per rule and fingerprint): whoever creates it first fires the alert."""
    return {
        **_article_record(primary, now),
        "kind": "fingerprint",
        "fired": True,
        "alert": alert.model_dump(mode="json"),
    }


class AlertEngine:
    def __init__(
        self,
        es: AsyncElasticsearch,
        settings: IndexerSettings,
        redis: aioredis.Redis | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.es = es
        self.settings = settings
        self.alias = settings.index_alias
        self.index = settings.alerts_index
        # To tell, on a redelivery, whether an alert reached news.alerts before the crash.
        self.redis = redis
        # The service publishes each batch's alerts as soon as they are recorded (see `evaluate`).
        self.publish = publish

    async def match(
        self, rules: list[Rule], ids: list[str], languages: list[str] | None = None
    ) -> list[tuple[Rule, dict[str, Any]]]:
        """Every (rule, hit) among `ids`, in one `_msearch`. A rule Elasticsearch refuses is skipped.

        One search per `RULES_PER_SEARCH` rules, not one per rule: each rule's query is a named `should`
        clause, and a hit's `matched_queries` says which rules it matched. Elasticsearch then resolves the
        batch's ids and walks its documents once for all the rules (50 rules on 500 ids: 0.05 s against
        0.3-0.5 s for 50 searches, docs/PERFORMANCE.md). What a rule matches is its own query's
        answer either way, the same one `newsflow search` gives.

        `languages`: the stemmed languages of the batch; the other languages' fields cannot match
        and are left out of every rule's query (about half the cost of a multilingual rule set).
        """
        if not rules or not ids:
            return []
        chunks = [rules[i : i + RULES_PER_SEARCH] for i in range(0, len(rules), RULES_PER_SEARCH)]
        searches: list[dict[str, Any]] = []
        for chunk in chunks:
            searches += [{"index": self.alias}, _named_search(chunk, ids, languages)]
        resp = await self.es.msearch(searches=searches)
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chunk, r in zip(chunks, resp["responses"], strict=True):
            if "error" in r:
                _raise_if_transient(r)
                # A rule of this chunk is refused (a query Elasticsearch cannot parse): one search per
                # rule finds which, so that it alone is skipped.
                for rule, hit in await self._match_each(chunk, ids, languages):
                    found[rule.id].append(hit)
                continue
            for hit in r["hits"]["hits"]:
                for name in hit.get("matched_queries") or []:
                    found[name].append(hit)
        return [(rule, hit) for rule in rules for hit in found.get(rule.id, [])]

    async def _match_each(
        self, rules: list[Rule], ids: list[str], languages: list[str] | None
    ) -> list[tuple[Rule, dict[str, Any]]]:
        """Rule by rule, one search each: a rule Elasticsearch refuses is logged, counted and skipped."""
        searches: list[dict[str, Any]] = []
        for rule in rules:
            query = rule.es_query(ids=ids, present_languages=languages)
            searches += [{"index": self.alias}, {"query": query, **_HIT_OPTIONS, "size": len(ids)}]
        resp = await self.es.msearch(searches=searches)
        out: list[tuple[Rule, dict[str, Any]]] = []
        for rule, r in zip(rules, resp["responses"], strict=True):
            if "error" in r:
                _raise_if_transient(r)
                metrics.RULE_ERRORS.inc()
                log.error("rule %r failed: %s", rule.name, r["error"], extra={"rule": rule.name})
                continue
            out += [(rule, hit) for hit in r["hits"]["hits"]]
        return out

    async def evaluate(
        self, rules: list[Rule], articles: list[ParsedArticle], indexed_at: datetime | None = None
    ) -> dict[str, list[Alert]]:
        """The alerts to fire for this batch, by article id (only articles that fire appear).

        `indexed_at`: when the batch became searchable, carried by each alert for the notifier's latency.
        With `publish`, the alerts are on news.alerts when this returns: published as soon as they are
        recorded, all at once, rather than by each article's handler once the whole batch is settled.
        """
        started = time.perf_counter()
        keys = {a.article_id: delivery_key(a) for a in articles}
        # The stemmed languages of the batch. (A document already replaced by a newer parse in another
        # language was evaluated when that parse was indexed.)
        langs = {stemmed_language(a.language) for a in articles}
        hits = await self.match(rules, list(keys), sorted(x for x in langs if x))
        matches = [
            Match(rule, h["_id"], h.get("_source", {}), None, keys[h["_id"]]) for rule, h in hits if h["_id"] in keys
        ]
        by_id = {a.article_id: a for a in articles}
        fired, updates = await self._record(matches, indexed_at, by_id) if matches else ({}, [])
        metrics.RULE_EVAL_SECONDS.observe(time.perf_counter() - started)
        # The records' `duplicate_of` marks are bookkeeping: they need not hold the alerts back.
        await asyncio.gather(self._publish(fired), self._mark(updates))
        return fired

    async def _publish(self, fired: dict[str, list[Alert]]) -> None:
        if self.publish is not None:
            await asyncio.gather(*(self.publish(a) for alerts in fired.values() for a in alerts))

    async def _create(self, docs: dict[str, dict[str, Any]], refresh: bool = False) -> tuple[set[str], set[str]]:
        """op_type=create for each `_id -> doc`; returns (created, already there).

        `refresh`: searchable when this returns (the claims, the last records a batch writes before its
        alerts go out: whoever reads an alert on the stream, such as the web page's live list and article
        view, then finds its record by search, not a second later)."""
        created: set[str] = set()
        exists: set[str] = set()
        actions = [
            {"_op_type": "create", "_index": self.index, "_id": _id, "_source": doc} for _id, doc in docs.items()
        ]
        async for ok, item in async_streaming_bulk(
            # Refreshed only when asked: `create` checks the id in real time, and mget reads in real time too.
            self.es,
            actions,
            raise_on_error=False,
            max_retries=0,  # an overloaded Elasticsearch is waited out by the indexer's one retry layer
            refresh=refresh or None,
        ):
            info = item["create"]
            if ok:
                created.add(info["_id"])
            elif info.get("status") == 409:
                exists.add(info["_id"])
            elif info.get("status") in (429, 503):
                raise TransientBulkError(f"alert record {info['_id']} refused with {info.get('status')}")
            else:
                raise RuntimeError(f"alert record {info['_id']} refused: {info.get('status')} {info.get('error')}")
        return created, exists

    async def _sources(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        resp = await self.es.mget(index=self.index, ids=sorted(ids))
        return {d["_id"]: d["_source"] for d in resp["docs"] if d.get("found")}

    async def _record(
        self, matches: list[Match], indexed_at: datetime | None, articles: dict[str, ParsedArticle]
    ) -> tuple[dict[str, list[Alert]], list[dict[str, Any]]]:
        """Record the batch's matches; returns the alerts to fire by article id, and the record updates
        (`duplicate_of` marks) still to write."""
        now = datetime.now(UTC).isoformat()
        # The snippets are searched while the records are created: nearly always every match is new, and
        # the two round trips one after the other held a burst's alerts back by a tenth of a second or more.
        guessed = [members[0] for members in _stories(matches).values()]
        new, _ = await asyncio.gather(self._new_matches(matches, now), self._snippets(guessed))
        if not new:
            return {}, []
        groups = _stories(new)
        asked = {id(m) for m in guessed}
        await self._snippets([members[0] for members in groups.values() if id(members[0]) not in asked])
        alerts = {gid: _story_alert(members, articles, indexed_at) for gid, members in groups.items()}
        won, lost = await self._create(
            {gid: _claim(members[0], alerts[gid], now) for gid, members in groups.items()}, refresh=True
        )
        fired: dict[str, list[Alert]] = defaultdict(list)
        updates: list[dict[str, Any]] = []
        for gid in won:
            a = alerts[gid]
            fired[a.article_id].append(a)
            updates += [self._update(m.alert_id, {"duplicate_of": a.alert_id}) for m in groups[gid][1:]]
        again = await self._settle_lost(lost, groups, updates)
        for a in await self._unpublished(again):
            fired[a.article_id].append(a)  # recorded, then the process died before publishing
        metrics.ALERTS_FIRED.inc(sum(len(v) for v in fired.values()))
        return dict(fired), updates

    async def _new_matches(self, matches: list[Match], now: str) -> list[Match]:
        """One record per (rule, article): the matches recorded now, and those this very message recorded
        before (a redelivery: their alerts may not have been published)."""
        by_id = {m.alert_id: m for m in matches}
        created, exists = await self._create({m.alert_id: _article_record(m, now) for m in by_id.values()})
        new = [by_id[i] for i in created]
        for aid, src in (await self._sources(exists)).items():
            if src.get("delivery_key") == by_id[aid].key:
                new.append(by_id[aid])
            else:
                metrics.ALERTS_SUPPRESSED.labels("already-alerted").inc()
        return new

    async def _settle_lost(
        self, lost: set[str], groups: dict[str, list[Match]], updates: list[dict[str, Any]]
    ) -> list[tuple[Alert, str]]:
        """Stories another batch claimed first: copies are marked `duplicate_of` (appended to `updates`);
        returns the claims this very message made before (a redelivery), with their creation time."""
        again: list[tuple[Alert, str]] = []
        for gid, claim in (await self._sources(lost)).items():
            by_member = {m.alert_id: m for m in groups[gid]}
            primary = by_member.get(claim["alert_id"])
            if primary is not None and claim.get("delivery_key") == primary.key:
                again.append((Alert.model_validate(claim["alert"]), claim["created_at"]))
                continue
            for m in groups[gid]:
                if m.alert_id != claim["alert_id"]:
                    metrics.ALERTS_SUPPRESSED.labels("duplicate-story").inc()
                    updates.append(self._update(m.alert_id, {"duplicate_of": claim["alert_id"]}))
                    log.info(
                        "rule %r: %s is a copy of an alerted story (%s)",
                        m.rule.name,
                        m.source.get("url"),
                        claim.get("url"),
                        extra={"article_id": m.article_id, "url": m.source.get("url")},
                    )
        return again

    async def _unpublished(self, again: list[tuple[Alert, str]]) -> list[Alert]:
        """Of the alerts recorded by an earlier delivery of the same message, those not on news.alerts."""
        if not again:
            return []
        published = await self._published_since(min(created for _a, created in again))
        out: list[Alert] = []
        for a, _created in again:
            if a.alert_id in published:
                metrics.ALERTS_SUPPRESSED.labels("already-published").inc()
            else:
                out.append(a)
        return out

    async def _mark(self, updates: list[dict[str, Any]]) -> None:
        if not updates:
            return
        async for ok, item in async_streaming_bulk(self.es, updates, raise_on_error=False, max_retries=0):
            if not ok:
                log.warning("alert record update failed: %s", item)

    async def _snippets(self, matches: list[Match]) -> None:
        """The highlighted fragment of each match: the same query, highlighted, in one `_msearch`."""
        by_rule: dict[str, list[Match]] = defaultdict(list)
        for m in matches:
            by_rule[m.rule.id].append(m)
        searches: list[dict[str, Any]] = []
        order = list(by_rule.values())
        for group in order:
            rule = group[0].rule
            searches.append({"index": self.alias})
            searches.append(
                {
                    "query": rule.es_query(ids=[m.article_id for m in group]),
                    "size": len(group),
                    "_source": False,
                    "highlight": HIGHLIGHT,
                    "track_total_hits": False,
                }
            )
        if not searches:
            return
        resp = await self.es.msearch(searches=searches)
        for group, r in zip(order, resp["responses"], strict=True):
            snippets = {h["_id"]: best_snippet(h.get("highlight")) for h in r.get("hits", {}).get("hits", [])}
            for m in group:
                m.snippet = snippets.get(m.article_id)

    async def _published_since(self, created_at: str) -> set[str]:
        """Alert ids on news.alerts since `created_at` (stream ids are times: a bounded scan)."""
        if self.redis is None:
            return set()
        start_ms = int(datetime.fromisoformat(created_at).timestamp() * 1000) - 1000
        found: set[str] = set()
        start: str | bytes = f"{start_ms}-0"
        while True:
            entries = await self.redis.xrange(streams.ALERTS, min=start, max="+", count=1000)
            for _mid, fields in entries:
                try:
                    found.add(json.loads(fields[DATA_FIELD])["alert_id"])
                except (KeyError, ValueError):
                    continue
            if len(entries) < 1000:
                return found
            start = b"(" + entries[-1][0]

    def _update(self, _id: str, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {**doc, "updated_at": datetime.now(UTC).isoformat()}
        return {"_op_type": "update", "_index": self.index, "_id": _id, "doc": doc}
