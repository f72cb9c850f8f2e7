"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), parsed by the project.

feedparser does not read JSON Feed. The parser is lenient the way feed readers are: an item with a
wrong-typed field loses that field (with a warning), an item without a link is skipped, and only a
document that is not a JSON Feed at all, or has no usable item, is an error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from newsflow_fetcher.feedtypes import FeedParseError, ParsedEntry, ParsedFeed, clip
from newsflow_shared.models import MediaItem

VERSION_PREFIX = "https://jsonfeed.org/version/"


def looks_like_json_feed(body: bytes, content_type: str = "") -> bool:
    if "json" in content_type:
        return True
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def _str(v: Any) -> str | None:
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return None


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


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _media(item: dict[str, Any]) -> list[MediaItem]:
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


def parse_json_feed(body: bytes, feed_url: str = "") -> ParsedFeed:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FeedParseError(f"not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise FeedParseError("a JSON Feed is a JSON object")
    version = _str(doc.get("version"))
    if not version or not version.startswith(VERSION_PREFIX):
        raise FeedParseError(f"not a JSON Feed (version {version!r})")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedParseError("a JSON Feed needs an 'items' list")

    warnings: list[str] = []
    feed_language = _str(doc.get("language"))
    feed_authors = _authors(doc)
    entries: list[ParsedEntry] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            warnings.append(f"item {i} is not an object")
            continue
        link = _str(item.get("url")) or _str(item.get("external_url"))
        if link is None:
            ident = _str(item.get("id"))
            if ident and ident.startswith(("http://", "https://")):
                link = ident
        if link is None:
            warnings.append(f"item {i} has no url")
            continue
        ident = item.get("id")
        guid = str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else None
        tags = [t.strip() for t in item.get("tags") or [] if isinstance(t, str) and t.strip()]
        if item.get("date_published") is not None and parse_date(item.get("date_published")) is None:
            warnings.append(f"item {i}: unreadable date_published {item.get('date_published')!r}")
        entries.append(
            ParsedEntry(
                link=link,
                guid=guid,
                title=clip(_str(item.get("title")), 1000),
                summary=clip(
                    _str(item.get("summary")) or _str(item.get("content_text")) or _str(item.get("content_html")),
                    10_000,
                ),
                authors=_authors(item) or feed_authors,
                published=parse_date(item.get("date_published")),
                updated=parse_date(item.get("date_modified")),
                tags=tags,
                language=_str(item.get("language")) or feed_language,
                media=_media(item),
            )
        )
    if not entries and items:
        raise FeedParseError(f"no usable item in {len(items)}: {'; '.join(warnings[:3])}")
    return ParsedFeed(
        format="json",
        title=_str(doc.get("title")),
        link=_str(doc.get("home_page_url")),
        language=feed_language,
        entries=entries,
        warnings=warnings,
    )
