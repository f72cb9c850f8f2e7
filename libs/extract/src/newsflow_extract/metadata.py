"""Article metadata from the page's JSON-LD, its <meta> tags and its markup.

Each field takes the first usable value in a fixed order of sources (JSON-LD, then <meta>, then the
markup); the extraction fills what is still missing from the feed entry. Every value is cleaned
here, so the rest of the parser never sees "By ..." bylines or site-name suffixes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml.html import HtmlElement

from newsflow_extract import chrome, titles
from newsflow_extract.dates import date_from_url, parse_date
from newsflow_extract.textutil import clean_space, key

ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "askpublicnewsarticle",
    "blogposting",
    "liveblogposting",
    "socialmediaposting",
    "techarticle",
    "scholarlyarticle",
    "report",
}
PAGE_TYPES = {"webpage", "itempage", "collectionpage", "medicalwebpage"}


@dataclass
class Dated:
    value: datetime
    source: str


@dataclass
class Metadata:
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published: Dated | None = None
    modified: Dated | None = None
    section: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    site_name: str | None = None
    top_image: str | None = None
    language: str | None = None
    language_source: str | None = None
    # (image url, caption, credit) announced in JSON-LD ImageObjects of the article
    images: list[tuple[str | None, str, str | None]] = field(default_factory=list)


# --- reading the page ---------------------------------------------------------------------------


def meta_tags(tree: HtmlElement) -> dict[str, list[str]]:
    """<meta> name/property/itemprop/http-equiv (lower case) -> contents, in document order."""
    out: dict[str, list[str]] = {}
    for m in tree.iter("meta"):
        content = m.get("content")
        if content is None or not content.strip():
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            k = m.get(attr)
            if k:
                out.setdefault(k.strip().lower(), []).append(content.strip())
    return out


def _first(meta: dict[str, list[str]], *names: str) -> str | None:
    for n in names:
        for v in meta.get(n, ()):
            if v.strip():
                return v.strip()
    return None


def json_ld(tree: HtmlElement) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page, @graph and lists flattened."""
    objs: list[dict[str, Any]] = []
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        raw = (script.text or "").strip()
        if not raw:
            continue
        data = _loads(raw)
        if data is not None:
            objs.extend(_flatten(data))
    return objs


def _loads(raw: str) -> Any:
    raw = raw.strip().removeprefix("<!--").removesuffix("-->").strip()
    raw = raw.removeprefix("//<![CDATA[").removesuffix("//]]>").strip()
    try:
        return json.loads(raw, strict=False)
    except ValueError:
        pass
    # CMS templates often leave a trailing comma or two objects back to back.
    fixed = re.sub(r",\s*([}\]])", r"\1", raw)
    try:
        return json.loads(fixed, strict=False)
    except ValueError:
        try:
            return json.loads("[" + re.sub(r"}\s*{", "},{", fixed) + "]", strict=False)
        except ValueError:
            return None


def _flatten(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for d in data:
            yield from _flatten(d, depth + 1)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _flatten(data["@graph"], depth + 1)
        main = data.get("mainEntity")
        if isinstance(main, dict):
            yield from _flatten(main, depth + 1)


def _types(obj: dict[str, Any]) -> set[str]:
    t = obj.get("@type")
    vals = t if isinstance(t, list) else [t]
    return {str(v).lower().rsplit("/", 1)[-1] for v in vals if v}


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        s = clean_space(_unescape(v))
        return s or None
    if isinstance(v, dict):
        return _text(v.get("name") or v.get("@value") or v.get("text"))
    if isinstance(v, list) and v:
        return _text(v[0])
    return None


def _unescape(s: str) -> str:
    import html

    return html.unescape(s) if "&" in s else s


def _strings(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        t = _text(v)
        return [t] if t else []
    if isinstance(v, list):
        out: list[str] = []
        for x in v:
            out.extend(_strings(x))
        return out
    return []


def _image_url(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, dict):
        return _image_url(v.get("url") or v.get("contentUrl") or v.get("@id"))
    if isinstance(v, list) and v:
        return _image_url(v[0])
    return None


# --- cleaning -----------------------------------------------------------------------------------

_BYLINE_PREFIX = re.compile(
    r"^(?:(?:written|reported|reporting|text|story|words|photos?|posted|published|post author)\s+by|"
    r"(?:eingestellt|veröffentlicht|erstellt|geschrieben|verfasst|ein beitrag|ein artikel)\s+von|"
    r"(?:show|view|see)\s+(?:all\s+)?(?:articles|posts|stories)\s+(?:of|by)|post author|posted in|"
    r"by|von|vom|por|par|di|door|av|af|"
    r"autor(?:in)?|author|auteur|text|texte|bericht|redacción|redaccion|بقلم|كتب|كتبت|بواسطة|به قلم|نویسنده)"
    r"\s*[:\-–]?\s+",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*(?:,|;|\||/|\band\b|&|\bund\b|\bet\b|\by\b|\be\b|\bog\b|\bi\b|\boch\b|\bu\b|\n)\s*", re.I)


def _any_word(words: str) -> str:
    """An alternation of the whitespace-separated words, each taken literally."""
    return "|".join(map(re.escape, words.split()))


# A byline part with one of these words is no name: a date or reading time ("3 hours ago"), a button, a photo
# credit, or a link beside the byline ("View my complete profile", "Archiv anzeigen", "Alle Beiträge").
_JUNK_WORDS = """ago update updated published min mins minute minutes read hour hours day days stunde stunden vor
    geleden hace subscribe follow email contact share close more image images photo photos
    profil profile archiv archive archives beiträge artikel articles posts weiter weitere
    biografia biografía biography biografie"""
_JUNK = re.compile(
    rf"\d|@|https?:|www\.|\.(?:com|net|org)\b|getty|istock|shutterstock|\bil y a\b|\b(?:{_any_word(_JUNK_WORDS)})\b",
    re.IGNORECASE,
)
_ROLE_TAIL = re.compile(r"\s+(?:[-–—|:]|\bfor\b)\s+.*$", re.IGNORECASE)
# A credit that names a role, not a person: "Senior Staff Writer", "Korrespondentin", "Redaktion"
_ROLE_QUALIFIERS = "senior chief staff special political foreign news deputy managing associate contributing guest"
_ROLE_NOUNS = """writer reporter correspondent editor columnist contributor journalist analyst photographer staff
    redakteur redakteurin korrespondent korrespondentin redaktion desk"""
_ROLE = re.compile(rf"^(?:(?:{_any_word(_ROLE_QUALIFIERS)})\s+)*(?:{_any_word(_ROLE_NOUNS)})s?$", re.IGNORECASE)
# "Jane Doe am 21. April 2020", "Jane Doe on Monday", "Tomas Spahn Fr, 3. Mai": the date after a name
_DATE_TAIL = re.compile(
    r"\s+(?:(?:am|on|le|el|il|den)\s+.*|(?:mo|di|mi|do|fr|sa|so|mon|tue|wed|thu|fri|sat|sun)\.?,?\s*(?:\d.*)?|\S*\d.*)$",
    re.IGNORECASE,
)
# German bylines put the role after the name ("Christoph Hein Chefredakteur")
_TRAILING_ROLE = re.compile(r"\s+(?:chef)?(?:redakteur|reporter|korrespondent|autor)(?:in)?$", re.IGNORECASE)
_PAREN = re.compile(r"\s*[(\[][^)\]]*(?:[)\]]|$)")
_NOT_NAMES = {
    "by",
    "von",
    "por",
    "par",
    "de",
    "and",
    "und",
    "image",
    "images",
    "photo",
    "foto",
    "admin",
    "administrator",
    "staff",
    "editor",
    "editors",
    "unknown",
    "null",
    "none",
    "guest",
    "anonymous",
    "name",
    "author",
    "authors",
    "autor",
    "autoren",
    "auteur",
    "auteurs",
}


def clean_authors(values: Iterable[str], site_name: str | None = None, roles: bool = False) -> list[str]:
    """Names from bylines; `roles` keeps a credit that names no person ("Redaktion", "Staff Writer")."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        v = clean_space(_unescape(value))
        if not v or v.startswith(("http://", "https://")):
            continue
        v = _BYLINE_PREFIX.sub("", _PAREN.sub(" ", v))
        # A byline that carries its date ("Jane Doe, 4 March 2024") loses the date part in the split.
        for part in _SPLIT.split(v):
            name = _BYLINE_PREFIX.sub("", part.strip(" \t.,:;-–—·•*\"'()[]"))
            name = _DATE_TAIL.sub("", _ROLE_TAIL.sub("", name))
            name = _TRAILING_ROLE.sub("", name).strip(" .,:;-–—·•*\"'()[]")
            if not name or len(name) < 2 or _JUNK.search(name):
                continue
            if len(name.split()) > 5 or name.lower() in _NOT_NAMES or (_ROLE.match(name) and not roles):
                continue
            k = name.casefold()
            if k not in seen:
                seen.add(k)
                out.append(name)
    if site_name and len(out) > 1:
        # The publisher listed beside real people is not an author.
        out = [a for a in out if key(a) != key(site_name)] or out
    return out


def language_code(value: str | None) -> str | None:
    if not value:
        return None
    v = value.strip().replace("_", "-").lower()
    primary = v.split("-", 1)[0]
    if re.fullmatch(r"[a-z]{2,3}", primary) and primary not in {"x", "und", "mul", "zxx"}:
        return primary
    return None


# --- extraction ---------------------------------------------------------------------------------


def _node_text(el: HtmlElement) -> str:
    return clean_space(el.text_content() or "")


# trafilatura's author selectors (trafilatura.xpaths.AUTHOR_XPATHS, in its order of trust), matched in
# Python on the page's elements with a class or id (a cached test of the class string) and the few
# author-marked ones without: its own XPath regex tests, and a 25-term contains() XPath, took 5-9 ms a page.
_AUTHOR_MARKED = etree.XPath(
    "//*[@rel='author' or contains(@itemprop,'author') or contains(@data-component,'Byline')"
    " or @data-testid='AuthorCard' or @data-testid='AuthorURL'] | //author"
)
_AUTHORISH = re.compile(
    r"uthor|yline|riter|screenname|username|\bbyl\b|BBL|channel-name|journalist-name|submitted-by|posted-by|"
    r"zuozhe|bianji|xiaobian"
)


@lru_cache(maxsize=16384)
def _authorish(names: str) -> bool:
    return _AUTHORISH.search(names) is not None


_TIER1_CLASS = re.compile(r"author-?name|AuthorName|authorName")
_TIER2_ID = re.compile(r"author|zuozhe|bianji|xiaobian")
_TIER2_CLASS = re.compile(r"author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name")
_TIER3_ID = re.compile(r"[Aa]uthor")
_TIER3_CLASS = re.compile(r"[Aa]uthor|screenname|writer|[Bb]yline")
_DISCARD_ID = re.compile(r"^comments|comment-?list|ProductReviews")
_DISCARD_CLASS = re.compile(
    r"^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|article-(?:share|support)|"
    r"print|category|meta-date|meta-reviewer"
)


def _author_tier(el: HtmlElement) -> int:
    """1-3 as in trafilatura's selectors (1 most specific), 0 for none."""
    tag, cls, eid, itemprop = el.tag, el.get("class") or "", el.get("id") or "", el.get("itemprop") or ""
    if tag == "author" or (
        tag in ("a", "address", "div", "link", "p", "span", "strong")
        and (
            el.get("rel") == "author"
            or eid == "author"
            or cls == "author"
            or itemprop == "author name"
            or el.get("data-testid") in ("AuthorCard", "AuthorURL")
            or _TIER1_CLASS.search(cls)
        )
    ):
        return 1
    if tag in ("a", "div", "h3", "h4", "p", "span") and (
        cls in ("byline", "username", "byl", "BBL")
        or "author" in itemprop
        or _TIER2_ID.search(eid)
        or _TIER2_CLASS.search(cls)
    ):
        return 2
    if (
        "Byline" in (el.get("data-component") or "")
        or "author" in itemprop
        or _TIER3_ID.search(eid)
        or _TIER3_CLASS.search(cls)
    ):
        return 3
    return 0


def _author_discarded(el: HtmlElement) -> bool:
    """In comments, a sidebar, a quote, a <time> or a <figure> (trafilatura's AUTHOR_DISCARD_XPATHS)."""
    for a in (el, *el.iterancestors()):
        if a.tag in ("time", "figure"):
            return True
        if a.tag in ("a", "div", "section", "span"):
            cls, eid = a.get("class") or "", a.get("id") or ""
            if eid == "comments" or cls in ("comments", "title", "date") or "Figure" in (a.get("data-component") or ""):
                return True
            if (eid and _DISCARD_ID.search(eid)) or (cls and _DISCARD_CLASS.search(cls)):
                return True
    return False


def _byline_candidates(tree: HtmlElement, named: list[HtmlElement] | None = None) -> list[str]:
    """The first byline the markup gives, in trafilatura's order of author selectors (rel/itemprop/
    author-name first, then byline and author classes), outside comments, sidebars and figures."""
    tiers: dict[int, list[HtmlElement]] = {1: [], 2: [], 3: []}
    named = chrome.attributed(tree) if named is None else named
    found = [el for el in named if _authorish(chrome.attrs(el))]
    seen = set(found)
    found += [el for el in _AUTHOR_MARKED(tree) if el not in seen]
    found.sort(key=lambda e: e.sourceline or 0)  # stable: document order within a line
    for el in found:
        if isinstance(el.tag, str) and el.tag not in ("meta", "link") and (tier := _author_tier(el)):
            tiers[tier].append(el)
    for tier in (1, 2, 3):
        for el in tiers[tier]:
            if _author_discarded(el):
                continue
            names = el.xpath('.//*[@itemprop="name"]')
            if names:
                return [t for n in names if (t := (n.get("content") or _node_text(n)))]
            # itertext with spaces: "Veröffentlicht von<a>Chris Jung</a>" is two words, not "vonChris"
            t = clean_space(" ".join(el.itertext()))
            if 2 < len(t) < 120:
                return [t]
    return []


def _ld_authors(ld: dict[str, Any], objs: list[dict[str, Any]]) -> list[str]:
    # Yoast and other graphs name the author by reference: {"@id": ".../#/schema/person/..."}
    by_id = {o["@id"]: o for o in objs if isinstance(o.get("@id"), str)}
    out: list[str] = []
    for a in _as_list(ld.get("author")) + _as_list(ld.get("creator")):
        if isinstance(a, dict):
            if "name" not in a and isinstance(a.get("@id"), str):
                a = by_id.get(a["@id"], a)
            if _types(a) & {"organization", "newsmediaorganization"} and out:
                continue
            if n := _text(a.get("name")):
                out.append(n)
        elif isinstance(a, str):
            out.append(a)
    return out


def _authors(
    tree: HtmlElement,
    meta: dict[str, list[str]],
    ld: dict[str, Any],
    objs: list[dict[str, Any]],
    site_name: str | None,
    url: str,
    named: list[HtmlElement] | None = None,
) -> list[str]:
    """People first: JSON-LD, <meta>, then the byline in the markup. A publisher named as the author
    gives way to people named further down; a newsroom credit ("Redaktion") is kept when nobody is."""
    sources = (
        lambda: _ld_authors(ld, objs),
        lambda: meta.get("author", []) + meta.get("article:author", []),
        lambda: (
            meta.get("parsely-author", [])
            + meta.get("sailthru.author", [])
            + meta.get("dc.creator", [])
            + meta.get("byl", [])
        ),
        lambda: _byline_candidates(tree, named),
    )
    fallback: list[str] = []
    seen: list[list[str]] = []
    for source in sources:
        values = source()
        seen.append(values)
        authors = clean_authors(values, site_name)
        if authors and all(_is_publisher(a, site_name, url) for a in authors):
            # "author" = the site itself: a byline further down may name the people
            fallback = fallback or authors
            continue
        if authors and fallback and not all(len(a.split()) >= 2 for a in authors):
            continue  # replacing the publisher needs full names, not fragments of a dateline
        if authors:
            return authors
    if fallback:
        return fallback
    return next((a for values in seen if (a := clean_authors(values, site_name, roles=True))), [])


def _is_publisher(name: str, site_name: str | None, url: str) -> bool:
    k = key(name).replace(" ", "")
    if not k:
        return True
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    site = key(site_name or "").replace(" ", "")
    return "." in name or (bool(site) and (k in site or site in k)) or k in host.replace(".", "").replace("-", "")


def _h1(tree: HtmlElement, tags: tuple[str, ...] = ("h1",)) -> str | None:
    for h in tree.iter(*tags):
        t = _node_text(h)
        if 2 <= len(t.split()) <= 40:
            return t
    return None


def extract_metadata(tree: HtmlElement, url: str, named: list[HtmlElement] | None = None) -> Metadata:
    """`named`: the page's elements with a class or id (chrome.attributed), when the caller has them."""
    meta = meta_tags(tree)
    objs = json_ld(tree)
    article = next((o for o in objs if _types(o) & ARTICLE_TYPES), None)
    page = next((o for o in objs if _types(o) & PAGE_TYPES), None)
    ld = article or page or {}
    md = Metadata()

    # site name first: titles are cleaned with it
    publisher = ld.get("publisher")
    md.site_name = _first(meta, "og:site_name", "application-name", "twitter:app:name:iphone") or _text(publisher)
    if not md.site_name:
        site = next((o for o in objs if _types(o) & {"website", "newsmediaorganization", "organization"}), None)
        md.site_name = _text(site.get("name")) if site else None
    md.section = _text(ld.get("articleSection")) or _first(
        meta, "article:section", "parsely-section", "section", "sailthru.section", "og:section"
    )
    site = titles.site_of(url, md.site_name, _text(publisher), md.section)
    title_tag = next((clean_space(t.text_content()) for t in tree.iter("title")), None)
    seo = [
        _text(ld.get("headline")) if article else None,
        _first(meta, "og:title", "twitter:title", "dc.title", "title"),
        _text(ld.get("name")) if article else None,
    ]
    md.title = titles.choose(tree, site, seo, title_tag, _first(meta, "og:description", "description"))
    # a page without <title>, <meta> or <h1> (a fragment of a document): its first sub-heading
    md.title = md.title or _h1(tree, ("h2", "h3"))
    md.authors = _authors(tree, meta, ld, objs, md.site_name, url, named)
    md.published, md.modified = _dates(tree, meta, ld, url)
    _describe(md, meta, ld, url)
    md.language, md.language_source = _declared_language(tree, meta, ld)
    return md


def _dates(
    tree: HtmlElement, meta: dict[str, list[str]], ld: dict[str, Any], url: str
) -> tuple[Dated | None, Dated | None]:
    published_times, modified_times = _time_elements(tree)
    published = _date(
        [(v, "meta") for v in meta.get("article:published_time", ())]
        + [(ld.get("datePublished"), "json-ld"), (ld.get("dateCreated"), "json-ld")]
        + [(v, "meta") for n in _PUBLISHED_META for v in meta.get(n, ())]
        + [(t, "html") for t in published_times],
    )
    modified = _date(
        [(ld.get("dateModified"), "json-ld")]
        + [(v, "meta") for n in _MODIFIED_META for v in meta.get(n, ())]
        + [(t, "html") for t in modified_times],
    )
    if published is None and (d := date_from_url(url)):
        published = Dated(d, "url")
    return published, modified


def _describe(md: Metadata, meta: dict[str, list[str]], ld: dict[str, Any], url: str) -> None:
    """Tags, description, top image and the JSON-LD image captions."""
    tags: list[str] = []
    for v in (
        _strings(ld.get("keywords"))
        + meta.get("article:tag", [])
        + meta.get("news_keywords", [])
        + meta.get("parsely-tags", [])
        + meta.get("keywords", [])
    ):
        tags.extend(t for t in (clean_space(x) for x in re.split(r"[,;]", v)) if t)
    md.tags = _dedupe(tags)[:50]
    md.description = _first(meta, "og:description", "description", "twitter:description", "dc.description") or _text(
        ld.get("description")
    )
    img = _first(meta, "og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
    img = img or _image_url(ld.get("image")) or _image_url(ld.get("thumbnailUrl"))
    md.top_image = urljoin(url, img) if img else None
    for im in _as_list(ld.get("image")) + _as_list(ld.get("associatedMedia")):
        if isinstance(im, dict) and (cap := _text(im.get("caption") or im.get("description"))):
            u = _image_url(im)
            credit = _text(im.get("creditText") or im.get("copyrightHolder"))
            md.images.append((urljoin(url, u) if u else None, cap, credit))


def _declared_language(
    tree: HtmlElement, meta: dict[str, list[str]], ld: dict[str, Any]
) -> tuple[str | None, str | None]:
    html_el = tree if tree.tag == "html" else next(iter(tree.iter("html")), None)
    for value, source in (
        (html_el.get("lang") or html_el.get("xml:lang") if html_el is not None else None, "html"),
        (_first(meta, "content-language", "language", "dc.language", "og:locale"), "meta"),
        (_text(ld.get("inLanguage")), "json-ld"),
    ):
        if code := language_code(value):
            return code, source
    return None, None


_PUBLISHED_META = (
    "article:published_time",
    "og:published_time",
    "article:published",
    "datepublished",
    "publishdate",
    "publish-date",
    "pubdate",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date.issued",
    "dcterms.created",
    "dc.date",
    "date",
    "article.published",
    "published_time",
    "cxenseparse:recs:publishtime",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:updated_time",
    "article:modified",
    "datemodified",
    "last-modified",
    "dcterms.modified",
    "lastmod",
)


def _time_elements(tree: HtmlElement) -> tuple[list[str], list[str]]:
    """<time datetime> values labelled as the publication and as the modification date, nearest to the
    headline first: teaser lists around an article carry their own dates. With no label, the first
    <time> is the publication date."""
    times = [t for t in tree.iter("time") if t.get("datetime") and not _in_teaser(t)]
    h1 = next(tree.iter("h1"), None)
    if h1 is not None and len(times) > 1:
        line = h1.sourceline or 0
        times.sort(key=lambda t: abs((t.sourceline or 0) - line))
    published: list[str] = []
    modified: list[str] = []
    for t in times:
        label = f"{t.get('itemprop') or ''} {t.get('class') or ''} {'pubdate' if t.get('pubdate') is not None else ''}"
        label = label.lower()
        if any(w in label for w in ("datepublished", "published", "pubdate", "publish")):
            published.append(t.get("datetime", ""))
        if any(w in label for w in ("datemodified", "updated", "modified")):
            modified.append(t.get("datetime", ""))
    if not published and times:
        published = [times[0].get("datetime", "")]
    return published, modified


def _in_teaser(t: HtmlElement) -> bool:
    """A date in a list item, in a link, beside a link that reads like a headline, or in a related-stories
    box or sidebar: another article's."""
    for i, a in enumerate(t.iterancestors()):
        if (i < 3 and a.tag in ("li", "a")) or (a.tag not in ("html", "body") and chrome.is_hard_chrome(a)):
            return True
    parent = t.getparent()
    return parent is not None and any(len(_node_text(a).split()) >= 4 for a in parent.iter("a"))


_OFFSET = re.compile(r"[+-](?!00:?00)\d{2}:?\d{2}\s*$")


def _date(candidates: list[tuple[Any, str]]) -> Dated | None:
    """The first usable candidate; told in the page's own time zone when another source gives the same
    instant with an offset (a UTC timestamp in <meta> beside "-03:00" in JSON-LD): its day is the page's."""
    first: Dated | None = None
    for value, source in candidates:
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or (first is not None and not (isinstance(value, str) and _OFFSET.search(value))):
            continue  # after a UTC first, only a value written with another offset can tell the page's zone
        if (dt := parse_date(value)) is None:
            continue
        if first is None:
            first = Dated(dt, source)
            if dt.utcoffset():
                return first
        elif dt.utcoffset() and abs((dt - first.value).total_seconds()) < 60:
            return Dated(dt, first.source)
    return first


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        k = i.casefold()
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out
