"""Articles as the parser hands them on, for the tests of every folder (tests/ is on the path through its
conftest)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from newsflow_shared.ids import article_id
from newsflow_shared.models import ParsedArticle


def parsed_article(url: str, title: str, text: str, **fields: Any) -> ParsedArticle:
    """An English article at `url`, published five minutes ago, with what the parser derives from `text`
    (word count, content hash, a fingerprint of its own); `fields` set or replace any of it."""
    now = datetime.now(UTC)
    digest = hashlib.sha256(text.encode()).hexdigest()
    derived: dict[str, Any] = {
        "article_id": article_id(url),
        "url": url,
        "domain": url.split("/")[2],
        "title": title,
        "text": text,
        "language": "en",
        "word_count": len(text.split()),
        "content_hash": digest,
        "simhash": digest[:16],
        "published_at": now - timedelta(minutes=5),
        "parsed_at": now,
    }
    return ParsedArticle(**(derived | fields))
