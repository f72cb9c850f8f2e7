"""Server time of the web page with 100,000 indexed articles: the search page (hits, four facets, the histogram,
highlighting) and the article page (document, copies, same-story coverage, alerts).

    .venv/bin/python benchmarks/bench_web.py                      # starts its own Redis and Elasticsearch
    .venv/bin/python benchmarks/bench_web.py --articles 20000 --requests 100
    .venv/bin/python benchmarks/bench_web.py --es-url URL --no-index    # measure again on a node indexed before

Articles are generated (the demo generator's vocabulary: towns, people, sections over 90 days, 20 sources, six
languages' worth of language tags, one in twenty a syndicated copy) and bulk-indexed through the project's own
`to_document`. The web app runs as its own process (`newsflow-web`); each request's server time is read from its
`Server-Timing` header (time to the response's first byte inside the app), and the wall time on loopback is
printed beside it. Queries are a mix: one word, two words, a phrase, OR, with and without a facet or a date range.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from elasticsearch import AsyncElasticsearch  # noqa: E402
from elasticsearch.helpers import async_streaming_bulk  # noqa: E402

from newsflow_devtools.demo.generator import FIRST, LAST, TOWNS  # noqa: E402
from newsflow_devtools.processes import free_port, venv_bin  # noqa: E402
from newsflow_search.documents import doc_version, to_document  # noqa: E402
from newsflow_search.index_setup import ensure_index  # noqa: E402
from newsflow_search.settings import SearchSettings  # noqa: E402
from newsflow_shared.ids import article_id  # noqa: E402
from newsflow_shared.models import Block, ParsedArticle  # noqa: E402

SECTIONS = ["Politics", "World", "Business", "Sport", "Culture", "Science", "Health", "Local", "Technology"]
TOPICS = [
    "port strike",
    "rocket attack",
    "council budget",
    "river flood",
    "rail link",
    "heatwave record",
    "chip plant",
    "marathon record",
    "museum manuscripts",
    "vaccination clinics",
    "wildfire evacuation",
    "central bank rates",
]
WORDS = [
    "officials",
    "said",
    "the",
    "plan",
    "would",
    "take",
    "years",
    "and",
    "cost",
    "more",
    "than",
    "expected",
    "while",
    "residents",
    "asked",
    "for",
    "answers",
    "about",
    "safety",
    "schools",
    "roads",
    "water",
    "power",
    "prices",
    "jobs",
    "wages",
    "housing",
    "transport",
    "hospitals",
    "police",
    "courts",
    "elections",
    "parliament",
    "ministers",
    "talks",
    "agreement",
    "deal",
    "protest",
    "strike",
    "storm",
    "drought",
    "harvest",
    "market",
]
QUERIES = ["strike", "port strike", '"rocket attack"', "flood OR storm", "council", "museum", "rail* link", "record"]


def article(i: int, now: datetime, rnd: random.Random) -> ParsedArticle:
    town, topic = rnd.choice(TOWNS), rnd.choice(TOPICS)
    source = f"news-{i % 20:02d}.example"
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(80, 220))]
    paragraphs = [
        f"{town}: {topic} dominates the week.",
        " ".join(words[: len(words) // 2]) + f" in {town}.",
        " ".join(words[len(words) // 2 :]) + f" about the {topic}.",
    ]
    text = "\n\n".join(paragraphs)
    copy_of = i - 1 if i % 20 == 19 else None  # a syndicated copy: the previous article's text at another URL
    fingerprint = hashlib.sha256(f"{copy_of if copy_of is not None else i}".encode()).hexdigest()[:16]
    url = f"https://{source}/{rnd.choice(SECTIONS).lower()}/{i}"
    return ParsedArticle(
        article_id=article_id(url),
        url=url,
        domain=source,
        site_name=f"The {town} {rnd.choice(['Courier', 'Times', 'Post', 'Herald'])}",
        title=f"{town} {topic}: {rnd.choice(WORDS)} {rnd.choice(WORDS)} after {rnd.choice(WORDS)}",
        text=text,
        blocks=[Block(kind="h" if j == 0 else "p", text=p) for j, p in enumerate(paragraphs)],
        section=rnd.choice(SECTIONS),
        authors=[f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"],
        language=rnd.choice(["en"] * 8 + ["fr", "de"]),
        word_count=len(text.split()),
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        simhash=fingerprint,
        published_at=now - timedelta(minutes=rnd.randint(0, 90 * 24 * 60)),
        parsed_at=now,
    )


async def index(es_url: str, n: int) -> float:
    settings = SearchSettings(elasticsearch_url=es_url)
    es = AsyncElasticsearch(es_url, request_timeout=300)
    await ensure_index(es, settings)
    await es.indices.put_settings(index="news", settings={"index": {"refresh_interval": "-1"}})
    now, rnd = datetime.now(UTC), random.Random(7)
    started = time.monotonic()

    def actions():
        for i in range(n):
            a = article(i, now, rnd)
            yield {
                "_index": "news",
                "_id": a.article_id,
                "version": doc_version(a),
                "version_type": "external",
                "_source": to_document(a),
            }

    done = 0
    async for ok, item in async_streaming_bulk(es, actions(), chunk_size=2000, raise_on_error=False):
        done += 1
        if not ok and item.get("index", {}).get("status") != 409:
            raise RuntimeError(item)
        if done % 20000 == 0:
            print(f"  indexed {done:,} ({done / (time.monotonic() - started):.0f}/s)", flush=True)
    await es.indices.put_settings(index="news", settings={"index": {"refresh_interval": "1s"}})
    await es.indices.refresh(index="news")
    await es.indices.forcemerge(index="news", max_num_segments=5)
    took = time.monotonic() - started
    count = (await es.count(index="news"))["count"]
    await es.close()
    print(f"indexed {count:,} articles in {took:.0f} s")
    return took


def timed(url: str) -> tuple[float, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        header = r.headers.get("Server-Timing", "")
    wall = (time.perf_counter() - started) * 1000
    m = re.search(r"dur=([\d.]+)", header)
    return float(m[1]) if m else wall, wall


def search_urls(base: str, n: int, rnd: random.Random) -> list[str]:
    urls = []
    for i in range(n):
        params: list[tuple[str, str]] = [("q", QUERIES[i % len(QUERIES)])]
        if i % 3 == 1:
            params.append(("section", rnd.choice(SECTIONS)))
        if i % 4 == 2:
            params.append(("since", "30d"))
        if i % 5 == 3:
            params.append(("sort", "newest"))
        urls.append(base + "/search?" + urllib.parse.urlencode(params))
    return urls


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(name: str, rows: list[tuple[float, float]]) -> None:
    server = [s for s, _ in rows]
    wall = [w for _, w in rows]
    print(
        f"{name:<14} n={len(rows):4d}  server p50 {p(server, 50):6.1f} ms  p95 {p(server, 95):6.1f} ms  "
        f"max {max(server):6.1f} ms   (wall p50 {p(wall, 50):6.1f}, p95 {p(wall, 95):6.1f} ms)"
    )


def run_requests(base: str, requests: int) -> None:
    rnd = random.Random(11)
    for url in search_urls(base, 10, rnd):  # warm-up: caches, JIT, hunspell
        timed(url)
    searches = [timed(u) for u in search_urls(base, requests, rnd)]
    ids: list[str] = []
    for q in QUERIES:
        html = urllib.request.urlopen(base + "/search?" + urllib.parse.urlencode({"q": q, "size": 50})).read()
        ids += re.findall(rb'href="/articles/([0-9a-f]{32})"', html)
    pages = [timed(f"{base}/articles/{ids[i % len(ids)].decode()}") for i in range(requests)]
    report("search page", searches)
    report("article page", pages)


def start(cmd: list[str]) -> str:
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--es-url", help="use this Elasticsearch (its news indices are replaced)")
    ap.add_argument("--redis-url")
    ap.add_argument("--no-index", action="store_true", help="measure only: the --es-url node has the articles already")
    a = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-web-"))
    started = []
    try:
        es_url = a.es_url or start(["scripts/elasticsearch.sh", "start", "--home", str(state / "es")])
        if not a.es_url:
            started.append(["scripts/elasticsearch.sh", "stop", "--home", str(state / "es")])
        redis_url = a.redis_url or start(["scripts/redis.sh", "start", "--dir", str(state / "redis")])
        if not a.redis_url:
            started.append(["scripts/redis.sh", "stop", "--dir", str(state / "redis")])
        if not a.no_index:
            asyncio.run(index(es_url, a.articles))
        port = free_port()
        env = {
            **os.environ,
            "NEWSFLOW_ELASTICSEARCH_URL": es_url,
            "NEWSFLOW_REDIS_URL": redis_url,
            "NEWSFLOW_WEB_PORT": str(port),
            "NEWSFLOW_LOG_LEVEL": "WARNING",
        }
        web = subprocess.Popen([venv_bin("newsflow-web")], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            run_requests(base, a.requests)
        finally:
            web.terminate()
            web.wait(30)
    finally:
        for cmd in started:
            subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
