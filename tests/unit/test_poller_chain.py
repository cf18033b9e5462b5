"""poller.handle_message on the chain rules, with a fake store and queue (Graph is never reached here:
the poll step itself is replaced by a scripted one, so only the delivery handling is under test).

Host behaviour modelled (azure-webjobs-sdk QueueProcessor): the function sees the message's id and dequeue
count; a raise releases the message, and at dequeue count maxDequeueCount it goes to the poison queue.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from shared import poller
from shared.polling import PollState, Timing
from shared.queue import encode
from shared.records import Operation
from shared.runtime import Runtime
from shared.settings import load_settings
from tests.unit.test_write_ahead import FakeQueue, FakeStore

OP_ID = "1234567890123abcdef0123"


def _runtime(store: FakeStore, polls: FakeQueue, deliveries: FakeQueue) -> Runtime:
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    ns = {
        "settings": settings,
        "store": store,
        "polls": polls,
        "deliveries": deliveries,
        "timing": Timing(1, 30, 3600, 8),
        "history": None,
    }
    return cast(Runtime, type("FakeRuntime", (), ns)())


def _record(store: FakeStore) -> Operation:
    op = Operation(
        id=OP_ID,
        status="running",
        action="createSession",
        workbook="/me/x",
        operation_url="http://127.0.0.1:1/v1.0/op",
        created_at="2099-01-01T00:00:00.000Z",
        updated_at="2099-01-01T00:00:00.000Z",
        base_url="http://h/api",
    )
    return asyncio.run(store.create(op))


@pytest.fixture
def polled(monkeypatch: pytest.MonkeyPatch) -> list[PollState]:
    """Replace the poll step: record the state it was given, and fail while `failing` is set."""
    seen: list[PollState] = []

    async def fake_poll_once(rt: Runtime, op: Operation, state: PollState) -> None:
        seen.append(state)
        if getattr(rt, "failing", False):
            raise RuntimeError("table unavailable")
        await rt.polls.send(state, 1)

    monkeypatch.setattr(poller, "poll_once", fake_poll_once)
    return seen


def deliver(rt: Runtime, message: str, dequeue_count: int, message_id: str | None = "msg-1") -> None:
    asyncio.run(poller.handle_message(rt, message, dequeue_count, message_id))


def test_the_claiming_message_keeps_the_chain_through_repeated_failures(polled: list[PollState]) -> None:
    store, polls = FakeStore(), FakeQueue()
    rt = _runtime(store, polls, FakeQueue())
    _record(store)
    text = encode(PollState(OP_ID, 0))
    cast(Any, rt).failing = True
    with pytest.raises(RuntimeError):
        deliver(rt, text, 1)
    for count in (2, 3):
        with pytest.raises(RuntimeError):
            deliver(rt, text, count)  # h-core dropped the third delivery as stale: the operation stranded
    cast(Any, rt).failing = False
    deliver(rt, text, 4)
    assert [s.generation for s in polled] == [0, 1, 2, 3]
    assert store.records[OP_ID].chain_message == "msg-1"
    [successor] = polls.sent
    assert successor.generation == 3


def test_another_message_of_an_older_generation_is_stale(polled: list[PollState]) -> None:
    store = FakeStore()
    rt = _runtime(store, FakeQueue(), FakeQueue())
    _record(store)
    deliver(rt, encode(PollState(OP_ID, 0)), 2, "msg-1")  # claims generation 1
    deliver(rt, encode(PollState(OP_ID, 0)), 1, "msg-2")  # a successor the first delivery had queued
    assert [s.generation for s in polled] == [1]


def test_the_last_delivery_ends_the_operation_failed_instead_of_raising(polled: list[PollState]) -> None:
    store, deliveries = FakeStore(), FakeQueue()
    rt = _runtime(store, FakeQueue(), deliveries)
    _record(store)
    cast(Any, rt).failing = True
    last = rt.settings.poll_max_dequeue_count
    with pytest.raises(RuntimeError):
        deliver(rt, encode(PollState(OP_ID, 0)), last - 1)
    deliver(rt, encode(PollState(OP_ID, 0)), last)  # returns: the host deletes it instead of poisoning it
    op = store.records[OP_ID]
    assert op.status == "failed" and op.error is not None and op.error["code"] == "pollStepFailed"
    assert op.event_id  # an event for subscribers (the fan-out was queued before the write)
    assert [getattr(t, "event_id", None) for t in deliveries.sent] == [op.event_id]


def test_the_last_delivery_of_a_message_that_lost_the_chain_does_not_end_the_operation(polled: list[PollState]) -> None:
    store = FakeStore()
    rt = _runtime(store, FakeQueue(), FakeQueue())
    _record(store)
    last = rt.settings.poll_max_dequeue_count
    cast(Any, rt).failing = True
    with pytest.raises(RuntimeError):
        deliver(rt, encode(PollState(OP_ID, 0)), last - 1, "msg-1")  # msg-1 claims generation 1
    cast(Any, rt).failing = False
    deliver(rt, encode(PollState(OP_ID, 0)), 2, "msg-2")  # stale: dropped
    deliver(rt, encode(PollState(OP_ID, 1)), 2, "msg-3")  # a redelivered successor of msg-1 claims generation 2

    real_get = store.get
    calls = {"n": 0}

    async def get_failing_once(operation_id: str) -> Operation | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("table unavailable")  # the delivery fails before it can judge itself
        return await real_get(operation_id)

    store.get = get_failing_once  # type: ignore[method-assign]
    deliver(rt, encode(PollState(OP_ID, 0)), last, "msg-1")  # last delivery: give-up sees msg-3 owns the chain
    assert calls["n"] == 2
    assert store.records[OP_ID].status == "running" and store.records[OP_ID].chain_message == "msg-3"
