"""URL canonicalisation: one spelling per article, shared by every service.

The canonical URL is what the seen-set deduplicates on and what the article id is hashed from, so
two links that a reader would call "the same article" must map to one string, and applying
`canonicalize` twice must change nothing. What is removed is only what cannot change the page:
the fragment, known click-tracking parameters, default ports, case in the scheme and host, and
needless percent-escapes. Parameter order is normalised by sorting; values are kept byte for byte.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

# Parameters that identify a click, a campaign or a mailing, never the content. Matched on the
# decoded, lower-cased name. Generic names such as "ref" or "source" stay: some sites route on them.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "_hsenc",
        "_hsmi",
        "__hssc",
        "__hstc",
        "__hsfp",
        "hsctatracking",
        "_ga",
        "_gl",
        "ref_src",
        "ref_url",
        "rb_clickid",
        "s_cid",
        "cmpid",
        "ito",
        "ocid",
        "wt.mc_id",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "smid",
        "sr_share",
        "spm",
    }
)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "matomo_", "hmb_", "__twitter_impression")

DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are when re-quoting a path or query: the reserved set, plus "%" so that
# existing escapes survive (they are normalised separately).
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = "/?:@!$&'()*+,;=-._~%"


def _normalise_escapes(s: str, safe: str) -> str:
    # Escape what must be escaped (spaces, non-ASCII), then settle every %XX on one spelling:
    # unreserved characters decoded, everything else upper-case hex.
    s = quote(s, safe=safe)

    def fix(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    return _ESCAPE.sub(fix, s)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 section 5.2.4, so that "/a/./b/../c" and "/a/c" are one URL without a base.
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def is_tracking_param(name: str) -> bool:
    n = unquote_plus(name).strip().lower()
    return n in TRACKING_PARAMS or n.startswith(TRACKING_PREFIXES)


def _canonical_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host:
        raise ValueError("URL has no host")
    if host.startswith("["):  # IPv6 literal: keep as is, lower-cased
        return host
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise ValueError(f"invalid host name {host!r}") from e
    return host


def canonicalize(url: str, base: str | None = None) -> str:
    """The canonical form of `url` (resolved against `base` when given).

    Raises ValueError for anything that is not an absolute http(s) URL with a host.
    """
    url = url.strip()
    if base:
        url = urljoin(base.strip(), url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"invalid port in {url[:200]!r}") from e
    host = _canonical_host(parts.hostname or "")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    netloc = host
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{host}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"

    # Escapes first: "%2E%2E" is a dot segment too once decoded.
    path = _remove_dot_segments(_normalise_escapes(parts.path or "/", _PATH_SAFE))

    params = [p for p in parts.query.split("&") if p and not is_tracking_param(p.split("=", 1)[0])]
    query = "&".join(sorted(_normalise_escapes(p, _QUERY_SAFE) for p in params))
    return urlunsplit((scheme, netloc, path, query, ""))


def domain_of(url: str) -> str:
    """The site an URL belongs to: lower-case host without port and without a leading "www."."""
    host = urlsplit(url.strip()).hostname or ""
    host = _canonical_host(host) if host else ""
    return host[4:] if host.startswith("www.") else host


def host_of(url: str) -> str:
    """The host an URL points at (lower-case, no port): the unit of politeness and robots.txt."""
    return (urlsplit(url).hostname or "").rstrip(".").lower()


__all__ = ["TRACKING_PARAMS", "canonicalize", "domain_of", "host_of", "is_tracking_param"]
