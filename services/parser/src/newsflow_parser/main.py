"""The parser service: consumes news.raw, publishes news.parsed; bad pages go to news.raw.dlq."""

from __future__ import annotations

import asyncio
import logging
import os

from newsflow_parser.pool import ExtractionPool
from newsflow_parser.service import PageHandler
from newsflow_parser.settings import ParserSettings
from newsflow_shared import streams
from newsflow_shared.models import Message, RawPage
from newsflow_shared.runtime import Consumer, Service, ServiceContext, run_main

log = logging.getLogger("newsflow.parser")


def build_service(settings: ParserSettings | None = None) -> Service:
    s = settings or ParserSettings()
    svc = Service("parser", s)
    parts: dict[str, PageHandler] = {}

    async def startup(ctx: ServiceContext) -> None:
        pool = ExtractionPool(s.parser_workers, s.parser_timeout_s, s.parser_max_tasks_per_worker)
        # Start every worker (and let it load its models) before the first page, so that page's
        # latency is not a cold start's; the service is reported ready only after this.
        await asyncio.gather(*(pool.run(os.getpid) for _ in range(s.parser_workers)))
        parts["handler"] = PageHandler(pool, s)
        log.info(
            "extraction pool: %d workers, %g s per page, %d bytes at most",
            s.parser_workers,
            s.parser_timeout_s,
            s.parser_max_bytes,
        )

    async def shutdown(ctx: ServiceContext) -> None:
        if handler := parts.pop("handler", None):
            handler.pool.close()

    async def handle(raw: RawPage) -> list[tuple[str, Message]]:
        return await parts["handler"].handle(raw)

    svc.on_startup(startup)
    svc.on_shutdown(shutdown)
    svc.consumer(
        Consumer(
            stream=streams.RAW,
            group=streams.PARSER_GROUP,
            model=RawPage,
            handle=handle,
            concurrency=s.parser_workers,
            output_streams=(streams.PARSED,),
        )
    )
    return svc


def main() -> None:
    run_main("parser", ParserSettings, build_service)


if __name__ == "__main__":
    main()
