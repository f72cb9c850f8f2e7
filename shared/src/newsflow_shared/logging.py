"""Structured logging, set up in one place for every service and the CLI.

JSON lines on stderr. Anything about one article carries `article_id` and `url` in `extra=` so that
an article can be traced through all three services with one grep.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from newsflow_shared.redact import RedactingFormatter


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.setFormatter(RedactingFormatter(handler.formatter))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log every request at INFO would drown the pipeline's own lines.
    for noisy in ("elastic_transport", "httpx", "httpcore", "trafilatura", "htmldate", "courlan", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
