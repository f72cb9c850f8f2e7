"""The parser service: `news.raw` -> extraction in worker processes -> `news.parsed`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated

from faststream import Context

from newsflow_parser.pool import ExtractionPool
from newsflow_parser.service import PageHandler
from newsflow_parser.settings import ParserSettings
from newsflow_shared import streams
from newsflow_shared.models import ParsedArticle, RawPage
from newsflow_shared.runtime import Runtime, Service

log = logging.getLogger("newsflow.parser")

service = Service("parser", ParserSettings)


@service.lifespan
async def extraction_pool(runtime: Runtime) -> AsyncIterator[dict[str, object]]:
    s: ParserSettings = runtime.settings
    pool = ExtractionPool(s.parser_workers, s.parser_timeout_s, s.parser_max_tasks_per_worker)
    try:
        # Start every worker (and let it load its models) before the first page, so that page's latency
        # is not a cold start's; the service is reported ready only after this.
        await asyncio.gather(*(pool.run(os.getpid) for _ in range(s.parser_workers)))
        log.info(
            "extraction pool: %d workers, %g s per page, %d bytes at most",
            s.parser_workers,
            s.parser_timeout_s,
            s.parser_max_bytes,
        )
        yield {"pages": PageHandler(pool, s)}
    finally:
        pool.close()


@service.consumer(
    streams.RAW, group=streams.PARSER_GROUP, publishes=streams.PARSED, concurrency=lambda s: s.parser_workers
)
async def parse(raw: RawPage, pages: Annotated[PageHandler, Context("pages")]) -> ParsedArticle:
    return await pages.handle(raw)
