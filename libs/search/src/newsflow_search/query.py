"""The one query builder shared by search and alert rules, so that a rule matches what a search finds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from newsflow_search.documents import STEMMED_LANGUAGES, primary_language

# Unstemmed fields first; titles weigh more. The stemmed copies exist only for documents in their
# language, so querying all of them costs nothing on the others and finds every inflection.
BASE_FIELDS: tuple[str, ...] = ("title^3", "description^2", "text", "captions.text")


def language_fields(langs: Sequence[str] = STEMMED_LANGUAGES) -> list[str]:
    out: list[str] = []
    for lang in langs:
        out += [f"title_{lang}^3", f"text_{lang}", f"captions_{lang}"]
    return out


def search_fields(lang: str | Sequence[str] | None = None) -> list[str]:
    """The fields a query covers: the base fields and the stemmed copies of `lang` (all when None)."""
    if lang is None:
        return [*BASE_FIELDS, *language_fields()]
    wanted = {primary_language(x) for x in ([lang] if isinstance(lang, str) else lang)}
    return [*BASE_FIELDS, *language_fields([x for x in STEMMED_LANGUAGES if x in wanted])]


# Rule filters and CLI filters: name -> document field.
FILTER_FIELDS: dict[str, str] = {
    "language": "language",
    "feed": "feed_url",
    "domain": "domain",
    "section": "section",
}


def query_string(q: str, lang: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Lucene query-string syntax (`"rocket attack"`, `drone AND militia*`, `rocket attack~2`).

    Bare words are ANDed: an operator writing `rocket attack` means both words, not either.
    """
    return {
        "query_string": {
            "query": q,
            "fields": search_fields(lang),
            "default_operator": "AND",
            "type": "best_fields",
            # A date or number field named in the query must not turn a typo into an error.
            "lenient": True,
            "analyze_wildcard": True,
        }
    }


def filter_clauses(filters: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for name, value in (filters or {}).items():
        if value in (None, "", [], ()):
            continue
        field = FILTER_FIELDS.get(name)
        if field is None:
            raise ValueError(f"unknown filter {name!r} (known: {', '.join(FILTER_FIELDS)})")
        values = [value] if isinstance(value, str) else list(value)
        if name == "language":
            values = [primary_language(v) or v for v in values]
        clauses.append({"terms": {field: values}})
    return clauses


def build_query(
    q: str,
    filters: Mapping[str, Any] | None = None,
    since: str | None = None,
    ids: Sequence[str] | None = None,
    present_languages: Sequence[str] | None = None,
) -> dict[str, Any]:
    """`present_languages`: the only languages the target documents can have (a batch's), so that the
    stemmed fields of the others are left out; it changes what the query costs, never what it finds."""
    lang: str | Sequence[str] | None = (filters or {}).get("language") or None
    if present_languages is not None:
        lang = [x for x in (present_languages if lang is None else _as_list(lang)) if x in present_languages]
    flt = filter_clauses(filters)
    if since:
        flt.append(date_clause(gte=since))
    if ids is not None:
        flt.append({"ids": {"values": list(ids)}})
    return {"bool": {"must": [query_string(q, lang)], "filter": flt}}


def date_clause(gte: str | None = None, lt: str | None = None) -> dict[str, Any]:
    """Articles dated in [gte, lt): by `published_at`, or by `indexed_at` when the article has no date."""
    bounds = {k: v for k, v in (("gte", gte), ("lt", lt)) if v}
    return {
        "bool": {
            "should": [
                {"range": {"published_at": bounds}},
                {
                    "bool": {
                        "must_not": {"exists": {"field": "published_at"}},
                        "filter": {"range": {"indexed_at": bounds}},
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def _as_list(v: str | Sequence[str]) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


HIGHLIGHT: dict[str, Any] = {
    "pre_tags": ["«"],
    "post_tags": ["»"],
    "fragment_size": 180,
    "number_of_fragments": 1,
    "no_match_size": 0,
    # Titles are printed whole beside the snippet; highlighting them too would double the cost.
    "fields": {
        "text": {},
        "text_*": {},
        "captions.text": {},
        "captions_*": {},
    },
}


def best_snippet(highlight: Mapping[str, list[str]] | None) -> str | None:
    """The most useful highlighted fragment: body text first, then captions, then the title."""
    if not highlight:
        return None
    order = sorted(
        highlight,
        key=lambda f: (0 if f.startswith("text") else 1 if f.startswith("captions") else 2, "_" not in f),
    )
    for field in order:
        if highlight[field]:
            return " ".join(highlight[field][0].split())
    return None


def parse_since(value: str | None) -> str | None:
    """`7d`, `12h`, `30m`, `2w` -> an Elasticsearch date-math expression; ISO dates pass as they are."""
    if not value:
        return None
    v = value.strip()
    units = {"m": "m", "h": "h", "d": "d", "w": "w"}
    if v[:-1].isdigit() and v[-1] in units:
        return f"now-{v[:-1]}{units[v[-1]]}"
    return v
