"""Alert rules: saved searches in their own index, seeded from rules.yaml and managed by the CLI."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from elasticsearch import AsyncElasticsearch, NotFoundError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from newsflow_search.query import FILTER_FIELDS, build_query

log = logging.getLogger("newsflow.indexer.rules")


class Channel(BaseModel):
    """Where an alert goes: the log, or a webhook (JSON, or Slack's `{"text": ...}` with slack=true)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook", "log"] = "webhook"
    url: str | None = None
    slack: bool = False

    @model_validator(mode="after")
    def _url_for_webhooks(self) -> Channel:
        if self.type == "webhook" and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError(f"a webhook channel needs an http(s) url (got {self.url!r})")
        return self

    def label(self) -> str:
        return "log" if self.type == "log" else f"{'slack' if self.slack else 'webhook'}:{self.url}"


class RuleFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: list[str] = Field(default_factory=list)
    feed: list[str] = Field(default_factory=list)
    domain: list[str] = Field(default_factory=list)
    section: list[str] = Field(default_factory=list)

    @field_validator("language", "feed", "domain", "section", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if v is None:
            return []
        return [v] if isinstance(v, str) else v

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.model_dump().items() if v}


def rule_id(name: str) -> str:
    """Rules are addressed by name; the id is its hash so that any name is a valid document id."""
    return hashlib.sha256(name.strip().encode("utf-8")).hexdigest()[:24]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    query: str = Field(min_length=1, max_length=10_000)
    filters: RuleFilters = Field(default_factory=RuleFilters)
    channels: list[Channel] = Field(default_factory=lambda: [Channel(type="log")])
    enabled: bool = True

    @field_validator("channels", mode="before")
    @classmethod
    def _short_channels(cls, v: Any) -> Any:
        # rules.yaml shorthand: "log", or {"webhook": URL, "slack": true}, or a bare URL.
        out = []
        for ch in v or []:
            if ch == "log":
                out.append({"type": "log"})
            elif isinstance(ch, str):
                out.append({"type": "webhook", "url": ch})
            elif isinstance(ch, dict) and "webhook" in ch:
                out.append({"type": "webhook", "url": ch["webhook"], "slack": bool(ch.get("slack", False))})
            else:
                out.append(ch)
        return out

    @property
    def id(self) -> str:
        return rule_id(self.name)

    def es_query(
        self, ids: list[str] | None = None, since: str | None = None, present_languages: list[str] | None = None
    ) -> dict[str, Any]:
        return build_query(
            self.query, self.filters.as_dict(), since=since, ids=ids, present_languages=present_languages
        )

    def to_doc(self, source: str = "api") -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        return {
            "rule_id": self.id,
            "name": self.name,
            "query": self.query,
            "filters": self.filters.as_dict(),
            "channels": [c.model_dump(exclude_none=True) for c in self.channels],
            "enabled": self.enabled,
            "source": source,
            "created_at": now,
            "updated_at": now,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rule:
        return cls(
            name=doc["name"],
            query=doc["query"],
            filters=RuleFilters(**(doc.get("filters") or {})),
            channels=doc.get("channels") or [],
            enabled=doc.get("enabled", True),
        )


def load_rules_file(path: Path) -> list[Rule]:
    """rules.yaml: `rules: [{name, query, filters: {...}, channels: [...]}, ...]` (see rules.yaml.example)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    items = data.get("rules", []) if isinstance(data, dict) else data
    rules = [Rule.model_validate(item) for item in items]
    names = [r.name for r in rules]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path}: rule names must be unique, repeated: {', '.join(sorted(dupes))}")
    return rules


class InvalidRule(ValueError):
    pass


class RuleStore:
    """The rules index. `await RuleStore(es).add(Rule(name=..., query=...))`."""

    def __init__(self, es: AsyncElasticsearch, index: str = "newsflow-rules", news_alias: str = "news") -> None:
        self.es = es
        self.index = index
        self.news_alias = news_alias
        self._cache: list[Rule] | None = None
        self._cached_at = 0.0

    async def validate(self, rule: Rule) -> None:
        """Refuse a query Elasticsearch cannot parse, before it is saved and fails on every batch."""
        unknown = set(rule.filters.as_dict()) - set(FILTER_FIELDS)
        if unknown:
            raise InvalidRule(f"unknown filters {sorted(unknown)}")
        resp = await self.es.indices.validate_query(
            index=self.news_alias, query=rule.es_query(), explain=True, ignore_unavailable=True
        )
        if not resp.get("valid", False):
            errors = [e.get("error", "") for e in resp.get("explanations", []) if not e.get("valid", True)]
            # Lucene's message ends with a list of every token it expected: the first line says it all.
            why = errors[0].rsplit("ParseException: ", 1)[-1].splitlines()[0] if errors else "not valid"
            raise InvalidRule(f"rule {rule.name!r}: invalid query {rule.query!r}: {why[:300]}")

    async def add(self, rule: Rule, source: str = "api", validate: bool = True) -> bool:
        """Create or replace the rule named `rule.name`. Returns True when it was new."""
        if validate:
            await self.validate(rule)
        doc = rule.to_doc(source)
        try:
            old = await self.es.get(index=self.index, id=rule.id)
            doc["created_at"] = old["_source"].get("created_at", doc["created_at"])
            created = False
        except NotFoundError:
            created = True
        # refresh=true: a rule applies from the next batch on, not a refresh interval later (rules change rarely).
        await self.es.index(index=self.index, id=rule.id, document=doc, refresh=True)
        self._cache = None
        return created

    async def remove(self, name: str) -> bool:
        try:
            await self.es.delete(index=self.index, id=rule_id(name), refresh=True)
        except NotFoundError:
            return False
        self._cache = None
        return True

    async def get(self, name: str) -> Rule | None:
        try:
            doc = await self.es.get(index=self.index, id=rule_id(name))
        except NotFoundError:
            return None
        return Rule.from_doc(doc["_source"])

    async def all(self, enabled_only: bool = False) -> list[Rule]:
        rules: list[Rule] = []
        query: dict[str, Any] = {"term": {"enabled": True}} if enabled_only else {"match_all": {}}
        # search_after over the name keeps this right for any number of rules.
        after: list[Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"index": self.index, "query": query, "size": 1000, "sort": [{"name": "asc"}]}
            if after is not None:
                kwargs["search_after"] = after
            resp = await self.es.search(**kwargs)
            hits = resp["hits"]["hits"]
            for h in hits:
                try:
                    rules.append(Rule.from_doc(h["_source"]))
                except ValueError as e:
                    log.error("rule %s in %s is invalid, skipped: %s", h["_id"], self.index, e)
            if len(hits) < 1000:
                return rules
            after = hits[-1]["sort"]

    async def cached(self, max_age_s: float) -> list[Rule]:
        """Enabled rules, reloaded at most every `max_age_s` (a rule added by the CLI applies within that)."""
        now = time.monotonic()
        if self._cache is None or now - self._cached_at >= max_age_s:
            self._cache = await self.all(enabled_only=True)
            self._cached_at = now
        return self._cache

    async def seed(self, rules: list[Rule], source: str = "rules.yaml") -> int:
        """Add the rules of a rules file; returns how many were added or changed."""
        changed = 0
        for rule in rules:
            existing = await self.get(rule.name)
            if existing is not None and existing.model_dump() == rule.model_dump():
                continue
            await self.add(rule, source=source)
            changed += 1
        return changed
