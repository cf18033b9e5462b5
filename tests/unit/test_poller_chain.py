"""poller.handle_message on the chain rules, over the in-process fakes (tests/unit/fakes.py): the real poll
step, store and queues, Graph scripted to answer `running`; a delivery fails when the poll queue refuses the
successor (a storage failure: the function raises and the host retries the message).

Host behaviour modelled (azure-webjobs-sdk QueueProcessor): the function sees the message's id and dequeue
count; a raise releases the message, and at dequeue count maxDequeueCount it goes to the poison queue.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from shared.graph.lro import PollState
from shared.operations import poll_step as poller
from shared.operations.record import Operation, iso
from shared.storage.messages import encode
from tests.unit.fakes import GRAPH, FakeClock, Fakes, fake_runtime, running

OP_ID = "1234567890123abcdef0123"
LOC = f"{GRAPH}/me/x/workbook/operations/op"


def world() -> tuple[Any, Fakes]:
    rt, f = fake_runtime()
    now = iso(FakeClock().now)
    op = Operation(
        id=OP_ID,
        status="running",
        action="createSession",
        workbook="/me/x",
        operation_url=LOC,
        created_at=now,
        updated_at=now,
        base_url="http://h/api",
    )
    asyncio.run(rt.store.create(op))
    f.graph.always("GET", LOC, running())
    return rt, f


def stored(rt: Any) -> Operation:
    op = asyncio.run(rt.store.get(OP_ID))
    assert op is not None
    return op


def deliver(rt: Any, message: str, dequeue_count: int, message_id: str | None = "msg-1") -> None:
    asyncio.run(poller.handle_message(rt, message, dequeue_count, message_id))


def test_the_claiming_message_keeps_the_chain_through_repeated_failures(clock: FakeClock) -> None:
    rt, f = world()
    text = encode(PollState(OP_ID, 0))
    f.polls.fail("send_message", times=3)
    with pytest.raises(HttpResponseError):
        deliver(rt, text, 1)
    for count in (2, 3):
        with pytest.raises(HttpResponseError):
            deliver(rt, text, count)  # h-core dropped the third delivery as stale: the operation stranded
    deliver(rt, text, 4)
    assert len(f.graph.to(LOC)) == 4  # every delivery polled: none was dropped as stale
    assert (stored(rt).generation, stored(rt).chain_message) == (3, "msg-1")
    [successor] = f.polls.decoded()
    assert successor["gen"] == 3


def test_another_message_of_an_older_generation_is_stale(clock: FakeClock) -> None:
    rt, f = world()
    deliver(rt, encode(PollState(OP_ID, 0)), 2, "msg-1")  # claims generation 1
    deliver(rt, encode(PollState(OP_ID, 0)), 1, "msg-2")  # a successor the first delivery had queued
    assert len(f.graph.to(LOC)) == 1 and [m["gen"] for m in f.polls.decoded()] == [1]


def test_the_last_delivery_ends_the_operation_failed_instead_of_raising(clock: FakeClock) -> None:
    rt, f = world()
    f.polls.fail("send_message", times=2)
    last = rt.settings.poll_max_dequeue_count
    with pytest.raises(HttpResponseError):
        deliver(rt, encode(PollState(OP_ID, 0)), last - 1)
    deliver(rt, encode(PollState(OP_ID, 0)), last)  # returns: the host deletes it instead of poisoning it
    op = stored(rt)
    assert op.status == "failed" and op.error is not None and op.error["code"] == "pollStepFailed"
    assert op.event_id  # an event for subscribers (the fan-out was queued before the write)
    assert [(m["kind"], m["event"]) for m in f.deliveries.decoded()] == [("fanout", op.event_id)]


def test_the_last_delivery_of_a_message_that_lost_the_chain_does_not_end_the_operation(clock: FakeClock) -> None:
    rt, f = world()
    last = rt.settings.poll_max_dequeue_count
    f.polls.fail("send_message")
    with pytest.raises(HttpResponseError):
        deliver(rt, encode(PollState(OP_ID, 0)), last - 1, "msg-1")  # msg-1 claims generation 1
    deliver(rt, encode(PollState(OP_ID, 0)), 2, "msg-2")  # stale: dropped
    deliver(rt, encode(PollState(OP_ID, 1)), 2, "msg-3")  # a redelivered successor of msg-1 claims generation 2
    f.table.fail("get_entity")  # the delivery fails before it can judge itself
    reads = len(f.table.calls)
    deliver(rt, encode(PollState(OP_ID, 0)), last, "msg-1")  # last delivery: give-up sees msg-3 owns the chain
    assert [m for m, _, _ in f.table.calls[reads:]] == ["get_entity", "get_entity"]  # the failed read, give-up's
    assert stored(rt).status == "running" and stored(rt).chain_message == "msg-3"
