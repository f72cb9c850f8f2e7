"""How many messages a rule would have sent: `newsflow rules test` and the web page's "save as alert"
preview replay the stories of the last days through the rule's mode with the same boundaries and storm
rules as the notifier (`schedule`)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from elasticsearch import AsyncElasticsearch

from newsflow_alerting.schedule import next_period_end, storm_is_over, storm_schedule, storm_starts
from newsflow_alerting.stories import fingerprint, group, sources
from newsflow_search.rules import Rule

# Replaying more matches than this costs seconds (story grouping compares each report with the earlier
# ones of its window); a rule matching more in a week is one to narrow, and the outlook says it was capped.
MAX_SIMULATED = 5000
# The notifier's default NEWSFLOW_STORY_WINDOW_H.
STORY_WINDOW_S = 24 * 3600


@dataclass
class Sent:
    immediate: int = 0  # one message per story
    digests: int = 0  # the rule's own digests
    storm_digests: int = 0  # digests the storm guard sent instead of stories

    @property
    def messages(self) -> int:
        return self.immediate + self.digests + self.storm_digests


def simulate(rule: Rule, stories: list[datetime]) -> Sent:
    """Messages per channel for new stories at these times (time-ordered), under the rule's mode."""
    sent = Sent()
    if rule.mode == "digest":
        assert rule.digest is not None
        sent.digests = len({next_period_end(rule.digest, t - timedelta(microseconds=1)) for t in stories})
        return sent
    window = timedelta(minutes=rule.storm_guard.within)
    every = storm_schedule(rule)
    fires: deque[datetime] = deque()
    storm = False
    pending = 0
    boundary: datetime | None = None
    last_fire: datetime | None = None
    for t in stories:
        while storm and boundary is not None and boundary < t:
            pending, storm, boundary = _seal(sent, rule, pending, boundary, last_fire, every)
        fires.append(t)
        while fires and fires[0] <= t - window:
            fires.popleft()
        if not storm and storm_starts(len(fires), rule):
            storm, boundary = True, next_period_end(every, t)
        if storm:
            pending += 1
        else:
            sent.immediate += 1
        last_fire = t
    while storm and boundary is not None:
        pending, storm, boundary = _seal(sent, rule, pending, boundary, last_fire, every)
    return sent


def _seal(
    sent: Sent, rule: Rule, pending: int, boundary: datetime, last_fire: datetime | None, every: object
) -> tuple[int, bool, datetime | None]:
    if pending:
        sent.storm_digests += 1
    over = storm_is_over(last_fire, boundary, rule)
    return 0, not over, None if over else boundary + timedelta(minutes=rule.storm_guard.within)


@dataclass
class Outlook:
    """What a rule would have done since a time: its matches, the stories they make, the messages sent."""

    matches: int  # every matching article, counted
    replayed: int  # the ones replayed through the mode (at most the cap, the earliest indexed)
    stories: int  # new stories among the replayed: one alert each (other outlets' reports join them)
    sent: Sent  # messages per channel

    @property
    def capped(self) -> bool:
        return self.replayed < self.matches


async def outlook(
    es: AsyncElasticsearch,
    alias: str,
    rule: Rule,
    since: str,
    cap: int = MAX_SIMULATED,
    story_window_s: float = STORY_WINDOW_S,
) -> Outlook:
    """Replay the rule's matches since `since` (Elasticsearch date math or an ISO date) as the notifier
    would have seen them. Raises elasticsearch.BadRequestError for a query Lucene cannot parse."""
    resp = await es.search(
        index=alias,
        query=rule.es_query(since=since),
        size=cap,
        source=["indexed_at"],
        sort=[{"indexed_at": "asc"}],
        track_total_hits=True,
    )
    hits = resp["hits"]["hits"]
    # The notifier sees an article when it is indexed: that order, and those times, decide stories and digests.
    times = [(h["_id"], datetime.fromisoformat(h["_source"]["indexed_at"])) for h in hits]
    found = await sources(es, alias, [i for i, _t in times])

    def replay() -> tuple[int, Sent]:
        reports = [(i, t.timestamp(), fingerprint(found.get(i, {}))) for i, t in times]
        story_of = group(reports, story_window_s)
        starts = [t for i, t in times if story_of[i] == i]
        return len(starts), simulate(rule, starts)

    # Fingerprints and grouping are CPU work (seconds for thousands of matches): in a thread, so that a web
    # app's other requests and event streams go on meanwhile.
    stories, sent = await asyncio.to_thread(replay)
    return Outlook(matches=int(resp["hits"]["total"]["value"]), replayed=len(hits), stories=stories, sent=sent)
