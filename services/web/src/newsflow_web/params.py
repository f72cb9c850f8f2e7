"""A search as a URL: the query string of the search page (and of exports and "save as alert") read into a
`Search`, with every limit applied and every problem said in words. Nothing here raises: a bad value is
dropped and explained next to the box, so a mangled bookmark still shows a page."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from newsflow_search.explore import FACETS, Search, SearchError, decode_cursor

# Quick ranges offered beside the date fields.
PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "1y": timedelta(days=365),
}
# The filters' headings, in the order the page shows them.
FACET_TITLES = {"domain": "Source", "language": "Language", "section": "Section", "author": "Author"}
MAX_FACET_VALUES = 20
MAX_VALUE_CHARS = 300
# Elasticsearch's index.max_result_window: `from + size` beyond it is refused, `search_after` is not.
MAX_WINDOW = 10_000
MAX_PAGE = 100_000


@dataclass
class SearchRequest:
    search: Search
    since: str | None = None  # a preset, when one was chosen
    start: date | None = None  # the date fields as typed (inclusive days, UTC)
    end: date | None = None
    page: int = 1
    after: list[Any] | None = None
    offset: int = 0
    problems: list[str] = field(default_factory=list)
    default_size: int = 20

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """This search's URL parameters, with `changes` (None removes a parameter; paging is reset unless given)."""
        base: dict[str, Any] = {
            "q": self.search.q or None,
            "since": self.since,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "sort": self.search.sort if self.search.sort != "relevance" else None,
            "size": self.search.size if self.search.size != self.default_size else None,
        }
        for name in FACETS:
            base[name] = list(self.search.filters.get(name, ()))
        base.update(changes)
        out: list[tuple[str, str]] = []
        for key, value in base.items():
            if value is None or value == "" or value == []:
                continue
            for v in value if isinstance(value, list | tuple) else [value]:
                out.append((key, str(v)))
        return out

    def url(self, path: str = "/search", **changes: Any) -> str:
        qs = urlencode(self.params(**changes))
        return f"{path}?{qs}" if qs else path

    def toggled(self, facet: str, value: str) -> str:
        """The URL with `value` of `facet` chosen, or no longer chosen."""
        current = list(self.search.filters.get(facet, ()))
        new = [v for v in current if v != value] if value in current else [*current, value]
        return self.url(**{facet: new})


def parse(
    args: Mapping[str, Sequence[str]],
    *,
    max_query_chars: int,
    page_size: int,
    max_page_size: int,
    now: datetime | None = None,
) -> SearchRequest:
    """`args`: every value of every parameter (a multi-dict's lists)."""
    problems: list[str] = []
    q = _one(args, "q").strip()
    if len(q) > max_query_chars:
        problems.append(f"The query is {len(q):,} characters long; at most {max_query_chars:,} are searched.")
        q = q[:max_query_chars]
    filters = _facets(args, problems)
    gte, lt, since, start, end = _dates(args, problems, now or datetime.now(UTC))
    sort = _one(args, "sort") or "relevance"
    if sort not in ("relevance", "newest"):
        problems.append(f"Unknown order {sort[:40]!r}: sorted by relevance.")
        sort = "relevance"
    size = _int(args, "size", page_size, 1, max_page_size, "Results per page", problems)
    search = Search(q=q, filters=filters, gte=gte, lt=lt, sort=sort, size=size)  # type: ignore[arg-type]
    req = SearchRequest(search, since, start, end, problems=problems, default_size=page_size)
    _paging(req, args, problems)
    return req


def _paging(req: SearchRequest, args: Mapping[str, Sequence[str]], problems: list[str]) -> None:
    req.page = _int(args, "page", 1, 1, MAX_PAGE, "Page", problems)
    token = _one(args, "after")
    if token:
        try:
            req.after = decode_cursor(token[:200])
        except SearchError as e:
            problems.append(str(e).capitalize() + ".")
            req.page = 1
        return
    offset = (req.page - 1) * req.search.size
    if offset + req.search.size > MAX_WINDOW:
        problems.append(
            f"Page {req.page:,} is past the first {MAX_WINDOW:,} results, which is as far as a page number reaches. "
            "Use “Next” from the last page, narrow the search, or export it."
        )
        req.page = 1
        offset = 0
    req.offset = offset


def _one(args: Mapping[str, Sequence[str]], key: str) -> str:
    values = args.get(key) or []
    return values[0] if values else ""


def _int(
    args: Mapping[str, Sequence[str]], key: str, default: int, lo: int, hi: int, what: str, problems: list[str]
) -> int:
    raw = _one(args, key).strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d{1,9}", raw):
        problems.append(f"{what} must be a whole number (got {raw[:20]!r}).")
        return default
    value = int(raw)
    if value < lo or value > hi:
        problems.append(f"{what} must be between {lo:,} and {hi:,} (got {value:,}).")
        return default if value < lo else (hi if key == "size" else default)
    return value


def _facets(args: Mapping[str, Sequence[str]], problems: list[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name in FACETS:
        values = [v for v in dict.fromkeys(args.get(name) or []) if v.strip()]
        if len(values) > MAX_FACET_VALUES:
            problems.append(f"At most {MAX_FACET_VALUES} values of {name} are used at once.")
            values = values[:MAX_FACET_VALUES]
        if any(len(v) > MAX_VALUE_CHARS for v in values):
            problems.append(f"A {name} longer than {MAX_VALUE_CHARS} characters was left out.")
            values = [v for v in values if len(v) <= MAX_VALUE_CHARS]
        if values:
            out[name] = tuple(values)
    return out


def _dates(
    args: Mapping[str, Sequence[str]], problems: list[str], now: datetime
) -> tuple[datetime | None, datetime | None, str | None, date | None, date | None]:
    start = _date(_one(args, "from"), "From", problems)
    end = _date(_one(args, "to"), "To", problems)
    if start and end and start > end:
        problems.append("The range ends before it starts: the dates were swapped.")
        start, end = end, start
    if start or end:
        gte = datetime.combine(start, datetime.min.time(), UTC) if start else None
        lt = datetime.combine(end, datetime.min.time(), UTC) + timedelta(days=1) if end else None
        return gte, lt, None, start, end
    since = _one(args, "since")
    if since and since not in PRESETS:
        problems.append(f"Unknown range {since[:20]!r}: showing all dates.")
        since = ""
    if since:
        return now - PRESETS[since], None, since, None, None
    return None, None, None, None, None


def _date(raw: str, what: str, problems: list[str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        d = date.fromisoformat(raw[:10])
    except ValueError:
        problems.append(f"{what} date {raw[:20]!r} is not a date (YYYY-MM-DD); it was ignored.")
        return None
    if not 1900 <= d.year <= 2999:
        problems.append(f"{what} date {raw[:20]!r} is out of range; it was ignored.")
        return None
    return d
