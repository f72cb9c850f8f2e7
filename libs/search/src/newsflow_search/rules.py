"""Alert rules: saved searches in their own index, seeded from rules.yaml and managed by the CLI.

A rule says what to match (`query`, `filters`), where to send it (`channels`) and how (`mode`: each story
at once, or a `digest`; a `storm_guard` that turns a burst into a digest; `snoozed_until`). Mistakes are
refused with one line naming the rule and the field (`first_error`), never a validation dump.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from elasticsearch import AsyncElasticsearch, NotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsflow_search.query import FILTER_FIELDS, build_query

log = logging.getLogger("newsflow.indexer.rules")

ChannelType = Literal["log", "webhook", "slack", "teams", "discord", "telegram", "email"]
# Channels that POST to a URL the rule gives: the ones the SSRF guard checks when a rule is added.
URL_CHANNELS = frozenset({"webhook", "slack", "teams", "discord"})
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
MASK = "***"


def first_error(e: ValidationError) -> str:
    """A pydantic error as one line: `field: message` of the first problem (pydantic's own text is a dump)."""
    errs = e.errors()
    if not errs:
        return str(e)
    err = errs[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("function-after", "function-before"))
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return (f"{loc}: {msg}" if loc else msg) + more


def parse_minutes(value: Any, what: str) -> int:
    """`30m`, `2h`, `1d`, `45` (minutes) -> minutes."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a duration such as 30m, 2h or 1d (got {value!r})")
    if isinstance(value, int | float):
        minutes = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd]?)\s*", str(value).lower())
        if not m:
            raise ValueError(f"{what}: expected a duration such as 30m, 2h or 1d (got {value!r})")
        minutes = float(m[1]) * {"": 1, "m": 1, "h": 60, "d": 1440}[m[2]]
    if minutes < 1 or minutes != int(minutes):
        raise ValueError(f"{what}: a whole number of minutes, at least 1 (got {value!r})")
    return int(minutes)


class Channel(BaseModel):
    """Where an alert goes.

    `log` (a WARNING line of the notifier), `webhook` (the alert as JSON; `secret` signs it with
    HMAC-SHA256), `slack`, `teams`, `discord` (their incoming-webhook `url`), `telegram` (a bot `token`
    and a `chat_id`) and `email` (`to`: addresses; the SMTP server is the notifier's setting).
    """

    model_config = ConfigDict(extra="forbid")

    type: ChannelType = "webhook"
    url: str | None = None
    secret: str | None = Field(None, min_length=8, max_length=512)
    to: list[str] = Field(default_factory=list)
    chat_id: str | None = None
    token: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_slack(cls, data: Any) -> Any:
        # Rules saved before the notifier spelled Slack as a webhook with `slack: true`.
        if isinstance(data, dict) and "slack" in data:
            data = dict(data)
            if data.pop("slack"):
                data["type"] = "slack"
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            data = {**data, "to": [a.strip() for a in re.split(r"[,;]", data["to"]) if a.strip()]}
        return data

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        t = self.type
        if t in URL_CHANNELS:
            parts = urlsplit(self.url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"a {t} channel needs an http(s) URL with a host (got {self.url!r})")
        elif self.url is not None:
            raise ValueError(f"a {t} channel takes no url")
        if self.secret is not None and t != "webhook":
            raise ValueError("only a webhook channel is signed with a secret")
        if t == "email":
            if not self.to:
                raise ValueError("an email channel needs `to`: one or more addresses")
            bad = [a for a in self.to if not _EMAIL.match(a)]
            if bad:
                raise ValueError(f"not an e-mail address: {bad[0]!r}")
        elif self.to:
            raise ValueError(f"a {t} channel takes no `to`")
        if t == "telegram":
            if not self.chat_id or not self.token or not re.fullmatch(r"\d+:[A-Za-z0-9_-]{10,}", self.token):
                raise ValueError("a telegram channel needs chat_id and a bot token (123456:ABC...)")
        elif self.chat_id or self.token:
            raise ValueError(f"a {t} channel takes no chat_id or token")
        return self

    @property
    def key(self) -> str:
        """Stable across edits of the rule's other channels: delivery state is kept per channel key."""
        dest = self.url or ",".join(sorted(self.to)) or self.chat_id or ""
        return f"{self.type}-{hashlib.sha256(f'{self.type}|{dest}'.encode()).hexdigest()[:12]}"

    def label(self) -> str:
        """For people: the destination without its secrets (a Slack webhook's path is a credential)."""
        if self.type == "log":
            return "log"
        if self.type == "email":
            return "email:" + ",".join(self.to)
        if self.type == "telegram":
            return f"telegram:{self.chat_id}"
        parts = urlsplit(self.url or "")
        shown = parts.path if self.type == "webhook" and len(parts.path) <= 40 else "/…"
        signed = " (signed)" if self.secret else ""
        return (
            f"{self.type}:{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{shown}{signed}"
        )

    def public(self) -> dict[str, Any]:
        """The channel as `rules list --json` shows it: secrets masked."""
        doc = self.model_dump(exclude_none=True, exclude_defaults=True)
        doc["type"] = self.type
        for k in ("secret", "token"):
            if doc.get(k):
                doc[k] = MASK
        return doc


def _channel_shorthand(ch: Any) -> Any:
    """rules.yaml shorthand: "log", a bare URL (webhook), or {kind: value, ...} for any channel type."""
    if ch == "log":
        return {"type": "log"}
    if isinstance(ch, str):
        return {"type": "webhook", "url": ch}
    if not isinstance(ch, dict) or "type" in ch:
        return ch
    for kind in ("webhook", "slack", "teams", "discord"):
        if kind in ch:
            rest = {k: v for k, v in ch.items() if k != kind}
            return {"type": kind, "url": ch[kind], **rest}
    if "email" in ch:
        return {"type": "email", "to": ch["email"], **{k: v for k, v in ch.items() if k != "email"}}
    if "telegram" in ch and isinstance(ch["telegram"], dict):
        return {"type": "telegram", **ch["telegram"]}
    return ch


class DigestSchedule(BaseModel):
    """`every: 30m` (periods aligned on the clock, in UTC) or `at: "08:00"` daily in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    every: int | None = Field(None, description="minutes")
    at: str | None = None
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `digest: 30m`, `digest: "08:00"`, `digest: "08:00 Europe/Berlin"`
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"every": data}
        if isinstance(data, str):
            words = data.split()
            if words and re.fullmatch(r"\d{1,2}:\d{2}", words[0]):
                return {"at": words[0], **({"timezone": words[1]} if len(words) > 1 else {})}
            return {"every": data}
        return data

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, v: Any) -> Any:
        return None if v is None else parse_minutes(v, "digest every")

    @model_validator(mode="after")
    def _one_of(self) -> DigestSchedule:
        if (self.every is None) == (self.at is None):
            raise ValueError('a digest needs either `every: 30m` or `at: "08:00"` (with an optional timezone)')
        if self.every is not None and self.every > 7 * 1440:
            raise ValueError("digest every: at most 7d")
        if self.at is not None:
            m = re.fullmatch(r"(\d{1,2}):(\d{2})", self.at)
            if not m or int(m[1]) > 23 or int(m[2]) > 59:
                raise ValueError(f"digest at: a time of day HH:MM (got {self.at!r})")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} (an IANA name such as Europe/Berlin)") from None
        return self

    def describe(self) -> str:
        return f"every {_minutes_text(self.every)}" if self.every else f"daily at {self.at} {self.timezone}"


class StormGuard(BaseModel):
    """More than `max` new stories within `within` minutes: digests every `within` minutes until quiet."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max: int = Field(5, ge=1, le=10_000)
    within: int = Field(10, description="minutes")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            return {"enabled": data}
        if isinstance(data, str) and data.lower() in ("off", "on", "false", "true"):
            return {"enabled": data.lower() in ("on", "true")}
        return data

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> Any:
        minutes = parse_minutes(v, "storm_guard within")
        if minutes > 1440:
            raise ValueError("storm_guard within: at most 1d")
        return minutes

    def describe(self) -> str:
        return f"more than {self.max} in {_minutes_text(self.within)}" if self.enabled else "off"


def _minutes_text(m: int | None) -> str:
    if not m:
        return "-"
    if m % 1440 == 0:
        return f"{m // 1440}d"
    if m % 60 == 0:
        return f"{m // 60}h"
    return f"{m}m"


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
    # How stories reach the channels: each at once, or collected into a digest (see docs/ALERTING.md).
    mode: Literal["immediate", "digest"] = "immediate"
    digest: DigestSchedule | None = None
    storm_guard: StormGuard = Field(default_factory=StormGuard)
    # Set by `newsflow rules snooze`: matches are recorded, nothing is sent until then.
    snoozed_until: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _digest_implies_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("digest") is not None and "mode" not in data:
            data = {**data, "mode": "digest"}
        return data

    @field_validator("channels", mode="before")
    @classmethod
    def _short_channels(cls, v: Any) -> Any:
        return [_channel_shorthand(ch) for ch in v or []]

    @field_validator("snoozed_until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _mode_needs_schedule(self) -> Rule:
        if self.mode == "digest" and self.digest is None:
            raise ValueError('mode digest needs a schedule: digest: {every: 30m} or digest: {at: "08:00"}')
        if self.mode == "immediate" and self.digest is not None:
            raise ValueError("a digest schedule is set but mode is immediate: say mode: digest")
        keys = [c.key for c in self.channels]
        if len(keys) != len(set(keys)):
            raise ValueError("the same channel is listed twice")
        return self

    @property
    def id(self) -> str:
        return rule_id(self.name)

    def snoozed(self, now: datetime | None = None) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > (now or datetime.now(UTC))

    def channel(self, key: str) -> Channel | None:
        return next((c for c in self.channels if c.key == key), None)

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
            "channels": [
                c.model_dump(exclude_none=True, exclude_defaults=True) | {"type": c.type} for c in self.channels
            ],
            "enabled": self.enabled,
            "mode": self.mode,
            "digest": self.digest.model_dump(exclude_none=True) if self.digest else None,
            "storm_guard": self.storm_guard.model_dump(),
            "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
            "source": source,
            "created_at": now,
            "updated_at": now,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rule:
        fields = ("name", "query", "channels", "enabled", "mode", "digest", "storm_guard", "snoozed_until")
        data = {k: doc[k] for k in fields if doc.get(k) is not None}
        return cls(filters=RuleFilters(**(doc.get("filters") or {})), **{"channels": [], **data})

    def settings_equal(self, other: Rule) -> bool:
        """Same rule as far as a rules file can say (a snooze is the operator's, set by the CLI)."""
        return self.model_dump(exclude={"snoozed_until"}) == other.model_dump(exclude={"snoozed_until"})


def load_rules_file(path: Path) -> list[Rule]:
    """rules.yaml: `rules: [{name, query, filters, channels, mode, ...}]` (see rules.yaml.example).

    Any mistake is a ValueError of one line naming the file, the rule and the field.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    items = data.get("rules", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected `rules:` with a list of rules")
    rules = []
    for n, item in enumerate(items, 1):
        name = item.get("name") if isinstance(item, dict) else None
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as e:
            raise ValueError(f"{path}: rule {name or f'#{n}'!r}: {first_error(e)}") from None
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
        """Create or replace the rule named `rule.name`. Returns True when it was new.

        A snooze set on the rule in the index survives a replacement that does not set one.
        """
        if validate:
            await self.validate(rule)
        doc = rule.to_doc(source)
        try:
            old = (await self.es.get(index=self.index, id=rule.id))["_source"]
            doc["created_at"] = old.get("created_at", doc["created_at"])
            if rule.snoozed_until is None and old.get("snoozed_until"):
                doc["snoozed_until"] = old["snoozed_until"]
            created = False
        except NotFoundError:
            created = True
        # refresh=true: a rule applies from the next batch on, not a refresh interval later (rules change rarely).
        await self.es.index(index=self.index, id=rule.id, document=doc, refresh=True)
        self._cache = None
        return created

    async def snooze(self, name: str, until: datetime | None) -> bool:
        """Set (or clear, with None) the rule's snooze; False when there is no such rule."""
        try:
            await self.es.update(
                index=self.index,
                id=rule_id(name),
                doc={
                    "snoozed_until": until.isoformat() if until else None,
                    "updated_at": datetime.now(UTC).isoformat(),
                },
                refresh=True,
            )
        except NotFoundError:
            return False
        self._cache = None
        return True

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

    async def cached(self, max_age_s: float, enabled_only: bool = True) -> list[Rule]:
        """Rules, reloaded at most every `max_age_s` (a rule added by the CLI applies within that)."""
        now = time.monotonic()
        if self._cache is None or now - self._cached_at >= max_age_s:
            self._cache = await self.all(enabled_only=enabled_only)
            self._cached_at = now
        return self._cache

    async def seed(self, rules: list[Rule], source: str = "rules.yaml") -> int:
        """Add the rules of a rules file; returns how many were added or changed."""
        changed = 0
        for rule in rules:
            existing = await self.get(rule.name)
            if existing is not None and existing.settings_equal(rule):
                continue
            await self.add(rule, source=source)
            changed += 1
        return changed
