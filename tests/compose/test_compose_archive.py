"""The WARC archive in compose: one named volume, written by every fetcher replica, read-only for the CLI,
and a directory in the image that the app user owns (so a fresh volume is writable by it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsflow_cli.common import CliSettings
from newsflow_fetcher.settings import FetcherSettings

pytestmark = pytest.mark.unit


def mounts(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in svc.get("volumes", []) if isinstance(v, dict)}


def test_fetcher_writes_the_archive_volume_the_cli_reads(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert "archive" in (compose.get("volumes") or {})
    fetcher, cli = services["fetcher"], services["cli"]
    target = fetcher["environment"]["NEWSFLOW_ARCHIVE_DIR"]
    assert mounts(fetcher)[target]["type"] == "volume" and mounts(fetcher)[target]["source"] == "archive"
    assert not mounts(fetcher)[target].get("read_only", False)
    assert cli["environment"]["NEWSFLOW_ARCHIVE_DIR"] == target
    assert mounts(cli)[target]["source"] == "archive" and mounts(cli)[target]["read_only"] is True
    # Both settings classes accept what compose gives them.
    assert FetcherSettings(
        archive_dir=target, archive_retention_days=fetcher["environment"]["NEWSFLOW_ARCHIVE_RETENTION_DAYS"]
    ).archive_enabled
    assert str(CliSettings(archive_dir=target).archive_dir) == target
    # Replicas share the volume; their files are told apart by the consumer name (no fixed one here).
    assert "NEWSFLOW_CONSUMER_NAME" not in fetcher["environment"] and "container_name" not in fetcher


def test_image_has_an_archive_directory_the_app_user_owns(root: Path) -> None:
    text = (root / "docker/newsflow/Dockerfile").read_text()
    runtime = text[text.index("AS runtime") :]
    assert "install -d -o newsflow -g newsflow /archive" in runtime
    assert runtime.index("useradd") < runtime.index("/archive") < runtime.index("USER newsflow")
    assert "ENV NEWSFLOW_ARCHIVE_DIR=/archive" in runtime
    assert "COPY libs/archive/pyproject.toml libs/archive/" in text
