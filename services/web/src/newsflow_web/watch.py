"""Watching: the alerts page, the stream that adds alerts to it as they fire, and each alert's delivery status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette.sse import EventSourceResponse

from newsflow_search import fired
from newsflow_search.fired import FiredRecord
from newsflow_search.rules import Rule
from newsflow_shared.models import Alert
from newsflow_web.app import Ctx, ctx, render
from newsflow_web.deliveries import AlertFate
from newsflow_web.live import Arrival, stream_key, valid_id

router = APIRouter()


async def rules_by_id(c: Ctx) -> dict[str, Rule]:
    return {r.id: r for r in await c.rules.all()}


@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    c = ctx(request)
    # The stream position first: anything that fires while the page renders arrives over the stream.
    after = await c.feed.last_id()
    shown = c.settings.web_alerts_shown
    records = await fired.recent(c.es, c.settings.alerts_index, size=shown)
    records = with_unsearchable(records, await c.feed.newest(shown), shown)
    rules = await rules_by_id(c)
    fates = await c.deliveries.fates([r.alert for r in records], rules)
    return render(
        request,
        "alerts.html",
        records=records,
        fates=fates,
        after=after,
        rules=rules,
        page_title="Alerts",
    )


def with_unsearchable(records: list[FiredRecord], arrivals: list[Arrival], shown: int) -> list[FiredRecord]:
    """The stream's newest alerts that the alerts index does not find. The indexer's claims bulk refreshes
    that index before the alerts are published, but a refresh Elasticsearch does not make leaves the record
    to the scheduled one (about a second): a page loaded in between must still list the alert."""
    known = {r.alert.alert_id for r in records}
    fresh = [FiredRecord(a.alert, a.alert.matched_at, {}) for a in arrivals if a.alert.alert_id not in known]
    return sorted([*records, *fresh], key=lambda r: r.created_at, reverse=True)[:shown]


@router.get("/alerts/stream")
async def alerts_stream(request: Request) -> EventSourceResponse:
    c = ctx(request)
    after = valid_id(request.headers.get("last-event-id")) or valid_id(request.query_params.get("after"))
    q = c.feed.subscribe()

    async def events() -> AsyncIterator[dict[str, Any]]:
        seen = stream_key(after) if after else (0, 0)
        try:
            backlog = await c.feed.since(after) if after else []
            rules = await rules_by_id(c) if backlog else {}
            for arrival in backlog:
                seen = stream_key(arrival.stream_id)
                yield await _event(request, c, arrival, rules)
            while True:
                arrival = await q.get()
                if arrival is None:
                    return  # the reader dropped this page (too slow) or the app stops: the browser reconnects
                if stream_key(arrival.stream_id) <= seen:
                    continue
                seen = stream_key(arrival.stream_id)
                yield await _event(request, c, arrival, await rules_by_id(c))
        finally:
            c.feed.unsubscribe(q)

    # ping: a comment every 15 s keeps proxies from closing an idle stream.
    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _event(request: Request, c: Ctx, arrival: Arrival, rules: dict[str, Rule]) -> dict[str, Any]:
    fate = await c.deliveries.fate(arrival.alert, rules.get(arrival.alert.rule_id))
    html = c.templates.get_template("_alert_row.html").render(
        alert=arrival.alert,
        created_at=arrival.alert.matched_at,
        fate=fate,
        live=True,
        rule=rules.get(arrival.alert.rule_id),
    )
    return {"event": "alert", "id": arrival.stream_id, "data": html}


@router.get("/alerts/{alert_id}/deliveries")
async def deliveries_fragment(request: Request, alert_id: str) -> Response:
    """One alert's fate and channels, for the page to refresh until every delivery is settled."""
    c = ctx(request)
    records = await fired.recent(c.es, c.settings.alerts_index, size=1, alert_id=alert_id)
    alert: Alert | None = records[0].alert if records else None
    if alert is None:
        fate = AlertFate(summary="unknown", detail="no such alert in the alerts index")
    else:
        fate = await c.deliveries.fate(alert, (await rules_by_id(c)).get(alert.rule_id))
    return render(request, "_deliveries.html", alert_id=alert_id, fate=fate)
