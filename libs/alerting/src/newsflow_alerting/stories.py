"""One alert per story across outlets: is a new match another outlet's report of an event the rule already
alerted on within the window?

Two reports of one event share its facts - the places, the people, the organisations, the numbers - and
seldom their words; two events of one kind (two council votes, two strikes on two ports) share their
words and differ in their facts. So a report's fingerprint is the set of its facts: the capitalised words
that are never written in lower case in it (names, not the first word of a sentence or a headline in
title case) and the numbers, from its title, description and text. A report joins the story of the most
alike earlier report of the rule within the window when their fingerprints overlap enough (weighted
overlap coefficient at least `threshold`, and at least `min_shared` facts in common); otherwise it
starts a story. Measured on the labelled set built from the demo generator (same event in different
words; different events in the same words): docs/ALERTING.md, "Story grouping".

The full-text alternative, Elasticsearch's `more_like_this` restricted to the window, was measured on the
same set and rejected: it ranks by shared words, so it joined the events told in the same words
(precision 0.09 at any setting that kept recall above 0.9).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

# Numbers whole (2,300 or 4.5 is one fact), then words (with inner apostrophes, dots, hyphens).
_TOKEN = re.compile(r"\d[\d,.]*\d|[^\W_][\w'’.-]*[^\W_]|[^\W_]", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?:;\"“”«»]\s*$")
# Capitalised at the start of a sentence or quote anyway, or too common to tell events apart.
_COMMON = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "he",
        "she",
        "they",
        "we",
        "i",
        "you",
        "his",
        "her",
        "their",
        "our",
        "mr",
        "mrs",
        "ms",
        "dr",
        "in",
        "on",
        "at",
        "of",
        "for",
        "to",
        "from",
        "by",
        "with",
        "after",
        "before",
        "as",
        "and",
        "or",
        "but",
        "if",
        "when",
        "while",
        "there",
        "here",
    ]
)
SOURCE_FIELDS = ["title", "description", "text"]


@dataclass(frozen=True)
class Grouping:
    """How alike two reports must be to count as one story (tuned on the labelled set, see the docs)."""

    threshold: float = 0.55
    min_shared: int = 2


def facts(*texts: str | None) -> frozenset[str]:
    """The fingerprint of a report: its names and numbers, lower-cased."""
    words: list[tuple[str, bool]] = []  # (token, starts a sentence or a line)
    lower: set[str] = set()
    for text in texts:
        for line in (text or "").splitlines():
            start = True
            for m in _TOKEN.finditer(line):
                tok = m.group().strip("'’.-")
                if not tok:
                    continue
                words.append((tok, start))
                if tok[0].islower():
                    lower.add(tok.lower())
                start = bool(_SENTENCE_END.search(line[: m.end() + 1]))
    out: set[str] = set()
    for tok, start in words:
        low = tok.lower()
        if any(c.isdigit() for c in tok) or (
            tok[0].isupper() and not start and low not in lower and low not in _COMMON and len(tok) > 1
        ):
            out.add(low)
    return frozenset(out)


def weight(fact: str) -> float:
    """A short number (5, 12) says less than a name or a long number (2028, 4,300)."""
    digits = sum(c.isdigit() for c in fact)
    return 0.5 if digits and len(fact) <= 2 else 1.0


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Weighted overlap coefficient: the shared facts against the smaller fingerprint."""
    if not a or not b:
        return 0.0
    shared = sum(weight(f) for f in a & b)
    return shared / min(sum(weight(f) for f in a), sum(weight(f) for f in b))


def most_alike(
    fp: frozenset[str], candidates: Iterable[tuple[str, frozenset[str]]], g: Grouping
) -> tuple[str | None, float]:
    """The candidate sharing most of `fp`'s facts, if alike enough, and its similarity."""
    best, best_s = None, 0.0
    for cid, cfp in candidates:
        s = similarity(fp, cfp)
        if s > best_s and len(fp & cfp) >= g.min_shared:
            best, best_s = cid, s
    return (best, best_s) if best_s >= g.threshold else (None, best_s)


def fingerprint(source: dict[str, Any]) -> frozenset[str]:
    return facts(source.get("title"), source.get("description"), source.get("text"))


def group(
    reports: Sequence[tuple[str, float, frozenset[str]]], window_s: float, g: Grouping | None = None
) -> dict[str, str]:
    """Stories of time-ordered (id, time, fingerprint): id -> the first report of its story.

    What the notifier decides one alert at a time, for a list at once (`newsflow rules test`, the
    evaluation): each report joins the story of the most alike earlier report within the window.
    """
    g = g or Grouping()
    story: dict[str, str] = {}
    for n, (rid, t, fp) in enumerate(reports):
        earlier = ((r, f) for r, t0, f in reports[:n] if t - t0 <= window_s)
        best, _s = most_alike(fp, earlier, g)
        story[rid] = story[best] if best is not None else rid
    return story


async def sources(es: AsyncElasticsearch, alias: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Title, description and text of articles, by id."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        resp = await es.search(
            index=alias,
            query={"ids": {"values": chunk}},
            size=len(chunk),
            source=SOURCE_FIELDS,
            track_total_hits=False,
        )
        out |= {h["_id"]: h["_source"] for h in resp["hits"]["hits"]}
    return out
