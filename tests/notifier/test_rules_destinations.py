"""Issue 14, defect 7: alert destinations pass the same SSRF guard as the fetcher, and a bad one is
refused in one line (through the installed CLI, against the real Elasticsearch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from newsflow_cli.common import CliSettings

pytestmark = pytest.mark.integration

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def cli(settings: CliSettings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": settings.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
        "NEWSFLOW_ALLOWED_NETWORKS": "",
        **env,
    }
    return subprocess.run([NEWSFLOW, *args], capture_output=True, text=True, env=full, timeout=60)


async def rule_names(es: AsyncElasticsearch) -> list[str]:
    if not await es.indices.exists(index="newsflow-rules"):
        return []
    await es.indices.refresh(index="newsflow-rules")
    resp = await es.search(index="newsflow-rules", query={"match_all": {}})
    return [h["_source"]["name"] for h in resp["hits"]["hits"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://localhost:9200/_bulk",
    ],
)
async def test_a_webhook_to_a_private_or_metadata_address_is_refused_in_one_line(
    settings: CliSettings, es: AsyncElasticsearch, url: str
) -> None:
    out = cli(settings, "rules", "add", "meta", "rocket", "--webhook", url)
    assert out.returncode == 1, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "not a public address" in lines[0] and "NEWSFLOW_ALLOWED_NETWORKS" in lines[0], lines[0]
    assert await rule_names(es) == []


async def test_the_allow_list_opens_a_precise_hole(settings: CliSettings, es: AsyncElasticsearch) -> None:
    out = cli(
        settings, "rules", "add", "local", "rocket", "--webhook", "http://127.0.0.1:9/hook",
        NEWSFLOW_ALLOWED_NETWORKS="127.0.0.0/8",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    still = cli(
        settings, "rules", "add", "meta", "rocket", "--webhook", "http://169.254.169.254/",
        NEWSFLOW_ALLOWED_NETWORKS="127.0.0.0/8",
    )  # fmt: skip
    assert still.returncode == 1
    assert await rule_names(es) == ["local"]


@pytest.mark.parametrize("url", ["ftp://nope", "hooks.example.com/x", "http://"])
async def test_a_malformed_webhook_url_is_one_line_not_a_validation_dump(
    settings: CliSettings, es: AsyncElasticsearch, url: str
) -> None:
    out = cli(settings, "rules", "add", "bad", "rocket", "--webhook", url)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "pydantic" not in out.stderr and "validation error" not in out.stderr
    assert "http(s)" in lines[0]


async def test_a_rules_file_with_a_private_destination_is_refused_naming_the_rule(
    settings: CliSettings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(
        "rules:\n"
        "  - {name: fine, query: rocket, channels: [log]}\n"
        "  - {name: sneaky, query: rocket, channels: [{slack: 'http://169.254.169.254/x'}]}\n"
    )
    out = cli(settings, "rules", "add", "--file", str(f))
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert "sneaky" in line and "169.254.169.254" in line
    assert await rule_names(es) == []  # nothing of a refused file is saved
