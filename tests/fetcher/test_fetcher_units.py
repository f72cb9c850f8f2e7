"""Pure logic of the fetcher: canonical URLs, JSON Feed, feed parsing details, scheduling,
charsets, the SSRF address policy, OPML and the feeds file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsflow_feeds.opml import parse_opml, write_opml
from newsflow_feeds.registry import load_feeds_file
from newsflow_fetcher.charset import decode_html
from newsflow_fetcher.feedparse import parse_feed
from newsflow_fetcher.feedtypes import FeedParseError
from newsflow_fetcher.jsonfeed import parse_json_feed
from newsflow_fetcher.schedule import (
    failure_delay,
    jittered,
    parse_max_age,
    parse_retry_after,
    success_interval,
)
from newsflow_fetcher.settings import FetcherSettings
from newsflow_http.ssrf import AddressPolicy
from newsflow_shared.urls import canonicalize, domain_of, is_tracking_param

pytestmark = pytest.mark.unit


# --- canonicalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://News.Example.COM:80/a/b?x=1#frag", "http://news.example.com/a/b?x=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("https://e.com/p?utm_source=a&utm_medium=b&id=3&fbclid=x&gclid=y", "https://e.com/p?id=3"),
        ("https://e.com/p?mc_cid=1&mc_eid=2&igshid=3&ref_src=twsrc", "https://e.com/p"),
        ("https://e.com/p?b=2&a=1&a=0", "https://e.com/p?a=0&a=1&b=2"),
        ("https://e.com/a/./b/../c", "https://e.com/a/c"),
        ("https://e.com/%7Euser/%2f", "https://e.com/~user/%2F"),
        ("https://e.com/caf\u00e9 menu", "https://e.com/caf%C3%A9%20menu"),
        ("https://b\u00fccher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://e.com/search?q=a+b&UTM_Source=x", "https://e.com/search?q=a+b"),
        ("https://e.com/p?ref=home", "https://e.com/p?ref=home"),  # generic names stay
        ("  https://e.com/p  ", "https://e.com/p"),
    ],
)
def test_canonicalize_examples(raw: str, expected: str) -> None:
    assert canonicalize(raw) == expected


def test_canonicalize_resolves_relative_links() -> None:
    base = "https://site.test/section/feed.xml"
    assert canonicalize("../story?utm_campaign=c", base) == "https://site.test/story"
    assert canonicalize("/abs#x", base) == "https://site.test/abs"
    assert canonicalize("//cdn.site.test/x", base) == "https://cdn.site.test/x"


@pytest.mark.parametrize(
    "bad", ["ftp://e.com/x", "mailto:a@b.c", "javascript:alert(1)", "https://", "no scheme", "http://e.com:99999/"]
)
def test_canonicalize_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(bad)


def test_domain_of() -> None:
    assert domain_of("https://WWW.Example.com:8443/x") == "example.com"
    assert domain_of("http://news.example.co.uk/") == "news.example.co.uk"


def test_tracking_param_names() -> None:
    assert is_tracking_param("utm_content") and is_tracking_param("FBCLID") and is_tracking_param("utm%5Fsource")
    assert not is_tracking_param("id") and not is_tracking_param("page")


_segment = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), max_size=8)
_param = st.tuples(
    st.sampled_from(["id", "page", "utm_source", "fbclid", "q", "a", "Z", "gclid", "x y"]),
    # Whitespace and controls would sit at the end of the URL, where (as in browsers) they are stripped.
    st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_characters="&#=", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")
        ),
        max_size=6,
    ),
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    host = draw(st.sampled_from(["example.com", "News.Example.org", "b\u00fccher.de", "127.0.0.1", "[::1]"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = "/" + "/".join(draw(st.lists(_segment, max_size=4)))
    params = draw(st.lists(_param, max_size=5))
    query = "&".join(f"{k}={v}" for k, v in params)
    frag = draw(st.sampled_from(["", "#top", "#"]))
    return f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "") + frag


@settings(max_examples=300, deadline=None)
@given(urls())
def test_canonicalize_is_idempotent_and_clean(url: str) -> None:
    c = canonicalize(url)
    assert canonicalize(c) == c
    parts = urlsplit(c)
    assert parts.fragment == "" and "#" not in c
    assert parts.hostname == (parts.hostname or "").lower()
    assert not (parts.scheme == "http" and parts.port == 80) and not (parts.scheme == "https" and parts.port == 443)
    names = [p.split("=", 1)[0] for p in parts.query.split("&") if p]
    assert not any(is_tracking_param(n) for n in names)
    assert names == sorted(names)


@settings(max_examples=100, deadline=None)
@given(urls(), st.permutations(range(5)))
def test_parameter_order_does_not_matter(url: str, order: list[int]) -> None:
    base, _, query = url.partition("?")
    query = query.split("#")[0]
    params = [p for p in query.split("&") if p]
    shuffled = [params[i] for i in order if i < len(params)] + params[len(order) :]
    assert canonicalize(base + ("?" + "&".join(shuffled) if shuffled else "")) == canonicalize(
        base + ("?" + "&".join(params) if params else "")
    )


# --- JSON Feed ------------------------------------------------------------------------------------


def test_json_feed_1_0_author_and_external_url() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "Old style",
        "author": {"name": "Feed Author"},
        "items": [
            {
                "id": 17,
                "external_url": "https://elsewhere.test/x",
                "content_text": "Plain text body",
                "date_published": "2024-02-29T23:59:59+01:00",
            },
            {"id": "https://links.test/item", "content_html": "<p>only an id that is a URL</p>"},
        ],
    }
    feed = parse_json_feed(json.dumps(doc).encode())
    a, b = feed.entries
    assert a.link == "https://elsewhere.test/x" and a.guid == "17" and a.authors == ["Feed Author"]
    assert a.summary == "Plain text body"
    assert a.published is not None and a.published.isoformat() == "2024-02-29T23:59:59+01:00"
    assert b.link == "https://links.test/item"


def test_json_feed_tolerates_wrong_types() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            "not an object",
            {
                "id": "a",
                "url": "https://t.test/a",
                "title": 42,
                "tags": ["ok", 7, None],
                "date_published": "yesterday",
                "authors": "nobody",
                "attachments": [{"no": "url"}, {"url": "https://t.test/a.mp3"}],
            },
        ],
    }
    feed = parse_json_feed(json.dumps(doc).encode())
    (e,) = feed.entries
    assert e.title is None and e.tags == ["ok"] and e.published is None and e.authors == []
    assert [m.url for m in e.media] == ["https://t.test/a.mp3"]
    assert any("not an object" in w for w in feed.warnings) and any("date_published" in w for w in feed.warnings)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"version": "https://example.com/other", "items": []}',
        b'{"version": "https://jsonfeed.org/version/1.1"}',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "x"}]}',
    ],
)
def test_json_feed_errors(body: bytes) -> None:
    with pytest.raises(FeedParseError):
        parse_json_feed(body)


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))


def _json_containers(children: st.SearchStrategy) -> st.SearchStrategy:
    # A named function, not a lambda: hypothesis reads a lambda's source to check that it recurses,
    # and that reading depends on how the formatter happened to wrap the line.
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)


_json_value = st.recursive(_json_scalar, _json_containers, max_leaves=10)
_item = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "url",
            "external_url",
            "title",
            "summary",
            "content_text",
            "content_html",
            "image",
            "date_published",
            "date_modified",
            "authors",
            "author",
            "tags",
            "attachments",
            "language",
        ]
    ),
    _json_value,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_item, max_size=5), st.booleans())
def test_json_feed_never_crashes(items: list[dict], with_url: bool) -> None:
    if with_url:
        items = [*items, {"id": "k", "url": "https://ok.test/k"}]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    try:
        feed = parse_json_feed(body)
    except FeedParseError:
        assert not with_url
        return
    for e in feed.entries:
        assert isinstance(e.link, str) and e.link
    if with_url:
        assert feed.entries[-1].link == "https://ok.test/k"


# --- feedparser-side details ----------------------------------------------------------------------


def test_media_group_and_item_level_credit() -> None:
    body = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>G</title>
<item><title>Gallery</title><link>https://g.test/1</link>
  <media:credit>Item-wide Agency</media:credit>
  <media:group>
    <media:description>Three views of the bridge.</media:description>
    <media:content url="https://g.test/1a.jpg" type="image/jpeg"/>
    <media:content url="https://g.test/1b.jpg" type="image/jpeg"><media:title>North side</media:title></media:content>
  </media:group>
</item></channel></rss>"""
    (e,) = parse_feed(body, "application/rss+xml", "https://g.test/rss").entries
    assert [(m.url, m.caption, m.credit, m.medium) for m in e.media] == [
        ("https://g.test/1a.jpg", "Three views of the bridge.", "Item-wide Agency", "image"),
        ("https://g.test/1b.jpg", "North side", "Item-wide Agency", "image"),
    ]


def test_rss_hints_and_rdf() -> None:
    body = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel rdf:about="https://r.test/"><title>RDF</title><link>https://r.test/</link>
<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency></channel>
<item rdf:about="https://r.test/1"><title>One</title><link>https://r.test/1</link></item>
</rdf:RDF>"""
    feed = parse_feed(body, "application/rdf+xml", "https://r.test/rdf")
    assert feed.format == "rss10" and feed.update_period_s == 86400 / 4
    assert [e.link for e in feed.entries] == ["https://r.test/1"]


def test_xml_entities_are_not_expanded() -> None:
    body = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>X</title><item><title>&x;</title><link>https://x.test/1</link></item>
</channel></rss>"""
    feed = parse_feed(body, "application/rss+xml", "https://x.test/rss")
    assert all("root:" not in (e.title or "") for e in feed.entries)


def test_empty_but_valid_feed_is_not_an_error() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    assert parse_feed(body, "application/rss+xml").entries == []


# --- scheduling -----------------------------------------------------------------------------------


def test_success_interval_policy() -> None:
    kw = {"min_s": 60.0, "max_s": 3600.0}
    assert success_interval(None, 0, **kw) == 90
    assert success_interval(1000, 3, **kw) == 500
    assert success_interval(100, 5, **kw) == 60
    assert success_interval(3000, 0, **kw) == 3600
    assert success_interval(100, 5, fixed=900, **kw) == 900
    assert success_interval(100, 5, hints=(1800.0, None), **kw) == 1800  # <ttl> is a floor
    assert success_interval(100, 5, hints=(86400.0,), **kw) == 3600  # ... never beyond max


def test_failure_backoff_is_exponential_and_capped() -> None:
    delays = [failure_delay(n, min_s=60, max_s=3600) for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert failure_delay(1, min_s=60, max_s=3600, retry_after=600) == 600
    assert failure_delay(1, min_s=60, max_s=3600, retry_after=10**6) == 3600


def test_header_hints() -> None:
    assert parse_max_age("public, max-age=300") == 300
    assert parse_max_age("max-age=300, s-maxage=600") == 600
    assert parse_max_age("no-cache, max-age=300") is None
    assert parse_max_age(None) is None
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == pytest.approx(60)
    assert parse_retry_after("soon") is None


def test_jitter_stays_in_bounds() -> None:
    rng = random.Random(7)
    values = [jittered(100, 0.1, rng) for _ in range(1000)]
    assert min(values) >= 90 and max(values) <= 110 and len(set(values)) > 900


# --- charsets -------------------------------------------------------------------------------------


def test_charset_order() -> None:
    text = "Zürich — naïve"
    assert decode_html(b"\xef\xbb\xbf" + text.encode(), "text/html; charset=iso-8859-1")[1:] == ("utf-8", "bom")
    assert decode_html(text.encode("utf-8"), "text/html; charset=UTF-8") == (text, "utf-8", "header")
    html = f'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15"><p>{text[:6]}</p>'
    decoded, cs, src = decode_html(html.encode("iso-8859-15"), "text/html")
    assert (cs, src) == ("iso8859-15", "meta") and "Zürich" in decoded
    assert decode_html(text.encode("utf-8"), None) == (text, "utf-8", "detected")
    # latin-1 labels mean windows-1252, as in browsers
    quoted = "\u201cquoted\u201d"
    assert decode_html(quoted.encode("cp1252"), "text/html; charset=ISO-8859-1")[0] == quoted
    # an unknown label falls through to detection instead of failing
    assert decode_html(b"<p>plain</p>", "text/html; charset=x-made-up")[2] == "detected"


def test_charset_detection_of_unlabelled_legacy_text() -> None:
    text = "Приветствуем читателей нашей газеты. Сегодня в номере новости города и области. " * 5
    decoded, _cs, src = decode_html(text.encode("cp1251"), "text/html")
    assert src == "detected" and decoded == text


# --- SSRF address policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "192.0.2.10",
    ],
)
def test_policy_refuses_non_public(addr: str) -> None:
    assert not AddressPolicy().permits(addr)


def test_policy_allows_public_and_configured_networks() -> None:
    assert AddressPolicy().permits("93.184.216.34") and AddressPolicy().permits("2606:4700::1111")
    p = AddressPolicy(allowed_networks=["127.0.0.0/8"])
    assert p.permits("127.0.0.1") and p.permits("127.5.5.5") and not p.permits("10.0.0.1")
    assert AddressPolicy(allow_private=True).permits("10.0.0.1")


def test_settings_parse_networks_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_ALLOWED_NETWORKS", "127.0.0.0/8, ::1/128")
    assert FetcherSettings().allowed_networks == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("NEWSFLOW_ALLOWED_NETWORKS", '["10.0.0.0/8"]')
    assert FetcherSettings().allowed_networks == ["10.0.0.0/8"]
    monkeypatch.setenv("NEWSFLOW_ALLOWED_NETWORKS", "not-a-network")
    with pytest.raises(ValueError):
        FetcherSettings()


# --- OPML and the feeds file ----------------------------------------------------------------------


def test_opml_round_trip() -> None:
    rows = [{"url": "https://a.test/rss", "title": "A & B"}, {"url": "https://c.test/feed?x=1&y=2", "title": None}]
    back = parse_opml(write_opml(rows))
    assert [(r["url"], r["title"]) for r in back] == [
        ("https://a.test/rss", "A & B"),
        ("https://c.test/feed?x=1&y=2", "https://c.test/feed?x=1&y=2"),
    ]


def test_feeds_file_forms(tmp_path: Path) -> None:
    f = tmp_path / "feeds.yaml"
    f.write_text("- url: https://a.test/rss\n  interval: 120\n  title: A\n- https://b.test/atom\n")
    assert load_feeds_file(f) == [
        {"url": "https://a.test/rss", "interval": 120, "title": "A"},
        {"url": "https://b.test/atom", "interval": None, "title": None},
    ]
    f.write_text("feeds:\n  - url: https://a.test/rss\n    interval: -5\n")
    with pytest.raises(ValueError, match="interval"):
        load_feeds_file(f)
    f.write_text("feeds:\n  - title: no url\n")
    with pytest.raises(ValueError, match="needs a url"):
        load_feeds_file(f)
