"""Elasticsearch CPU per indexed document, under variants of the mapping and of the bulk refresh, side by side.

    .venv/bin/python benchmarks/bench_es_cpu.py --eval-dir ../shared/eval --docs 400 --rate 20 --rounds 2
    NEWSFLOW_ELASTICSEARCH_URL=http://127.0.0.1:9200 ES_PID=1234 .venv/bin/python benchmarks/bench_es_cpu.py

The documents are the parser's own output for the labelled pages of ../shared/eval (extract_payload, then
the indexer's `to_document`), each copy under an id of its own, so sizes and languages are the pipeline's.
Each variant indexes the same documents into a fresh index of its own through the indexer's own Batcher
(size 500, linger 0.2 s, 2 bulks in flight) and its RefreshPolicy ("+true", "+wait_for", "+adaptive-GAP"),
submitting `--rate` documents per second, and the node's CPU (utime+stime of its process in
/proc) is read before and after. Variants run interleaved, round after round, so that the load of the
machine falls on all of them alike; the node's idle CPU over the same wall time is measured and shown.
The node is started with the project's script in a temporary home unless NEWSFLOW_ELASTICSEARCH_URL and
ES_PID are given (its indices bench-cpu-* are deleted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline.pages import DEFAULT_EVAL, load_pages, variant  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def parsed_docs(eval_dir: Path, limit: int) -> list[dict[str, Any]]:
    """The parser's documents for the eval pages (cached under .state: extraction takes a minute)."""
    cache = ROOT / ".state" / "bench-es-docs.json"
    if cache.is_file():
        docs = json.loads(cache.read_text("utf-8"))
        if len(docs) >= limit:
            return docs[:limit]
    import logging

    from newsflow_extract.errors import ExtractionError
    from newsflow_extract.extract import extract_payload
    from newsflow_search.documents import to_document
    from newsflow_shared.ids import article_id
    from newsflow_shared.models import FeedEntry, ParsedArticle

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    docs = []
    for i, page in enumerate(load_pages(eval_dir)):
        if len(docs) >= limit:
            break
        url = f"http://127.0.0.1:8000/news/{i}/{page.slug}.html"
        entry = FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="http://127.0.0.1:8000/f.xml")
        try:
            payload = extract_payload(variant(page, i).decode(), url, entry.model_dump(mode="json"), url, 50)
        except ExtractionError:
            continue
        docs.append(to_document(ParsedArticle.model_validate_json(payload)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(docs), "utf-8")
    return docs


def template_variant(name: str) -> dict[str, Any]:
    from newsflow_search.index_setup import NEWS_TEMPLATE, resource

    tpl = resource(NEWS_TEMPLATE)["template"]
    props = tpl["mappings"]["properties"]
    analyzers = tpl["settings"]["analysis"]["analyzer"]
    filters = tpl["settings"]["analysis"]["filter"]
    mapping = name.split("+")[0]
    if mapping == "current":
        pass
    elif mapping == "lc-first":
        # lowercase before hunspell: one dictionary lookup per token instead of one per case variant.
        for an in analyzers.values():
            an["filter"] = ["lowercase", *[f for f in an["filter"] if f != "lowercase"]]
    elif mapping == "longest-only":
        for f in filters.values():
            f["longest_only"] = True
    elif mapping == "lc-longest":
        for an in analyzers.values():
            an["filter"] = ["lowercase", *[f for f in an["filter"] if f != "lowercase"]]
        for f in filters.values():
            f["longest_only"] = True
    elif mapping == "no-offsets":
        # Highlighting re-analyses the fragment's field instead of reading offsets from the postings.
        for spec in props.values():
            if spec.get("index_options") == "offsets":
                del spec["index_options"]
        props["captions"]["properties"]["text"].pop("index_options", None)
    elif mapping == "no-stemmed":
        # What the hunspell copies cost: the same documents without the `<field>_<lang>` fields.
        pass
    else:
        raise SystemExit(f"unknown variant {name}")
    return tpl


def refresh_policy(name: str) -> Any:
    """The indexer's own policy (services/indexer writer.py); "adaptive-G" sets its minimum gap to G s."""
    from newsflow_indexer.writer import RefreshPolicy

    mode = name.split("+")[1] if "+" in name else "true"
    if mode.startswith("adaptive-"):
        return RefreshPolicy("adaptive", float(mode.split("-", 1)[1]))
    return RefreshPolicy(mode)


async def index_variant(
    es: Any, name: str, index: str, docs: list[dict[str, Any]], rate: float, tag: str
) -> tuple[list[int], list[float]]:
    from newsflow_search.documents import STEMMED_LANGUAGES

    tpl = template_variant(name)
    await es.indices.create(index=index, settings=tpl["settings"], mappings=tpl["mappings"])
    await es.cluster.health(index=index, wait_for_status="yellow")
    from newsflow_indexer.batcher import Batcher

    strip = name.startswith("no-stemmed")
    sizes: list[int] = []
    waits: list[float] = []
    policy = refresh_policy(name)

    async def flush(items: list[tuple[int, dict[str, Any]]]) -> list[None]:
        ops: list[dict[str, Any]] = []
        for n, d in items:
            if strip:
                d = {
                    k: v
                    for k, v in d.items()
                    if not any(k == f"{f}_{lang}" for lang in STEMMED_LANGUAGES for f in ("title", "text", "captions"))
                }
            ops += [{"index": {"_index": index, "_id": f"{tag}-{n}"}}, d]
        resp = await es.bulk(operations=ops, refresh=policy.choose(len(items)))
        if resp["errors"]:
            bad = next(i for i in resp["items"] if i["index"].get("error"))
            raise SystemExit(f"{name}: bulk error {bad}")
        sizes.append(len(items))
        return [None] * len(items)

    async def timed(aw: Any) -> None:
        t = time.perf_counter()
        await aw
        waits.append(time.perf_counter() - t)  # submitted -> bulk returned (searchable, true or wait_for)

    # The indexer's own batching: size 500, linger 0.2 s, 2 bulks in flight.
    batcher: Batcher[tuple[int, dict[str, Any]], None] = Batcher(flush, 500, 0.2, 2)
    start = time.perf_counter()
    pending = []
    for n, d in enumerate(docs):
        pending.append(asyncio.create_task(timed(batcher.submit((n, d)))))
        if rate > 0:
            await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.perf_counter()))
    await asyncio.gather(*pending)
    await batcher.aclose()
    return sizes, waits


async def main(a: argparse.Namespace) -> None:
    from elasticsearch import AsyncElasticsearch

    base = parsed_docs(a.eval_dir, a.distinct)
    docs = [base[i % len(base)] for i in range(a.docs)]
    print(f"{len(base)} distinct parsed documents, {a.docs} per variant, rate {a.rate or 'max'}")
    url, pid = os.environ.get("NEWSFLOW_ELASTICSEARCH_URL"), os.environ.get("ES_PID")
    home = None
    if not (url and pid):
        home = Path(tempfile.mkdtemp(prefix="es-cpu-", dir=ROOT / ".state"))
        out = await asyncio.to_thread(
            subprocess.run,
            ["scripts/elasticsearch.sh", "start", "--home", str(home)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        url = out.stdout.strip().splitlines()[-1]
        pid = (home / "node.pid").read_text().strip()
    es = AsyncElasticsearch(url, request_timeout=120)
    variants = a.variants.split(",")
    cpu: dict[str, list[float]] = {v: [] for v in ["idle", *variants]}
    wall: dict[str, list[float]] = {v: [] for v in variants}
    lat: dict[str, list[float]] = {v: [] for v in variants}
    try:
        await es.indices.delete(index="bench-cpu-*", allow_no_indices=True, ignore_unavailable=True)
        for r in range(a.rounds):
            for v in variants:
                index = f"bench-cpu-{v}-{r}"
                c0, t0 = proc_cpu(int(pid)), time.perf_counter()
                sizes, waits = await index_variant(es, v, index, docs, a.rate, f"{r}")
                # Until the node has settled what the bulks started (merges, the scheduled refresh).
                await asyncio.sleep(a.settle)
                c1, t1 = proc_cpu(int(pid)), time.perf_counter()
                cpu[v].append(c1 - c0)
                lat[v] += waits
                wall[v].append(t1 - t0)
                await es.indices.delete(index=index)
                print(
                    f"round {r} {v:18s} {1000 * (c1 - c0) / a.docs:6.2f} ms CPU/doc  ({t1 - t0:.1f} s, "
                    f"{len(sizes)} bulks, p95 {pct(waits, 0.95):.2f} s)",
                    flush=True,
                )
            # idle CPU over the mean wall time of a variant
            w = sum(wall[variants[0]]) / len(wall[variants[0]])
            c0 = proc_cpu(int(pid))
            await asyncio.sleep(w)
            cpu["idle"].append((proc_cpu(int(pid)) - c0) / w)
        print()
        idle = sum(cpu["idle"]) / len(cpu["idle"])
        print(f"node idle: {1000 * idle:.1f} ms CPU per second")
        print(f"{'variant':18s} {'ms CPU/doc':>10s} {'minus idle':>10s} {'p50 s':>6s} {'p95 s':>6s}  rounds")
        for v in variants:
            per = [1000 * c / a.docs for c in cpu[v]]
            net = [1000 * (c - idle * w) / a.docs for c, w in zip(cpu[v], wall[v], strict=True)]
            print(
                f"{v:18s} {sum(per) / len(per):10.2f} {sum(net) / len(net):10.2f} {pct(lat[v], 0.5):6.2f}"
                f" {pct(lat[v], 0.95):6.2f}  {' '.join(f'{x:.2f}' for x in per)}"
            )
    finally:
        await es.close()
        if home is not None:
            stop = ["scripts/elasticsearch.sh", "stop", "--home", str(home)]
            await asyncio.to_thread(subprocess.run, stop, cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=600, help="documents per variant and round")
    ap.add_argument("--distinct", type=int, default=300, help="distinct eval pages to parse")
    ap.add_argument("--rate", type=float, default=20.0, help="documents per second (0: all at once)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds after the last bulk before reading CPU")
    ap.add_argument(
        "--variants", default="current,current+wait_for,current+adaptive,lc-first,longest-only,no-offsets,no-stemmed"
    )
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    asyncio.run(main(ap.parse_args()))
