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
    data = text.encode("utf-8") if isinstance(text, str) else text
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        raise OpmlError(f"not an OPML document: {e}") from e
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise OpmlError("not an OPML document (no <opml> root)")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for el in root.iter("outline"):
        url = (el.get("xmlUrl") or el.get("xmlurl") or "").strip()
        if not url or url in seen:
            continue
        seen.add(url)
        title = (el.get("title") or el.get("text") or "").strip() or None
        out.append({"url": url, "title": title, "interval": None})
    return out


def write_opml(rows: list[dict[str, Any]], title: str = "Newsflow feeds") -> str:
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC), usegmt=True)
    body = etree.SubElement(root, "body")
    for r in rows:
        label = r.get("title") or r["url"]
        etree.SubElement(body, "outline", type="rss", text=label, title=label, xmlUrl=r["url"])
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode("utf-8")
