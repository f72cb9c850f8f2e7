"""The extraction: one HTML page (and its feed entry) in, one ParsedArticle out. Pure and CPU-bound.

Pipeline: input checks -> lxml tree -> metadata (JSON-LD, <meta>, markup) -> captions found and
their elements removed -> chrome removed -> trafilatura on the cleaned tree -> blocks, with lines
that repeat a caption, the headline, the byline or read as chrome filtered out -> language,
fingerprints. Anything the page lacks is taken from the feed entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from lxml.html import HtmlElement, document_fromstring
from trafilatura import bare_extraction
from trafilatura.utils import load_html

from newsflow_extract import captions as caps
from newsflow_extract import chrome, language
from newsflow_extract.dates import parse_date
from newsflow_extract.errors import ExtractionError
from newsflow_extract.metadata import Dated, Metadata, clean_authors, extract_metadata, language_code
from newsflow_extract.textutil import clean_space, content_hash, key, simhash, word_count
from newsflow_shared.models import Block, Caption, FeedEntry, ParsedArticle
from newsflow_shared.urls import domain_of as shared_domain_of

MIN_ARTICLE_WORDS = 25
BINARY_SAMPLE = 65536
BINARY_SHARE = 0.05
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BINARY_MAGIC = ("%PDF-", "\x89PNG", "GIF87a", "GIF89a", "PK\x03\x04", "\x1f\x8b", "\xff\xd8\xff", "ÿØÿ", "‰PNG")
_MARKUP = re.compile(r"<\s*(?:html|body|div|p|article|head|span|table|section|main)\b", re.IGNORECASE)
_BYLINE = re.compile(r"^(?:by|von|por|par|di|door|av|af|written by|reported by|text)\s*:?\s+\S", re.IGNORECASE)
_DATELINE = re.compile(
    r"^(?:(?:published|updated|posted|last updated|veröffentlicht|aktualisiert)\s*:?\s*)?"
    r"(?:\w+,?\s+)?(?:\d{1,2}[./ ]\s*\w+\.?[./ ]\s*\d{2,4}|\w+\.? \d{1,2},? \d{4}|\d{4}-\d{2}-\d{2})"
    r"(?:,?\s*(?:at\s+)?\d{1,2}[:.]\d{2}(?:\s*[ap]\.?m\.?)?(?:\s*\w{2,5})?)?\W*$",
    re.IGNORECASE,
)


@dataclass
class _Page:
    """What the untouched page says, whichever path then produces the text."""

    md: Metadata
    found: caps.Found
    captions: list[Caption]
    protected: set[HtmlElement]  # the article's containers and their ancestors, never pruned


def extract(
    html: str,
    url: str,
    entry: FeedEntry | None = None,
    *,
    final_url: str | None = None,
    min_words: int = MIN_ARTICLE_WORDS,
    now: datetime | None = None,
) -> ParsedArticle:
    """Extract the article from `html` (fetched from canonical `url`); raises ExtractionError."""
    now = now or datetime.now(UTC)
    html = check_input(html)
    base = final_url or url
    page: _Page | None = None
    own: list[Block] = []
    try:
        tree = _tree(html)
        page = _read_page(tree, base, entry)
        _check_text(tree, html)
        own = _own_blocks(tree, page, base)
        text = "\n\n".join(b.text for b in own)
        words = word_count(text)
        if words < min_words:
            raise ExtractionError("not-an-article", f"{words} words of text (minimum {min_words})")
        return _article(html, url, entry, final_url, now, page, own, "own", (text, words))
    except ExtractionError as refusal:
        if refusal.reason not in LADDER_REASONS:
            raise
        blocks, method = _ladder(html, base, page, own, refusal, min_words)
    return _article(html, url, entry, final_url, now, page or _read_page(None, base, entry), blocks, method)


def _read_page(tree: HtmlElement | None, base: str, entry: FeedEntry | None) -> _Page:
    if tree is None:  # markup without a document: only the feed entry can say anything
        return _Page(Metadata(), caps.Found(), _merge_captions(caps.Found(), [], entry), set())
    named = chrome.attributed(tree)
    md = extract_metadata(tree, base, named)
    protected = chrome.protected_set(tree, named)
    found = caps.find(tree, base, protected, named)
    captions = _merge_captions(found, md.images, entry)
    if md.title and (title := key(md.title)):
        # the headline again as an image's alt text ("Headline image"): search-engine text, not a caption
        kept = [c for c in captions if not _is_headline(key(c.text), title)]
        found.keys.update(key(c.text) for c in captions if c not in kept)
        captions = kept
    return _Page(md, found, captions, protected)


_IMAGE_WORDS = frozenset(("image", "photo", "picture", "bild", "foto", "imagen", "img"))


def _is_headline(caption: str, title: str) -> bool:
    return caption == title or (caption.startswith(title + " ") and caption[len(title) :].split()[0] in _IMAGE_WORDS)


def _own_blocks(tree: HtmlElement, page: _Page, base: str) -> list[Block]:
    """Captions and chrome out of the tree, trafilatura on what is left, then the line filters."""
    protected = page.protected
    for node in page.found.nodes:
        if node not in protected and node.getparent() is not None:
            chrome.drop(node)
    chrome.prune_chrome(tree, protected)
    body = _main_text(tree, base)
    if body is None:
        raise ExtractionError("no-content", "no main text found")
    blocks = _filter_blocks(_blocks(body), page)
    if not blocks:
        raise ExtractionError("no-content", "no text left after removing page chrome")
    return blocks


# --- the fallback ladder ------------------------------------------------------------------------

# Refusals another extractor may overturn; binary, too-large and timeout are final.
LADDER_REASONS = frozenset(("no-content", "not-an-article", "broken-html"))
# Below this many words in its longest line, a fallback's text is a row of labels ("Home", "Menu"), not prose.
MIN_SENTENCE_WORDS = 5


def _ladder(
    html: str, base: str, page: _Page | None, own: list[Block], refusal: ExtractionError, min_words: int
) -> tuple[list[Block], str]:
    """Plain trafilatura, then its recall mode, on the page as fetched; the first with an article's worth
    of words wins, else the longest text that holds a sentence, else the own extraction's refusal."""
    candidates: list[tuple[list[Block], str]] = [(own, "own")]
    for method, recall in (("trafilatura", False), ("trafilatura-recall", True)):
        body = _trafilatura_body(html, base, recall)
        blocks = _blocks(body) if body is not None else []
        if page is not None:
            # the own line filters (captions, headline, chrome lines) unless they leave nothing
            blocks = _filter_blocks(blocks, page) or blocks
        if word_count("\n\n".join(b.text for b in blocks)) >= max(1, min_words):
            return blocks, method
        candidates.append((blocks, method))
    blocks, method = max(candidates, key=lambda c: word_count("\n\n".join(b.text for b in c[0])))
    if any(word_count(b.text) >= MIN_SENTENCE_WORDS for b in blocks):
        return blocks, method
    raise ExtractionError(refusal.reason, f"{refusal.message}; no sentence of text on every path")


def _trafilatura_body(html: str, url: str, recall: bool) -> etree._Element | None:
    try:
        return _main_text(html, url, recall)
    except Exception:  # a fallback that fails on odd markup must leave the own refusal, with its reason, standing
        return None


# What every call asks of trafilatura; only the URL and the recall mode differ between calls.
_TRAFILATURA_OPTIONS = {
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    # trafilatura's deduplicate keeps one process-wide cache: text would vanish across unrelated pages.
    "deduplicate": False,
    "with_metadata": False,
}


def _main_text(page: HtmlElement | str, url: str, recall: bool = False) -> etree._Element | None:
    """trafilatura's main text of the page, as an element (None when it finds none)."""
    doc = bare_extraction(page, url=url, favor_recall=recall, **_TRAFILATURA_OPTIONS)
    return getattr(doc, "body", None)


# --- the article --------------------------------------------------------------------------------


def _article(
    html: str,
    url: str,
    entry: FeedEntry | None,
    final_url: str | None,
    now: datetime,
    page: _Page,
    blocks: list[Block],
    method: str,
    counted: tuple[str, int] | None = None,
) -> ParsedArticle:
    md, captions, base = page.md, page.captions, final_url or url
    text, words = counted or ("\n\n".join(b.text for b in blocks), 0)
    words = words if counted else word_count(text)
    published, modified = _dates(md, entry, now)
    if published is None:
        published = _date_from_text(html, base)  # the page as printed: pruning removed bylines and datelines
    lang, lang_source = _language(md, entry, text)
    description = md.description or (_strip_tags(entry.summary) if entry and entry.summary else None)
    return ParsedArticle(
        article_id=_article_id(url),
        url=url,
        final_url=final_url,
        domain=domain_of(url),
        feed_url=entry.feed_url if entry else None,
        feed_title=entry.feed_title if entry else None,
        title=md.title or (clean_space(entry.title) if entry and entry.title else None),
        text=text,
        blocks=blocks,
        captions=captions,
        authors=md.authors or (clean_authors(entry.authors) if entry else []),
        published_at=published.value if published else None,
        published_source=published.source if published else None,  # type: ignore[arg-type]
        modified_at=modified.value if modified else None,
        modified_source=modified.source if modified else None,  # type: ignore[arg-type]
        section=md.section,
        tags=md.tags or (list(entry.tags) if entry else []),
        description=description,
        site_name=md.site_name or (entry.feed_title if entry else None),
        top_image=_top_image(md, entry, captions),
        language=lang,
        language_source=lang_source,  # type: ignore[arg-type]
        word_count=words,
        content_hash=content_hash(text),
        simhash=simhash(text),
        extraction_method=method,  # type: ignore[arg-type]
        discovered_at=entry.discovered_at if entry else None,
    )


def _dates(md: Metadata, entry: FeedEntry | None, now: datetime) -> tuple[Dated | None, Dated | None]:
    published, modified = md.published, md.modified
    if entry is not None:
        if (published is None or published.source == "url") and (d := parse_date(entry.published_at, now)):
            published = Dated(d, "feed")
        if modified is None and (d := parse_date(entry.updated_at, now)):
            modified = Dated(d, "feed")
    return published, modified


def _language(md: Metadata, entry: FeedEntry | None, text: str) -> tuple[str | None, str | None]:
    declared, declared_source = md.language, md.language_source
    if not declared and entry is not None and entry.language:
        declared, declared_source = language_code(entry.language), "feed"
    return language.choose(declared, declared_source, text)


def _top_image(md: Metadata, entry: FeedEntry | None, captions: list[Caption]) -> str | None:
    if md.top_image:
        return md.top_image
    if entry is not None and (
        url := next((m.url for m in entry.media if (m.medium or "image").startswith("image")), None)
    ):
        return url
    return next((c.image_url for c in captions if c.image_url), None)


# --- input checks -------------------------------------------------------------------------------


def check_input(html: str) -> str:
    """The page, if it is text: ExtractionError if it is empty or binary data. lxml drops the few
    control characters a text page may carry (a NUL from a CMS), so they are counted, not removed."""
    sample = html[:BINARY_SAMPLE]
    if sample.lstrip().startswith(_BINARY_MAGIC):
        raise ExtractionError("binary", "the body is binary data, not HTML")
    # A few NULs or undecodable characters are a CMS's or a charset's slip on a text page; binary data read
    # as text has one in four or more (bytes below 0x20, and invalid sequences).
    bad = len(_CONTROL.findall(sample)) + sample.count("\ufffd")
    if bad > max(8, len(sample) * BINARY_SHARE):
        raise ExtractionError("binary", f"{bad} control or undecodable characters in the first {len(sample)}")
    stripped = html.strip()
    if not stripped or (len(stripped) < 256 and not _CONTROL.sub("", stripped).strip()):
        raise ExtractionError("no-content", "empty body")
    return html


def _tree(html: str) -> HtmlElement:
    try:
        tree = load_html(html)
    except (etree.ParserError, ValueError, TypeError) as exc:
        raise ExtractionError("broken-html", f"unparseable markup: {exc}") from exc
    if tree is None:
        if _MARKUP.search(html[:BINARY_SAMPLE]):
            raise ExtractionError("broken-html", "the markup could not be parsed into a document")
        raise ExtractionError("no-content", "no HTML document in the body")
    if tree.tag != "html":
        # Markup that starts mid-document: lxml roots the tree at its first element. Giving it the
        # document's frame lets every later step (and trafilatura) see a page with a body.
        page = document_fromstring("<html><body></body></html>")
        page.find("body").append(tree)
        return page
    return tree


def _check_text(tree: HtmlElement, html: str) -> None:
    body = tree.find("body")
    if body is not None and (body.text_content() or "").strip():
        return
    # Markup that promises a page but yields no text: truncated inside a tag, script or comment.
    if re.search(r"<\s*(?:p|article|div|h1)\b", html, re.IGNORECASE) and len(html) > 200:
        raise ExtractionError("broken-html", "the markup could not be parsed into a page with text")
    raise ExtractionError("no-content", "the page has no text")


# --- body ---------------------------------------------------------------------------------------

_KIND = {"p": "p", "head": "h", "item": "li", "quote": "quote", "cell": "p", "code": "p"}
# trafilatura's inline elements; any other element inside a paragraph, list item or cell starts a line of
# its own (a heading in a list item, a quote inside a paragraph), so that words are not glued together.
_INLINE = frozenset(("hi", "ref", "del", "span", "sub", "sup", "abbr"))
_BLOCK = frozenset(("p", "head", "list", "quote", "table", "code", "div", "row"))


def _lines(el: etree._Element) -> list[str]:
    """Text of a trafilatura output element, split at its <lb/> line breaks and around block children."""
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            if child.tag == "lb":
                parts.append("\n")
            elif child.tag in _INLINE or not isinstance(child.tag, str):
                walk(child)
            else:
                parts.append("\n")
                walk(child)
                parts.append("\n")
            if child.tail:
                parts.append(child.tail)

    walk(el)
    return [s for s in (clean_space(x) for x in "".join(parts).split("\n")) if s]


def _tail_lines(s: str | None) -> list[str]:
    return [t for t in (clean_space(x) for x in (s or "").split("\n")) if t]


def _blocks(body: etree._Element) -> list[Block]:
    out: list[Block] = []
    _container_blocks(body, out)
    return out


def _container_blocks(el: etree._Element, out: list[Block]) -> None:
    """Blocks of an element that holds other blocks (the body, a layout table's cell): text between its
    block children, which trafilatura leaves there, is paragraphs too."""
    run: list[str] = [el.text or ""]
    for child in el:
        if child.tag in _BLOCK or child.tag in ("list", "item", "table"):
            out.extend(Block(kind="p", text=t) for t in _tail_lines("".join(run)))
            run = []
            _element_blocks(child, out)
        elif child.tag == "lb":
            run.append("\n")
        elif isinstance(child.tag, str) and child.tag != "graphic":
            run.append(" ".join(_lines(child)))
        run.append(child.tail or "")
    out.extend(Block(kind="p", text=t) for t in _tail_lines("".join(run)))


def _element_blocks(el: etree._Element, out: list[Block]) -> None:
    tag = el.tag
    if tag == "list":
        for item in el.iterchildren("item"):
            out.extend(Block(kind="li", text=t) for t in _lines(item))
    elif tag == "table":
        _table_blocks(el, out)
    elif tag not in ("graphic", "lb"):
        kind = _KIND.get(tag, "p")
        out.extend(Block(kind=kind, text=t) for t in _lines(el))  # type: ignore[arg-type]


def _table_blocks(table: etree._Element, out: list[Block]) -> None:
    """A data table as one line per row; a layout table (cells holding paragraphs, headings or tables)
    as the blocks of each cell. Only the table's own rows and cells: a nested table is read once."""
    for row in table.iterchildren("row"):
        cells = list(row.iterchildren("cell"))
        if any(c.tag in _BLOCK or c.tag == "list" for cell in cells for c in cell):
            for cell in cells:
                _container_blocks(cell, out)
        elif line := " | ".join(c for c in (" ".join(_lines(cell)) for cell in cells) if c):
            out.append(Block(kind="p", text=line))


def _filter_blocks(blocks: list[Block], page: _Page) -> list[Block]:
    title, authors, section = page.md.title, page.md.authors, page.md.section
    cap_keys = set(page.found.keys)
    long_caps: list[str] = []
    for c in page.captions:
        k = key(c.text)
        cap_keys.add(k)
        if c.credit:
            cap_keys.add(key(c.credit))
            cap_keys.add(key(f"{c.text} {c.credit}"))
        if len(k.split()) >= 5:
            long_caps.append(k)
    cap_keys.discard("")
    title_key = key(title) if title else None
    author_keys = {key(a) for a in authors}
    section_key = key(section) if section else None

    kept: list[Block] = []
    for b in blocks:
        k = key(b.text)
        if not k or k in cap_keys or chrome.is_chrome_line(b.text):
            continue
        if any(k.startswith(c) and len(k.split()) - len(c.split()) <= 8 for c in long_caps):
            continue  # a caption printed with its credit run on
        head = len(kept) < 3
        if head and (
            k in (title_key, section_key)
            or (k in author_keys)
            or (_BYLINE.match(b.text) and len(b.text.split()) <= 12)
            or (len(b.text) < 80 and _DATELINE.match(b.text))
        ):
            continue
        kept.append(b)
    lines = [b.text for b in kept]
    if (cut := chrome.terminal_index(lines)) is not None:
        kept = kept[:cut]
    return kept


def _merge_captions(
    found: caps.Found, ld_images: list[tuple[str | None, str, str | None]], entry: FeedEntry | None
) -> list[Caption]:
    items: list[tuple[str, str | None, str | None, str]] = list(found.captions)
    items += [(t, u, c, "json-ld") for u, t, c in ld_images]
    if entry is not None:
        for m in entry.media:
            if m.caption and not m.thumbnail:
                text, credit = caps.split_credit(_strip_tags(m.caption))
                items.append((text, m.url, m.credit or credit, "feed"))
    out: list[Caption] = []
    keys: list[str] = []
    for text, img, credit, source in items:
        text = clean_space(text)
        k = key(text)
        if not k:
            continue
        match = None
        for i, existing in enumerate(keys):
            if k == existing or (min(len(k), len(existing)) >= 20 and (k in existing or existing in k)):
                match = i
                break
            if source in ("alt", "title") and img and out[i].image_url == img and out[i].source not in ("alt", "title"):
                match = i  # an image's alt text beside its real caption is not a second caption
                break
        if match is not None:
            c = out[match]
            c.image_url = c.image_url or img
            c.credit = c.credit or credit
            continue
        keys.append(k)
        out.append(Caption(text=text, image_url=img, credit=credit, source=source))  # type: ignore[arg-type]
    return out


# --- fallbacks ----------------------------------------------------------------------------------


def _date_from_text(html: str, url: str) -> Dated | None:
    """The date printed on the page, found by htmldate when nothing structured gives one."""
    try:
        from htmldate import find_date

        found = find_date(html, url=url, original_date=True, extensive_search=True, outputformat="%Y-%m-%dT%H:%M:%S%z")
    except Exception:  # htmldate is a heuristic over arbitrary markup: no date beats no article
        return None
    if found and (d := parse_date(found)):
        return Dated(d, "text")
    return None


def _strip_tags(s: str) -> str:
    return clean_space(re.sub(r"<[^>]+>", " ", s))


def domain_of(url: str) -> str:
    try:
        return shared_domain_of(url)
    except ValueError:
        return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def _article_id(url: str) -> str:
    from newsflow_shared.ids import article_id

    return article_id(url)


def extract_payload(html: str, url: str, entry: dict[str, Any] | None, final_url: str | None, min_words: int) -> str:
    """Worker-process entry point: plain arguments in, the article's JSON out (cheap to pickle)."""
    fe = FeedEntry.model_validate(entry) if entry is not None else None
    return extract(html, url, fe, final_url=final_url, min_words=min_words).model_dump_json()


_WARM_PAGE = (
    "<html lang='en'><head><title>Warm-up</title></head><body><article><h1>Warm-up page</h1>"
    + "".join(f"<p>Paragraph {i}: here so that a new worker loads its models before real pages.</p>" for i in range(4))
    + "</article></body></html>"
)


def warm_up() -> None:
    """Load the language model and trafilatura's lazy parts once per worker, outside any page's time limit."""
    language.detect("warm up the language identifier with a sentence of text")
    extract(_WARM_PAGE, "https://warm-up.invalid/", min_words=0)
    # The ladder's first run on a short page loads trafilatura's own fallbacks (jusText's lists: 0.3 s).
    for recall in (False, True):
        _trafilatura_body("<html><body><p>A short page.</p></body></html>", "https://warm-up.invalid/", recall)
