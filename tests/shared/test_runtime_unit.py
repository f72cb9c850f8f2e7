"""The runtime's decisions without Redis: how an outcome is settled, when a claimed entry is given up on,
where outputs go, which entries the heartbeat keeps, what a declaration may look like, the wire format."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated

import pytest
from faststream import Context as FastStreamContext
from faststream import ContextRepo, apply_types

from newsflow_shared import streams
from newsflow_shared.errors import Deferred, InvalidMessage, PermanentError, Stopping
from newsflow_shared.ids import article_id
from newsflow_shared.models import Alert, FeedEntry, RawPage
from newsflow_shared.runtime import Context, Service, ServiceDefinitionError, decode, encode
from newsflow_shared.runtime.codec import DATA_FIELD
from newsflow_shared.runtime.delivery import Holdings, Settle, delivered_too_often, route, settle_for
from newsflow_shared.settings import CommonSettings

pytestmark = pytest.mark.unit


def entry(n: int = 1) -> FeedEntry:
    url = f"http://example.test/a/{n}"
    return FeedEntry(url=url, link=url, article_id=article_id(url), feed_url="http://example.test/feed")


def test_each_outcome_is_settled_its_own_way() -> None:
    assert settle_for(None) is Settle.ACK
    assert settle_for(PermanentError("not-html", "pdf")) is Settle.DEAD_LETTER
    assert settle_for(InvalidMessage("not json")) is Settle.DEAD_LETTER
    assert settle_for(Deferred("host busy")) is Settle.REQUEUE
    assert settle_for(Stopping("shutting down")) is Settle.LEAVE
    assert settle_for(asyncio.CancelledError()) is Settle.LEAVE
    assert settle_for(RuntimeError("Elasticsearch down")) is Settle.RETRY
    assert settle_for(TimeoutError()) is Settle.RETRY


def test_a_claimed_entry_is_handled_max_deliveries_times_then_given_up() -> None:
    # The count Redis reports for a claimed entry includes the claim itself.
    assert not delivered_too_often(1, 3)
    assert not delivered_too_often(3, 3)
    assert delivered_too_often(4, 3)


def test_outputs_are_routed_by_model_type_to_the_declared_streams() -> None:
    routes = {FeedEntry: "out.entries", Alert: streams.ALERTS}
    e = entry()
    assert route(None, routes) == []
    assert route(e, routes) == [("out.entries", e)]
    assert route([e, e], routes) == [("out.entries", e), ("out.entries", e)]
    with pytest.raises(TypeError, match="RawPage"):
        route(RawPage.model_construct(), routes)


def test_declared_outputs_must_match_what_the_handler_returns() -> None:
    svc = Service("t", CommonSettings)

    @svc.consumer(streams.ENTRIES, group="g", publishes=streams.RAW)
    async def wrong(e: FeedEntry) -> FeedEntry:  # declares news.raw (RawPage) but returns FeedEntry
        return e

    with pytest.raises(ServiceDefinitionError, match="returns"):
        svc.consumers[0].check()

    svc2 = Service("t", CommonSettings)

    @svc2.consumer(streams.RAW, group="g", publishes=streams.PARSED)
    async def wrong_input(e: FeedEntry) -> None:  # news.raw carries RawPage
        return None

    with pytest.raises(ServiceDefinitionError, match="carries RawPage"):
        svc2.consumers[0].check()

    svc3 = Service("t", CommonSettings)

    @svc3.consumer(streams.PARSED, group="g", publishes=streams.ALERTS)
    async def right(e: object) -> list[Alert]:
        return []

    with pytest.raises(ServiceDefinitionError):  # the input must be the stream's model
        svc3.consumers[0].check()


def test_a_stream_without_a_registered_model_needs_an_explicit_one() -> None:
    svc = Service("t", CommonSettings)
    with pytest.raises(ServiceDefinitionError, match=r"t\.out"):

        @svc.consumer("t.in", group="g", publishes="t.out")
        async def handle(e: FeedEntry) -> FeedEntry:
            return e


def test_heartbeat_keeps_live_entries_and_lets_go_of_finished_and_lost_ones() -> None:
    h = Holdings(redis=None, stream="s", group="g", consumer="c", interval_s=1, grace_s=30)  # type: ignore[arg-type]
    with h.hold(b"1-0"):
        # In a handler: kept. Read but never seen by a handler: kept for the grace period only.
        assert h.live([b"1-0", b"2-0"], now=100.0) == [b"1-0", b"2-0"]
        assert h.live([b"1-0", b"2-0"], now=129.0) == [b"1-0", b"2-0"]
        assert h.live([b"1-0", b"2-0"], now=131.0) == [b"1-0"]
    # Finished but still pending (a failure, or an ack lost in a Redis restart): let go at once.
    assert h.live([b"1-0"], now=132.0) == []
    # Handled again after a claim: kept again while in the handler.
    with h.hold(b"1-0"):
        assert h.live([b"1-0"], now=133.0) == [b"1-0"]


def test_an_entry_holds_the_bare_model_json_and_old_entries_still_decode() -> None:
    e = entry(7)
    fields = encode(e)
    assert list(fields) == [DATA_FIELD] and fields[DATA_FIELD].startswith(b"{")
    assert decode(FeedEntry, fields[DATA_FIELD]) == e
    # An entry written before the runtime used FastStream's field name, as FastStream hands it over.
    legacy = b'{"data": ' + __import__("json").dumps(e.model_dump_json()).encode() + b"}"
    assert decode(FeedEntry, legacy) == e
    with pytest.raises(InvalidMessage, match="not a valid FeedEntry"):
        decode(FeedEntry, b"{not json")
    with pytest.raises(InvalidMessage, match="article_id"):
        decode(FeedEntry, fields[DATA_FIELD].replace(e.article_id.encode(), b"x" * 600))


async def test_context_dependencies_are_resolved_on_the_event_loop_not_in_a_worker_thread() -> None:
    """FastStream's own Context is resolved in a worker thread per message (the control); ours on the loop."""

    def probe(ctx: type) -> object:
        async def handler(thread: Annotated[int, ctx("thread", initial=threading.get_ident)]) -> int:
            return thread

        return apply_types(handler, context__=ContextRepo())

    loop_thread = threading.get_ident()
    assert await probe(Context)() == loop_thread
    assert await probe(FastStreamContext)() != loop_thread
