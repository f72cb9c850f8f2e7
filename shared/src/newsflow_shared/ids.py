"""Identifiers derived from content, so that every replica computes the same one."""

from __future__ import annotations

import hashlib


def article_id(canonical_url: str) -> str:
    """The Elasticsearch `_id` of an article: a hash of its canonical URL.

    Same URL, same id, in every service and across a rollover of the `news` alias, which is what
    makes re-delivery and re-parsing idempotent.
    """
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]
