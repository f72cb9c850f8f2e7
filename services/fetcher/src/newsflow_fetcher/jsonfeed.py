"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), parsed by the project.

feedparser does not read JSON Feed. The parser is lenient the way feed readers are: an item with a
wrong-typed field loses that field (with a warning), an item without a usable link is skipped (with
a warning naming the feed, see feedtypes), and only a document that is not a JSON Feed at all, or
has no usable item, is an error: `FeedParseError` is the only exception it raises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from newsflow_fetcher.feedtypes import (
    FeedParseError,
    ItemProblems,
    ParsedEntry,
    ParsedFeed,
    UnusableItem,
    article_link,
    clip,
    convert_items,
    describe,
    usable_media,
)
from newsflow_shared.models import MediaItem

VERSION_PREFIX = "https://jsonfeed.org/version/"
# An integer this long is no field of a feed; Python refuses to convert 4,300 digits (ValueError).
_MAX_INT_DIGITS = 100


def looks_like_json_feed(body: bytes, content_type: str = "") -> bool:
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if "json" in content_type:
        # Servers label RSS as JSON too; markup is not JSON whatever the header says.
        return not head.startswith(b"<")
    return head.startswith(b"{")


def _str(v: Any) -> str | None:
    return clip(v, 1_000_000) if isinstance(v, str) else None


def parse_date(v: Any) -> datetime | None:
    """RFC 3339, as the spec asks; a date without an offset is taken as UTC."""
    s = _str(v)
    if s is None:
        return None
    try:
        d = datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _authors(obj: dict[str, Any]) -> list[str]:
    # 1.1 has "authors" (a list); 1.0 had "author" (one object). Both are accepted.
    raw = obj.get("authors")
    if not isinstance(raw, list):
        raw = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    names: list[str] = []
    for a in raw:
        if isinstance(a, dict) and (name := _str(a.get("name")) or _str(a.get("url"))) and name not in names:
            names.append(name)
    return names


def _tags(v: Any) -> list[str]:
    if isinstance(v, str):  # one tag, not a list of its characters
        v = [v]
    return [t for t in v if isinstance(t, str)] if isinstance(v, list) else []


def _media(item: dict[str, Any]) -> list[MediaItem]:
    """Every media item with a URL; whether the URL is usable is decided with the feed's URL."""
    media: list[MediaItem] = []
    for key in ("image", "banner_image"):
        if url := _str(item.get(key)):
            media.append(MediaItem(url=url, medium="image"))
    attachments = item.get("attachments")
    if isinstance(attachments, list):
        for att in attachments:
            if not isinstance(att, dict) or not (url := _str(att.get("url"))):
                continue
            mime = _str(att.get("mime_type"))
            media.append(
                MediaItem(
                    url=url,
                    mime_type=mime,
                    medium=mime.split("/", 1)[0] if mime else None,
                    caption=_str(att.get("title")),
                )
            )
    return media


def _parse_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


def _text(body: bytes) -> str:
    """The document as text: UTF-8 (or the UTF-16/32 that RFC 8259's predecessors allowed), else
    by evidence: UTF-8 with a few broken bytes stays UTF-8, anything else is read as windows-1252,
    the usual label of a "UTF-8" document that is not."""
    encoding = json.detect_encoding(body)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        pass
    text = body.decode("utf-8", errors="replace")
    if any(ord(c) > 0x7F and c != "\ufffd" for c in text):
        return text
    return body.decode("windows-1252", errors="replace")


def _document(body: bytes) -> tuple[dict[str, Any], list[Any]]:
    try:
        doc = json.loads(_text(body), parse_int=_parse_int)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise FeedParseError(f"not valid JSON: {type(e).__name__}: {e}"[:300]) from e
    if not isinstance(doc, dict):
        raise FeedParseError("a JSON Feed is a JSON object")
    version = _str(doc.get("version"))
    if not version or not version.startswith(VERSION_PREFIX):
        raise FeedParseError(f"not a JSON Feed (version {version!r})"[:300])
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedParseError("a JSON Feed needs an 'items' list")
    return doc, items


def _guid(ident: Any) -> str | None:
    return str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else None


def _entry(item: Any, i: int, ctx: dict[str, Any], warnings: list[str]) -> ParsedEntry:
    if not isinstance(item, dict):
        raise UnusableItem(f"not an object but {type(item).__name__}")
    ident = _str(item.get("id"))
    # An id is an identifier, not a link: only an absolute http(s) one may stand in for the URL.
    id_link = ident if ident and ident.startswith(("http://", "https://")) else None
    link = article_link([item.get("url"), item.get("external_url"), id_link], ctx["feed_url"])
    published = parse_date(item.get("date_published"))
    if item.get("date_published") is not None and published is None:
        warnings.append(f"item {i}: unreadable date_published {item.get('date_published')!r}"[:300])
    return ParsedEntry(
        link=link,
        guid=_guid(item.get("id")),
        title=_str(item.get("title")),
        summary=_str(item.get("summary")) or _str(item.get("content_text")) or _str(item.get("content_html")),
        authors=_authors(item) or ctx["authors"],
        published=published,
        updated=parse_date(item.get("date_modified")),
        tags=_tags(item.get("tags")),
        language=_str(item.get("language")) or ctx["language"],
        media=usable_media(_media(item), ctx["feed_url"], ctx["problems"], describe(i, ident)),
    )


def parse_json_feed(body: bytes, feed_url: str = "") -> ParsedFeed:
    doc, items = _document(body)
    warnings: list[str] = []
    problems = ItemProblems()
    ctx = {"feed_url": feed_url, "language": _str(doc.get("language")), "authors": _authors(doc), "problems": problems}
    entries = convert_items(items, lambda item, i, _where: _entry(item, i, ctx, warnings), problems, feed_url)
    del warnings[5:]  # a feed of 10,000 undated items needs a few examples, not 10,000
    problems.report(feed_url, len(items), warnings)
    if not entries and items:
        raise FeedParseError(f"no usable item in {len(items)}: {'; '.join(warnings[-1:])}"[:500])
    return ParsedFeed(
        format="json",
        title=_str(doc.get("title")),
        language=ctx["language"],
        entries=entries,
        warnings=warnings,
        skipped=problems.skipped,
    )
