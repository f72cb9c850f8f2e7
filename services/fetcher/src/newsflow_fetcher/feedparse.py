"""Feed documents to `ParsedFeed`: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by our own
parser, and media RSS / enclosures by a small lxml pass.

feedparser flattens media RSS: `media:description` becomes the entry's summary and credits lose
the image they belong to. The lxml pass reads each item's `media:content`, `media:group`,
`media:thumbnail` and `enclosure` with their own caption and credit, and is matched to feedparser's
entries by guid, link or position. It parses with entity resolution and network access off.

Each item is converted on its own: one that cannot become an entry (no usable link, see
`feedtypes`) is skipped with a warning naming the feed and the reason, and only a document with no
usable item at all is a `FeedParseError`, the one exception `parse_feed` raises.
"""

from __future__ import annotations

import calendar
import codecs
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from lxml import etree

from newsflow_fetcher.feedtypes import (
    FeedParseError,
    ItemProblems,
    ParsedEntry,
    ParsedFeed,
    article_link,
    clip,
    convert_items,
    usable_media,
)
from newsflow_fetcher.jsonfeed import looks_like_json_feed, parse_json_feed
from newsflow_shared.models import MediaItem

log = logging.getLogger("newsflow.fetcher.feeds")

MEDIA_NS = frozenset({"http://search.yahoo.com/mrss/", "http://search.yahoo.com/mrss"})
ATOM_NS = "http://www.w3.org/2005/Atom"
_PERIOD_S = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400, "yearly": 365 * 86400}


def _dt(t: time.struct_time | None) -> datetime | None:
    if not t:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(t), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _num(v: Any) -> float | None:
    try:
        f = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f < 1e6 else None


# --- media RSS -----------------------------------------------------------------------------------


def _local(el: Any) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(el: Any) -> str:
    tag = el.tag
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _is_media(el: Any, name: str) -> bool:
    return _local(el) == name and _ns(el) in MEDIA_NS


def _text_of(el: Any, name: str) -> str | None:
    for child in el:
        if _is_media(child, name):
            text = "".join(child.itertext()).strip()
            if text:
                return text
    return None


def _resolved(el: Any, url: str) -> str:
    """`url` resolved against the element's base: its `xml:base`, else the document's URL.

    A base that is no URL is ignored; whether the URL is usable is decided later (usable_media).
    """
    try:
        return urljoin(el.base or "", url)
    except ValueError:
        return url


def _media_item(
    el: Any, fallback_caption: str | None, fallback_credit: str | None, thumb: bool = False
) -> MediaItem | None:
    url = (el.get("url") or "").strip()
    if not url:
        return None
    url = _resolved(el, url)
    mime = (el.get("type") or "").strip() or None
    medium = (el.get("medium") or "").strip() or (mime.split("/", 1)[0] if mime else None)
    if thumb:
        medium = medium or "image"
    caption = _text_of(el, "description") or _text_of(el, "title") or fallback_caption
    credit = _text_of(el, "credit") or fallback_credit
    return MediaItem(
        url=url,
        medium=medium,
        mime_type=mime,
        width=_int(el.get("width")),
        height=_int(el.get("height")),
        caption=clip(caption, 2000),
        credit=clip(credit, 500),
        thumbnail=thumb,
    )


def _item_media(item: Any) -> tuple[list[MediaItem], bool]:
    """Media of one RSS item / Atom entry, and whether the item has a description of its own."""
    media: list[MediaItem] = []
    item_caption = _text_of(item, "description") or _text_of(item, "title")
    item_credit = _text_of(item, "credit")
    has_description = False
    for child in item:
        name, ns = _local(child), _ns(child)
        if ns in MEDIA_NS:
            if name == "content":
                m = _media_item(child, item_caption, item_credit)
                if m:
                    media.append(m)
            elif name == "group":
                g_caption = _text_of(child, "description") or _text_of(child, "title") or item_caption
                g_credit = _text_of(child, "credit") or item_credit
                for sub in child:
                    if _is_media(sub, "content") or _is_media(sub, "thumbnail"):
                        m = _media_item(sub, g_caption, g_credit, thumb=_is_media(sub, "thumbnail"))
                        if m:
                            media.append(m)
            elif name == "thumbnail":
                m = _media_item(child, item_caption, item_credit, thumb=True)
                if m:
                    media.append(m)
        elif name == "enclosure" and ns in ("", "http://purl.org/rss/1.0/"):
            m = _media_item(child, item_caption, item_credit)
            if m:
                media.append(m)
        elif name == "link" and ns == ATOM_NS and child.get("rel") == "enclosure":
            href = (child.get("href") or "").strip()
            if href:
                mime = (child.get("type") or "").strip() or None
                media.append(
                    MediaItem(
                        url=_resolved(child, href), mime_type=mime, medium=mime.split("/", 1)[0] if mime else None
                    )
                )
        elif name in ("description", "summary", "content", "encoded"):
            has_description = True
    # One image announced twice (media:content and an enclosure) is one image.
    unique: dict[tuple[str, bool], MediaItem] = {}
    for m in media:
        key = (m.url, m.thumbnail)
        if key not in unique or (not unique[key].caption and m.caption):
            unique[key] = m
    return list(unique.values()), has_description


def _xml_items(body: bytes, feed_url: str) -> list[dict[str, Any]]:
    """Guid, link and media of each item, or [] when lxml cannot read the document.

    Only an enrichment of feedparser's entries (which keep feedparser's own media then), so no
    failure in here may cost an entry.
    """
    parser = etree.XMLParser(
        recover=True, resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(body, parser=parser, base_url=feed_url or None)
    except Exception as e:
        log.info("media pass skipped (%s: %s)", type(e).__name__, e)
        return []
    if root is None:
        return []
    out: list[dict[str, Any]] = []
    for el in root.iter():
        if _local(el) not in ("item", "entry"):
            continue
        try:
            out.append(_xml_item(el))
        except Exception as e:
            # lxml's recovering parser keeps what it cannot decode (`el.get` then raises
            # UnicodeDecodeError): this item keeps feedparser's media, its neighbours their own.
            log.info("media pass skipped an item (%s: %s)", type(e).__name__, e)
            out.append({"guid": None, "permalink": False, "link": None, "media": None, "has_description": True})
    return out


def _xml_item(el: Any) -> dict[str, Any]:
    guid = link = None
    permalink = False
    for child in el:
        name = _local(child)
        if name in ("guid", "id") and child.text:
            guid = child.text.strip()
            permalink = name == "guid" and (child.get("isPermaLink") or "true").strip().lower() == "true"
        elif name == "link" and _ns(child) not in MEDIA_NS:
            href = child.get("href")
            if href and child.get("rel", "alternate") == "alternate":
                link = href.strip()
            elif child.text and child.text.strip():
                link = child.text.strip()
    media, has_description = _item_media(el)
    return {"guid": guid, "permalink": permalink, "link": link, "media": media, "has_description": has_description}


def _feedparser_media(e: Any, feed_url: str) -> list[MediaItem]:
    # Fallback when lxml could not read the item: no captions, but the URLs survive. feedparser
    # resolves an empty url attribute to the feed's own URL, which is no media.
    media: list[MediaItem] = []
    for m in e.get("media_content") or []:
        if m.get("url") and m["url"] != feed_url:
            media.append(MediaItem(url=m["url"], medium=m.get("medium"), mime_type=m.get("type")))
    for m in e.get("media_thumbnail") or []:
        if m.get("url") and m["url"] != feed_url:
            media.append(MediaItem(url=m["url"], medium="image", thumbnail=True))
    for enc in e.get("enclosures") or []:
        if enc.get("href") and enc["href"] != feed_url:
            mime = enc.get("type")
            media.append(MediaItem(url=enc["href"], mime_type=mime, medium=mime.split("/", 1)[0] if mime else None))
    return media


# --- character references ------------------------------------------------------------------------

_REF_RUN = r"(?:&#(?:[xX][0-9a-fA-F]+|[0-9]+);)+"
_REF_RUN_STR = re.compile(_REF_RUN)
_REF_RUN_BYTES = re.compile(_REF_RUN.encode())
_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
# Every reference that may be no character, and some that are: a quick test before the rewrite.
_SUSPECT_REF = re.compile(rb"&#(?:[xX]0*(?:[dD][89a-fA-F]|[0-9a-fA-F]{6})|0*(?:5[5-7][0-9]{3}|[0-9]{7}))")
_UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _code_point(ref: re.Match[str]) -> int:
    hex_digits, dec_digits = ref.groups()
    digits = hex_digits or dec_digits
    if len(digits) > 8:  # beyond Unicode whatever it says (and int() refuses 4,300 digits)
        return -1
    return int(digits, 16) if hex_digits else int(digits)


def _fix_ref_run(run: str) -> str:
    """A run of numeric character references with surrogates joined into pairs and every reference
    that is no character (a lone surrogate, beyond U+10FFFF) replaced by U+FFFD."""
    refs = list(_REF.finditer(run))
    points = [_code_point(r) for r in refs]
    if all(0 <= p < 0xD800 or 0xDFFF < p <= 0x10FFFF for p in points):
        return run
    out: list[str] = []
    i = 0
    while i < len(points):
        p = points[i]
        nxt = points[i + 1] if i + 1 < len(points) else -1
        if 0xD800 <= p <= 0xDBFF and 0xDC00 <= nxt <= 0xDFFF:
            out.append(f"&#x{0x10000 + ((p - 0xD800) << 10) + (nxt - 0xDC00):X};")
            i += 2
            continue
        out.append(refs[i].group(0) if 0 <= p <= 0x10FFFF and not 0xD800 <= p <= 0xDFFF else "&#xFFFD;")
        i += 1
    return "".join(out)


def fix_char_refs(body: bytes) -> bytes:
    """`body` with its invalid numeric character references repaired.

    feedparser's fallback parser turns references into characters with `chr()` and encodes them as
    UTF-8: `&#xD800;` (a lone surrogate, or an emoji a CMS wrote as its UTF-16 pair) or `&#x110000;`
    in one item raised out of `feedparser.parse` and lost the whole feed. XML forbids them anyway.
    """
    for bom, codec in _UNICODE_BOMS:
        if body.startswith(bom):
            try:
                text = body.decode(codec)
            except UnicodeDecodeError:
                return body
            return _REF_RUN_STR.sub(lambda m: _fix_ref_run(m.group(0)), text).encode(codec)
    # UTF-16/32 without a BOM is left alone: a bytes pattern would match across its characters.
    if b"\x00" in body[:4] or not _SUSPECT_REF.search(body):
        return body
    return _REF_RUN_BYTES.sub(lambda m: _fix_ref_run(m.group(0).decode("ascii")).encode("ascii"), body)


# --- entries ----------------------------------------------------------------------------------------


def _index_xml_items(xml_items: list[dict[str, Any]], feed_url: str) -> dict[str, dict[str, Any]]:
    """The lxml items by guid and link (raw and resolved), for matching with feedparser's entries.

    A key that two items share (a duplicated guid) matches neither: it would hand one item's media
    to the other. Those items are matched by position instead.
    """
    owners: dict[str, list[dict[str, Any]]] = {}
    for it in xml_items:
        keys: set[str] = set()
        for key in (it["guid"], it["link"]):
            if not key:
                continue
            keys.add(key)
            if feed_url:  # feedparser hands out resolved links and guids
                with contextlib.suppress(ValueError):
                    keys.add(urljoin(feed_url, key))
        for key in keys:
            owners.setdefault(key, []).append(it)
    return {key: items[0] for key, items in owners.items() if len(items) == 1}


def _is_absolute(url: Any) -> bool:
    return isinstance(url, str) and url.strip().lower().startswith(("http://", "https://"))


def _link_candidates(e: Any, xml: dict[str, Any] | None) -> list[Any]:
    candidates = [e.get("link")]
    for link in e.get("links") or []:
        if link.get("rel", "alternate") == "alternate":
            candidates.append(link.get("href"))
    guid = e.get("id")
    if guid and e.get("guidislink", True) and _is_absolute(guid):
        candidates.append(str(guid))
    if xml is not None:
        # feedparser empties a link or guid it cannot resolve (`http://[::1/x`, or any link under an
        # `xml:base` that is no URL): the document's own absolute values rescue a good one and
        # name the bad one in the warning.
        raw = [xml["link"], xml["guid"] if xml["permalink"] else None]
        candidates += [c for c in raw if _is_absolute(c)]
    return candidates


@dataclass
class _FeedContext:
    feed_url: str
    language: str | None
    authors: list[str]
    xml_items: list[dict[str, Any]]
    by_key: dict[str, dict[str, Any]]
    same_count: bool
    problems: ItemProblems


def _match_xml(e: Any, i: int, ctx: _FeedContext) -> dict[str, Any] | None:
    for key in (e.get("id"), e.get("link")):
        if key and (xml := ctx.by_key.get(str(key))) is not None:
            return xml
    return ctx.xml_items[i] if ctx.same_count else None


def _entry(e: Any, i: int, where: str, ctx: _FeedContext) -> ParsedEntry:
    xml = _match_xml(e, i, ctx)
    link = article_link(_link_candidates(e, xml), ctx.feed_url)
    guid = e.get("id") or (xml["guid"] if xml is not None else None) or None
    media = xml["media"] if xml is not None and xml["media"] is not None else _feedparser_media(e, ctx.feed_url)
    summary = e.get("summary") or None
    if xml is not None and not xml["has_description"] and summary and any(m.caption == summary for m in media):
        summary = None  # feedparser's copy of a media caption, not a summary
    authors = [a["name"] for a in e.get("authors") or [] if a.get("name")]
    if not authors and e.get("author"):
        authors = [str(e["author"])]
    tags = [(t.get("label") or t.get("term") or "") for t in e.get("tags") or []]
    detail = e.get("title_detail") or e.get("summary_detail")
    lang = detail.get("language") if detail is not None else None
    return ParsedEntry(
        link=link,
        guid=str(guid) if guid else None,
        title=e.get("title"),
        summary=summary,
        authors=authors or ctx.authors,
        published=_dt(e.get("published_parsed")),
        updated=_dt(e.get("updated_parsed")),
        tags=tags,
        language=lang or ctx.language,
        media=usable_media(media, ctx.feed_url, ctx.problems, where),
    )


# --- entry point ------------------------------------------------------------------------------------


def _feedparser(repaired: bytes, content_type: str, feed_url: str) -> Any:
    headers = {"content-location": feed_url} if feed_url else {}
    if content_type:
        headers["content-type"] = content_type
    try:
        return feedparser.parse(repaired, response_headers=headers, sanitize_html=False, resolve_relative_uris=True)
    except Exception as e:
        # feedparser raises on some documents instead of reporting bozo (an XML declaration naming
        # the encoding "\x00", found by tests/fuzz): the document is unreadable, the feed alone fails.
        raise FeedParseError(f"unreadable feed: {type(e).__name__}: {e}"[:300]) from e


def parse_feed(body: bytes, content_type: str = "", feed_url: str = "") -> ParsedFeed:
    """Parse any supported feed format. Raises FeedParseError when nothing usable is in it, and
    nothing else: an item that cannot be used is skipped (see feedtypes)."""
    if looks_like_json_feed(body, content_type):
        return parse_json_feed(body, feed_url)
    repaired = fix_char_refs(body)
    d = _feedparser(repaired, content_type, feed_url)
    warnings: list[str] = []
    if d.get("bozo"):
        warnings.append(f"malformed feed: {d.get('bozo_exception')!s}"[:300])
    if not d.get("version") and not d.entries:
        raise FeedParseError(warnings[0] if warnings else "not a feed (no RSS, Atom or JSON Feed found)")

    feed = d.feed
    # The repaired body for lxml too: its recovering parser keeps an invalid reference as bytes
    # that cannot be decoded later.
    xml_items = _xml_items(repaired, feed_url)
    ctx = _FeedContext(
        feed_url=feed_url,
        language=clip(feed.get("language"), 35),
        authors=[a["name"] for a in feed.get("authors") or [] if a.get("name")],
        xml_items=xml_items,
        by_key=_index_xml_items(xml_items, feed_url),
        same_count=len(xml_items) == len(d.entries),
        problems=ItemProblems(),
    )
    entries = convert_items(d.entries, lambda e, i, where: _entry(e, i, where, ctx), ctx.problems, feed_url)
    ctx.problems.report(feed_url, len(d.entries), warnings)
    if not entries and (d.entries or d.get("bozo")):
        raise FeedParseError("; ".join(warnings) or "no usable entry")

    ttl = _num(feed.get("ttl"))
    period = None
    if (p := str(feed.get("sy_updateperiod") or "").strip().lower()) in _PERIOD_S:
        freq = _num(feed.get("sy_updatefrequency")) or 1.0
        period = _PERIOD_S[p] / freq
    return ParsedFeed(
        format=d.get("version") or "unknown",
        title=clip(feed.get("title"), 500),
        language=ctx.language,
        entries=entries,
        ttl_s=ttl * 60 if ttl else None,
        update_period_s=period,
        warnings=warnings,
        malformed=bool(d.get("bozo")),
        skipped=ctx.problems.skipped,
    )
