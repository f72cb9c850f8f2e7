"""The naive sequential pipeline, the alternative a team writes in an afternoon: for each feed, feedparser;
for each entry, one HTTP fetch, `trafilatura.extract`, one index call into Elasticsearch. One process, one
thing at a time. Run as its own process by run_all.py; prints one JSON line with its figures.

    .venv/bin/python -m benchmarks.pipeline.naive --es URL --index bench-naive FEED_URL...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
import urllib.request
import warnings
from datetime import UTC, datetime

import feedparser
import trafilatura
from elasticsearch import Elasticsearch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--es", required=True)
    ap.add_argument("--index", default="bench-naive")
    ap.add_argument("feeds", nargs="+")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    es = Elasticsearch(args.es, request_timeout=30)
    if es.indices.exists(index=args.index):
        es.indices.delete(index=args.index)
    es.indices.create(index=args.index, settings={"number_of_shards": 1, "number_of_replicas": 0})
    t0, cpu0 = time.time(), time.process_time()
    docs = empty = 0
    for feed in args.feeds:
        with urllib.request.urlopen(feed, timeout=30) as r:
            parsed = feedparser.parse(r.read())
        for e in parsed.entries:
            with urllib.request.urlopen(e.link, timeout=30) as r:
                html = r.read().decode("utf-8", errors="replace")
            text = trafilatura.extract(html, url=e.link) or ""
            empty += not text
            es.index(
                index=args.index,
                id=hashlib.sha256(e.link.encode()).hexdigest()[:32],
                document={
                    "url": e.link,
                    "title": e.get("title"),
                    "published": e.get("published"),
                    "text": text,
                    "indexed_at": datetime.now(UTC).isoformat(),
                },
            )
            docs += 1
    es.indices.refresh(index=args.index)
    took = time.time() - t0
    count = int(es.count(index=args.index)["count"])
    es.indices.delete(index=args.index)
    es.close()
    cpu = time.process_time() - cpu0  # this process only: the Elasticsearch node's share is measured by the caller
    print(json.dumps({"docs": docs, "searchable": count, "seconds": took, "empty_text": empty, "cpu_seconds": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
