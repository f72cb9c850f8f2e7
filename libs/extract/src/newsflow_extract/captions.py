"""Image captions, each once, and the elements that hold them (to keep them out of the body text).

Sources, in order: <figure>/<figcaption>, caption-classed elements, image alt and title text, the
article's JSON-LD ImageObjects and the feed's media RSS. Pages print one caption several times
(figcaption, alt, a lightbox copy, og/JSON-LD); these collapse to one entry that keeps the image
URL and credit from whichever copy had them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urljoin

from lxml import etree
from lxml.html import HtmlElement

from newsflow_extract import chrome
from newsflow_extract.textutil import clean_space, key

_CAPTION_TOKEN = re.compile(
    r"(?:caption|cutline|legend|legende|bildunterschrift|bildtext|image-?desc|img-?desc|photo-?desc|media-?desc|"
    r"figure-?text|wp-caption-text|photo-?text|image-?text|pie-?de-?foto|didascalia|"
    r"(?:media|image|img|photo|picture|foto|bild)[-_]?subtitle)",
    re.IGNORECASE,
)
_CREDIT_TOKEN = re.compile(
    r"(?:credit|copyright|photographer|attribution|source|rights|byline|author|quelle|fotograf)", re.IGNORECASE
)


# Searched in every class and id string of the page, and a page repeats a few dozen of them: cached by
# the string (the uncached search was the parser's hottest line).
@lru_cache(maxsize=16384)
def _caption_named(names: str) -> bool:
    return _CAPTION_TOKEN.search(names) is not None


@lru_cache(maxsize=16384)
def _credit_named(names: str) -> bool:
    return _CREDIT_TOKEN.search(names) is not None


# "[Agency/Photographer]" or "(Photo: Agency)" at the end of a caption is its credit.
_TRAILING_BRACKET = re.compile(r"\s*\[([^\[\]]{2,100})\]\s*$")
_TRAILING_PAREN = re.compile(
    r"\s*\(((?:[^()]{0,40}(?:photo|foto|image|picture|credit|bild|getty|reuters|afp|\bap\b|epa|dpa|/|©)[^()]{0,60}))\)\s*$",
    re.IGNORECASE,
)
_TRAILING_LABEL = re.compile(
    r"\s*(?:(?:photo|foto|image|picture|pic|credit|bild|photograph|fotos?)\s*(?:credit)?\s*(?:by|:)|©)\s*([^.:]{2,80})\s*$",
    re.IGNORECASE,
)
_FILENAME = re.compile(r"\.(?:jpe?g|png|gif|webp|avif|svg)\b|^(?:img|dsc|image|photo)[-_ ]?\d+", re.IGNORECASE)
_ALT_JUNK = re.compile(r"^(?:logo|icon|avatar|image|photo|picture|placeholder|thumbnail|banner|loading)\b", re.I)
MAX_CAPTION_CHARS = 1200
MIN_ALT_WORDS = 4


@dataclass
class Found:
    captions: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)  # text, image, credit, source
    nodes: list[HtmlElement] = field(default_factory=list)  # elements to remove before extraction
    keys: set[str] = field(default_factory=set)  # caption, credit and alt-text keys, for body-line filtering


def split_credit(text: str) -> tuple[str, str | None]:
    t = clean_space(text)
    for rx in (_TRAILING_BRACKET, _TRAILING_PAREN, _TRAILING_LABEL):
        m = rx.search(t)
        if m and m.start() > 0:
            return t[: m.start()].rstrip(" -–—|,;"), _clean_credit(m.group(1))
    return t, None


_CREDIT_LABEL = re.compile(r"^(?:photo|foto|image|credit|bild|picture)s?\s*(?:credit)?\s*:\s*", re.IGNORECASE)


def _clean_credit(text: str) -> str | None:
    return _CREDIT_LABEL.sub("", clean_space(text).strip(" ()[]©:")).strip() or None


def image_url(img: HtmlElement, base: str) -> str | None:
    for attr in ("src", "data-src", "data-original", "data-lazy-src", "data-url", "data-srcset", "srcset"):
        v = (img.get(attr) or "").strip()
        if not v or v.startswith("data:"):
            continue
        if "srcset" in attr:
            v = v.split(",")[0].strip().split(" ")[0]
        return urljoin(base, v)
    if img.tag == "picture" or img.tag == "figure":
        for s in img.iter("source", "img"):
            if s is not img and (u := image_url(s, base)):
                return u
    return None


def _first_image(el: HtmlElement, base: str) -> str | None:
    for img in el.iter("img", "source", "amp-img"):
        if u := image_url(img, base):
            return u
    return None


def _nearby_image(el: HtmlElement, base: str) -> str | None:
    """The image a caption element describes: inside it, just before it, or in its parent."""
    if u := _first_image(el, base):
        return u
    for sib in list(el.itersiblings(preceding=True))[:2]:
        if isinstance(sib.tag, str) and (u := _first_image(sib, base)):
            return u
    parent = el.getparent()
    return _first_image(parent, base) if parent is not None else None


def _in_chrome(el: HtmlElement, protected: set[HtmlElement]) -> bool:
    for a in el.iterancestors():
        if a in protected:
            return False
        if a.tag in ("nav", "footer", "aside", "header") or chrome.is_chrome(a):
            return True
    return False


def _text_without_credits(el: HtmlElement) -> tuple[str, str | None]:
    credits: list[str] = []
    parts: list[str] = []

    def walk(node: HtmlElement) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            if isinstance(child.tag, str):
                if child.tag in ("small", "cite") or _credit_named(chrome.attrs(child)):
                    if t := clean_space(child.text_content() or ""):
                        credits.append(t)
                elif child.tag not in ("script", "style", "button", "svg"):
                    walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    text, credit = split_credit(" ".join(parts))
    if credits:
        credit = _clean_credit(" ".join(credits))
    return text, credit


# What pages put where captions go that is not a caption: a credit alone, a player's label or duration,
# an embed's consent notice.
_CREDIT_ONLY = re.compile(
    r"^(?:©|(?:photo(?:graph)?s?|fotos?|bild(?:quelle)?|image|picture|credit|quelle|source)\s*(?:credit)?\s*[:©])"
    r"\s*(?:\S+\s*){0,6}$",
    re.IGNORECASE,
)
_PLAYER_LABEL = re.compile(
    r"^(?:play|watch|listen|replay|live)\b.{0,60}$|\babspielen\b|\blaufzeit\b|\b\d+\s*(?:minuten|sekunden|min|sec)\b",
    re.IGNORECASE,
)
_CONSENT = re.compile(r"\b(?:privacy policy|datenschutz\w*|cookies?|consent|einwilligung|zustimm\w*)\b", re.I)
_LOGO = re.compile(r"(?<![^\W_])logos?(?![^\W_])", re.IGNORECASE)  # "Logo_Sponsors" too
_PLAYER = re.compile(r"video|player|jw-|jwplayer|brightcove|vjs", re.IGNORECASE)
_LETTERS = re.compile(r"[^\W\d_]{2}")
TEASER_WORDS = 4
# Links long enough to be a headline (4+ words), found in C: a page has hundreds of short ones.
_HEADLINE_LINKS = etree.XPath("//a[string-length(normalize-space(.)) > 15]")


@lru_cache(maxsize=16384)
def _player_named(names: str) -> bool:
    return _PLAYER.search(names) is not None


class _Judge:
    """Verdicts on caption candidates; the page's link texts are read once, when first needed."""

    def __init__(self, tree: HtmlElement) -> None:
        self.tree = tree
        self._links: set[str] | None = None

    def links(self) -> set[str]:
        if self._links is None:
            texts = (" ".join((a.text_content() or "").split()).casefold() for a in _HEADLINE_LINKS(self.tree))
            self._links = {t for t in texts if len(t.split()) >= TEASER_WORDS}
        return self._links

    def not_a_caption(self, text: str, img: str | None, source: str, at: HtmlElement) -> bool:
        if not _LETTERS.search(text) or _CREDIT_ONLY.match(text) or _CONSENT.search(text):
            return True
        if len(text.split()) <= 12 and _PLAYER_LABEL.search(text):
            return True
        if source in ("alt", "title"):
            if _LOGO.search(text) or (img and _LOGO.search(img.rsplit("/", 1)[-1])):
                return True
            if any(_player_named(chrome.attrs(a)) for a in list(at.iterancestors())[:4]):
                return True  # a video's thumbnail: its alt is the video's title
        if source in ("figcaption", "caption-class") and _linked(at, text):
            return True  # a teaser's caption, or a link labelled like a caption
        # a teaser: the image's text is a headline the page links to
        return len(text.split()) >= TEASER_WORDS and " ".join(text.split()).casefold() in self.links()


def _linked(at: HtmlElement, text: str) -> bool:
    if any(a.tag == "a" and a.get("href") for a in at.iterancestors()):
        return True
    linked = " ".join(" ".join(a.itertext()) for a in at.iter("a"))
    return bool(linked.strip()) and key(linked) == key(text)


def find(tree: HtmlElement, base: str, protected: set[HtmlElement], named: list[HtmlElement] | None = None) -> Found:
    """Captions of the page, each once, and the elements to remove before extraction."""
    finder = _Finder(tree, base, protected)
    finder.figures()
    finder.named(chrome.attributed(tree) if named is None else named)
    finder.images()
    # document order, so that a lead image's caption comes first however it is marked up
    finder.found.captions = [c for _, c in sorted(finder.placed, key=lambda p: p[0])]
    return finder.found


class _Finder:
    def __init__(self, tree: HtmlElement, base: str, protected: set[HtmlElement]) -> None:
        self.tree, self.base, self.protected = tree, base, protected
        self.found = Found()
        self.consumed: set[HtmlElement] = set()
        self.placed: list[tuple[int, tuple[str, str | None, str | None, str]]] = []
        self.judge = _Judge(tree)

    def add(self, text: str, img: str | None, credit: str | None, source: str, at: HtmlElement) -> None:
        text = text.strip()
        if not text or len(text) > MAX_CAPTION_CHARS:
            return
        if self.judge.not_a_caption(text, img, source, at):
            self.found.keys.add(key(text))  # and not body text either
            return
        self.placed.append((at.sourceline or 0, (text, img, credit, source)))

    def figures(self) -> None:
        for fig in self.tree.iter("figure"):
            if fig in self.consumed:
                continue
            self.consumed.update(fig.iter())
            has_media = any(True for _ in fig.iter("img", "picture", "video", "iframe", "svg", "amp-img", "source"))
            caps = fig.xpath(".//figcaption") or [
                el
                for el in fig.iter()
                if el is not fig and isinstance(el.tag, str) and _caption_named(chrome.attrs(el))
            ]
            if not has_media and not caps:
                continue  # a pull quote or an embedded post wrapped in <figure>: body content
            self.found.nodes.append(fig)
            if _in_chrome(fig, self.protected):
                continue  # a teaser's image: its caption is a headline of another article
            self._figure(fig, caps)

    def _figure(self, fig: HtmlElement, caps: list[HtmlElement]) -> None:
        img = _first_image(fig, self.base)
        got = False
        for cap in caps[:1] if caps and caps[0].tag == "figcaption" else caps[:2]:
            text, credit = _text_without_credits(cap)
            if text:
                self.add(text, img, credit, "figcaption" if cap.tag == "figcaption" else "caption-class", fig)
                got = True
            elif credit:
                self.found.keys.add(key(credit))
        if not got:
            for im in fig.iter("img"):
                alt = clean_space(im.get("alt") or im.get("title") or "")
                if len(alt.split()) >= MIN_ALT_WORDS and not _FILENAME.search(alt):
                    text, credit = split_credit(alt)
                    self.add(text, img, credit, "alt" if im.get("alt") else "title", fig)
                    break

    def named(self, elements: list[HtmlElement]) -> None:
        """Elements whose class or id names a caption, and photo credits printed beside an image."""
        for el in elements:
            if el in self.consumed or el.tag in ("table", "caption", "body", "html", "p") or el in self.protected:
                continue
            a = chrome.attrs(el)
            if _caption_named(a):
                text, credit = _text_without_credits(el)
                if len(text) > MAX_CAPTION_CHARS or el.xpath(".//p[string-length(normalize-space()) > 400]"):
                    continue  # a container named after captions, not a caption
                self.consumed.update(el.iter())
                self.found.nodes.append(el)
                if text and not _in_chrome(el, self.protected):
                    self.add(text, _nearby_image(el, self.base), credit, "caption-class", el)
            elif el.tag in ("span", "small", "div", "cite") and _credit_named(a) and _credit_beside_image(el):
                self.consumed.update(el.iter())
                self.found.nodes.append(el)
                self.found.keys.add(key(el.text_content() or ""))

    def images(self) -> None:
        for img in self.tree.iter("img"):
            if img in self.consumed:
                continue
            for attr in ("alt", "title"):
                alt = clean_space(img.get(attr) or "")
                if len(alt.split()) < MIN_ALT_WORDS or _FILENAME.search(alt) or _ALT_JUNK.match(alt):
                    continue
                # Every alt text is kept out of the body (teaser images carry their headline as alt).
                self.found.keys.add(key(alt))
                self.found.keys.add(key(split_credit(alt)[0]))
                if img.xpath("ancestor::a[@href]") or _in_chrome(img, self.protected):
                    continue
                text, credit = split_credit(alt)
                self.add(text, image_url(img, self.base), credit, attr, img)
                break


def _credit_beside_image(el: HtmlElement) -> bool:
    parent = el.getparent()
    return len(clean_space(el.text_content() or "")) < 120 and parent is not None and bool(parent.xpath(".//img"))
