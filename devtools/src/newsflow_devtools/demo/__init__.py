"""A demo news site for Newsflow: a bundled corpus of sample articles, a generator for more, and a
feed server on loopback that publishes them (used by `make run`, the end-to-end tests and benchmarks)."""

from newsflow_devtools.demo.corpus import ALERT_PHRASE, FEEDS, DemoArticle, alert_articles, build_corpus
from newsflow_devtools.demo.server import DemoFeedServer, DemoServerError

__all__ = [
    "ALERT_PHRASE",
    "FEEDS",
    "DemoArticle",
    "DemoFeedServer",
    "DemoServerError",
    "alert_articles",
    "build_corpus",
]
