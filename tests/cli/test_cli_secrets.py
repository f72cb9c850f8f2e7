"""`newsflow status` and the services' error lines never print a password from a URL (issue 14, defect 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
SECRET = "s3cretPa55"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    return {**env, "COLUMNS": "200", **extra}


def test_status_with_unreachable_servers_names_them_without_their_passwords() -> None:
    env = _env(
        NEWSFLOW_REDIS_URL=f"redis://:{SECRET}@127.0.0.1:1/0",
        NEWSFLOW_ELASTICSEARCH_URL=f"http://elastic:{SECRET}@127.0.0.1:1",
    )
    for args in (["status"], ["status", "--json"], ["search", "rocket"], ["dlq", "list"]):
        out = subprocess.run([str(BIN / "newsflow"), *args], env=env, capture_output=True, text=True, timeout=60)
        printed = out.stdout + out.stderr
        assert SECRET not in printed, args
        assert "127.0.0.1:1" in printed, (args, printed)  # still says where it tried


def test_a_bad_url_setting_is_one_line_without_the_password_or_a_warning() -> None:
    env = _env(NEWSFLOW_ELASTICSEARCH_URL=f"elastic:{SECRET}@es.example:9200")
    out = subprocess.run([str(BIN / "newsflow"), "search", "rocket"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode != 0
    (line,) = out.stderr.strip().splitlines()
    assert "NEWSFLOW_ELASTICSEARCH_URL" in line and SECRET not in line


def test_a_service_that_cannot_reach_redis_logs_where_without_the_password(tmp_path: Path) -> None:
    env = _env(NEWSFLOW_REDIS_URL=f"redis://:{SECRET}@127.0.0.1:1/0", NEWSFLOW_LOG_FORMAT="text")
    log = tmp_path / "parser.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([str(BIN / "newsflow-parser")], env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "NEWSFLOW_REDIS_URL" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "reaching Redis at redis://***@127.0.0.1:1/0" in text, text[-2000:]
    assert SECRET not in text
