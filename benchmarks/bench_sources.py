"""Figures for docs/ARCHIVE.md and docs/SOURCES.md: archive overhead, backfill throughput, sitemap parsing.

    .venv/bin/python benchmarks/bench_sources.py [--pages 300] [--eval-dir DIR] [--skip-backfill]

1. Archive overhead per article: the fetcher's real downloader (ArticleDownloader) fetches N pages
   from a static server in another process, with the archive off and on; the difference in this
   process's CPU is what archiving costs per article. It is set against the live pipeline's own CPU
   per article: the downloader's plus the parser's extraction (measured here on the same pages) plus the
   indexer's (measured in part 2). Bytes on disk per article too.
2. Backfill: the same pages written to a WARC file, `newsflow backfill` run against a real Redis,
   Elasticsearch, parser and indexer (processes, as deployed): articles per second until all are
   indexed, and CPU per article of the CLI, parser and indexer, against the live pipeline's
   (downloader + parser + indexer).
3. ultimate-sitemap-parser on a 50,000-URL Google News sitemap and a 50,000-URL plain one.

Pages are the labelled eval pages in ../shared/eval/ (read in place); without them the script says so
and uses generated articles instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline.pages import DEFAULT_EVAL, EvalDataMissing, load_pages

ROOT = Path(__file__).resolve().parents[1]


def pages_for(n: int, eval_dir: Path) -> tuple[list[bytes], str]:
    try:
        base = [p.html for p in load_pages(eval_dir)]
        where = f"{len(base)} eval pages from {eval_dir}"
    except EvalDataMissing as e:
        print(f"NOTE: {e}\n      using generated articles instead: figures are NOT from real pages")
        para = "<p>" + "Officials said the harbour would reopen after the inspection of the cranes. " * 12 + "</p>"
        base = [
            f"<html lang='en'><body><article><h1>Story {i}</h1>{para * 6}</article></body></html>".encode()
            for i in range(50)
        ]
        where = "generated pages (no eval data)"
    return [base[i % len(base)] + f"<!-- copy {i} -->".encode() for i in range(n)], where


# --- 1. archive overhead in the real downloader ----------------------------------------------------------


async def _download_all(pages: int, port: int, archive_dir: Path | None) -> float:
    from newsflow_fetcher.archiving import PageArchive
    from newsflow_fetcher.downloader import ArticleDownloader
    from newsflow_fetcher.settings import FetcherSettings
    from newsflow_http.httpclient import HttpClient
    from newsflow_shared.ids import article_id
    from newsflow_shared.models import FeedEntry

    s = FetcherSettings(
        allowed_networks=["127.0.0.0/8"],
        per_host_delay_s=0,
        per_host_concurrency=16,
        respect_robots=False,
        archive_dir=archive_dir or Path(tempfile.mkdtemp()),
        consumer_name="bench",
    )
    archive = PageArchive(s) if archive_dir else None
    async with HttpClient(s) as http:
        d = ArticleDownloader(http, None, s, archive)
        entries = [
            FeedEntry(url=u, link=u, article_id=article_id(u), feed_url="bench")
            for u in (f"http://127.0.0.1:{port}/p{i}.html" for i in range(pages))
        ]
        sem = asyncio.Semaphore(16)

        async def one(e: FeedEntry) -> None:
            async with sem:
                await d.handle(e)

        await one(entries[0])  # warm the connection pool and imports
        cpu = time.process_time()
        await asyncio.gather(*(one(e) for e in entries[1:]))
        used = time.process_time() - cpu
    if archive is not None:
        archive.close()
    return used / (pages - 1)


def archive_overhead(pages: list[bytes], work: Path) -> dict[str, float]:
    site = work / "site"
    site.mkdir()
    for i, p in enumerate(pages):
        (site / f"p{i}.html").write_bytes(p)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        off = min(asyncio.run(_download_all(len(pages), port, None)) for _ in range(3))
        on_runs = []
        for r in range(3):
            d = work / f"archive{r}"
            on_runs.append(asyncio.run(_download_all(len(pages), port, d)))
        on = min(on_runs)
        size = sum(f.stat().st_size for f in (work / "archive0").rglob("*.warc.gz"))
    finally:
        server.terminate()
        server.wait()
    return {
        "download_ms": off * 1000,
        "download_archive_ms": on * 1000,
        "archive_ms": (on - off) * 1000,
        "bytes": size / len(pages),
    }


def extraction_cpu(pages: list[bytes], n: int = 100) -> float:
    from newsflow_extract.extract import extract, warm_up

    warm_up()
    sample = pages[:n]
    cpu = time.process_time()
    for i, p in enumerate(sample):
        with contextlib.suppress(Exception):  # a page the parser refuses still cost its CPU
            extract(p.decode("utf-8", "replace"), f"https://bench.test/p{i}.html", min_words=0)
    return (time.process_time() - cpu) / len(sample) * 1000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- 2. backfill through the deployed path ----------------------------------------------------------------


def write_warc(pages: list[bytes], path: Path) -> None:
    from newsflow_archive.writer import Fetched, WarcArchive

    w = WarcArchive(path.parent / "w", "bench")
    for i, p in enumerate(pages):
        w.write(
            Fetched(
                url=f"https://bench{i % 20}.test/news/{i}.html",
                status=200,
                reason="OK",
                http_version="HTTP/1.1",
                request_headers=[],
                response_headers=[("Content-Type", "text/html; charset=utf-8")],
                body=p,
                fetched_at=datetime.now(UTC),
            )
        )
    w.close()
    (file,) = (path.parent / "w").rglob("*.warc.gz")
    file.rename(path)


def backfill(pages: list[bytes], work: Path) -> dict[str, float]:
    import psutil

    from benchmarks.pipeline.infra import start_servers
    from newsflow_devtools.processes import ServiceProcess

    servers = start_servers(work / "state")
    env = {
        **os.environ,
        "NEWSFLOW_REDIS_URL": servers.redis_url,
        "NEWSFLOW_ELASTICSEARCH_URL": servers.es_url,
        "NEWSFLOW_LOG_LEVEL": "WARNING",
        "NEWSFLOW_PARSER_WORKERS": str(os.cpu_count() or 2),
    }
    procs: list[ServiceProcess] = []
    try:
        subprocess.run([_bin("newsflow"), "init"], env=env, check=True, capture_output=True)
        for name in ("parser", "indexer"):
            p = ServiceProcess(name, 1, env, work / "logs")
            p.start()
            p.wait_ready(120)
            procs.append(p)
        warc = work / "bench.warc.gz"
        write_warc(pages, warc)
        watched = [psutil.Process(p.proc.pid) for p in procs if p.proc]
        before = _cpu(watched)
        started = time.monotonic()
        cli = subprocess.Popen(
            [_bin("newsflow"), "backfill", str(warc)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        cli_ps = psutil.Process(cli.pid)
        cli_cpu = 0.0
        while cli.poll() is None:
            try:
                t = cli_ps.cpu_times()
                cli_cpu = t.user + t.system
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        out = cli.stdout.read().decode() if cli.stdout else ""
        indexed = _wait_indexed(servers.es_url, len(pages), 600)
        wall = time.monotonic() - started
        used = _cpu(watched)
        per = {k: (used[k] - before[k]) / max(indexed, 1) * 1000 for k in used}
        return {
            "indexed": indexed,
            "wall_s": wall,
            "rate": indexed / wall,
            "cli_ms": cli_cpu / max(indexed, 1) * 1000,
            **per,
            "out": out,
        }  # type: ignore[dict-item]
    finally:
        for p in procs:
            p.stop()
        servers.stop()


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _cpu(procs: list) -> dict[str, float]:  # type: ignore[type-arg]
    out = {}
    for p, name in zip(procs, ("parser_ms", "indexer_ms"), strict=True):
        total = 0.0
        for q in [p, *p.children(recursive=True)]:
            try:
                t = q.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except Exception:
                continue
        out[name] = total
    return out


def _wait_indexed(es_url: str, n: int, within: float) -> int:
    import json
    import urllib.request

    deadline = time.monotonic() + within
    count = 0
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{es_url}/news/_count", timeout=10) as r:
            c = int(json.loads(r.read())["count"])
        if c != count:
            count, last_change = c, time.monotonic()
        if count >= n or time.monotonic() - last_change > 30:  # refused pages never arrive
            return count
        time.sleep(0.5)
    return count


# --- 3. sitemaps -----------------------------------------------------------------------------------------


def sitemap_parse() -> dict[str, float]:
    from newsflow_feeds.sitemaps import parse_sitemap

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    news = "".join(
        f"<url><loc>https://n.test/a/{i}</loc><news:news><news:publication><news:name>N</news:name>"
        f"<news:language>en</news:language></news:publication><news:publication_date>{now}</news:publication_date>"
        f"<news:title>Title {i}</news:title><news:keywords>a, b</news:keywords></news:news></url>"
        for i in range(50_000)
    )
    news_doc = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{news}</urlset>'
    ).encode()
    plain = "".join(f"<url><loc>https://n.test/p/{i}</loc><lastmod>2025-06-03</lastmod></url>" for i in range(50_000))
    plain_doc = (
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{plain}</urlset>'.encode()
    )
    out = {}
    for name, doc in (("news", news_doc), ("plain", plain_doc)):
        cpu = time.process_time()
        sm = parse_sitemap(doc, "https://n.test/s.xml")
        out[f"{name}_s"] = time.process_time() - cpu
        out[f"{name}_urls"] = len(sm.urls)
        out[f"{name}_mb"] = len(doc) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--skip-backfill", action="store_true", help="no servers: parts 1 and 3 only")
    a = ap.parse_args()
    pages, where = pages_for(a.pages, a.eval_dir)
    print(f"pages: {len(pages)} articles made from {where}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        work = Path(tmp)
        ov = archive_overhead(pages, work)
        ext = extraction_cpu(pages)
        print("\n1. archive overhead per article (CPU of the fetcher process, best of 3 runs)")
        print(f"   download without archive  {ov['download_ms']:.2f} ms")
        print(f"   download with archive     {ov['download_archive_ms']:.2f} ms  (+{ov['archive_ms']:.2f} ms)")
        print(f"   extraction (parser)       {ext:.2f} ms")
        print(f"   on disk                   {ov['bytes'] / 1024:.1f} KiB per article (request+response+metadata)")
        bf: dict[str, float] = {}
        if not a.skip_backfill:
            bf = backfill(pages, work)
            print(f"\n2. backfill of {len(pages)} pages through Redis, parser and indexer processes")
            print(f"   indexed {bf['indexed']:.0f} in {bf['wall_s']:.1f} s: {bf['rate']:.1f} articles/s")
            cpu = f"CLI {bf['cli_ms']:.1f} ms, parser {bf['parser_ms']:.1f} ms, indexer {bf['indexer_ms']:.1f} ms"
            print(f"   CPU per article: {cpu}")
            backfill_ms = bf["cli_ms"] + bf["parser_ms"] + bf["indexer_ms"]
            live_ms = ov["download_archive_ms"] + bf["parser_ms"] + bf["indexer_ms"]
            print(f"   backfill total {backfill_ms:.1f} ms/article")
            print(f"   live pipeline (downloader with archive + parser + indexer) {live_ms:.1f} ms/article")
            print(f"   archive share of the live pipeline's CPU: {ov['archive_ms'] / live_ms * 100:.1f} %")
        else:
            base = ov["download_ms"] + ext
            share = ov["archive_ms"] / base * 100
            print(f"   archive share of download + extraction CPU: {share:.1f} % (indexer not counted)")
        sm = sitemap_parse()
        print("\n3. ultimate-sitemap-parser, 50,000 URLs (CPU)")
        per_url = sm["news_s"] / 50
        news = f"{sm['news_mb']:.1f} MB: {sm['news_s']:.2f} s ({per_url:.3f} ms per URL), {sm['news_urls']:.0f} URLs"
        print(f"   news sitemap  {news}")
        print(f"   plain sitemap {sm['plain_mb']:.1f} MB: {sm['plain_s']:.2f} s, {sm['plain_urls']:.0f} URLs")


if __name__ == "__main__":
    main()
