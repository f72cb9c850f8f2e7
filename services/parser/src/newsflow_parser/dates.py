"""Dates from what pages and feeds print, as timezone-aware UTC datetimes that are never in the future."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dateutil import parser as dateparser

# A date a page claims before this is a template default or a parse accident, not a news date.
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
# Clocks disagree a little; anything beyond this is a scheduled-publish artefact or a wrong year.
FUTURE_SLACK = timedelta(minutes=5)

_URL_DATE = (
    re.compile(r"/((?:19|20)\d{2})[/-](0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])(?:/|[-_]|$)"),
    re.compile(r"[/_-]((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?:[/_.-]|$)"),
)
_EPOCH = re.compile(r"^\d{10}(\d{3})?$")


def parse_date(value: object, now: datetime | None = None) -> datetime | None:
    """A datetime in UTC from an ISO string, an RFC 822 string, an epoch or a datetime; None if unusable.

    Naive values are taken as UTC: that is what most CMSs that omit the offset mean, and an error of
    a few hours beats dropping the date.
    """
    now = now or datetime.now(UTC)
    dt: datetime | None = None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = _from_epoch(float(value))
    elif isinstance(value, str):
        s = value.strip()
        if not s or len(s) > 80:
            return None
        if _EPOCH.match(s):
            dt = _from_epoch(float(s[:10]))
        else:
            try:
                dt = dateparser.parse(s, fuzzy=False)
            except (ValueError, OverflowError, TypeError):
                try:
                    dt = dateparser.parse(s, fuzzy=True)
                except (ValueError, OverflowError, TypeError):
                    return None
    if dt is None:
        return None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if dt < EARLIEST or dt > now + FUTURE_SLACK:
        return None
    return dt


def _from_epoch(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def date_from_url(url: str, now: datetime | None = None) -> datetime | None:
    """`/2021/11/04/` or `-20211104-` in the path: a day, at midnight UTC."""
    path = url.split("?", 1)[0]
    for rx in _URL_DATE:
        if m := rx.search(path):
            try:
                dt = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=UTC)
            except ValueError:
                continue
            return parse_date(dt, now)
    return None
