"""When to poll a feed next: adaptive interval, publisher hints, error backoff, jitter.

Pure functions, so the policy is unit-tested without a clock or a server.

- New items arrived: halve the interval (a busy feed is polled more often).
- Nothing new: grow it by half (a quiet feed costs less and less).
- Hints from the publisher are floors: `<ttl>`, `sy:updatePeriod/updateFrequency`, and
  `Cache-Control: max-age` (polling before it runs out cannot give anything new); `Retry-After` too.
- Everything stays within [min, max]; a fixed per-feed interval replaces the adaptive one.
- Errors: min * 2^(failures-1), capped at max, so a dead feed is still retried at the cap, forever.
- Jitter spreads feeds added together so that they do not stay in lockstep.
"""

from __future__ import annotations

import random
import re
import time
from email.utils import parsedate_to_datetime

GROW = 1.5
SHRINK = 0.5


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(delta, 0.0)


_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?(\d+)")


def parse_max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    cc = cache_control.lower()
    if "no-store" in cc or "no-cache" in cc:
        return None
    ages = {k: int(v) for k, v in _MAX_AGE.findall(cc)}
    if "s-maxage" in ages:
        return float(ages["s-maxage"])
    return float(ages["max-age"]) if "max-age" in ages else None


def clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def success_interval(
    current: float | None,
    new_items: int,
    *,
    min_s: float,
    max_s: float,
    fixed: float | None = None,
    hints: tuple[float | None, ...] = (),
) -> float:
    """The interval after a successful poll (before jitter)."""
    if fixed is not None:
        interval = fixed
    else:
        cur = current if current is not None else min_s
        interval = clamp(cur * (SHRINK if new_items > 0 else GROW), min_s, max_s)
    floor = max((h for h in hints if h), default=0.0)
    # A publisher's hint may push past our max only as far as max: we never wait longer than that.
    return max(interval, min(floor, max_s))


def failure_delay(failures: int, *, min_s: float, max_s: float, retry_after: float | None = None) -> float:
    delay = min(max_s, min_s * 2 ** max(failures - 1, 0))
    if retry_after:
        delay = max(delay, min(retry_after, max_s))
    return delay


def jittered(interval: float, jitter: float, rng: random.Random | None = None) -> float:
    if jitter <= 0:
        return interval
    r = (rng or random).uniform(-jitter, jitter)
    return max(0.0, interval * (1 + r))
