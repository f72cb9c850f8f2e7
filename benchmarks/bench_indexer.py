"""Indexer benchmark: documents/s, ingest-to-searchable latency, and the cost of rule evaluation.

    .venv/bin/python benchmarks/bench_indexer.py                 # 5,000 articles, 100 and 1,000 rules
    .venv/bin/python benchmarks/bench_indexer.py --articles 1000 --rules 100

1. Throughput and latency: the real indexer service (the runtime, Redis stream, bulk writes with
   refresh=wait_for, 10 alert rules) runs in this process; 5,000 articles are put on news.parsed,
   (a) all at once (backlog: documents/s at full speed), and (b) at a steady rate below capacity
   (default: half the backlog throughput). Latency per article = from its XADD to the
   moment its bulk request returned (with refresh=wait_for it is searchable then; spot-checked).
2. Rule evaluation: N rules (100, then 1,000) in the rules index, evaluated against batches of 500
   indexed articles: the `_msearch` alone, and the whole step including the durable alert records.

Articles: the bodies of ../shared/eval (scrapinghub, English; fundus-parser, many languages), each
used under many distinct URLs with a varying first sentence, so that sizes and languages are real.
When ../shared/eval is absent, synthetic text is used instead, and the report says so.
Redis and Elasticsearch: NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL, or started with the
project's scripts in a temporary directory (ALL their indices are wiped: never point this at real data).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"

VOCAB = [
    "attack",
    "rocket",
    "airport",
    "militia",
    "council",
    "budget",
    "storm",
    "flood",
    "market",
    "drone",
    "port",
    "minister",
    "election",
    "court",
    "police",
    "fire",
    "bridge",
    "harbour",
    "school",
    "hospital",
    "government",
    "president",
    "border",
    "army",
    "protest",
    "company",
    "bank",
    "energy",
    "oil",
    "gas",
    "price",
    "inflation",
    "vaccine",
    "virus",
    "climate",
    "football",
    "strike",
    "union",
]
COUNTRY_LANG = {
    "at": "de",
    "de": "de",
    "ch": "de",
    "fr": "fr",
    "es": "es",
    "ru": "ru",
    "us": "en",
    "uk": "en",
    "gb": "en",
    "au": "en",
    "ca": "en",
    "in": "en",
    "ie": "en",
    "nz": "en",
    "mx": "es",
    "ar": "es",
}


def load_bodies() -> tuple[list[tuple[str, str | None]], str]:
    bodies: list[tuple[str, str | None]] = []
    for folder, lang_of in (
        ("scrapinghub", lambda _id: "en"),
        ("fundus-parser", lambda i: COUNTRY_LANG.get(i.split("_", 1)[0])),
    ):
        f = EVAL / folder / "truth.jsonl"
        if not f.exists():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text = (row.get("text") or "").strip()
            if len(text.split()) >= 60:
                bodies.append((text, lang_of(row["id"])))
    if bodies:
        return bodies, f"{len(bodies)} real article bodies from {EVAL}"
    rnd = random.Random(7)
    words = VOCAB[:20]
    synthetic = [(" ".join(rnd.choice(words) for _ in range(400)), "en") for _ in range(50)]
    return synthetic, f"SYNTHETIC text ({EVAL} is absent): figures are not comparable"


def articles(n: int, bodies: list[tuple[str, str | None]], tag: str) -> Iterator[Any]:
    from newsflow_shared.ids import article_id
    from newsflow_shared.models import ParsedArticle

    now = datetime.now(UTC)
    for i in range(n):
        text, lang = bodies[i % len(bodies)]
        text = f"Dispatch {tag}-{i}. {text}"
        url = f"https://bench{i % 40}.example.org/{tag}/article-{i}"
        yield ParsedArticle(
            article_id=article_id(url),
            url=url,
            domain=url.split("/")[2],
            title=text.split(".", 1)[0][:120],
            text=text,
            language=lang,
            word_count=len(text.split()),
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            simhash=hashlib.sha256(f"{tag}{i}".encode()).hexdigest()[:16],
            published_at=now - timedelta(minutes=30),
            discovered_at=now,
            parsed_at=now,
        )


def start_servers(tmp: Path) -> tuple[str, str, list[list[str]]]:
    stops: list[list[str]] = []
    redis_url = os.environ.get("NEWSFLOW_REDIS_URL")
    es_url = os.environ.get("NEWSFLOW_ELASTICSEARCH_URL")
    if not redis_url:
        d = tmp / "redis"
        d.mkdir()
        out = subprocess.run(
            ["scripts/redis.sh", "start", "--dir", str(d)], cwd=ROOT, check=True, capture_output=True, text=True
        )
        redis_url = out.stdout.strip().splitlines()[-1]
        stops.append(["scripts/redis.sh", "stop", "--dir", str(d)])
    if not es_url:
        d = tmp / "es"
        out = subprocess.run(
            ["scripts/elasticsearch.sh", "start", "--home", str(d)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        es_url = out.stdout.strip().splitlines()[-1]
        stops.append(["scripts/elasticsearch.sh", "stop", "--home", str(d)])
    return redis_url, es_url, stops


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


async def wipe(es: Any, redis: Any) -> None:
    await es.options(ignore_status=404).indices.delete(index="*", expand_wildcards="open,closed,hidden")
    await redis.flushdb()


async def run_service(settings: Any, redis: Any, es: Any, arts: list[Any], rate: float) -> dict[str, Any]:
    """The real service in this process; returns documents/s and latency percentiles."""
    from newsflow_indexer.main import build
    from newsflow_search.index_setup import ensure_index
    from newsflow_search.rules import Rule, RuleStore
    from newsflow_shared import streams
    from newsflow_shared.runtime import encode

    await wipe(es, redis)
    await ensure_index(es, settings)
    store = RuleStore(es)
    for i, q in enumerate(
        [
            '"rocket attack"',
            "drone AND militia*",
            "storm OR flood",
            "election~1",
            "market*",
            "minister AND resign*",
            '"prime minister"',
            "court AND ruling",
            "police",
            "ceasefire",
        ]
    ):
        await store.add(Rule(name=f"r{i}", query=q, channels=[]))
    before = _phase_totals()
    svc = build(settings)
    consumer = svc.consumers[0]
    inner = consumer.handle_batch
    done_at: dict[str, float] = {}
    batches: list[int] = []
    all_done = asyncio.Event()

    async def timed(msgs: list[Any]) -> Any:
        out = await inner(msgs)  # type: ignore[misc]
        t = time.monotonic()
        batches.append(len(msgs))
        for m in msgs:
            done_at.setdefault(m.article_id, t)
        if len(done_at) >= len(arts):
            all_done.set()
        return out

    consumer.handle_batch = timed
    stop = asyncio.Event()
    server = asyncio.create_task(svc.serve(stop))
    await svc.ready.wait()
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    chunk = 50
    for i in range(0, len(arts), chunk):
        part = arts[i : i + chunk]
        pipe = redis.pipeline()
        for a in part:
            pipe.xadd(streams.PARSED, encode(a))
        t = time.monotonic()
        await pipe.execute()
        for a in part:
            sent_at[a.article_id] = t
        if rate > 0:
            await asyncio.sleep(max(0.0, started + (i + chunk) / rate - time.monotonic()))
    await all_done.wait()
    finished = time.monotonic()
    stop.set()
    await server
    lat = [done_at[a.article_id] - sent_at[a.article_id] for a in arts]
    await es.indices.refresh(index="news")
    count = (await es.count(index="news"))["count"]
    probe = arts[len(arts) // 2]
    found = (await es.search(index="news", query={"ids": {"values": [probe.article_id]}}))["hits"]["total"]["value"]
    after = _phase_totals()
    return {
        "bulk_s": after["bulk"] - before["bulk"],
        "rules_s": after["rules"] - before["rules"],
        "documents": count,
        "spot_check_found": found == 1,
        "docs_per_s": len(arts) / (finished - started),
        "wall_s": finished - started,
        "p50_s": pct(lat, 50),
        "p95_s": pct(lat, 95),
        "max_s": max(lat),
        "batches": len(batches),
        "mean_batch": statistics.mean(batches),
    }


def _phase_totals() -> dict[str, float]:
    """Seconds spent so far in bulk writes and in rule evaluation (the indexer's own histograms)."""
    from prometheus_client import REGISTRY

    return {
        "bulk": REGISTRY.get_sample_value("newsflow_indexer_bulk_seconds_sum") or 0.0,
        "rules": REGISTRY.get_sample_value("newsflow_indexer_rule_eval_seconds_sum") or 0.0,
    }


def rule_queries(n: int, seed: int = 11) -> list[str]:
    """Operator-like rules: phrases and conjunctions of news words, a few with wildcards or fuzziness."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rnd.sample(VOCAB, 3)
        out.append(
            [
                f'"{a} {b}"',
                f"{a} AND {b}* AND {c}",
                f"{a} {b}~1 {c}",
                f"({a} OR {b}) AND {c}",
                f"{a} AND {b} AND NOT {c}",
            ][i % 5]
        )
    return out


async def rule_cost(settings: Any, es: Any, arts: list[Any], n_rules: int, batch: int, rounds: int) -> dict[str, Any]:
    from newsflow_indexer.alerts import AlertEngine
    from newsflow_search.documents import stemmed_language
    from newsflow_search.index_setup import ensure_index
    from newsflow_search.rules import Rule, RuleStore

    # (no _delete_by_query: that is the reindex module, not in the server core)
    await es.options(ignore_status=404).indices.delete(index=f"{settings.rules_index},{settings.alerts_index}")
    await ensure_index(es, settings)
    store = RuleStore(es, settings.rules_index)
    for i, q in enumerate(rule_queries(n_rules)):
        doc = Rule(name=f"bench-{i}", query=q, channels=[]).to_doc("bench")
        await es.index(index=settings.rules_index, id=Rule(name=f"bench-{i}", query=q).id, document=doc)
    await es.indices.refresh(index=settings.rules_index)
    rules = await store.all(enabled_only=True)
    engine = AlertEngine(es, settings)
    match_s, eval_s, fired = [], [], []
    for r in range(rounds):
        part = arts[r * batch : (r + 1) * batch]
        ids = [a.article_id for a in part]
        t = time.perf_counter()
        langs = sorted({x for a in part if (x := stemmed_language(a.language))})
        await engine.match(rules, ids, langs)  # as evaluate() calls it
        match_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = await engine.evaluate(rules, part)
        eval_s.append(time.perf_counter() - t)
        fired.append(sum(len(v) for v in out.values()))
    return {
        "rules": len(rules),
        "batch": batch,
        "rounds": rounds,
        "msearch_p50_ms": 1000 * pct(match_s, 50),
        "msearch_p95_ms": 1000 * pct(match_s, 95),
        "evaluate_p50_ms": 1000 * pct(eval_s, 50),
        "evaluate_p95_ms": 1000 * pct(eval_s, 95),
        "alerts_per_batch": statistics.mean(fired),
    }


def main(args: argparse.Namespace) -> None:
    bodies, source = load_bodies()
    print(f"articles: {source}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-indexer-") as tmp:
        redis_url, es_url, stops = start_servers(Path(tmp))
        try:
            results = asyncio.run(bench(args, bodies, source, redis_url, es_url))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
        finally:
            for cmd in stops:
                with contextlib.suppress(Exception):
                    subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120)


async def bench(
    args: argparse.Namespace, bodies: list[tuple[str, str | None]], source: str, redis_url: str, es_url: str
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from newsflow_indexer.settings import IndexerSettings
    from newsflow_search.es import make_client

    settings = IndexerSettings(
        redis_url=redis_url,
        elasticsearch_url=es_url,
        batch_size=args.batch,
        batch_linger_s=1.0,
        metrics_port=0,
        metrics_host="127.0.0.1",
        rules_refresh_s=60,
    )
    es = make_client(settings, request_timeout=120)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        results: dict[str, Any] = {"source": source, "articles": args.articles, "batch": args.batch}
        if args.rules_only:
            from newsflow_indexer.writer import BulkWriter
            from newsflow_search.index_setup import ensure_index

            await wipe(es, redis)
            await ensure_index(es, settings)
            arts2 = list(articles(args.articles, bodies, "steady"))
            for i in range(0, len(arts2), 500):
                await BulkWriter(es, settings).write(arts2[i : i + 500])
            print(f"{len(arts2)} articles indexed for the rule measurements")
        else:
            arts2 = await _service_runs(args, settings, redis, es, bodies, results)
        rounds = max(1, min(args.rounds, args.articles // 500))
        for n in args.rules:
            c = await rule_cost(settings, es, arts2, n, 500, rounds)
            results[f"rules_{n}"] = c
            print(
                f"{n} rules x batch of 500: _msearch p50 {c['msearch_p50_ms']:.0f} ms "
                f"p95 {c['msearch_p95_ms']:.0f} ms; with alert records p50 {c['evaluate_p50_ms']:.0f} ms "
                f"p95 {c['evaluate_p95_ms']:.0f} ms; {c['alerts_per_batch']:.0f} alerts per batch"
            )
        return results
    finally:
        await es.close()
        await redis.aclose()


async def _service_runs(
    args: argparse.Namespace,
    settings: Any,
    redis: Any,
    es: Any,
    bodies: list[tuple[str, str | None]],
    results: dict[str, Any],
) -> list[Any]:
    arts = list(articles(args.articles, bodies, "backlog"))
    mb = sum(len(a.model_dump_json()) for a in arts) / 1e6
    print(f"{len(arts)} articles, {mb:.1f} MB of JSON, batch_size {args.batch}, linger 1 s")
    r = await run_service(settings, redis, es, arts, rate=0)
    results["backlog"] = r
    print(
        f"backlog (all at once): {r['docs_per_s']:.0f} docs/s, {r['wall_s']:.1f} s, "
        f"latency p50 {r['p50_s']:.2f} s p95 {r['p95_s']:.2f} s (queueing included), "
        f"{r['documents']} documents, mean batch {r['mean_batch']:.0f}; "
        f"bulk writes {r['bulk_s']:.1f} s, rule evaluation {r['rules_s']:.1f} s"
    )
    arts2 = list(articles(args.articles, bodies, "steady"))
    # Latency means something only below capacity: by default, half the backlog throughput.
    rate = args.rate or results["backlog"]["docs_per_s"] / 2
    r = await run_service(settings, redis, es, arts2, rate=rate)
    results["steady"] = {**r, "rate": rate}
    print(
        f"steady {rate:.0f}/s: {r['docs_per_s']:.0f} docs/s, ingest-to-searchable p50 "
        f"{r['p50_s']:.2f} s p95 {r['p95_s']:.2f} s max {r['max_s']:.2f} s, "
        f"{r['documents']} documents, mean batch {r['mean_batch']:.0f}; "
        f"bulk writes {r['bulk_s']:.1f} s, rule evaluation {r['rules_s']:.1f} s"
    )
    return arts2


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--articles", type=int, default=5000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument(
        "--rate", type=float, default=0.0, help="articles/s of the steady run (default: half the backlog throughput)"
    )
    p.add_argument("--rules", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--rounds", type=int, default=10, help="batches of 500 per rule-count measurement")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument(
        "--rules-only",
        action="store_true",
        help="index the articles with the bulk writer and measure only rule evaluation",
    )
    main(p.parse_args())
