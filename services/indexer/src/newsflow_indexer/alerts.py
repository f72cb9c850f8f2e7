"""Alert rules evaluated against each indexed batch, with durable dedup in the alerts record index.

One `_msearch` per batch: every rule's query (the same one `newsflow search` runs) filtered to the
batch's ids. Matches are recorded in the alerts index with `op_type=create`:

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

import hashlib
import json
import logging
import time
from collections import defaultdict
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


class AlertEngine:
    def __init__(self, es: AsyncElasticsearch, settings: IndexerSettings, redis: aioredis.Redis | None = None) -> None:
        self.es = es
        self.settings = settings
        self.alias = settings.index_alias
        self.index = settings.alerts_index
        # To tell, on a redelivery, whether an alert reached news.alerts before the crash.
        self.redis = redis

    async def match(
        self, rules: list[Rule], ids: list[str], languages: list[str] | None = None
    ) -> list[tuple[Rule, dict[str, Any]]]:
        """Every (rule, hit) among `ids`, in one `_msearch`. A rule Elasticsearch refuses is skipped.

        `languages`: the stemmed languages of the batch; the other languages' fields cannot match
        and are left out of every rule's query (about half the cost of a multilingual rule set).
        """
        if not rules or not ids:
            return []
        searches: list[dict[str, Any]] = []
        for rule in rules:
            searches.append({"index": self.alias})
            searches.append(
                {
                    "query": rule.es_query(ids=ids, present_languages=languages),
                    "size": len(ids),
                    "_source": HIT_FIELDS,
                    # No highlighting here: most matches of a batch are not new alerts, and
                    # highlighting costs milliseconds per hit; snippets are fetched for new alerts only.
                    "track_total_hits": False,
                }
            )
        resp = await self.es.msearch(searches=searches)
        out: list[tuple[Rule, dict[str, Any]]] = []
        for rule, r in zip(rules, resp["responses"], strict=True):
            if "error" in r:
                status = r.get("status", 0)
                if status in (429, 502, 503, 504):
                    # Not the rule's fault: the whole batch is retried.
                    raise TransientBulkError(f"rule search refused with {status}: {r['error']}")
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
        fired = await self._record(matches, indexed_at, by_id) if matches else {}
        metrics.RULE_EVAL_SECONDS.observe(time.perf_counter() - started)
        return fired

    async def _create(self, docs: dict[str, dict[str, Any]]) -> tuple[set[str], set[str]]:
        """op_type=create for each `_id -> doc`; returns (created, already there)."""
        created: set[str] = set()
        exists: set[str] = set()
        actions = [
            {"_op_type": "create", "_index": self.index, "_id": _id, "_source": doc} for _id, doc in docs.items()
        ]
        async for ok, item in async_streaming_bulk(
            # No refresh: `create` checks the id in real time, and mget reads in real time too.
            self.es,
            actions,
            raise_on_error=False,
            max_retries=0,  # an overloaded Elasticsearch is waited out by the indexer's one retry layer
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
    ) -> dict[str, list[Alert]]:
        now = datetime.now(UTC).isoformat()
        # 1. one record per (rule, article): which matches are new?
        by_id = {m.alert_id: m for m in matches}
        created, exists = await self._create(
            {
                m.alert_id: {
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
                for m in by_id.values()
            }
        )
        new = [by_id[i] for i in created]
        for aid, src in (await self._sources(exists)).items():
            if src.get("delivery_key") == by_id[aid].key:
                new.append(by_id[aid])  # this very message again: its alert may not have been published
            else:
                metrics.ALERTS_SUPPRESSED.labels("already-alerted").inc()
        if not new:
            return {}

        # 2. one alert per (rule, story): group copies by fingerprint, the earliest one fires.
        groups: dict[str, list[Match]] = defaultdict(list)
        for m in new:
            fp = m.fingerprint
            gid = fingerprint_id(m.rule.id, fp) if fp else "solo-" + m.alert_id
            groups[gid].append(m)
        for members in groups.values():
            members.sort(key=_sort_key)
        await self._snippets([members[0] for members in groups.values()])
        claims: dict[str, dict[str, Any]] = {}
        alerts: dict[str, Alert] = {}
        for gid, members in groups.items():
            primary = members[0]
            art = articles.get(primary.article_id)
            fp = sorted(story_facts(art.title, art.description, art.text)) if art else None
            alert = primary.alert([m.source.get("url", "") for m in members[1:]], indexed_at, fp)
            alerts[gid] = alert
            claims[gid] = {
                "kind": "fingerprint",
                "alert_id": primary.alert_id,
                "rule_id": primary.rule.id,
                "rule_name": primary.rule.name,
                "article_id": primary.article_id,
                "url": primary.source.get("url"),
                "fingerprint": primary.fingerprint,
                "delivery_key": primary.key,
                "fired": True,
                "alert": alert.model_dump(mode="json"),
                "created_at": now,
            }
        won, lost = await self._create(claims)
        fired: dict[str, list[Alert]] = defaultdict(list)
        again: list[tuple[Alert, str]] = []
        updates: list[dict[str, Any]] = []
        for gid in won:
            a = alerts[gid]
            fired[a.article_id].append(a)
            for m in groups[gid][1:]:
                updates.append(self._update(m.alert_id, {"duplicate_of": a.alert_id}))
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
        if again:
            published = await self._published_since(min(created for _a, created in again))
            for a, _created in again:
                if a.alert_id in published:
                    metrics.ALERTS_SUPPRESSED.labels("already-published").inc()
                else:
                    fired[a.article_id].append(a)  # recorded, then the process died before publishing
        if updates:
            async for ok, item in async_streaming_bulk(self.es, updates, raise_on_error=False, max_retries=0):
                if not ok:
                    log.warning("alert record update failed: %s", item)
        n = sum(len(v) for v in fired.values())
        metrics.ALERTS_FIRED.inc(n)
        return dict(fired)

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
