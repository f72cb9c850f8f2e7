"""Rendering of the demo site: CMS-like article pages (with all the chrome an extractor must drop),
RSS 2.0 with media RSS, Atom, JSON Feed 1.1, an OPML list, robots.txt and a front page."""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import format_datetime
from html import escape
from xml.sax.saxutils import escape as xesc
from xml.sax.saxutils import quoteattr

from newsflow_devtools.demo.corpus import FEEDS, DemoArticle, DemoFeed, slugify

SITE_NAME = "The Demo Courier"
SECTIONS = (
    "Politics",
    "World",
    "Business",
    "Technology",
    "Science",
    "Health",
    "Environment",
    "Sport",
    "Culture",
    "Local",
)

# Page chrome per language: the parts a reader sees around every story.
CHROME = {
    "en": {
        "by": "By",
        "updated": "Updated",
        "share": "Share this article",
        "copy": "Copy link",
        "like": "Do you like this article?",
        "yes": "Yes",
        "no": "No",
        "comments": "0 Comment(s)",
        "policy": "Comment Policy",
        "required": "* Denotes Required Field",
        "name": "Name *",
        "email": "Email *",
        "comment": "Comment *",
        "post": "Post comment",
        "related": "Related stories",
        "read_also": "Read also",
        "most_read": "Most read",
        "tags": "Topics",
        "cookie": "We use cookies to remember your preferences and to measure how our site is used. "
        "You can accept all cookies or choose which ones to allow.",
        "accept": "Accept all",
        "manage": "Manage preferences",
        "newsletter": "Get the morning briefing in your inbox",
        "subscribe": "Subscribe",
        "home": "Home",
    },
    "fr": {
        "by": "Par",
        "updated": "Mis à jour",
        "share": "Partager cet article",
        "copy": "Copier le lien",
        "like": "Vous avez aimé cet article ?",
        "yes": "Oui",
        "no": "Non",
        "comments": "0 commentaire(s)",
        "policy": "Charte des commentaires",
        "required": "* Champ obligatoire",
        "name": "Nom *",
        "email": "Courriel *",
        "comment": "Commentaire *",
        "post": "Publier",
        "related": "À lire aussi",
        "read_also": "Lire aussi",
        "most_read": "Les plus lus",
        "tags": "Thèmes",
        "cookie": "Nous utilisons des cookies pour mémoriser vos préférences et mesurer l'audience du site.",
        "accept": "Tout accepter",
        "manage": "Paramétrer",
        "newsletter": "Recevez l'essentiel de l'actualité chaque matin",
        "subscribe": "S'abonner",
        "home": "Accueil",
    },
    "ar": {
        "by": "بقلم",
        "updated": "آخر تحديث",
        "share": "شارك المقال",
        "copy": "نسخ الرابط",
        "like": "هل أعجبك هذا المقال؟",
        "yes": "نعم",
        "no": "لا",
        "comments": "0 تعليق",
        "policy": "سياسة التعليقات",
        "required": "* حقل مطلوب",
        "name": "الاسم *",
        "email": "البريد الإلكتروني *",
        "comment": "التعليق *",
        "post": "أرسل التعليق",
        "related": "مقالات ذات صلة",
        "read_also": "اقرأ أيضا",
        "most_read": "الأكثر قراءة",
        "tags": "مواضيع",
        "cookie": "نستخدم ملفات تعريف الارتباط لتذكر تفضيلاتك وقياس استخدام الموقع.",
        "accept": "قبول الكل",
        "manage": "إدارة التفضيلات",
        "newsletter": "احصل على النشرة الصباحية في بريدك",
        "subscribe": "اشترك",
        "home": "الرئيسية",
    },
}


def iso(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def _human(d: datetime) -> str:
    return f"{d:%B} {d.day}, {d:%Y} {d:%H:%M} UTC"


def image_url(base_url: str, img: str) -> str:
    return f"{base_url}/images/{img}"


def _json_ld(a: DemoArticle, url: str, base_url: str) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
        "headline": a.title,
        "description": a.description,
        "datePublished": iso(a.published),
        "dateModified": iso(a.last_modified),
        "author": [{"@type": "Person", "name": a.author, "url": f"{base_url}/authors/{slugify(a.author)}"}],
        "publisher": {
            "@type": "Organization",
            "name": SITE_NAME,
            "logo": {"@type": "ImageObject", "url": f"{base_url}/images/logo.png"},
        },
        "image": [image_url(base_url, f.img) for f in a.figures],
        "articleSection": a.section,
        "inLanguage": a.lang,
        "keywords": list(a.tags),
    }
    # "</" inside a script element would end it early.
    return json.dumps(data, ensure_ascii=False, indent=1).replace("</", "<\\/")


def render_page(a: DemoArticle, corpus: list[DemoArticle], base_url: str) -> str:
    """The article's web page, as a news CMS would serve it."""
    c = CHROME.get(a.lang, CHROME["en"])
    url = base_url + a.path
    e = escape
    direction = "rtl" if a.lang == "ar" else "ltr"
    n = len(corpus)
    related = [corpus[(a.index + k) % n] for k in (1, 2, 3) if n > 1 and (a.index + k) % n != a.index]
    most_read = [corpus[(a.index * 7 + k) % n] for k in (5, 11) if n > 1 and (a.index * 7 + k) % n != a.index]
    first = a.figures[0] if a.figures else None

    head = [
        "<!DOCTYPE html>",
        f'<html lang="{e(a.lang)}" dir="{direction}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(a.title)} | {SITE_NAME}</title>",
        f'<meta name="description" content="{e(a.description)}">',
        f'<meta name="author" content="{e(a.author)}">',
        f'<link rel="canonical" href="{e(url)}">',
        f'<meta property="og:site_name" content="{SITE_NAME}">',
        '<meta property="og:type" content="article">',
        f'<meta property="og:title" content="{e(a.title)}">',
        f'<meta property="og:description" content="{e(a.description)}">',
        f'<meta property="og:url" content="{e(url)}">',
        f'<meta property="og:locale" content="{e(a.lang)}">',
    ]
    if first:
        head.append(f'<meta property="og:image" content="{e(image_url(base_url, first.img))}">')
    head += [
        f'<meta property="article:published_time" content="{iso(a.published)}">',
        f'<meta property="article:modified_time" content="{iso(a.last_modified)}">',
        f'<meta property="article:section" content="{e(a.section)}">',
        *(f'<meta property="article:tag" content="{e(t)}">' for t in a.tags),
        *(f'<link rel="alternate" type="{_mime(f)}" title="{e(f.title)}" href="{base_url}{f.path}">' for f in FEEDS),
        f'<link rel="stylesheet" href="{base_url}/static/site.css">',
        f'<script type="application/ld+json">{_json_ld(a, url, base_url)}</script>',
        "<script>window.dataLayer = window.dataLayer || []; "
        f"dataLayer.push({{'pageType': 'article', 'section': {json.dumps(a.section)}}});</script>",
        "</head>",
    ]

    nav = "".join(f'<li><a href="{base_url}/section/{slugify(s)}">{s}</a></li>' for s in SECTIONS)
    body = [
        f'<body class="article-page section-{slugify(a.section)}">',
        f'<div id="cookie-banner" class="cookie-consent" role="dialog" aria-live="polite"><p>{e(c["cookie"])}</p>'
        f'<button class="accept">{e(c["accept"])}</button><button class="manage">{e(c["manage"])}</button></div>',
        '<header class="site-header">',
        f'<a class="logo" href="{base_url}/"><img src="{base_url}/images/logo.png" alt="{SITE_NAME}"></a>',
        f'<nav class="main-nav" aria-label="Sections"><ul>{nav}</ul></nav>',
        f'<form class="site-search" action="{base_url}/search" method="get"><input type="search" name="q" '
        'placeholder="Search"><button type="submit">Search</button></form>',
        f'<a class="subscribe-button" href="{base_url}/subscribe">{e(c["subscribe"])}</a>',
        "</header>",
        '<main id="content">',
        f'<nav class="breadcrumb"><a href="{base_url}/">{e(c["home"])}</a> &rsaquo; '
        f'<a href="{base_url}/section/{slugify(a.section)}">{e(a.section)}</a></nav>',
        '<article class="story" itemscope itemtype="https://schema.org/NewsArticle">',
        f'<p class="section-label"><a href="{base_url}/section/{slugify(a.section)}">{e(a.section)}</a></p>',
        f'<h1 class="headline" itemprop="headline">{e(a.title)}</h1>',
        f'<p class="standfirst" itemprop="description">{e(a.description)}</p>',
        '<div class="byline">',
        f'<span class="author">{e(c["by"])} <a rel="author" href="{base_url}/authors/{slugify(a.author)}" '
        f'itemprop="author">{e(a.author)}</a></span>',
        f'<time class="published" datetime="{iso(a.published)}" itemprop="datePublished">{_human(a.published)}</time>',
    ]
    if a.updated:
        body.append(
            f'<span class="updated">{e(c["updated"])} <time datetime="{iso(a.updated)}" itemprop="dateModified">'
            f"{_human(a.updated)}</time></span>"
        )
    body += [
        "</div>",
        _share_bar(url, a.title, c),
        '<div class="story-body" itemprop="articleBody">',
    ]
    paragraphs = 0
    for b in a.blocks:
        if b.kind == "p":
            body.append(f"<p>{e(b.text)}</p>")
            paragraphs += 1
            if paragraphs == 3 and related:
                r = related[0]
                body.append(
                    f'<aside class="read-also"><strong>{e(c["read_also"])}:</strong> '
                    f'<a href="{base_url}{r.path}">{e(r.title)}</a></aside>'
                )
        elif b.kind == "h":
            body.append(f"<h2>{e(b.text)}</h2>")
        elif b.kind == "q":
            body.append(f'<blockquote class="pull-quote"><p>{e(b.text)}</p></blockquote>')
        elif b.figure is not None:
            f = b.figure
            credit = f" [{e(f.credit)}]" if f.credit else ""
            body.append(
                f'<figure class="photo"><img src="{e(image_url(base_url, f.img))}" alt="{e(f.caption)}" '
                f'width="1200" height="675" loading="lazy"><figcaption><span class="caption">{e(f.caption)}</span>'
                f'<span class="credit">{credit}</span></figcaption></figure>'
            )
    body.append("</div>")
    if a.tags:
        tags = " ".join(f'<a href="{base_url}/tag/{slugify(t)}">{e(t)}</a>' for t in a.tags)
        body.append(f'<div class="tags"><span>{e(c["tags"])}:</span> {tags}</div>')
    body += [
        _share_bar(url, a.title, c),
        f'<div class="article-feedback"><p>{e(c["like"])}</p><button class="vote-up">{e(c["yes"])}</button>'
        f'<button class="vote-down">{e(c["no"])}</button></div>',
        '<section class="comments" id="comments">',
        f"<h3>{e(c['comments'])}</h3>",
        f'<form class="comment-form" method="post" action="{base_url}/comments">',
        f'<p class="policy"><a href="{base_url}/comment-policy">{e(c["policy"])}</a> '
        f"<span>{e(c['required'])}</span></p>",
        f'<label>{e(c["name"])} <input name="name" required></label>',
        f'<label>{e(c["email"])} <input type="email" name="email" required></label>',
        f'<label>{e(c["comment"])} <textarea name="comment" maxlength="1500" required></textarea></label>',
        '<span class="char-counter">1500 / 1500</span>',
        f'<button type="submit">{e(c["post"])}</button>',
        "</form>",
        "</section>",
        "</article>",
    ]
    if related:
        items = "".join(f'<li><a href="{base_url}{r.path}">{e(r.title)}</a></li>' for r in related)
        body.append(f'<aside class="related"><h3>{e(c["related"])}</h3><ul>{items}</ul></aside>')
    if most_read:
        items = "".join(f'<li><a href="{base_url}{r.path}">{e(r.title)}</a></li>' for r in most_read)
        body.append(f'<aside class="most-read"><h3>{e(c["most_read"])}</h3><ol>{items}</ol></aside>')
    body += [
        "</main>",
        '<footer class="site-footer">',
        f'<form class="newsletter" action="{base_url}/newsletter" method="post"><p>{e(c["newsletter"])}</p>'
        f'<input type="email" name="email"><button>{e(c["subscribe"])}</button></form>',
        f'<ul class="footer-links"><li><a href="{base_url}/about">About us</a></li>'
        f'<li><a href="{base_url}/contact">Contact</a></li><li><a href="{base_url}/privacy">Privacy</a></li>'
        f'<li><a href="{base_url}/terms">Terms of use</a></li></ul>',
        f'<p class="copyright">&copy; {a.published.year} {SITE_NAME}. All rights reserved.</p>',
        "</footer>",
        f'<script src="{base_url}/static/site.js" defer></script>',
        "</body>",
        "</html>",
    ]
    return "\n".join(head + body) + "\n"


def _share_bar(url: str, title: str, c: dict[str, str]) -> str:
    from urllib.parse import quote

    u, t = quote(url, safe=""), quote(title, safe="")
    return (
        f'<div class="share-bar"><span>{escape(c["share"])}</span>'
        f'<a class="share-facebook" href="https://www.facebook.com/sharer/sharer.php?u={u}">Facebook</a>'
        f'<a class="share-x" href="https://x.com/intent/post?url={u}&amp;text={t}">X</a>'
        f'<a class="share-whatsapp" href="https://wa.me/?text={u}">WhatsApp</a>'
        f'<a class="share-email" href="mailto:?subject={t}&amp;body={u}">Email</a>'
        f'<button class="copy-link">{escape(c["copy"])}</button></div>'
    )


def _mime(f: DemoFeed) -> str:
    return {"rss": "application/rss+xml", "atom": "application/atom+xml", "json": "application/feed+json"}[f.kind]


def feed_content_type(f: DemoFeed) -> str:
    return _mime(f) + "; charset=utf-8"


def render_feed(feed: DemoFeed, items: list[DemoArticle], base_url: str, updated: datetime) -> str:
    items = sorted(items, key=lambda a: (a.published, a.index), reverse=True)
    if feed.kind == "rss":
        return _rss(feed, items, base_url, updated)
    if feed.kind == "atom":
        return _atom(feed, items, base_url, updated)
    return _json_feed(feed, items, base_url)


def _rss(feed: DemoFeed, items: list[DemoArticle], base_url: str, updated: datetime) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"<title>{xesc(feed.title)}</title>",
        f"<link>{xesc(base_url)}/</link>",
        f"<description>{xesc(feed.description)}</description>",
        "<language>en</language>",
        f'<atom:link href="{xesc(base_url + feed.path)}" rel="self" type="application/rss+xml"/>',
        f"<lastBuildDate>{format_datetime(updated, usegmt=True)}</lastBuildDate>",
        "<ttl>5</ttl>",
    ]
    for a in items:
        url = base_url + a.path
        out += [
            "<item>",
            f"<title>{xesc(a.title)}</title>",
            f"<link>{xesc(url)}</link>",
            f'<guid isPermaLink="true">{xesc(url)}</guid>',
            f"<description>{xesc(a.description)}</description>",
            f"<dc:creator>{xesc(a.author)}</dc:creator>",
            f"<dc:language>{xesc(a.lang)}</dc:language>",
            f"<pubDate>{format_datetime(a.published, usegmt=True)}</pubDate>",
            f"<category>{xesc(a.section)}</category>",
            *(f"<category>{xesc(t)}</category>" for t in a.tags),
        ]
        for f in a.figures:
            out.append(
                f'<media:content url={quoteattr(image_url(base_url, f.img))} medium="image" type="image/png" '
                f'width="1200" height="675"><media:description type="plain">{xesc(f.caption)}</media:description>'
                + (f"<media:credit>{xesc(f.credit)}</media:credit>" if f.credit else "")
                + "</media:content>"
            )
        out.append("</item>")
    out += ["</channel>", "</rss>"]
    return "\n".join(out) + "\n"


def _atom(feed: DemoFeed, items: list[DemoArticle], base_url: str, updated: datetime) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">',
        f"<title>{xesc(feed.title)}</title>",
        f"<subtitle>{xesc(feed.description)}</subtitle>",
        f"<id>{xesc(base_url + feed.path)}</id>",
        f'<link rel="self" type="application/atom+xml" href={quoteattr(base_url + feed.path)}/>',
        f'<link rel="alternate" type="text/html" href={quoteattr(base_url + "/")}/>',
        f"<updated>{iso(updated)}</updated>",
    ]
    for a in items:
        url = base_url + a.path
        out += [
            f'<entry xml:lang="{xesc(a.lang)}">',
            f"<title>{xesc(a.title)}</title>",
            f'<link rel="alternate" type="text/html" href={quoteattr(url)}/>',
            f"<id>{xesc(url)}</id>",
            f"<published>{iso(a.published)}</published>",
            f"<updated>{iso(a.last_modified)}</updated>",
            f"<author><name>{xesc(a.author)}</name></author>",
            f"<summary>{xesc(a.description)}</summary>",
            f"<category term={quoteattr(a.section)}/>",
            *(f"<category term={quoteattr(t)}/>" for t in a.tags),
        ]
        for f in a.figures:
            out.append(
                f'<link rel="enclosure" type="image/png" href={quoteattr(image_url(base_url, f.img))} '
                f"title={quoteattr(f.caption)}/>"
            )
            out.append(
                f'<media:content url={quoteattr(image_url(base_url, f.img))} medium="image">'
                f"<media:description>{xesc(f.caption)}</media:description>"
                + (f"<media:credit>{xesc(f.credit)}</media:credit>" if f.credit else "")
                + "</media:content>"
            )
        out.append("</entry>")
    out.append("</feed>")
    return "\n".join(out) + "\n"


def _json_feed(feed: DemoFeed, items: list[DemoArticle], base_url: str) -> str:
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "description": feed.description,
        "home_page_url": base_url + "/",
        "feed_url": base_url + feed.path,
        "language": "en",
        "items": [
            {
                "id": base_url + a.path,
                "url": base_url + a.path,
                "title": a.title,
                "summary": a.description,
                "date_published": iso(a.published),
                "date_modified": iso(a.last_modified),
                "authors": [{"name": a.author}],
                "tags": [a.section, *a.tags],
                "language": a.lang,
                **({"image": image_url(base_url, a.figures[0].img)} if a.figures else {}),
                "attachments": [
                    {"url": image_url(base_url, f.img), "mime_type": "image/png", "title": f.caption} for f in a.figures
                ],
            }
            for a in items
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def render_opml(base_url: str) -> str:
    outlines = "\n".join(
        f'<outline type="{"rss" if f.kind != "json" else "json"}" text={quoteattr(f.title)} '
        f"title={quoteattr(f.title)} xmlUrl={quoteattr(base_url + f.path)} htmlUrl={quoteattr(base_url + '/')}/>"
        for f in FEEDS
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0">\n'
        f"<head><title>{SITE_NAME} feeds</title></head>\n<body>\n{outlines}\n</body>\n</opml>\n"
    )


def render_robots(base_url: str) -> str:
    return (
        "# The Demo Courier: crawlers welcome, except on the account and comment pages.\n"
        "User-agent: *\nDisallow: /account/\nDisallow: /comments\nAllow: /\n\n"
        f"Sitemap: {base_url}/sitemap.xml\n"
    )


def render_front(corpus: list[DemoArticle], base_url: str) -> str:
    items = "\n".join(f'<li><a href="{base_url}{a.path}">{escape(a.title)}</a></li>' for a in corpus[:50])
    feeds = "\n".join(f'<li><a href="{base_url}{f.path}">{escape(f.title)}</a> ({f.kind})</li>' for f in FEEDS)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{SITE_NAME}</title></head>'
        f"<body><h1>{SITE_NAME}</h1><p>A demo news site for Newsflow: {len(corpus)} articles.</p>"
        f"<h2>Feeds</h2><ul>{feeds}</ul><h2>Latest</h2><ul>{items}</ul></body></html>\n"
    )
