"""Secrets never printed: credentials in URLs are masked wherever a URL or setting is shown or logged.

The one place this happens. `configure_logging` wraps every service's and the CLI's log formatter in
`RedactingFormatter` (messages, extra fields and tracebacks alike); whatever prints settings or errors to a
person (`newsflow status`, error lines, the web page) passes them through `redact`.
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ : the userinfo is everything up to the last "@" before the host.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^\s/@]*(?::[^\s/]*)?)@", re.IGNORECASE)
# user:password@host without a scheme (a URL setting missing its http://).
_BARE_USERINFO = re.compile(r"(?P<lead>^|[\s'\"(=])(?P<user>[\w.%+\-]+):(?P<password>[^\s/@'\"]+)@(?=[\w.\-\[])")
# key=value secrets in query strings and DSNs (password=..., api_key=..., token=...).
_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=)(?P<value>[^&\s;,]+)", re.IGNORECASE
)
MASK = "***"


def _userinfo(m: re.Match[str]) -> str:
    user, sep, _password = m["userinfo"].partition(":")
    return f"{m['scheme']}{user}:{MASK}@" if sep and user else f"{m['scheme']}{MASK}@"


def redact(text: str) -> str:
    """`text` with URL credentials and secret parameters masked: redis://:pw@h -> redis://***@h."""
    if "@" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
        text = _BARE_USERINFO.sub(lambda m: f"{m['lead']}{m['user']}:{MASK}@", text)
    if "=" in text:
        text = _PARAM.sub(lambda m: m["key"] + MASK, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Wraps a log formatter: the finished line (message, extra fields and traceback) is redacted."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))
