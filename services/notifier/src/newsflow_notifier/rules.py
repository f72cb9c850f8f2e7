"""The rules as the notifier needs them: every rule by id (disabled ones too: an alert that fired before its
rule was disabled is still delivered), reloaded every `rules_refresh_s`, and at once for an unknown id."""

from __future__ import annotations

import asyncio
import time

from newsflow_search.rules import Rule, RuleStore


class RuleCache:
    def __init__(self, store: RuleStore, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._by_id: dict[str, Rule] = {}
        self._loaded = 0.0
        self._loading: asyncio.Future[None] | None = None

    async def all(self) -> dict[str, Rule]:
        if not self._by_id or time.monotonic() - self._loaded >= self.max_age_s:
            await self.reload()
        return self._by_id

    async def reload(self) -> None:
        """One reload at a time, shared by every caller that asks meanwhile: when the cache expires, each of
        the dozens of alerts and deliveries in flight asks at once (in a burst, one search for the rules per
        handler in flight each time the cache expired, all parsed again, while the alerts waited)."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(self._loaded_now)
        # Shielded: a caller cancelled (shutdown) must not cancel the reload the others wait for.
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        self._by_id = {r.id: r for r in await self.store.all(enabled_only=False)}
        self._loaded = time.monotonic()

    def _loaded_now(self, fut: asyncio.Future[None]) -> None:
        self._loading = None
        if not fut.cancelled():
            fut.exception()  # retrieved here too, so that a failure no caller awaited is not logged as lost

    async def get(self, rule_id: str) -> Rule | None:
        rule = (await self.all()).get(rule_id)
        if rule is None and time.monotonic() - self._loaded > 0.5:
            await self.reload()  # added a moment ago
            rule = self._by_id.get(rule_id)
        return rule
