"""Alerts that fired, as the alerts index records them (the indexer writes one claim per rule and story with
the published `Alert` in it): for pages and commands that list alerts, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch
from pydantic import ValidationError

from newsflow_shared.models import Alert


@dataclass
class FiredRecord:
    alert: Alert
    created_at: datetime
    record: dict[str, Any]


async def recent(
    es: AsyncElasticsearch, index: str, size: int = 50, rule_id: str | None = None, alert_id: str | None = None
) -> list[FiredRecord]:
    flt: list[dict[str, Any]] = [{"term": {"fired": True}}]
    if rule_id:
        flt.append({"term": {"rule_id": rule_id}})
    if alert_id:
        # The record of a story's alert is keyed by the story's fingerprint: look it up by its alert's id.
        flt.append({"term": {"alert_id": alert_id}})
    resp = await es.options(ignore_status=404).search(
        index=index, query={"bool": {"filter": flt}}, sort=[{"created_at": "desc"}], size=size
    )
    out: list[FiredRecord] = []
    for h in resp.get("hits", {}).get("hits", []):
        src = h["_source"]
        try:
            alert = Alert.model_validate(src["alert"])
        except (KeyError, ValidationError):
            continue  # a record from a version this reader does not know: skip it rather than fail the page
        out.append(FiredRecord(alert, datetime.fromisoformat(src["created_at"]), src))
    return out
