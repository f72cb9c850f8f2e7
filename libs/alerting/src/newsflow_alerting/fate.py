"""What became of an alert, for people: `newsflow alerts list|show` and the web page's alerts read it.

A dict, JSON-able: `status` (one line: "sent 2/2", "also reported", "digest pending", "in digest digest,
sent 1/1", "snoozed", "waiting", "queued"), `detail`, the decision's `route`, `role` and `story_id`, `digest_id` when
the story went into a digest, and `deliveries`: channel key -> the outcome of the message that carried the
alert (its own, or its digest's), as `Delivery` fields (status, channel label, attempts, detail, times).
"""

from __future__ import annotations

from typing import Any

from newsflow_alerting.state import NotifierState


async def fate(state: NotifierState, alert_id: str) -> dict[str, Any]:
    """What the notifier made of an alert: route, story, digest and the deliveries of its message."""
    d = await state.decision(alert_id)
    if d is None:
        return {"status": "waiting", "detail": "not yet seen by the notifier", "deliveries": {}}
    out: dict[str, Any] = {"route": d.route, "role": d.role, "story_id": d.story_id, "decided_at": d.at}
    message = alert_id
    if d.role == "also":
        story = await state.story(d.story_id)
        out["status"] = "also reported"
        out["detail"] = f"joined story {d.story_id}" + (f" ({story.alert.title})" if story else "")
        return {**out, "deliveries": {}}
    if d.route in ("digest", "storm"):
        story = await state.story(d.story_id)
        message = story.digest_id if story and story.digest_id else ""
        out["digest_id"] = message or None
        if not message:
            return {**out, "status": f"{d.route} pending", "detail": "waits for the next digest", "deliveries": {}}
    if d.route == "snoozed":
        return {**out, "status": "snoozed", "detail": "the rule was snoozed", "deliveries": {}}
    deliveries = await state.deliveries(message)
    done = sum(x.status == "delivered" for x in deliveries.values())
    failed = sum(x.status == "failed" for x in deliveries.values())
    status = f"sent {done}/{len(deliveries)}" if deliveries else "queued"
    if failed:
        status += f", {failed} failed"
    if d.route in ("digest", "storm"):
        status = f"in {d.route} digest, {status}"
    return {**out, "status": status, "deliveries": {k: v.model_dump(mode="json") for k, v in deliveries.items()}}
