"""Feed-to-searchable latency under indexer settings, side by side: paced runs of the full pipeline, one per
variant, each with the stages of its documents (feed served -> entry -> page downloaded -> parsed -> bulk).

    .venv/bin/python benchmarks/bench_latency.py RATE SECONDS REPLICAS '{"NEWSFLOW_BATCH_LINGER_S": "1", \
        "NEWSFLOW_BULK_REFRESH": "wait_for"}' '{}' ...

Each JSON object is extra environment for the services of one run ('{}': the defaults). Reads the pages of
../shared/eval like run_all.py; starts Redis and Elasticsearch with the project's scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import report, runs  # noqa: E402
from benchmarks.pipeline.infra import start_servers  # noqa: E402
from benchmarks.pipeline.pages import EvalDataMissing, load_pages  # noqa: E402
from benchmarks.pipeline.runs import Bench  # noqa: E402
from benchmarks.pipeline.site import BenchSite  # noqa: E402


async def main(rate: float, seconds: float, replicas: int, variants: list[dict[str, str]]) -> None:
    pages = load_pages()[:200]
    state = Path(tempfile.mkdtemp(prefix="latency-", dir=ROOT / ".state" if (ROOT / ".state").is_dir() else None))
    servers = await asyncio.to_thread(start_servers, state)
    base = dict(runs.ENV)
    try:
        async with BenchSite(pages) as site:
            bench = Bench(servers, site, state / "logs")
            for k, extra in enumerate(variants):
                runs.ENV.clear()
                runs.ENV.update({**base, **extra})
                n = int(rate * seconds)
                numbers = range(1_000_000 * (k + 1), 1_000_000 * (k + 1) + n)
                r = await bench.feed_run(f"latency-{k}", numbers, replicas, rate=rate)
                ids = {bench.doc_id(i): i for i in numbers}
                res = await bench.es.search(
                    index="news",
                    size=10_000,
                    query={"ids": {"values": list(ids)}},
                    source=["discovered_at", "fetched_at", "parsed_at", "indexed_at"],
                )
                stages: dict[str, list[float]] = {
                    "served -> entry": [],
                    "entry -> downloaded": [],
                    "downloaded -> parsed": [],
                    "parsed -> bulk written": [],
                }
                for h in res["hits"]["hits"]:
                    src, served = h["_source"], site.first_served.get(ids[h["_id"]])
                    t = [
                        datetime.fromisoformat(src[f]).timestamp() if src.get(f) else None
                        for f in ("discovered_at", "fetched_at", "parsed_at", "indexed_at")
                    ]
                    if served is None or None in t:
                        continue
                    for name, a, b in zip(stages, [served, *t[:3]], t, strict=True):
                        stages[name].append(b - a)  # type: ignore[operator]
                lat = r.latencies
                # Paced above what the machine sustains, this is a throughput comparison: documents/s and the
                # CPU each part spends per document are then the figures to read.
                per_doc = 1000 / max(r.indexed, 1)
                print(
                    f"{json.dumps(extra) or '{}'}: {r.indexed}/{n} searchable, {r.rate:.1f} documents/s "
                    f"(steady {r.steady_rate:.1f}); feed to searchable p50 {report.p(lat, 0.5):.2f} s, "
                    f"p95 {report.p(lat, 0.95):.2f} s, p99 {report.p(lat, 0.99):.2f} s; CPU ms per document "
                    + ", ".join(f"{a} {b * per_doc:.0f}" for a, b in r.cpu.items()),
                    flush=True,
                )
                for name, vals in stages.items():
                    if vals:
                        print(f"    {name}: p50 {report.p(vals, 0.5):.3f} s, p95 {report.p(vals, 0.95):.3f} s")
            await bench.close()
    finally:
        runs.ENV.clear()
        runs.ENV.update(base)
        await asyncio.to_thread(servers.stop)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    try:
        asyncio.run(
            main(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), [json.loads(a) for a in sys.argv[4:]])
        )
    except EvalDataMissing as e:
        sys.exit(f"bench_latency: {e}")
