"""OPML 1.0/2.0 feed lists, as feed readers import and export them."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from lxml import etree


class OpmlError(ValueError):
    pass


def parse_opml(text: str | bytes) -> list[dict[str, Any]]:
    """Every outline with an `xmlUrl`, however deep in categories; duplicates once."""
    return parse_opml_sources(text)[0]


def parse_opml_sources(text: str | bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(feeds, sites): outlines with an `xmlUrl` are sources (`type="sitemap"` a sitemap, else a feed);
    outlines with only an `htmlUrl` (or a `url`) are sites whose feeds are to be discovered."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        raise OpmlError(f"not an OPML document: {e}") from e
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise OpmlError("not an OPML document (no <opml> root)")
    out: list[dict[str, Any]] = []
    sites: list[dict[str, Any]] = []
    seen: set[str] = set()
    for el in root.iter("outline"):
        url = (el.get("xmlUrl") or el.get("xmlurl") or "").strip()
        title = (el.get("title") or el.get("text") or "").strip() or None
        if not url:
            site = (el.get("htmlUrl") or el.get("htmlurl") or el.get("url") or "").strip()
            if site and site not in seen and site.lower().startswith(("http://", "https://")):
                seen.add(site)
                sites.append({"url": site, "title": title})
            continue
        if url in seen:
            continue
        seen.add(url)
        row: dict[str, Any] = {"url": url, "title": title, "interval": None}
        if (el.get("type") or "").strip().lower() == "sitemap":
            row["kind"] = "sitemap"
        out.append(row)
    return out, sites


def write_opml(rows: list[dict[str, Any]], title: str = "Newsflow feeds") -> str:
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC), usegmt=True)
    body = etree.SubElement(root, "body")
    for r in rows:
        label = r.get("title") or r["url"]
        kind = "sitemap" if r.get("kind") == "sitemap" else "rss"
        etree.SubElement(body, "outline", type=kind, text=label, title=label, xmlUrl=r["url"])
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode("utf-8")
