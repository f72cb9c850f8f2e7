"""Elasticsearch warmed up before the measured runs, as a node that has been indexing for a while is.

A fresh node compiles its indexing paths (analysis, hunspell, postings, refresh, merges) while it works:
measured with benchmarks/bench_es_cpu.py on a fresh node (300 documents a round, refresh on every
bulk, loaded machine), its CPU per document was 57 ms in the first round, then 23, 19 and 23; a node
that had indexed several thousand documents before spent 7-12 ms on the same rounds. The pipeline runs
start 20 documents after the node, so without this their Elasticsearch figure is largely the JVM
warming up, a one-off cost that a running deployment does not pay per document. The warm-up indexes
the parser's own documents for the benchmark's pages (all languages, so every hunspell dictionary is
used) into a scratch index with the news template's settings and mappings, in small bulks with a
refresh each, as the indexer writes; then deletes it. Its time and CPU are logged, never measured.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks.pipeline import limit
from benchmarks.pipeline.pages import BasePage

INDEX = "bench-warmup"


def _doc(i: int) -> dict[str, Any] | None:
    from newsflow_search.documents import to_document
    from newsflow_shared.models import ParsedArticle

    payload = limit._payload(i)
    return to_document(ParsedArticle.model_validate_json(payload)) if payload else None


def parsed_documents(pages: list[BasePage], workers: int) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers, initializer=limit._init, initargs=(pages,)) as pool:
        return [d for d in pool.map(_doc, range(len(pages)), chunksize=4) if d is not None]


async def warm_up(es: Any, pages: list[BasePage], workers: int, docs: int, max_s: float) -> tuple[int, float]:
    """Index up to `docs` documents (at most `max_s` seconds); (documents indexed, seconds)."""
    import asyncio

    from newsflow_search.index_setup import news_template
    from newsflow_search.settings import SearchSettings

    base = await asyncio.to_thread(parsed_documents, pages, workers)
    tpl = news_template(SearchSettings())["template"]
    await es.options(ignore_status=404).indices.delete(index=INDEX)
    await es.options(request_timeout=120).indices.create(
        index=INDEX, settings=tpl["settings"], mappings=tpl["mappings"]
    )
    started = time.perf_counter()
    n = 0
    try:
        while n < docs and time.perf_counter() - started < max_s:
            ops: list[dict[str, Any]] = []
            for _ in range(10):
                ops += [{"index": {"_index": INDEX, "_id": f"w{n}"}}, base[n % len(base)]]
                n += 1
            await es.bulk(operations=ops, refresh="true")
            if n % 200 == 0:
                await es.search(index=INDEX, size=100, query={"match": {"text": "government"}}, source=False)
    finally:
        await es.options(ignore_status=404).indices.delete(index=INDEX)
    return n, time.perf_counter() - started
