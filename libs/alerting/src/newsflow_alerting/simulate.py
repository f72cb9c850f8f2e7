"""How many messages a rule would have sent: `newsflow rules test` replays the stories of the last days
through the rule's mode with the same boundaries and storm rules as the notifier (`schedule`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsflow_alerting.schedule import next_period_end, storm_is_over, storm_schedule, storm_starts
from newsflow_search.rules import Rule


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
