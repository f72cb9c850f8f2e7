"""Dates from what pages and feeds print, as timezone-aware UTC datetimes that are never in the future."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta

from dateutil import parser as dateparser
from dateutil.parser import UnknownTimezoneWarning

# A date a page claims before this is a template default or a parse accident, not a news date.
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
# Clocks disagree a little; anything beyond this is a scheduled-publish artefact or a wrong year.
FUTURE_SLACK = timedelta(minutes=5)

_URL_DATE = (
    re.compile(r"/((?:19|20)\d{2})[/-](0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])(?:/|[-_]|$)"),
    re.compile(r"[/_-]((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?:[/_.-]|$)"),
)
# Zone abbreviations news pages print; dateutil knows none of them except UTC/GMT by itself.
_TZINFOS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "WET": 0,
    "WEST": 3600,
    "BST": 3600,
    "CET": 3600,
    "CEST": 7200,
    "MEZ": 3600,
    "MESZ": 7200,
    "EET": 7200,
    "EEST": 10800,
    "MSK": 10800,
    "IST": 19800,
    "PKT": 18000,
    "ICT": 25200,
    "WIB": 25200,
    "SGT": 28800,
    "HKT": 28800,
    "JST": 32400,
    "KST": 32400,
    "AEST": 36000,
    "AEDT": 39600,
    "NZST": 43200,
    "NZDT": 46800,
    "EST": -18000,
    "EDT": -14400,
    "CST": -21600,
    "CDT": -18000,
    "MST": -25200,
    "MDT": -21600,
    "PST": -28800,
    "PDT": -25200,
    "AST": -14400,
    "SAST": 7200,
    "WAT": 3600,
    "EAT": 10800,
}
_EPOCH = re.compile(r"^\d{10}(\d{3})?$")
# A year, or a year and month: dateutil would take the missing day (and month) from today.
_PARTIAL = re.compile(r"^\d{4}(?:[-/.]\d{1,2})?$")


def parse_date(value: object, now: datetime | None = None) -> datetime | None:
    """An aware datetime from an ISO string, an RFC 822 string, an epoch or a datetime; None if unusable.

    The offset the page gave is kept: the instant is the same as in UTC, and the day is the one the page
    prints ("20:10 -04:00" on the 7th is the 8th in UTC). Naive values are taken as UTC: that is what
    most CMSs that omit the offset mean, and an error of a few hours beats dropping the date.
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
        if _PARTIAL.match(s):
            return None
        dt = _from_epoch(float(s[:10])) if _EPOCH.match(s) else _parse_text(s)
    if dt is None:
        return None
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=UTC)
    if dt < EARLIEST or dt > now + FUTURE_SLACK:
        return None
    return dt


# 10.12.2022 and 10-12-2022: wherever dates are written so, the day comes first
_DOTTED = re.compile(r"^\s*\d{1,2}\.\s*\d{1,2}\.\s*\d{2,4}\b|^\s*\d{1,2}-\d{1,2}-\d{4}\b")


def _parse_text(s: str) -> datetime | None:
    dayfirst = _DOTTED.match(s) is not None
    with warnings.catch_warnings():
        # an unknown zone name leaves the value naive (taken as UTC) instead of warning on every page
        warnings.simplefilter("ignore", UnknownTimezoneWarning)
        for fuzzy in (False, True):
            try:
                return dateparser.parse(s, fuzzy=fuzzy, dayfirst=dayfirst, tzinfos=_TZINFOS)
            except (ValueError, OverflowError, TypeError):
                continue
    return None


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
