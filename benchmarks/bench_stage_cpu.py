"""CPU per searchable document per process, for variants of the services' settings, side by side in one run.

    .venv/bin/python benchmarks/bench_stage_cpu.py --eval-dir ../shared/eval --articles 300 \\
        --variant base: --variant adaptive:NEWSFLOW_BULK_REFRESH=adaptive [--paced 10] [--profile 8]

A focused slice of `run_all.py` (same site, same services as processes, same sampler, same CPU figures as
its table), for before/after comparisons of one stage in minutes: each variant is one pipeline run of
`--articles` articles with one parser replica, with the environment it names added to the services';
variants alternate for `--rounds` rounds on the same Redis and Elasticsearch, so the load of the machine
falls on all of them alike. `--paced R` adds, per variant, a run at R articles/s for the latency figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import limit, report  # noqa: E402
from benchmarks.pipeline.infra import start_servers  # noqa: E402
from benchmarks.pipeline.pages import DEFAULT_EVAL, load_pages  # noqa: E402
from benchmarks.pipeline.profile import read as read_profile  # noqa: E402
from benchmarks.pipeline.runs import Bench, RunResult  # noqa: E402
from benchmarks.pipeline.site import BenchSite  # noqa: E402

STAGES = ("fetcher", "parser", "indexer", "redis", "elasticsearch")


def variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    env = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    return name, env


def row(name: str, r: RunResult) -> str:
    ms = report.cpu_ms_per_doc(r)
    total = sum(ms.values())
    cells = " ".join(f"{ms.get(s, 0.0):7.1f}" for s in STAGES)
    lat = f"p50 {report.p(r.latencies, 0.5):.2f} s p95 {report.p(r.latencies, 0.95):.2f} s" if r.latencies else ""
    return f"{name:24s} {cells} {total:7.1f}  {r.indexed}/{r.expected} docs, {r.rate:.1f}/s, {lat}"


async def run(a: argparse.Namespace, pages: list) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-stage-", dir=ROOT / ".state"))
    spy = Path(sys.executable).parent / "py-spy"
    if spy.exists():
        shutil.copy2(spy, state / "py-spy")
    servers = await asyncio.to_thread(start_servers, state)
    variants = [variant(v) for v in a.variant]
    results: list[tuple[str, RunResult]] = []
    try:
        async with BenchSite(pages) as site:
            bench = Bench(servers, site, state / "logs")
            base_env = bench.env
            block = 1_000_000
            k = 0
            try:
                for rnd in range(a.rounds):
                    for name, env in variants:
                        k += 1
                        bench.env = lambda extra=None, env=env: base_env({**env, **(extra or {})})  # type: ignore[method-assign]
                        numbers = range(block * k, block * k + a.articles)
                        print(f"[{time.strftime('%H:%M:%S')}] {name} round {rnd}: {a.articles} articles", flush=True)
                        prof = state / "profiles" / f"{name}-{rnd}"
                        r = await bench.feed_run(
                            f"{name}-{rnd}", numbers, 1, profile_s=a.profile, profile_dir=prof if a.profile else None
                        )
                        results.append((f"{name} #{rnd}", r))
                        print(row(name, r), flush=True)
                        for svc, path in sorted(r.profile.items()):
                            p = read_profile(svc, path)
                            print(f"  profile {svc}: {p}", flush=True)
                        if a.paced:
                            k += 1
                            n = int(a.paced * a.paced_s)
                            r = await bench.feed_run(
                                f"{name}-paced-{rnd}", range(block * k, block * k + n), 1, rate=a.paced
                            )
                            results.append((f"{name} paced #{rnd}", r))
                            print(row(name + " paced", r), flush=True)
            finally:
                await bench.close()
    finally:
        await asyncio.to_thread(servers.stop)
    print()
    print(f"{'CPU ms per searchable doc':24s} " + " ".join(f"{s[:7]:>7s}" for s in STAGES) + "   total")
    for name, r in results:
        print(row(name, r))
    print(f"state (logs, profiles): {state}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME:ENV=VALUE,ENV2=VALUE (repeatable)")
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--paced", type=float, default=0.0, help="articles/s of an extra paced run per variant")
    ap.add_argument("--paced-s", type=float, default=20.0)
    ap.add_argument("--profile", type=float, default=0.0, help="seconds of py-spy on every service")
    ap.add_argument("--plain", action="store_true", help="also plain trafilatura's CPU per page, on 1 process")
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    a = ap.parse_args()
    all_pages = load_pages(a.eval_dir)
    workers = len(os.sched_getaffinity(0))
    _, counts = limit.run_pool("check", limit.words, all_pages, range(len(all_pages)), workers)
    pages = [pg for pg, n in zip(all_pages, counts, strict=True) if n >= 60]
    if a.plain:
        plain, _ = limit.run_pool("trafilatura.extract", limit.plain, pages, range(a.articles), workers)
        print(f"plain trafilatura: {plain.cpu_ms:.1f} ms CPU per page", flush=True)
    asyncio.run(run(a, pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
