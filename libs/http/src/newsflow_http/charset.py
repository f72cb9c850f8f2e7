"""Bytes of an HTML page to text: BOM, then the Content-Type header, then <meta>, then detection.

That is the HTML standard's order, with one exception for evidence: bytes that are valid UTF-8 and not
plain ASCII are UTF-8 whatever the label says, and a page labelled UTF-8 whose bytes are not is decoded
by what the bytes are (servers and templates claim UTF-8 for Latin-1 pages, and the other way round,
far more often than legacy text happens to be valid UTF-8). Labels are mapped the way browsers map
them (ISO-8859-1 and US-ASCII mean windows-1252; a <meta> claiming UTF-16 means UTF-8, since the bytes
were readable as ASCII to find it). Decoding never fails: undecodable bytes become U+FFFD.
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


def _cp1252_for_stray_bytes(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return err.object[err.start : err.end].decode("cp1252", errors="replace"), err.end


# A UTF-8 page with a few bytes of another charset (a snippet pasted from a Latin-1 source) keeps its
# UTF-8 and reads those bytes as windows-1252, the web's legacy default, instead of losing them.
codecs.register_error("newsflow-cp1252", _cp1252_for_stray_bytes)

# The HTML standard's legacy default per locale, for Latin-script languages whose legacy charset is not
# windows-1252; detection cannot tell these apart on a page of mostly ASCII text.
_LEGACY_BY_LANG = {
    **dict.fromkeys(("pl", "cs", "sk", "hu", "sl", "hr", "bs", "ro"), "windows-1250"),
    **dict.fromkeys(("tr", "az"), "windows-1254"),
    **dict.fromkeys(("lt", "lv", "et"), "windows-1257"),
    "vi": "windows-1258",
}
_HTML_LANG = re.compile(rb"""<html[^>]*?\slang\s*=\s*["']?([A-Za-z]{2,3})""", re.I)
_NON_LATIN = ("cyrillic", "greek", "arabic", "hebrew", "thai", "cjk", "hangul", "hiragana", "katakana", "devanagari")


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str, str]:
    """(text, charset, source) with source one of bom, header, meta, detected, fallback."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name, "bom"
    declared, source = charset_from_header(content_type), "header"
    if declared is None:
        declared, source = charset_from_meta(body), "meta"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (declared in (None, "utf-8") or not body.isascii()):
        return text, "utf-8", source if declared == "utf-8" else "detected"
    if declared and declared != "utf-8":
        return body.decode(declared, errors="replace"), declared, source
    return _by_evidence(body)


def _by_evidence(body: bytes) -> tuple[str, str, str]:
    """A page labelled UTF-8 (or not labelled) whose bytes are not UTF-8."""
    lossy = body.decode("utf-8", errors="replace")
    stray = lossy.count("\ufffd")
    if sum(1 for ch in lossy if ord(ch) > 127) - stray > stray:
        return body.decode("utf-8", errors="newsflow-cp1252"), "utf-8", "detected"
    if (m := _HTML_LANG.search(body[:8192])) and (cs := _LEGACY_BY_LANG.get(m.group(1).decode().lower())):
        return body.decode(cs, errors="replace"), cs, "detected"
    best = charset_normalizer.from_bytes(body[:262_144]).best()
    # Detection is reliable for other scripts; among Latin-script code pages it guesses at random.
    if best is not None and (cs := normalise_label(best.encoding)):
        if any(word in a.lower() for a in best.alphabets for word in _NON_LATIN):
            return body.decode(cs, errors="replace"), cs, "detected"
        return body.decode("windows-1252", errors="replace"), "windows-1252", "detected"
    return body.decode("windows-1252", errors="replace"), "windows-1252", "fallback"
