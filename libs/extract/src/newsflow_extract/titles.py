"""The article's title: the headline the page shows, without the site's or the section's name.

Evidence, not guesses: a segment of "Headline | Site" is dropped only when something names it as the
site (og:site_name, the publisher, the domain, the logo's <h1>) or the section; an <h1> that the
page's <title> or og:title repeats (alone or with such segments) is the headline; the logo, a menu
label or the site's name is never the title; a sub-headline the SEO title joins to the headline,
and that the page prints, stays joined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lxml import etree
from lxml.html import HtmlElement

from newsflow_extract.textutil import clean_space, key

# Separators between the parts of "Headline | Section | Site"; a colon belongs to headlines.
_SEPARATOR = re.compile(r"\s+(?:[|–—·•»«~/]{1,2}|-{1,2}|::)\s+")
_DOMAIN_LIKE = re.compile(r"^[\w-]+(?:\.[\w-]+)*\.[a-z]{2,6}$", re.IGNORECASE)
# <h1> that holds the site's logo or a menu label, not the article's headline
_SITE_H1 = re.compile(r"site[-_]?(?:title|name|logo)|logo|brand|masthead|sr-only|screen-reader|menu|toggle", re.I)
_GENERIC_HOSTS = frozenset(("www", "m", "mobile", "amp", "news", "blog", "blogs"))


@dataclass
class Site:
    """What names the site (and the section) on this page, as comparison keys without spaces."""

    names: set[str] = field(default_factory=set)
    section: str | None = None
    url: str = ""

    def add(self, name: str | None) -> None:
        if name and (k := _squash(name)):
            self.names.add(k)

    def is_name(self, text: str) -> bool:
        """The whole text is the site's (or the section's) name."""
        k = _squash(text)
        return not k or k in self.names or k == self.section or bool(_DOMAIN_LIKE.match(text.strip()))

    def names_it(self, segment: str) -> bool:
        """A segment of a title that names the site or the section."""
        k = _squash(segment)
        if not k:
            return True
        if _DOMAIN_LIKE.match(segment.strip()) or (self.section and k == self.section):
            return True
        return any(k == s or (len(s) >= 4 and s in k) or (len(k) >= 4 and k in s) for s in self.names)


def _squash(s: str) -> str:
    return key(s).replace(" ", "")


def site_of(url: str, site_name: str | None, publisher: str | None, section: str | None) -> Site:
    site = Site(section=_squash(section) if section else None, url=url)
    site.add(site_name)
    site.add(publisher)
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        host = ""
    labels = [part for part in host.split(".")[:-1] if part not in _GENERIC_HOSTS]
    for label in labels[-1:]:  # "hildesheimer-presse" of hildesheimer-presse.de
        site.add(label)
    return site


def segments(title: str) -> list[str]:
    return [s for s in _SEPARATOR.split(title) if s.strip()]


def strip_site(title: str | None, site: Site) -> str | None:
    """The title without the leading and trailing segments that name the site or the section."""
    if not title:
        return None
    t = clean_space(title)
    parts = _SEPARATOR.split(t)
    seps = _SEPARATOR.findall(t)
    lo, hi = 0, len(parts)
    while hi - lo > 1 and site.names_it(parts[hi - 1]):
        hi -= 1
    while hi - lo > 1 and site.names_it(parts[lo]):
        lo += 1
    kept = parts[lo]
    for i in range(lo + 1, hi):
        kept += seps[i - 1] + parts[i]
    return kept.strip() or None


def _confirms(seo: str, headline: str, site: Site) -> bool:
    """The SEO title is the headline, alone or beside other segments (site, section). A one-word
    <h1> ("News", "detail") must be all of it: as one segment among others it is a section's name."""
    h = key(headline)
    if len(h.split()) < 2:
        return h == key(strip_site(seo, site) or "")
    parts = [key(p) for p in segments(seo)]
    return any(" ".join(parts[i:j]) == h for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))


def headlines(tree: HtmlElement, site: Site) -> tuple[list[HtmlElement], list[str]]:
    """The page's <h1>s: (headline elements, texts of logos and menu labels)."""
    heads: list[HtmlElement] = []
    logos: list[str] = []
    for h in list(tree.iter("h1"))[:8]:
        t = _text(h)
        if not t or len(t.split()) > 40:
            continue
        names = f"{h.get('class') or ''} {h.get('id') or ''}"
        home = any((a.get("rel") or "") == "home" or _is_home(a.get("href")) for a in h.iter("a"))
        if _SITE_H1.search(names) or home or site.is_name(t):
            logos.append(t)
        else:
            heads.append(h)
    return heads, logos


def _text(el: HtmlElement) -> str:
    # itertext with spaces: "<h1>Headline<span>Sub</span></h1>" is not one glued word
    return clean_space(" ".join(el.itertext()))


# Links to the home page, by equality tests that libxml2 runs fast: a page has hundreds of links.
_HOME_LINKS = etree.XPath(
    "//a[@rel='home' or @href='/' or @href=$a or @href=$b or @href=$c or @href=$d or @href=$e or @href=$f]"
)


def home_links(tree: HtmlElement, url: str = "", limit: int = 5) -> list[str]:
    """What the links to the home page say (the logo's text or its image's alt): the site's name."""
    out: list[str] = []
    for a in _HOME_LINKS(tree, **_roots(url)):
        if _is_home(a.get("href")) or a.get("rel") == "home":
            t = _text(a) or next((img.get("alt") or "" for img in a.iter("img")), "")
            if t and len(t.split()) <= 6:
                out.append(t)
                if len(out) >= limit:
                    break
    return out


def _roots(url: str) -> dict[str, str]:
    """The six spellings of the site's root URL the XPath above compares hrefs with."""
    try:
        host = (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        host = ""
    if not host:
        return dict.fromkeys("abcdef", "/")
    spellings = [
        f"{scheme}://{www}{host}{end}" for scheme in ("https", "http") for www in ("", "www.") for end in ("/",)
    ]
    return dict(zip("abcdef", [*spellings, f"https://{host}", f"https://www.{host}"], strict=True))


def _is_home(href: str | None) -> bool:
    if not href or href.startswith("#"):
        return False
    try:
        parts = urlsplit(href.strip())
    except ValueError:  # "//[ccpa-preferences]": not a URL at all
        return False
    return parts.path in ("", "/") and not parts.query and (bool(parts.netloc) or href.strip() == "/")


def choose(
    tree: HtmlElement, site: Site, seo: list[str | None], title_tag: str | None, description: str | None
) -> str | None:
    """seo: the JSON-LD headline, og:title (or twitter/dc), the JSON-LD name, in that order."""
    heads, logos = headlines(tree, site)
    for logo in logos + home_links(tree, site.url):
        site.add(logo)
    raw = [s for s in [*seo, title_tag] if s]
    for r in raw:  # og:title and JSON-LD before <title>, whose segments are often sections
        for h in heads:
            if _confirms(r, _text(h), site):
                return _joined(h, raw, site)
    near = heads[0] if heads else None
    cleaned = [_strip_tail(near, strip_site(s, site)) for s in [*seo, title_tag]]
    texts = [_text(h) for h in heads]
    ordered = [*cleaned[:-1], *(t for t in texts if len(t.split()) > 1), cleaned[-1], *texts]
    skip = {key(description)} if description else set()
    for c in ordered:
        if c and not site.is_name(c) and key(c) not in skip:
            return c
    return next((c for c in ordered if c), None)


def _strip_tail(headline: HtmlElement | None, title: str | None) -> str | None:
    """A short last segment no evidence names ("… - Panorama", "… | Recht") is a section or a site
    unless the page prints it as the sub-headline."""
    if not title:
        return None
    parts = segments(title)
    tail = parts[-1].split() if parts else []
    if len(parts) < 2 or len(tail) > 2 or len(" ".join(parts[:-1]).split()) < 3:
        return title
    if not all(w[:1].isupper() or not w[:1].isalpha() for w in tail):
        return title  # "– ein Projekt", "– die Dritte": the headline goes on
    if headline is not None and _beside(headline, key(parts[-1])):
        return title
    return title[: title.rfind(parts[-1])].rstrip(" |–—·•»«~/-:").strip() or title


def _joined(headline: HtmlElement, raw: list[str], site: Site) -> str:
    """ "Headline: Sub-headline" when an SEO title joins the two and the page prints the sub-headline
    beside the headline."""
    text = _text(headline)
    h = key(text)
    for r in raw:
        joined = strip_site(r, site) or ""
        k = key(joined)
        rest = k[len(h) :].strip() if k.startswith(h + " ") else ""
        if len(rest.split()) >= 3 and _beside(headline, rest):
            return joined
    return text


def _beside(headline: HtmlElement, text_key: str) -> bool:
    """The page prints this text as an element of its own next to the headline (in its header)."""
    box = headline.getparent()
    for _ in range(2):
        if box is None:
            return False
        for el in box.iter("h2", "h3", "p", "div", "span"):
            t = el.text_content() or ""
            if len(t) < 400 and key(t) == text_key:
                return True
        box = box.getparent()
    return False
