"""Fixtures of the web tests: a seeded index on the session's real Elasticsearch, the web app as its own process
(`newsflow-web`, as compose runs it), and for the browser tests Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from article_factory import parsed_article
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from newsflow_devtools.processes import free_port, venv_bin
from newsflow_search.documents import doc_version, to_document
from newsflow_search.index_setup import ensure_index
from newsflow_search.settings import SearchSettings
from newsflow_shared.models import Block, Caption, ParsedArticle

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "web-test-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_article(url: str, title: str, paragraphs: list[str], **kw: Any) -> ParsedArticle:
    """An article as the parser hands it on: blocks (sub-headings marked "h"), and the text they join to."""
    blocks = [Block(kind="h" if p.startswith("## ") else "p", text=p.removeprefix("## ")) for p in paragraphs]
    kw.setdefault("published_at", datetime.now(UTC) - timedelta(hours=5))
    return parsed_article(url, title, "\n\n".join(b.text for b in blocks), blocks=blocks, **kw)


PORT_STRIKE = [
    "A rocket attack on the port of Umm Qasr on Tuesday damaged two cranes and a fuel depot, officials said.",
    "## Loading suspended",
    "Four rockets landed inside the perimeter shortly after midnight. Nobody was hurt.",
    "No group claimed the attack. Analysts said the strike fitted a pattern of pressure by armed factions.",
]


def corpus(now: datetime) -> list[ParsedArticle]:
    """Thirteen articles over four sources, two languages, one syndicated copy, one story told by two outlets."""
    day = timedelta(days=1)
    arts = [
        make_article(
            "https://gulf-times.example/politics/umm-qasr-rocket-attack",
            "Rocket attack damages cranes at Umm Qasr port",
            PORT_STRIKE,
            section="Politics",
            authors=["Dana Whitfield"],
            site_name="Gulf Times",
            description="Four rockets hit the port; loading was suspended.",
            captions=[
                Caption(text="Cranes at Umm Qasr after the strike.", credit="Port authority", source="figcaption")
            ],
            published_at=now - 2 * day,
        ),
        # The same text at another outlet: a syndicated copy.
        make_article(
            "https://wire.example/world/umm-qasr-rocket-attack",
            "Rocket attack damages cranes at Umm Qasr port",
            PORT_STRIKE,
            section="World",
            authors=["Wire staff"],
            site_name="The Wire",
            published_at=now - 2 * day + timedelta(hours=1),
        ),
        make_article(
            "https://gulf-times.example/business/port-traffic",
            "Port traffic recovers after a quiet winter",
            ["Container volumes at the port rose by a tenth in March.", "Shipping lines added two routes."],
            section="Business",
            site_name="Gulf Times",
            published_at=now - 6 * day,
        ),
        make_article(
            "https://le-quotidien.example/monde/port-attaque",
            "Attaque à la roquette contre le port d'Umm Qasr",
            ["Une attaque à la roquette a endommagé deux grues du port mardi.", "Aucun blessé n'est signalé."],
            section="Monde",
            language="fr",
            site_name="Le Quotidien",
            published_at=now - 2 * day,
        ),
    ]
    for i in range(8):
        arts.append(
            make_article(
                f"https://city-news.example/local/council-{i}",
                f"Council meeting {i}: library hours and bus routes",
                [f"The council met on day {i} to discuss library opening hours.", "Bus routes were also debated."],
                section="Local",
                authors=["Hugo Marchetti"],
                site_name="City News",
                published_at=now - (i + 1) * day,
            )
        )
    # Another outlet's report of the port strike in its own words (no "attack"): same story, not a copy.
    arts.append(
        make_article(
            "https://harbour-daily.example/news/umm-qasr-cranes",
            "Cranes damaged as rockets hit Umm Qasr port",
            ["Two cranes were wrecked overnight.", "Dock workers were sent home and ships waited offshore."],
            description="Rockets hit the port overnight; loading at the docks was halted.",
            section="News",
            site_name="Harbour Daily",
            published_at=now - 2 * day + timedelta(hours=3),
        )
    )
    return arts


async def seed(es: AsyncElasticsearch, settings: SearchSettings, articles: list[ParsedArticle]) -> None:
    await ensure_index(es, settings)
    actions = [
        {
            "_index": settings.index_alias,
            "_id": a.article_id,
            "version": doc_version(a),
            "version_type": "external",
            "_source": to_document(a),
        }
        for a in articles
    ]
    await async_bulk(es, actions, refresh=True)


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also while Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class WebProcess:
    """`newsflow-web` on a free loopback port, with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "NEWSFLOW_WEB_PORT": str(self.port), "NEWSFLOW_LOG_FORMAT": "text"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> WebProcess:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([venv_bin("newsflow-web")], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"newsflow-web exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"newsflow-web not healthy: {self.log.read_text()[-2000:]}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@pytest.fixture(scope="module")
def seeded(redis_url: str, es_url: str) -> dict[str, Any]:
    """The corpus indexed once for the module (the module's tests only read it, or write rules and feeds)."""
    settings = SearchSettings(elasticsearch_url=es_url)

    async def go() -> list[ParsedArticle]:
        es = AsyncElasticsearch(es_url, request_timeout=120)
        try:
            await es.options(ignore_status=404).indices.delete(index="news-*,newsflow-*", expand_wildcards="all")
            arts = corpus(datetime.now(UTC))
            await seed(es, settings, arts)
            return arts
        finally:
            await es.close()

    return {"articles": run_async(go()), "redis_url": redis_url, "es_url": es_url}


@pytest.fixture(scope="module")
def web(seeded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    log = tmp_path_factory.mktemp("web") / "web.log"
    proc = WebProcess(
        {
            "NEWSFLOW_REDIS_URL": seeded["redis_url"],
            "NEWSFLOW_ELASTICSEARCH_URL": seeded["es_url"],
            "NEWSFLOW_WEB_TOKEN": TOKEN,
            "NEWSFLOW_WEB_EXPORT_MAX": "5",
        },
        log,
    ).start()
    try:
        yield proc
    finally:
        # uvicorn re-raises SIGTERM once it has shut down gracefully, so the exit status names the signal.
        assert proc.stop() in (0, -15), log.read_text()[-3000:]
        text = log.read_text()
        assert "web app stopped" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
