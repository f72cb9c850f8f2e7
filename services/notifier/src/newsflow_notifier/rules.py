"""The rules as the notifier needs them: every rule by id (disabled ones too: an alert that fired before its
rule was disabled is still delivered), reloaded every `rules_refresh_s`, and at once for an unknown id."""

from __future__ import annotations

import asyncio
import logging
import time

from newsflow_search.rules import Rule, RuleStore

log = logging.getLogger("newsflow.notifier.rules")


class RuleCache:
    def __init__(self, store: RuleStore, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._by_id: dict[str, Rule] = {}
        self._loaded = 0.0
        self._loading: asyncio.Future[None] | None = None

    async def all(self) -> dict[str, Rule]:
        """The rules; once they are old, reloaded in the background while the handlers go on with them.

        A reload is a search on a node that the indexer keeps busy: waiting for it stalled every alert and
        delivery in flight each time the cache expired (in a burst, the notifier's decisions fell seconds
        behind). A rule changed is thus applied within `rules_refresh_s` plus one search."""
        if not self._by_id or self.max_age_s == 0:  # 0: always read (tests)
            await self.reload()
        elif time.monotonic() - self._loaded >= self.max_age_s:
            self._start_reload()
        return self._by_id

    async def reload(self) -> None:
        """Reload now and wait for it. One reload at a time, shared by every caller that asks meanwhile:
        dozens of handlers in flight find the cache expired at once."""
        # Shielded: a caller cancelled (shutdown) must not cancel the reload the others wait for.
        await asyncio.shield(self._start_reload())

    def _start_reload(self) -> asyncio.Future[None]:
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(self._done)
        return self._loading

    async def _load(self) -> None:
        self._by_id = {r.id: r for r in await self.store.all(enabled_only=False)}
        self._loaded = time.monotonic()

    def _done(self, fut: asyncio.Future[None]) -> None:
        self._loading = None
        if not fut.cancelled() and (e := fut.exception()) is not None:
            # A background reload nobody awaits: said here (the old rules stay, and the next call retries).
            log.warning("reloading the rules failed: %s", e)
            self._loaded = time.monotonic() - self.max_age_s + 1.0  # retried in a second, not at once

    async def get(self, rule_id: str) -> Rule | None:
        rule = (await self.all()).get(rule_id)
        if rule is None and time.monotonic() - self._loaded > 0.5:
            await self.reload()  # added a moment ago
            rule = self._by_id.get(rule_id)
        return rule
