"""Bytes of an HTML page to text: BOM, then the Content-Type header, then <meta>, then detection.

That is the HTML standard's order. Labels are mapped the way browsers map them (ISO-8859-1 and
US-ASCII mean windows-1252; a <meta> claiming UTF-16 means UTF-8, since the bytes were readable as
ASCII to find it). Decoding never fails: undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin1": "windows-1252",
    "latin-1": "windows-1252",
    "l1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "x-sjis": "shift_jis",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "utf8": "utf-8",
}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.()+-]{1,40})""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_:.()+-]{1,40})""", re.I)


def normalise_label(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "windows-1252" if name == "cp1252" else name


def charset_from_header(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _HEADER_CHARSET.search(content_type)
    return normalise_label(m.group(1)) if m else None


def charset_from_meta(body: bytes) -> str | None:
    m = _META_CHARSET.search(body[:8192])
    if not m:
        return None
    label = normalise_label(m.group(1).decode("ascii", "ignore"))
    if label and label.startswith("utf-16"):
        return "utf-8"
    return label


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str, str]:
    """(text, charset, source) with source one of bom, header, meta, detected, fallback."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name, "bom"
    if cs := charset_from_header(content_type):
        return body.decode(cs, errors="replace"), cs, "header"
    if cs := charset_from_meta(body):
        return body.decode(cs, errors="replace"), cs, "meta"
    try:
        return body.decode("utf-8"), "utf-8", "detected"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:262_144]).best()
    if best is not None and (cs := normalise_label(best.encoding)):
        return body.decode(cs, errors="replace"), cs, "detected"
    return body.decode("utf-8", errors="replace"), "utf-8", "fallback"
