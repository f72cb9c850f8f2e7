"""What a message says, once, and how each channel spells it (plain text, HTML, Slack mrkdwn, Markdown,
Telegram HTML, Teams Adaptive Card, the webhook's JSON)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newsflow_alerting.state import DigestMeta, Story
from newsflow_shared.models import Alert

# Highlighted terms come from Elasticsearch between these marks (newsflow_search.query.HIGHLIGHT).
HL_OPEN, HL_CLOSE = "«", "»"


@dataclass
class Item:
    """One story in a message."""

    title: str
    url: str
    published_at: datetime | None
    snippet: str | None
    domain: str | None
    also: list[tuple[str, str]] = field(default_factory=list)  # (outlet, url) of the other reports
    copies: int = 0  # syndicated copies at other URLs


@dataclass
class Content:
    kind: str  # alert | digest
    rule_name: str
    query: str
    subject: str
    intro: str | None
    items: list[Item]


def _item(alert: Alert, story: Story | None) -> Item:
    also = [(m.domain or m.url, m.url) for m in (story.also if story else [])]
    return Item(
        title=alert.title or alert.url,
        url=alert.url,
        published_at=alert.published_at,
        snippet=alert.snippet,
        domain=alert.domain,
        also=also,
        copies=len(alert.duplicates),
    )


def alert_content(alert: Alert, story: Story | None) -> Content:
    item = _item(alert, story)
    return Content("alert", alert.rule_name, alert.query, f"{alert.rule_name}: {item.title}", None, [item])


def digest_content(meta: DigestMeta, stories: list[Story], query: str) -> Content:
    newest_first = sorted(stories, key=lambda s: s.alert.published_at or s.first_at, reverse=True)
    items = [_item(s.alert, s) for s in newest_first]
    since = f" since {_when(meta.start)}" if meta.start else ""
    n = f"{len(items)} {'story' if len(items) == 1 else 'stories'}"
    intro = f"{n}{since}, newest first."
    if meta.storm:
        intro = (
            f"Storm guard: '{meta.rule_name}' matched more than {meta.storm_max} new stories within "
            f"{meta.storm_within} minutes, so it sends a digest every {meta.storm_within} minutes instead of one "
            f"message per story, until it is quiet again. {intro}"
        )
    if meta.storm_over:
        intro += " The rule is quiet again: back to one message per story."
    return Content("digest", meta.rule_name, query, f"{meta.rule_name}: digest, {n}{since}", intro, items)


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "date unknown"


def _also_text(item: Item) -> str | None:
    parts = []
    if item.also:
        parts.append("also reported by " + ", ".join(dict.fromkeys(o for o, _u in item.also)))
    if item.copies:
        parts.append(f"published at {item.copies} other URL(s)")
    return "; ".join(parts) or None


def _plain_snippet(s: str) -> str:
    return s.replace(HL_OPEN, "").replace(HL_CLOSE, "")


# --- text ------------------------------------------------------------------------------------------


def text(c: Content) -> str:
    lines = [f"Newsflow alert rule '{c.rule_name}' ({c.query})", ""]
    if c.intro:
        lines += [c.intro, ""]
    for it in c.items:
        lines.append(f"* {it.title}")
        lines.append(f"  {it.url}")
        lines.append(f"  {it.domain or ''} {_when(it.published_at)}".rstrip())
        if it.snippet:
            lines.append(f'  "{_plain_snippet(it.snippet)}"')
        if also := _also_text(it):
            lines.append(f"  {also}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def html_body(c: Content) -> str:
    e = html.escape
    parts = [f"<p>Newsflow alert rule <b>{e(c.rule_name)}</b> (<code>{e(c.query)}</code>)</p>"]
    if c.intro:
        parts.append(f"<p>{e(c.intro)}</p>")
    parts.append("<ul>")
    for it in c.items:
        snippet = ""
        if it.snippet:
            marked = e(it.snippet).replace(HL_OPEN, "<b>").replace(HL_CLOSE, "</b>")
            snippet = f"<br><i>{marked}</i>"
        also = f"<br><small>{e(a)}</small>" if (a := _also_text(it)) else ""
        parts.append(
            f'<li><a href="{e(it.url, quote=True)}">{e(it.title)}</a> '
            f"<small>{e(it.domain or '')} {e(_when(it.published_at))}</small>{snippet}{also}</li>"
        )
    parts.append("</ul>")
    return "<html><body>" + "\n".join(parts) + "</body></html>"


# --- chat services ---------------------------------------------------------------------------------


def _limit(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def slack(c: Content) -> dict[str, Any]:
    """Slack's incoming webhook: `{"text": mrkdwn}`."""

    def esc(s: str) -> str:  # Slack's three control characters
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    lines = [f"*{esc(c.rule_name)}* (`{esc(c.query)}`)"]
    if c.intro:
        lines.append(esc(c.intro))
    for it in c.items:
        title = esc(it.title).replace("|", "/")
        lines.append(f"• <{it.url}|{title}> — {esc(it.domain or '')} {_when(it.published_at)}")
        if it.snippet:
            lines.append("> " + esc(it.snippet).replace(HL_OPEN, "*").replace(HL_CLOSE, "*"))
        if also := _also_text(it):
            lines.append(f"_{esc(also)}_")
    return {"text": _limit("\n".join(lines), 39_000)}


def markdown(c: Content, limit: int) -> str:
    lines = [f"**{c.rule_name}** (`{c.query}`)"]
    if c.intro:
        lines.append(c.intro)
    for it in c.items:
        lines.append(f"- [{it.title}](<{it.url}>) {it.domain or ''} {_when(it.published_at)}")
        if it.snippet:
            lines.append("  > " + it.snippet.replace(HL_OPEN, "**").replace(HL_CLOSE, "**"))
        if also := _also_text(it):
            lines.append(f"  _{also}_")
    return _limit("\n".join(lines), limit)


def discord(c: Content) -> dict[str, Any]:
    """Discord's webhook: `{"content": markdown}` of at most 2,000 characters; no @mentions parsed."""
    return {"content": markdown(c, 2000), "allowed_mentions": {"parse": []}}


def teams(c: Content) -> dict[str, Any]:
    """A Teams incoming webhook (Workflows): a message with one Adaptive Card."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": c.subject, "wrap": True}
    ]
    if c.intro:
        body.append({"type": "TextBlock", "text": c.intro, "wrap": True})
    for it in c.items:
        body.append({"type": "TextBlock", "text": f"[{it.title}]({it.url})", "wrap": True, "separator": True})
        meta = f"{it.domain or ''} {_when(it.published_at)}"
        if also := _also_text(it):
            meta += f" · {also}"
        body.append({"type": "TextBlock", "text": meta, "isSubtle": True, "size": "Small", "wrap": True})
        if it.snippet:
            body.append({"type": "TextBlock", "text": _plain_snippet(it.snippet), "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def telegram(c: Content, chat_id: str) -> dict[str, Any]:
    """Telegram's sendMessage with HTML formatting, at most 4,096 characters."""
    e = html.escape
    lines = [f"<b>{e(c.rule_name)}</b> (<code>{e(c.query)}</code>)"]
    if c.intro:
        lines.append(e(c.intro))
    for it in c.items:
        lines.append(f'• <a href="{e(it.url, quote=True)}">{e(it.title)}</a> {e(it.domain or "")}')
        if it.snippet:
            lines.append("<i>" + e(_plain_snippet(it.snippet)) + "</i>")
        if also := _also_text(it):
            lines.append(e(also))
    body = "\n".join(lines)
    if len(body) > 4096:  # cut on a line, so that no tag is left open
        body = "\n".join(lines[:1]) + "\n" + e(f"{len(c.items)} stories: too many to list here")
    return {"chat_id": chat_id, "text": body, "parse_mode": "HTML", "disable_web_page_preview": True}
