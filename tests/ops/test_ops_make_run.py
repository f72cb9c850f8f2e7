"""`make run`, headless, against the session's Redis and Elasticsearch; then `newsflow status --json`
on what it left behind; then a second run that must index and alert nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from newsflow_cli.common import CliSettings
from newsflow_devtools.demo.corpus import build_corpus
from newsflow_shared import streams
from newsflow_shared.ids import article_id
from newsflow_shared.urls import canonicalize

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


async def run_local(state: Path, settings: CliSettings, *args: str) -> tuple[int, str, dict[str, Any]]:
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": settings.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
    }
    env.pop("NEWSFLOW_FEEDS_FILE", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsflow_devtools.run_local",
        "--until-done",
        "--timeout",
        "240",
        "--state",
        str(state),
        *args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    result = next((json.loads(line[7:]) for line in text.splitlines() if line.startswith("RESULT ")), {})
    return proc.returncode or 0, text, result


async def demo_alerts(es: AsyncElasticsearch) -> list[dict[str, Any]]:
    """Fired alerts, from their durable record (news.alerts is trimmed once the notifier delivered them)."""
    await es.indices.refresh(index="newsflow-alerts")
    fired = {"bool": {"filter": [{"term": {"kind": "fingerprint"}}, {"term": {"fired": True}}]}}
    resp = await es.search(index="newsflow-alerts", query=fired, size=100)
    return [h["_source"]["alert"] for h in resp["hits"]["hits"]]


def status_json(settings: CliSettings) -> dict[str, Any]:
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": settings.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
    }
    out = subprocess.run(
        [str(VENV_BIN / "newsflow"), "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_make_run_headless_indexes_every_demo_article_and_alerts_once(
    settings: CliSettings, redis: aioredis.Redis, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    code, out, result = await run_local(tmp_path, settings)
    assert code == 0, out[-3000:]
    # The session's servers were used: the script started none of its own.
    assert "starting Redis" not in out and "starting Elasticsearch" not in out
    assert not (tmp_path / "redis").exists() and not (tmp_path / "elasticsearch").exists()
    assert (tmp_path / "logs" / "fetcher-1.log").stat().st_size > 0

    # Independent checks of what the script reported.
    port = int((tmp_path / "demo" / "port").read_text())
    corpus = build_corpus(30)
    ids = [article_id(canonicalize(f"http://127.0.0.1:{port}{a.path}")) for a in corpus]
    await es.indices.refresh(index="news")
    assert (await es.count(index="news", query={"ids": {"values": ids}}))["count"] == 30
    assert (await es.count(index="news"))["count"] == 30
    alerts = await demo_alerts(es)
    assert [(a["rule_name"], a["article_id"]) for a in alerts] == [("rocket attack", ids[0])]
    assert result["indexed_demo"] == 30 and result["alerts"] == 1 and result["dead_letters"] == 0
    # The notifier ran too and delivered the alert to the rule's channel (the log).
    assert result["sent"] == 1
    assert "ALERT rocket attack" in (tmp_path / "logs" / "notifier-1.log").read_text()
    hit = await es.get(index="news", id=ids[0])
    assert hit["_source"]["title"] == corpus[0].title

    # `newsflow status --json` on the real run.
    st = status_json(settings)
    by_stream = {s["stream"]: s for s in st["streams"]}
    assert by_stream[streams.ENTRIES]["entries_added"] == 30
    assert by_stream[streams.RAW]["entries_added"] == 30
    assert by_stream[streams.PARSED]["entries_added"] == 30
    for s, group in ((streams.ENTRIES, "fetcher"), (streams.RAW, "parser"), (streams.PARSED, "indexer")):
        (g,) = [g for g in by_stream[s]["groups"] if g["group"] == group]
        assert g["pending"] == 0 and g["lag"] == 0 and g["oldest_pending_age_s"] is None
        assert g["consumers"], f"{s}: the service's consumer is listed"
    assert st["dead_letters"]["total"] == 0
    assert st["feeds"]["total"] == 4 and st["feeds"]["failing"] == 0
    assert st["feeds"]["items_seen"] == 30
    assert st["elasticsearch"]["ok"] and st["elasticsearch"]["status"] in ("green", "yellow")
    assert st["elasticsearch"]["documents"] == 30 and st["elasticsearch"]["size_bytes"] > 0
    assert "rocket attack" in st["rules"]["names"]
    assert st["alerts"]["total"] == 1
    assert st["alerts"]["last"][0]["rule"] == "rocket attack"
    assert st["alerts"]["last"][0]["title"] == corpus[0].title
    assert st["errors"] == []

    # A second run re-uses everything: same demo URLs, nothing fetched, indexed or alerted twice.
    code, out, again = await run_local(tmp_path, settings)
    assert code == 0, out[-3000:]
    assert "4 already known" in out
    assert again["entries"] == 30 and again["fetched"] == 30 and again["alerts"] == 1
    assert (await es.count(index="news"))["count"] == 30
    assert len(await demo_alerts(es)) == 1


def test_status_reports_unreachable_servers_in_one_line_each(settings: CliSettings) -> None:
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": "redis://127.0.0.1:1/0",
        "NEWSFLOW_ELASTICSEARCH_URL": settings.elasticsearch_url,
    }
    out = subprocess.run(
        [str(VENV_BIN / "newsflow"), "status"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in " ".join(out.stdout.split())
    # Elasticsearch answered, so its part is still shown.
    assert "Elasticsearch:" in out.stdout


def test_make_run_config_errors_are_one_line(tmp_path: Path) -> None:
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("rules:\n  - name: x\n    query: [unclosed\n")
    bad_feeds = tmp_path / "feeds.yaml"
    bad_feeds.write_text("feeds:\n  - title: no url here\n")
    cases = [
        ({"NEWSFLOW_REDIS_URL": "localhost:6379"}, "NEWSFLOW_REDIS_URL must start with redis://"),
        ({"NEWSFLOW_RULES_FILE": str(bad_rules)}, f"bad rules file {bad_rules}"),
        ({"NEWSFLOW_RULES_FILE": str(tmp_path / "missing.yaml")}, "not found"),
        ({"NEWSFLOW_FEEDS_FILE": str(bad_feeds)}, f"bad feeds file {bad_feeds}: "),
        (
            {"NEWSFLOW_REDIS_URL": "redis://127.0.0.1:1/0", "NEWSFLOW_ELASTICSEARCH_URL": "http://127.0.0.1:1"},
            "cannot reach Redis at redis://127.0.0.1:1/0",
        ),
    ]
    for extra, expected in cases:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")} | extra
        out = subprocess.run(
            [sys.executable, "-m", "newsflow_devtools.run_local", "--state", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 1, (extra, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("make run: ")]
        assert expected in line, (extra, line)
