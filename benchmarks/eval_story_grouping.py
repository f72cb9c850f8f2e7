"""Precision and recall of the notifier's story grouping on the labelled set of the demo generator.

    .venv/bin/python benchmarks/eval_story_grouping.py                  # servers of its own, the defaults
    .venv/bin/python benchmarks/eval_story_grouping.py --sweep          # a few settings side by side

Each report is indexed as an article (as the indexer writes it), then grouped exactly as the notifier
groups one rule's alerts (`StoryMatcher.group`: each report joins the story of the most alike earlier
report within the window). Pairwise precision: of the pairs put in one story, how many are one event;
recall: of the pairs that are one event, how many were put in one story. Uses NEWSFLOW_ELASTICSEARCH_URL
when set, otherwise starts a node with scripts/elasticsearch.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from elasticsearch import AsyncElasticsearch

from newsflow_alerting.stories import Grouping, fingerprint, group, sources
from newsflow_devtools.demo.storyset import Report, labelled_reports, pair_scores
from newsflow_search.documents import to_document
from newsflow_search.index_setup import ensure_index
from newsflow_search.settings import SearchSettings
from newsflow_shared.ids import article_id
from newsflow_shared.models import ParsedArticle

ROOT = Path(__file__).resolve().parents[1]


def as_article(r: Report) -> ParsedArticle:
    return ParsedArticle(
        article_id=article_id(r.url),
        url=r.url,
        domain=r.outlet,
        title=r.title,
        description=r.description,
        text=r.text,
        language="en",
        word_count=len(r.text.split()),
        content_hash=hashlib.sha256(r.text.encode()).hexdigest(),
        simhash=hashlib.sha256(r.text.encode()).hexdigest()[:16],
        published_at=r.published_at,
        parsed_at=r.published_at,
    )


async def load(es: AsyncElasticsearch, reports: list[Report], alias: str) -> None:
    ops: list[dict] = []
    for r in reports:
        a = as_article(r)
        ops += [{"index": {"_index": alias, "_id": a.article_id}}, to_document(a, indexed_at=r.published_at)]
    resp = await es.bulk(operations=ops, refresh=True)
    assert not resp["errors"]


async def score(es: AsyncElasticsearch, reports: list[Report], alias: str, g: Grouping, window_h: float) -> tuple:
    ids = [article_id(r.url) for r in reports]
    found = await sources(es, alias, ids)
    order = [(i, r.published_at.timestamp(), fingerprint(found[i])) for i, r in zip(ids, reports, strict=True)]
    predicted = group(order, window_h * 3600, g)
    labels = {article_id(r.url): r.event for r in reports}
    return pair_scores(labels, predicted)


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=60)
    p.add_argument("--outlets", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window-h", type=float, default=24.0)
    p.add_argument("--sweep", action="store_true")
    a = p.parse_args(argv)
    url = os.environ.get("NEWSFLOW_ELASTICSEARCH_URL")
    home = None
    if not url:
        home = tempfile.mkdtemp(prefix="nf-eval-es-")
        out = await asyncio.to_thread(
            subprocess.run,
            ["scripts/elasticsearch.sh", "start", "--home", home],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        url = out.stdout.strip().splitlines()[-1]
    alias = "storyeval"
    es = AsyncElasticsearch(url, request_timeout=60)
    try:
        await es.options(ignore_status=404).indices.delete(index=f"{alias}-*")
        await ensure_index(es, SearchSettings(elasticsearch_url=url, index_alias=alias))
        reports = labelled_reports(events=a.events, outlets=a.outlets, seed=a.seed)
        await load(es, reports, alias)
        print(f"{len(reports)} reports of {a.events} events ({a.outlets} outlets each, twins in the same words)")
        settings = [Grouping()]
        if a.sweep:
            settings = [Grouping(threshold=t, min_shared=m) for t in (0.3, 0.4, 0.5, 0.6, 0.7) for m in (1, 2, 3)]
        for g in settings:
            prec, rec, tp, fp, fn = await score(es, reports, alias, g, a.window_h)
            print(
                f"threshold {g.threshold:.2f}, at least {g.min_shared} shared: precision {prec:.3f} "
                f"recall {rec:.3f} (pairs: {tp} right, {fp} wrongly joined, {fn} missed)"
            )
    finally:
        await es.options(ignore_status=404).indices.delete(index=f"{alias}-*")
        await es.close()
        if home:
            await asyncio.to_thread(
                subprocess.run, ["scripts/elasticsearch.sh", "stop", "--home", home], cwd=ROOT, check=False
            )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
