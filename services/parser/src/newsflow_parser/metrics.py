"""The parser's Prometheus metrics (default registry, served by the runtime at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ARTICLES = Counter("newsflow_parser_articles", "Pages turned into articles and published to news.parsed")
PAGES = Counter(
    "newsflow_parser_pages",
    "Articles published, by the path of the fallback ladder that produced the text (own, trafilatura,"
    " trafilatura-recall)",
    ["method"],
)
FAILED = Counter(
    "newsflow_parser_failed",
    "Pages that could not become articles, by reason (timeout, too-large, no-content, not-an-article, binary,"
    " broken-html, worker-crashed)",
    ["reason"],
)
PARSE_SECONDS = Histogram(
    "newsflow_parser_parse_seconds",
    "Wall time of one page's extraction in a worker process, queueing included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
CAPTIONS = Counter("newsflow_parser_captions", "Image captions extracted")
WORDS = Histogram(
    "newsflow_parser_article_words",
    "Words of body text per article",
    buckets=(25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800),
)
