"""The rules as the notifier needs them: every rule by id (disabled ones too: an alert that fired before its
rule was disabled is still delivered), reloaded every `rules_refresh_s`, and at once for an unknown id."""

from __future__ import annotations

import time

from newsflow_search.rules import Rule, RuleStore


class RuleCache:
    def __init__(self, store: RuleStore, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._by_id: dict[str, Rule] = {}
        self._loaded = 0.0

    async def all(self) -> dict[str, Rule]:
        if not self._by_id or time.monotonic() - self._loaded >= self.max_age_s:
            await self.reload()
        return self._by_id

    async def reload(self) -> None:
        self._by_id = {r.id: r for r in await self.store.all(enabled_only=False)}
        self._loaded = time.monotonic()

    async def get(self, rule_id: str) -> Rule | None:
        rule = (await self.all()).get(rule_id)
        if rule is None and time.monotonic() - self._loaded > 0.5:
            await self.reload()  # added a moment ago
            rule = self._by_id.get(rule_id)
        return rule
