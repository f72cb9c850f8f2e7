"""Message contracts between the services, one model per stream.

Every message carries `schema_version` (1: the only version so far); unknown fields are rejected so
that a producer and a consumer that disagree fail loudly at the boundary instead of dropping data
silently. An incompatible change would add version 2 beside 1 in `schema_version`'s Literal, and keep
reading 1 until every producer is upgraded. Fields added with a default are compatible.
"""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from newsflow_shared import streams

SCHEMA_VERSION = 1

# Bounds checked where a message enters a stream and where it is read: a value outside them can only be a
# bug or an attack, and must fail alone at the boundary, not later in a bulk request with 499 good ones.
# `article_id` is newsflow_shared.ids.article_id (a 32-hex hash; Elasticsearch refuses ids over 512 bytes).
ArticleId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Url = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Name = Annotated[str, StringConstraints(max_length=1000)]
Text = Annotated[str, StringConstraints(max_length=100_000)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every stream message: strict about unknown fields, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)

    schema_version: Literal[1] = SCHEMA_VERSION


class Part(BaseModel):
    """A nested value inside a message (not a message on its own)."""

    model_config = ConfigDict(extra="forbid")


class MediaItem(Part):
    """An image or enclosure announced by the feed (media RSS, enclosures, JSON Feed attachments)."""

    url: str
    medium: str | None = None  # "image", "video", ... or the MIME type's major part
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    caption: str | None = None  # media:description / media:title / attachment title
    credit: str | None = None  # media:credit
    thumbnail: bool = False


class FeedEntry(Message):
    """`news.entries`: an article discovered in a feed, not downloaded yet."""

    url: Url  # canonical URL (see newsflow_shared.urls.canonicalize)
    link: Url  # the link exactly as the feed gave it, resolved against the feed URL
    article_id: ArticleId
    feed_url: Url
    feed_title: Name | None = None
    title: Text | None = None
    summary: Text | None = None
    authors: list[Name] = Field(default_factory=list, max_length=200)
    published_at: datetime | None = None
    updated_at: datetime | None = None
    tags: list[Name] = Field(default_factory=list, max_length=500)
    language: str | None = None
    media: list[MediaItem] = Field(default_factory=list, max_length=500)
    guid: Text | None = None
    discovered_at: datetime = Field(default_factory=utcnow)


class ArchiveRef(Part):
    """Where a page is archived: a WARC file and the offset and length of the page's response record
    (one gzip member) in it, as a CDX index would say. See docs/ARCHIVE.md."""

    # Relative to the archive directory (pages the fetcher archived), or absolute (a backfilled WARC).
    file: str
    offset: int = Field(ge=0)
    length: int = Field(ge=1)
    record_id: str | None = None  # the response record's WARC-Record-ID


# Where a page on news.raw comes from: the fetcher, `newsflow reparse` (an archived page again) or
# `newsflow backfill` (a WARC file of someone's). Carried onto the article and its document.
Origin = Literal["live", "reparse", "backfill"]


class BodyTooLarge(ValueError):
    """A page body that decodes to more than the reader's cap (`RawPage.html(max_bytes=...)`)."""


class RawPage(Message):
    """`news.raw`: a downloaded HTML page, decoded to text.

    Large bodies travel compressed (`body_encoding="zlib+base64"`) to keep the stream small; use
    `RawPage.with_html` to build one and `.html()` to read it.
    """

    entry: FeedEntry
    url: Url  # canonical URL of the article (same as entry.url)
    final_url: Url  # after redirects
    status: int
    content_type: str
    charset: str | None = None
    charset_source: Literal["header", "meta", "bom", "detected", "fallback"] | None = None
    body: str
    body_encoding: Literal["identity", "zlib+base64"] = "identity"
    body_bytes: int  # size of the decoded HTML in UTF-8 bytes
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime = Field(default_factory=utcnow)
    fetch_ms: float | None = None
    archive: ArchiveRef | None = None
    origin: Origin = "live"
    # False: index the article without evaluating alert rules on it (a backfill, unless asked for).
    alerts: bool = True

    @classmethod
    def with_html(cls, html: str, compress_above: int = 32 * 1024, **fields: Any) -> RawPage:
        raw = html.encode("utf-8")
        if len(raw) > compress_above:
            # Level 1: a third of the CPU of level 6 for messages ~15 % larger; the fetcher is CPU-bound here.
            body = base64.b64encode(zlib.compress(raw, 1)).decode("ascii")
            return cls(body=body, body_encoding="zlib+base64", body_bytes=len(raw), **fields)
        return cls(body=html, body_encoding="identity", body_bytes=len(raw), **fields)

    def html(self, max_bytes: int | None = None) -> str:
        """The page's HTML; BodyTooLarge past `max_bytes` of UTF-8, found without inflating more than that.

        `body_bytes` is only the producer's claim: a few hundred kB of zlib can hold gigabytes.
        """
        if self.body_encoding == "zlib+base64":
            packed = base64.b64decode(self.body)
            if max_bytes is None:
                return zlib.decompress(packed).decode("utf-8")
            inflater = zlib.decompressobj()
            data = inflater.decompress(packed, max_bytes + 1)
            if len(data) > max_bytes or inflater.unconsumed_tail:
                raise BodyTooLarge(f"the compressed body holds more than {max_bytes} bytes")
            return (data + inflater.flush()).decode("utf-8")
        if max_bytes is not None and len(self.body) > max_bytes:
            raise BodyTooLarge(f"{len(self.body)} characters of HTML (limit {max_bytes})")
        return self.body


class Caption(Part):
    text: str
    image_url: str | None = None
    credit: str | None = None
    source: Literal["figcaption", "alt", "title", "caption-class", "feed", "json-ld"] | None = None


class Block(Part):
    kind: Literal["p", "h", "li", "quote"] = "p"
    text: str


DateSource = Literal["json-ld", "meta", "feed", "url", "text", "html"]
# Which path of the parser's fallback ladder produced the text: its own tree work, plain trafilatura, or
# trafilatura's recall mode.
ExtractionMethod = Literal["own", "trafilatura", "trafilatura-recall"]


class ParsedArticle(Message):
    """`news.parsed`: an extracted article, ready to index."""

    article_id: ArticleId
    url: Url  # canonical
    final_url: Url | None = None
    domain: Name
    feed_url: Url | None = None
    feed_title: Name | None = None
    title: Text | None = None
    text: str
    blocks: list[Block] = Field(default_factory=list)
    captions: list[Caption] = Field(default_factory=list)
    authors: list[Name] = Field(default_factory=list, max_length=200)
    published_at: datetime | None = None
    published_source: DateSource | None = None
    modified_at: datetime | None = None
    modified_source: DateSource | None = None
    section: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    site_name: str | None = None
    top_image: str | None = None
    language: str | None = None
    language_source: Literal["html", "meta", "json-ld", "feed", "detected"] | None = None
    word_count: int = 0
    content_hash: str  # sha256 of the normalised text: exact duplicates
    simhash: str  # 64-bit SimHash as 16 hex digits: near-duplicates (syndicated copies)
    extraction_method: ExtractionMethod = "own"  # parsers before the fallback ladder had only their own
    discovered_at: datetime | None = None  # when the fetcher saw it in the feed (latency metric)
    fetched_at: datetime | None = None
    parsed_at: datetime = Field(default_factory=utcnow)
    # Which extraction made this article (newsflow_parser.PARSER_VERSION): a reparse replaces it.
    parser_version: str | None = None
    archive: ArchiveRef | None = None
    origin: Origin = "live"
    alerts: bool = True  # see RawPage.alerts; not part of the indexed document


class Alert(Message):
    """`news.alerts`: a rule matched an article. One per (rule, article), ever."""

    alert_id: str  # hash of (rule_id, article_id)
    rule_id: str
    rule_name: str
    query: str
    article_id: ArticleId
    url: Url
    title: str | None = None
    published_at: datetime | None = None
    snippet: str | None = None
    language: str | None = None
    domain: str | None = None
    duplicates: list[str] = Field(default_factory=list)  # URLs of syndicated copies (same simhash)
    matched_at: datetime = Field(default_factory=utcnow)
    # When the article became searchable (its bulk write returned): the start of the notifier's latency.
    indexed_at: datetime | None = None
    # The article's facts (names and numbers: newsflow_alerting.stories.facts), computed by the indexer,
    # which has the text at hand: the notifier groups other outlets' reports of one story by them.
    facts: list[str] | None = None

    @property
    def idempotency_key(self) -> str:
        """Published at most once per key (see ServiceContext.publish): one alert per (rule, article)."""
        return self.alert_id


class Notification(Message):
    """`news.notifications`: one message for one channel of a rule, for the notifier to deliver.

    `kind` alert: a story's first alert, sent as it is; `kind` digest: the stories sealed into digest
    `notification_id` (their list is in the notifier's state). Published at most once per channel and
    message, and delivered at least once, with `idempotency_key` as the receiver's key to drop repeats.
    """

    notification_id: str  # the alert id of an alert, the digest id of a digest
    kind: Literal["alert", "digest"]
    rule_id: str
    rule_name: str
    channel: str  # the channel's key in its rule (newsflow_search.rules.Channel.key)
    alert: Alert | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def idempotency_key(self) -> str:
        return f"{self.notification_id}:{self.channel}"


class DeadLetter(Message):
    """`<stream>.dlq`: a message that could not be processed, with why, kept for replay."""

    stream: str  # the stream the message came from
    group: str | None = None
    message_id: str | None = None  # its id in that stream
    original: dict[str, Any]  # the message's fields as read from the stream (replayable as is)
    reason: str  # short machine-readable cause: timeout, too-large, no-content, http-404, ...
    error_type: str
    error: str
    service: str
    attempts: int = Field(ge=1)
    first_failure_at: datetime
    last_failure_at: datetime

    @field_validator("error")
    @classmethod
    def _bounded(cls, v: str) -> str:
        # A traceback or a page echoed in an error must not blow up the dead-letter stream.
        return v if len(v) <= 4000 else v[:4000] + "…"


# stream -> the model its entries hold: a consumer's input and declared outputs are checked against it.
STREAM_MODELS: dict[str, type[Message]] = {
    streams.ENTRIES: FeedEntry,
    streams.RAW: RawPage,
    streams.PARSED: ParsedArticle,
    streams.ALERTS: Alert,
    streams.NOTIFICATIONS: Notification,
    **{streams.dlq(s): DeadLetter for s in streams.DEAD_LETTER_SOURCES},
}

__all__ = [
    "SCHEMA_VERSION",
    "STREAM_MODELS",
    "Alert",
    "AnyHttpUrl",
    "ArchiveRef",
    "Block",
    "BodyTooLarge",
    "Caption",
    "DeadLetter",
    "FeedEntry",
    "MediaItem",
    "Message",
    "Notification",
    "Origin",
    "ParsedArticle",
    "RawPage",
]
