"""Secrets never printed (issue 14, defects 3 and 4): URL credentials masked in one place, and health and
metrics on loopback unless a deployment says otherwise."""

from __future__ import annotations

import logging

import pytest

from newsflow_shared.logging import configure_logging
from newsflow_shared.redact import redact
from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("http://elastic:s3cret@es:9200", "http://elastic:***@es:9200"),
        ("rediss://token@cache.example:6380", "rediss://***@cache.example:6380"),
        ("Redis at redis://u:p%40ss@h/0 is down", "Redis at redis://u:***@h/0 is down"),
        ("https://hooks.example/x?token=abc123&x=1", "https://hooks.example/x?token=***&x=1"),
        ("http://es:9200 and http://a:b@c:1", "http://es:9200 and http://a:***@c:1"),
        ("no url here: user@example.com", "no url here: user@example.com"),
        ("(got 'elastic:s3cret@es.example:9200')", "(got 'elastic:***@es.example:9200')"),
    ],
)
def test_credentials_in_urls_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_log_lines_are_redacted_whatever_their_format(capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("json", "text"):
        configure_logging("t", "INFO", fmt)
        log = logging.getLogger("newsflow.test")
        log.error("cannot reach Redis at %s", "redis://:s3cret@10.0.0.1:6379/0", extra={"url": "http://u:pw@h/"})
        try:
            raise ConnectionError("connect to http://elastic:s3cret@es:9200 failed")
        except ConnectionError:
            log.exception("Elasticsearch down")
        err = capsys.readouterr().err
        assert "s3cret" not in err and ":pw@" not in err
        assert "redis://***@10.0.0.1" in err and "elastic:***@es" in err


def test_health_and_metrics_listen_on_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSFLOW_METRICS_HOST", raising=False)
    assert CommonSettings().metrics_host == "127.0.0.1"
