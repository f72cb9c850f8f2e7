"""Page chrome: the parts of a news page around the article that must never reach its text.

Two nets. Before trafilatura sees the tree, elements whose class or id names them as chrome (share
bars, related links, comments, newsletter boxes, cookie banners...) are removed, except the ones
that hold the article itself. After extraction, short lines that read as chrome in any layout
("0 Comment(s)", "Do you like this article?", "© 2024 ...") are dropped, and a run of short
teaser lines after a "Related articles" style heading at the end is cut.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

from lxml import etree
from lxml.html import HtmlElement

# Class and id values are split into words at spaces, dashes and underscores ("c-related-list",
# "article__body"): chrome is named by one word or by two adjacent ones. A set lookup per element is
# much cheaper than a large regex alternation over every element of the page.
_SPLIT = re.compile(r"[\s_-]+")
_CHROME_LIST = """share sharing sharebar social socials newsletter newsletters subscribe subscription signup related
    relatedposts recommended recommendations recirculation recirc morestories readmore comment comments
    commentlist disqus cookie cookies consent gdpr cmp poll polls vote voting rating ratings advert
    advertisement adv ads ad adslot adunit dfp promo promotion sponsor sponsored outbrain taboola breadcrumb
    breadcrumbs tags taglist keywords byline authorbio copyright footer popup modal toolbar sidebar widget
    banner print follow trending mostread popular nav navigation menu masthead donate donation"""
_CHROME_WORDS = frozenset(_CHROME_LIST.split())
_CHROME_PAIRS = frozenset(
    [
        ("more", "stories"),
        ("read", "more"),
        ("also", "read"),
        ("tag", "list"),
        ("author", "bio"),
        ("most", "read"),
        ("skip", "link"),
        ("jump", "link"),
    ]
)
# Containers that always hold the article: never removed, nor anything around them.
_BODY_WORDS = frozenset(["articlebody", "articletext", "storybody", "postbody", "bodytext"])
_BODY_PAIRS = frozenset(
    [
        ("article", "body"),
        ("article", "content"),
        ("article", "text"),
        ("story", "body"),
        ("story", "content"),
        ("entry", "content"),
        ("post", "content"),
        ("post", "body"),
        ("content", "body"),
        ("body", "text"),
        ("article", "main"),
        ("main", "content"),
        ("news", "content"),
        ("news", "body"),
        ("rich", "text"),
        ("single", "content"),
        ("text", "content"),
        ("article", "detail"),
    ]
)
_COMMENT_WORDS = frozenset(["comment", "comments", "commentlist", "disqus", "discussion", "replies"])
# Chrome words that also name wrappers of the story itself ("byline-and-story", Elementor's
# "elementor-widget-text-editor", "tab-menu"): such an element is removed only when it does not hold
# paragraphs of text.
# Ad words too: "TestReport__Section--Ads" is a section with ads in it, "cmp-text" an AEM component.
_SOFT_LIST = """byline widget menu banner masthead toolbar follow tags keywords popular
    ad ads adv advert advertisement adslot adunit cmp"""
_SOFT_WORDS = frozenset(_SOFT_LIST.split())
SOFT_PROSE = 200
_NOT_PRINTED = frozenset(["hide", "hidden", "no", "not", "non"])
LINK_CELL_SHARE = 0.8


def _named(words: tuple[str, ...], singles: frozenset[str], pairs: frozenset[tuple[str, str]] = frozenset()) -> bool:
    if not singles.isdisjoint(words):
        return True
    return bool(pairs) and any(p in pairs for p in pairwise(words))


# A page repeats a few dozen class strings over thousands of elements, and pages of one site repeat
# each other's: these verdicts depend on the string alone, so they are cached by it (the profile had
# splitting and matching class names at a fifth of the parser's own time).
@lru_cache(maxsize=16384)
def _split_words(names: str) -> tuple[str, ...]:
    return tuple(w for w in _SPLIT.split(names.lower()) if w)


@lru_cache(maxsize=16384)
def _body_named(names: str) -> bool:
    return _named(_split_words(names), _BODY_WORDS, _BODY_PAIRS)


@lru_cache(maxsize=16384)
def _chrome_named(names: str) -> bool:
    words = _split_words(names)
    if "print" in words and not _NOT_PRINTED.isdisjoint(words):
        # "hide-for-print", "no-print": screen content kept off paper, unlike "print-header" or "print-tools"
        words = tuple(w for w in words if w != "print")
    # "l-sidebar-fixed l-article-body-segment": a layout class on the article's own container
    return _named(words, _CHROME_WORDS, _CHROME_PAIRS) and not _body_named(names)


@lru_cache(maxsize=16384)
def _soft_named(names: str) -> bool:
    """Named as chrome only by soft words."""
    words = _split_words(names)
    hard = (_CHROME_WORDS - _SOFT_WORDS).intersection(words) or any(p in _CHROME_PAIRS for p in pairwise(words))
    return not hard and not _SOFT_WORDS.isdisjoint(words)


def is_hard_chrome(el: HtmlElement) -> bool:
    """Chrome that never holds the article or its byline: related lists, comments, sidebars, footers..."""
    return is_chrome(el) and not _soft_named(attrs(el))


def is_body_container(el: HtmlElement) -> bool:
    return _body_named(attrs(el))


_DROP_TAGS = ("form", "button", "select", "textarea", "input", "nav", "footer", "dialog", "template")


def attrs(el: HtmlElement) -> str:
    """class and id, as one string: one regex search per element instead of one per token."""
    return f"{el.get('class') or ''} {el.get('id') or ''}"


def is_chrome(el: HtmlElement) -> bool:
    if el.get("aria-hidden") == "true" and not el.xpath(".//p"):
        return True
    role = el.get("role")
    if role and role.lower() in (
        "navigation",
        "banner",
        "contentinfo",
        "complementary",
        "dialog",
        "alertdialog",
        "search",
    ):
        return True
    return _chrome_named(attrs(el))


_ATTRIBUTED = etree.XPath("//*[@class or @id]")


def attributed(tree: HtmlElement) -> list[HtmlElement]:
    """Every element with a class or an id, in document order: metadata, captions and chrome all look at
    these, so a page's list is made once (an XPath over the whole tree is a millisecond on a big page)."""
    return _ATTRIBUTED(tree)


def body_markers(tree: HtmlElement, named: list[HtmlElement] | None = None) -> list[HtmlElement]:
    marks = list(tree.xpath('//*[@itemprop="articleBody" or @property="articleBody"]'))
    if not marks:
        marks = [el for el in (attributed(tree) if named is None else named) if is_body_container(el)]
    if not marks:
        marks = _densest_paragraph_parent(tree)
    return marks


def _densest_paragraph_parent(tree: HtmlElement) -> list[HtmlElement]:
    weight: dict[HtmlElement, int] = {}
    verdict: dict[HtmlElement, bool] = {}  # paragraphs share their ancestors: judge each once

    def chrome_once(a: HtmlElement) -> bool:
        v = verdict.get(a)
        if v is None:
            v = verdict[a] = is_chrome(a)
        return v

    for p in tree.iter("p"):
        parent = p.getparent()
        if parent is not None and not any(chrome_once(a) for a in p.iterancestors()):
            weight[parent] = weight.get(parent, 0) + len(p.text_content() or "")
    if not weight:
        return []
    return [max(weight, key=weight.__getitem__)]


def protected_set(tree: HtmlElement, named: list[HtmlElement] | None = None) -> set[HtmlElement]:
    """The article containers and their ancestors: removing any of them would remove the article."""
    keep: set[HtmlElement] = set()
    anchors = body_markers(tree, named) + list(tree.iter("h1"))[:1]
    for el in anchors:
        node: HtmlElement | None = el
        while node is not None:
            keep.add(node)
            node = node.getparent()
    return keep


def prune_chrome(tree: HtmlElement, protected: set[HtmlElement]) -> int:
    """Remove chrome elements in place; returns how many were removed."""
    # Keeping the <p> proxies referenced keeps their identity stable for the lookups below.
    p_len = {p: len(p.text_content() or "") for p in tree.iter("p")}
    total = sum(p_len.values())
    page_text: list[int] = []  # the page's text length, measured once if a <form> asks
    doomed: list[HtmlElement] = [
        el
        for el in tree.iter(*_DROP_TAGS)
        if el not in protected and not (el.tag == "form" and _wraps_page(el, tree, page_text))
    ]
    for el in tree.xpath("//*[@class or @id or @role or @aria-hidden]"):
        if el in protected or el.tag in _NEVER_PRUNED or el.tag in _DROP_TAGS or not is_chrome(el):
            continue
        prose = sum(p_len.get(p, 0) for p in el.iter("p"))
        if total > 1000 and prose / total > 0.5 and not _is_comments(el):
            continue  # most of the page's prose: a layout class, not a widget
        if prose >= SOFT_PROSE and _soft_named(attrs(el)) and _paragraphs(el, p_len) >= 2:
            continue  # paragraphs of text in a "byline" or "widget" wrapper: the story, not the widget
        doomed.append(el)
    doomed.extend(_link_cells(tree, protected))
    doomed_set = set(doomed)
    removed = 0
    for el in doomed:
        if any(a in doomed_set for a in el.iterancestors()):
            continue  # goes with its ancestor
        drop(el)
        removed += 1
    return removed


def _wraps_page(form: HtmlElement, tree: HtmlElement, page_text: list[int]) -> bool:
    """ASP.NET and other frameworks wrap the whole page in one <form>: that form is the page, not a widget."""
    if not page_text:
        page_text.append(len(tree.text_content() or ""))
    return len(form.text_content() or "") > 0.5 * page_text[0]


def _paragraphs(el: HtmlElement, p_len: dict[HtmlElement, int]) -> int:
    return sum(1 for p in el.iter("p") if p_len.get(p, 0) >= 40)


def _link_cells(tree: HtmlElement, protected: set[HtmlElement]) -> list[HtmlElement]:
    """Table cells that are only links: a layout table's navigation column or row of teasers."""
    out: list[HtmlElement] = []
    for cell in tree.iter("td", "th"):
        links = cell.findall(".//a")
        if len(links) < 3 or cell in protected:
            continue
        text = len(clean_text(cell))
        linked = sum(len(clean_text(a)) for a in links)
        if text and linked >= LINK_CELL_SHARE * text:
            out.append(cell)
    return out


def clean_text(el: HtmlElement) -> str:
    return "".join((el.text_content() or "").split())


# a paragraph's class is styling ("paywall", "ad-free"); chrome lines are caught after extraction
_NEVER_PRUNED = frozenset(("html", "body", "head", "main", "article", "p"))


def _is_comments(el: HtmlElement) -> bool:
    return _named(_split_words(attrs(el)), _COMMENT_WORDS)


def drop(el: HtmlElement) -> None:
    """Remove an element but keep its tail text (which belongs to the parent)."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail and tail.strip():
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


# --- line level ---------------------------------------------------------------------------------

_SHARE = r"(?:facebook|twitter|whatsapp|linkedin|email|e-mail|print|telegram|reddit|pinterest|copy link|tweet)"
_LINE_PATTERNS = [
    r"do you (?:like|enjoy|love) this (?:article|story|post)\W*",
    r"(?:was|is) this (?:article|story|information) (?:helpful|useful)\W*",
    r"\d+\s*comments?\s*(?:\(s\))?",
    r"comments?\s*\(\d+\)",
    r"\d+\s*comment\(s\)",
    r"(?:leave|post|add|write|submit) (?:a|your) (?:comment|reply|response)\W*",
    r"comment policy.*",
    r"\*?\s*(?:denotes|indicates) (?:a )?required fields?\.?",
    r"required fields are marked.*",
    r"\d{1,5}\s*/\s*\d{1,5}(?:\s*characters?)?",
    r"(?:show|view|load|read|see) (?:all )?(?:\d+ )?comments?\W*",
    r"join the (?:conversation|discussion)\W*",
    r"(?:related|more|similar|recommended|popular|latest|other|further) "
    r"(?:articles|stories|news|posts|content|coverage|reading|links|videos)\W*",
    r"(?:read|see) (?:more|also|next)\b.{0,80}",
    r"(?:you|we think you) (?:may|might|will) also (?:like|enjoy|be interested in)\W*",
    r"(?:most (?:read|popular|viewed|shared)|trending(?: now)?|recommended(?: for you)?|editor'?s picks?)\W*",
    r"share (?:this|the) (?:article|story|post|page)\W*.{0,40}",
    r"share(?: on| via)?(?: (?:facebook|twitter|x|whatsapp|linkedin|email|telegram|reddit))*\W*",
    rf"{_SHARE}(?:\s+{_SHARE})*",
    r"(?:sign up|subscribe|register)\b.{0,120}(?:newsletter|inbox|updates|alerts|email).{0,60}",
    r".{0,80}\bnewsletter\b.{0,80}(?:sign up|subscribe|inbox)\W*.{0,40}",
    r"get (?:our|the) .{0,60} (?:in|to|delivered to) your inbox.{0,40}",
    r"we use cookies.*",
    r".{0,60}\b(?:cookie (?:policy|settings|preferences|consent)|accept (?:all )?cookies)\b.{0,80}",
    r"(?:©|\(c\)|copyright\b).{0,200}",
    r".{0,150}\ball rights reserved\b.{0,60}",
    r"(?:advertisement|advertising|sponsored(?: content)?|anzeige|werbung|publicité|publicidad|"
    r"scroll to continue(?: with content)?)\W*",
    r"(?:lesen sie (?:auch|mehr)|mehr zum thema|das könnte sie auch interessieren|weitere artikel)\b.{0,100}",
    r"(?:click|tap) here to .{0,80}",
    r"(?:follow us|follow) on .{0,60}",
    r"(?:tags|topics|keywords)\s*:.{0,200}",
]
_CHROME_LINE = re.compile(r"^(?:" + "|".join(_LINE_PATTERNS) + r")$", re.IGNORECASE)
# Lines after which, near the end of a page, only teasers and widgets follow.
_TERMINAL = re.compile(
    r"^(?:related (?:articles|stories|news|posts|content|coverage)|more (?:from|on|in|stories|news)\b.{0,60}|"
    r"read (?:more|also|next)\b.{0,60}|you (?:may|might) also like|recommended(?: for you)?|most (?:read|popular)|"
    r"do you (?:like|enjoy) this (?:article|story)|\d+\s*comments?(?:\s*\(s\))?|comment policy.*|"
    r"(?:leave|post|add) a (?:comment|reply)|lesen sie auch|mehr zum thema|weitere artikel)\W*$",
    re.IGNORECASE,
)
MAX_CHROME_WORDS = 30
TEASER_WORDS = 16


def is_chrome_line(line: str) -> bool:
    s = line.strip()
    return bool(s) and len(s.split()) <= MAX_CHROME_WORDS and _CHROME_LINE.match(s) is not None


def terminal_index(lines: list[str]) -> int | None:
    """Index of a terminal chrome line in the second half, after which every line is short."""
    n = len(lines)
    for i in range(n // 2, n):
        if _TERMINAL.match(lines[i].strip()) and all(len(x.split()) <= TEASER_WORDS for x in lines[i + 1 :]):
            return i
    return None
