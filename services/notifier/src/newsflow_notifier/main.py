"""The notifier service: `news.alerts` -> stories, digests and the storm guard -> `news.notifications` ->
webhooks, Slack, Teams, Discord, Telegram, e-mail and the log. See docs/ALERTING.md."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from newsflow_alerting.state import NotifierState
from newsflow_http.destinations import guarded_client
from newsflow_notifier.channels.send import Sender
from newsflow_notifier.deliver import Deliverer
from newsflow_notifier.digests import DigestScheduler
from newsflow_notifier.planner import Planner
from newsflow_notifier.rules import RuleCache
from newsflow_notifier.settings import NotifierSettings
from newsflow_search.es import elasticsearch_ready, make_client, wait_until_healthy
from newsflow_search.rules import RuleStore
from newsflow_shared import streams
from newsflow_shared.models import Alert, Notification
from newsflow_shared.runtime import Context, Runtime, Service

log = logging.getLogger("newsflow.notifier")

service = Service("notifier", NotifierSettings)


@service.lifespan
async def clients(runtime: Runtime) -> AsyncIterator[dict[str, object]]:
    s: NotifierSettings = runtime.settings
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    es = make_client(s, request_timeout=min(s.request_timeout_s, 10.0))
    http = guarded_client(
        s,
        timeout_s=s.delivery_timeout_s,
        resolver=runtime.provided.get("resolver"),  # type: ignore[arg-type]
        max_connections=s.send_concurrency,
    )
    try:
        await wait_until_healthy(es, s, runtime.stopping, log)
        state = NotifierState(runtime.redis, ttl_s=int(s.state_ttl_days * 86400))
        rules = RuleCache(RuleStore(es, s.rules_index, s.index_alias), s.rules_refresh_s)
        yield {
            "es": es,
            "planner": Planner(state, rules, es, s),
            "deliverer": Deliverer(state, rules, Sender(http, s), s, runtime.stopping),
            "scheduler": DigestScheduler(runtime.redis, state, rules, s.digest_tick_s),
        }
    finally:
        await http.aclose()
        await es.close()


@service.consumer(
    streams.ALERTS,
    group=streams.NOTIFIER_GROUP,
    publishes=streams.NOTIFICATIONS,
    concurrency=lambda s: s.plan_concurrency,
)
async def plan(alert: Alert, planner: Annotated[Planner, Context("planner")]) -> list[Notification]:
    return await planner.plan(alert)


@service.consumer(streams.NOTIFICATIONS, group=streams.NOTIFIER_GROUP, concurrency=lambda s: s.send_concurrency)
async def deliver(message: Notification, deliverer: Annotated[Deliverer, Context("deliverer")]) -> None:
    await deliverer.deliver(message)


@service.task()
async def digests(
    scheduler: Annotated[DigestScheduler, Context("scheduler")], runtime: Annotated[Runtime, Context("runtime")]
) -> None:
    await scheduler.run(runtime.stopping)


service.health_check("elasticsearch")(elasticsearch_ready)
