"""`make bench`: Newsflow against the physical limit and against the alternatives, side by side, in one run.

    .venv/bin/python benchmarks/run_all.py            # full run (~20 min on 2 cores), writes docs/PERFORMANCE.md
    .venv/bin/python benchmarks/run_all.py --quick    # a few minutes, writes .state/bench/PERFORMANCE.md

Measures, on the labelled pages of ../shared/eval (scrapinghub + fundus-parser; never copied into the
project) served as distinct articles with RSS feeds by a loopback site (benchmarks/pipeline/site.py):
1. the limit: extraction alone on all cores (plain trafilatura.extract; and the parser's own extraction);
2. the pipeline: the three services as processes into the real Elasticsearch, 1 and 2 parser replicas:
   documents/s, feed-to-searchable latency, CPU seconds and peak memory per service, Redis memory;
   then a paced run at half the best throughput for latency;
3. the alternatives: a naive sequential pipeline (same pages, same Elasticsearch), and news-please's
   extraction (speed and F1 on scrapinghub);
4. a burst of entries written at once: memory over time, nothing lost, time to drain;
and profiles every service with py-spy. Redis and Elasticsearch are started with the project's scripts
unless NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL are set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import limit, quality, report  # noqa: E402
from benchmarks.pipeline.infra import start_servers  # noqa: E402
from benchmarks.pipeline.pages import DEFAULT_EVAL, EvalDataMissing, load_pages  # noqa: E402
from benchmarks.pipeline.profile import read as read_profile  # noqa: E402
from benchmarks.pipeline.runs import Bench, RunResult  # noqa: E402
from benchmarks.pipeline.site import BenchSite  # noqa: E402

MIN_WORDS = 60


@dataclass
class Config:
    articles: int
    burst: int
    paced_s: float
    replicas: tuple[int, ...]
    profile_articles: int
    profile_s: float
    quality_limit: int
    newsplease: bool
    out: Path
    plots: Path
    eval_dir: Path
    quick: bool
    naive_articles: int = 0
    report_only: Path | None = None
    wan_delay_s: float = 0.0
    wan_articles: int = 0


@dataclass
class Results:
    machine: dict[str, str] = field(default_factory=dict)
    pages_total: int = 0
    pages_used: int = 0
    rejected: list[str] = field(default_factory=list)
    limit_plain: limit.PoolResult | None = None
    limit_ours: limit.PoolResult | None = None
    runs: list[RunResult] = field(default_factory=list)
    paced: RunResult | None = None
    burst: RunResult | None = None
    profiled: RunResult | None = None
    profiles: list[Any] = field(default_factory=list)
    naive: dict[str, Any] | None = None
    # The naive loop and the pipeline again, with the site answering each article after cfg.wan_delay_s.
    wan_naive: dict[str, Any] | None = None
    wan_run: RunResult | None = None
    quality: list[quality.Quality] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    command: str = ""


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    cores = len(os.sched_getaffinity(0))
    return {
        "nproc": str(cores),
        "cpu": model,
        "memory": f"{mem_kb / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None) -> Config:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a few minutes; writes under .state/bench")
    ap.add_argument("--articles", type=int, help="articles per pipeline run (default 2000; quick 300)")
    ap.add_argument("--naive-articles", type=int, help="articles for the naive pipeline (default: --articles)")
    ap.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS",
        help="render the report and plots again from a saved results.pickle, measuring nothing",
    )
    ap.add_argument("--burst", type=int, help="entries in the burst (default 10000; quick 1500; 0 skips)")
    ap.add_argument("--paced-seconds", type=float, help="length of the paced latency run (default 60; quick 20)")
    ap.add_argument(
        "--wan-delay",
        type=float,
        default=0.2,
        help="seconds the site waits before each article response in the extra naive-against-pipeline"
        " pair, as a news site over the internet does (default 0.2; 0 skips the pair)",
    )
    ap.add_argument("--wan-articles", type=int, help="articles in each run of that pair (default 500; quick 100)")
    ap.add_argument("--replicas", default="1,2", help="parser replica counts to run (default 1,2)")
    ap.add_argument("--no-newsplease", action="store_true", help="skip news-please (needs the package index)")
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--out", type=Path, help="the Markdown report (default docs/PERFORMANCE.md; quick: .state/bench)")
    a = ap.parse_args(argv)
    quick = a.quick
    out = a.out or (ROOT / ".state/bench/PERFORMANCE.md" if quick else ROOT / "docs/PERFORMANCE.md")
    return Config(
        articles=a.articles or (300 if quick else 2000),
        burst=a.burst if a.burst is not None else (1500 if quick else 10_000),
        paced_s=a.paced_seconds or (20 if quick else 60),
        replicas=tuple(int(x) for x in a.replicas.split(",") if x.strip()),
        profile_articles=300 if quick else 600,
        profile_s=8 if quick else 20,
        quality_limit=40 if quick else 0,
        newsplease=not a.no_newsplease,
        out=out,
        plots=out.parent / "perf",
        eval_dir=a.eval_dir,
        quick=quick,
        naive_articles=a.naive_articles or a.articles or (300 if quick else 2000),
        report_only=a.report_only,
        wan_delay_s=a.wan_delay,
        wan_articles=a.wan_articles or (100 if quick else 500),
    )


async def pipeline_part(cfg: Config, res: Results, pages: list[Any], state: Path) -> None:
    log("starting Redis and Elasticsearch")
    servers = await asyncio.to_thread(start_servers, state)
    log(f"Redis {servers.redis_url}, Elasticsearch {servers.es_url}")
    try:
        async with BenchSite(pages) as site:
            bench = Bench(servers, site, state / "logs")
            try:
                await _runs(cfg, res, bench)
            finally:
                await bench.close()
    finally:
        await asyncio.to_thread(servers.stop)


async def _runs(cfg: Config, res: Results, bench: Bench) -> None:
    block = 1_000_000  # every run gets article numbers of its own: new URLs, nothing cached anywhere
    for k, r in enumerate(cfg.replicas):
        log(f"pipeline: {cfg.articles} articles, {r} parser replica(s)")
        run = await bench.feed_run(f"pipeline-{r}", range(block * (k + 1), block * (k + 1) + cfg.articles), r)
        log(
            f"  {run.indexed}/{run.expected} searchable in {run.seconds:.1f} s: {run.rate:.1f} docs/s "
            f"(steady {run.steady_rate:.1f}); p95 latency {report.p(run.latencies, 0.95):.2f} s"
        )
        res.runs.append(run)
    best = max(res.runs, key=lambda x: x.rate)
    rate = best.rate / 2
    n = max(10, int(rate * cfg.paced_s))
    log(f"paced: {n} articles at {rate:.1f}/s (half of {best.rate:.1f}), {best.replicas} parser replica(s)")
    res.paced = await bench.feed_run("paced", range(block * 10, block * 10 + n), best.replicas, rate=rate)
    log(f"  latency p50 {report.p(res.paced.latencies, 0.5):.2f} s, p95 {report.p(res.paced.latencies, 0.95):.2f} s")

    log(f"naive sequential pipeline: {cfg.naive_articles} articles")
    res.naive = await bench.naive(range(block * 11, block * 11 + cfg.naive_articles))
    log(f"  {res.naive['docs']} documents in {res.naive['seconds']:.1f} s: {report.naive_rate(res.naive):.1f} docs/s")

    if cfg.wan_delay_s > 0 and cfg.wan_articles:
        bench.site.article_delay_s = cfg.wan_delay_s
        try:
            n = cfg.wan_articles
            log(f"with {cfg.wan_delay_s:.2f} s per article response: naive sequential pipeline, {n} articles")
            res.wan_naive = await bench.naive(range(block * 14, block * 14 + n), index="bench-naive-wan")
            res.wan_naive["delay_s"] = cfg.wan_delay_s
            log(
                f"  {res.wan_naive['docs']} documents in {res.wan_naive['seconds']:.1f} s: "
                f"{report.naive_rate(res.wan_naive):.1f} docs/s"
            )
            log(
                f"with {cfg.wan_delay_s:.2f} s per article response: pipeline, {n} articles, "
                f"{best.replicas} parser replica(s)"
            )
            res.wan_run = await bench.feed_run("pipeline-wan", range(block * 15, block * 15 + n), best.replicas)
            log(
                f"  {res.wan_run.indexed}/{res.wan_run.expected} searchable in {res.wan_run.seconds:.1f} s: "
                f"{res.wan_run.rate:.1f} docs/s"
            )
        finally:
            bench.site.article_delay_s = 0.0

    if cfg.burst:
        log(f"burst: {cfg.burst} entries at once, {best.replicas} parser replica(s)")
        res.burst = await bench.burst("burst", range(block * 12, block * 12 + cfg.burst), best.replicas)
        log(f"  {res.burst.indexed}/{cfg.burst} searchable, drained in {res.burst.seconds:.1f} s")

    log(f"profile: py-spy on every service for {cfg.profile_s:.0f} s, {cfg.profile_articles} articles, 1 replica")
    prof_dir = bench.log_dir.parent / "profiles"
    res.profiled = await bench.feed_run(
        "profile",
        range(block * 13, block * 13 + cfg.profile_articles),
        1,
        profile_s=cfg.profile_s,
        profile_dir=prof_dir,
    )
    res.profiles = [read_profile(svc, path) for svc, path in sorted(res.profiled.profile.items())]


# Sections of the report written from other benchmarks' figures (bench_notifier.py) follow this line; a new
# run of this one rewrites what is above it and keeps them.
KEPT_MARKER = "<!-- Sections below are kept by make bench: figures of other benchmarks, by hand. -->"


def kept_sections(out: Path) -> str:
    text = out.read_text(encoding="utf-8") if out.is_file() else ""
    at = text.find(KEPT_MARKER)
    return "\n" + text[at:] if at >= 0 else ""


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        # Imported now, not when the report is drawn: a `uv sync` without the bench group elsewhere in the
        # same checkout while the benchmark runs would otherwise take them away mid-run.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
        import psutil  # noqa: F401
    except ImportError as e:
        print(
            f"run_all: {e.name} missing: run `uv sync --frozen --all-packages --group bench` (make bench does)",
            file=sys.stderr,
        )
        return 2
    if cfg.report_only:
        res, saved_cfg = pickle.loads(cfg.report_only.read_bytes())
        saved_cfg.out, saved_cfg.plots = cfg.out, cfg.out.parent / "perf"
        cfg.out.write_text(report.render(res, saved_cfg) + kept_sections(cfg.out), encoding="utf-8")
        print(report.console(res))
        log(f"report: {cfg.out} (from {cfg.report_only})")
        return 0
    args = sys.argv[1:] if argv is None else argv
    res = Results(
        machine=machine(),
        started=time.time(),
        load_before=os.getloadavg(),
        command=" ".join(["benchmarks/run_all.py", *args]) if args else "make bench",
    )
    try:
        all_pages = load_pages(cfg.eval_dir)
    except EvalDataMissing as e:
        print(f"run_all: {e}", file=sys.stderr)
        print("run_all: nothing measured (the benchmark runs on the public labelled pages only)", file=sys.stderr)
        return 2
    state = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / ".state" if (ROOT / ".state").is_dir() else None))
    spy = Path(sys.executable).parent / "py-spy"
    if spy.exists():  # a private copy, for the same reason as the imports above
        shutil.copy2(spy, state / "py-spy")
    workers = len(os.sched_getaffinity(0))
    res.pages_total = len(all_pages)
    log(f"{len(all_pages)} labelled pages; machine: {res.machine}; load {res.load_before}")

    # Pages the parser rejects (not an article, too short) would be dead-lettered, never indexed: the runs use
    # the ones it accepts, so that "N articles in" means "N documents out".
    # A margin over the parser's minimum, so that a copy's marker or feed title cannot tip a page either way.
    _, counts = limit.run_pool("check", limit.words, all_pages, range(len(all_pages)), workers)
    pages = [pg for pg, n in zip(all_pages, counts, strict=True) if n >= MIN_WORDS]
    res.rejected = [pg.id for pg, n in zip(all_pages, counts, strict=True) if n < MIN_WORDS]
    res.pages_used = len(pages)
    log(f"{len(pages)} pages accepted by the parser, {len(res.rejected)} rejected")

    numbers = range(cfg.articles)
    log(f"limit: plain trafilatura.extract over {cfg.articles} article copies on {workers} processes")
    res.limit_plain, _ = limit.run_pool("trafilatura.extract", limit.plain, pages, numbers, workers)
    log(f"  {res.limit_plain.rate:.1f} pages/s")
    res.limit_ours, _ = limit.run_pool("newsflow extract_payload", limit.ours, pages, numbers, workers)
    log(f"  Newsflow's extraction: {res.limit_ours.rate:.1f} pages/s")

    log("extraction quality on scrapinghub (one core): trafilatura, Newsflow, news-please")
    res.quality = quality.measure(all_pages, cfg.eval_dir, cfg.quality_limit, cfg.newsplease)
    for q in res.quality:
        log(f"  {q.name}: F1 {q.f1:.3f}, {q.rate or 0:.1f} pages/s {q.note}")

    try:
        asyncio.run(pipeline_part(cfg, res, pages, state))
    finally:
        res.finished = time.time()
        res.load_after = os.getloadavg()
    cfg.plots.mkdir(parents=True, exist_ok=True)
    saved = state / "results.pickle"
    saved.write_bytes(pickle.dumps((res, cfg)))
    log(f"results saved to {saved} (re-render with --report-only {saved})")
    text = report.render(res, cfg) + kept_sections(cfg.out)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(text, encoding="utf-8")
    print()
    print(report.console(res))
    log(f"report: {cfg.out}; plots: {cfg.plots}; logs and profiles: {state}")
    shutil.rmtree(state / "redis", ignore_errors=True)
    shutil.rmtree(state / "elasticsearch", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
