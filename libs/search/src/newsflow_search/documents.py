"""From a ParsedArticle to the Elasticsearch document, its version and its language fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from newsflow_shared.models import ParsedArticle

# Languages with a stemmed copy of title, text and captions (hunspell dictionaries on the node).
STEMMED_LANGUAGES: tuple[str, ...] = ("en", "ar", "fr", "de", "es", "ru")


def primary_language(tag: str | None) -> str | None:
    """`en-US`, `EN_gb`, `ar` -> `en`, `en`, `ar`; None when empty."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or None


def stemmed_language(tag: str | None) -> str | None:
    lang = primary_language(tag)
    return lang if lang in STEMMED_LANGUAGES else None


def doc_version(article: ParsedArticle) -> int:
    """The external version of the article's document: when it was parsed, in ms.

    A later parse replaces an earlier one; a redelivered or out-of-order older parse is refused by
    Elasticsearch with 409, which is how "replace only when newer" holds across replicas.
    """
    return int(article.parsed_at.timestamp() * 1000)


def to_document(article: ParsedArticle, indexed_at: datetime | None = None) -> dict[str, Any]:
    """The `_source` of an article. Language-specific copies go to `<field>_<lang>` only for its language."""
    # `alerts` is an instruction to the indexer, not a property of the article.
    doc = article.model_dump(mode="json", exclude={"blocks", "alerts"})
    # `text` is the blocks' texts joined by blank lines; the kind of each (paragraph, sub-heading, list item,
    # quote) is all a reader needs besides, so the body is not stored twice.
    if article.blocks:
        doc["block_kinds"] = [b.kind for b in article.blocks]
    doc["language"] = primary_language(article.language)
    doc["indexed_at"] = (indexed_at or datetime.now(UTC)).isoformat()
    lang = stemmed_language(article.language)
    if lang is not None:
        if article.title:
            doc[f"title_{lang}"] = article.title
        doc[f"text_{lang}"] = article.text
        captions = [c.text for c in article.captions if c.text]
        if captions:
            doc[f"captions_{lang}"] = captions
    return doc


def body_blocks(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, text) of each block of a stored article: the inverse of `to_document`'s split of the body.

    Documents indexed before `block_kinds` existed, or whose counts disagree, read as plain paragraphs.
    """
    paragraphs = [p for p in str(doc.get("text") or "").split("\n\n") if p.strip()]
    kinds = doc.get("block_kinds") or []
    if len(kinds) != len(paragraphs):
        kinds = ["p"] * len(paragraphs)
    return list(zip(kinds, paragraphs, strict=True))
