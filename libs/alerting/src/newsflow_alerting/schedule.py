"""When digests are due: pure functions of a schedule and the clock, shared by the notifier and
`newsflow rules test` so that the simulation sends what the service would.

A digest covers a period; periods end on fixed boundaries (every N minutes: multiples of N since the
epoch, in UTC; daily: HH:MM in the rule's time zone), so every replica and every restart computes the
same boundaries and a period is sealed once (the notifier records the last sealed boundary).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsflow_search.rules import DigestSchedule, Rule

# A period is sealed this long after its boundary, so that a story decided a moment before the boundary
# (on another replica, whose write arrives a little later) still makes it into its period.
SEAL_GRACE_S = 2.0


def _floor(now: datetime, minutes: int) -> datetime:
    step = minutes * 60
    return datetime.fromtimestamp(int(now.timestamp() // step) * step, UTC)


def period_end(schedule: DigestSchedule, now: datetime) -> datetime:
    """The latest boundary at or before `now`."""
    if schedule.every is not None:
        return _floor(now, schedule.every)
    assert schedule.at is not None
    tz = ZoneInfo(schedule.timezone)
    hh, mm = (int(x) for x in schedule.at.split(":"))
    local = now.astimezone(tz)
    day = local.date()
    for _ in range(3):
        candidate = datetime.combine(day, time(hh, mm), tzinfo=tz)
        if candidate <= local:
            return candidate.astimezone(UTC)
        day -= timedelta(days=1)
    raise AssertionError("unreachable: a day back always has the boundary")


def next_period_end(schedule: DigestSchedule, now: datetime) -> datetime:
    """The first boundary after `now`."""
    if schedule.every is not None:
        return _floor(now, schedule.every) + timedelta(minutes=schedule.every)
    return _next_daily(schedule, now)


def _next_daily(schedule: DigestSchedule, now: datetime) -> datetime:
    tz = ZoneInfo(schedule.timezone)
    hh, mm = (int(x) for x in (schedule.at or "0:0").split(":"))
    day = now.astimezone(tz).date()
    while True:
        candidate = datetime.combine(day, time(hh, mm), tzinfo=tz).astimezone(UTC)
        if candidate > now:
            return candidate
        day += timedelta(days=1)


def storm_schedule(rule: Rule) -> DigestSchedule:
    """A rule in a storm sends a digest every `within` minutes of its storm guard."""
    return DigestSchedule(every=rule.storm_guard.within)


def schedule_of(rule: Rule, in_storm: bool) -> DigestSchedule | None:
    """The digest schedule a rule follows now: its own, its storm guard's, or none (immediate)."""
    if rule.mode == "digest":
        return rule.digest
    return storm_schedule(rule) if in_storm else None


def storm_starts(fires_in_window: int, rule: Rule) -> bool:
    """More than `max` new stories within the window (this one included) turns the rule to digests."""
    return rule.mode == "immediate" and rule.storm_guard.enabled and fires_in_window > rule.storm_guard.max


def storm_is_over(last_fire: datetime | None, boundary: datetime, rule: Rule) -> bool:
    """Quiet again: no new story during the last window before a storm digest's boundary."""
    return last_fire is None or last_fire <= boundary - timedelta(minutes=rule.storm_guard.within)
