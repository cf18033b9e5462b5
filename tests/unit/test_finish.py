"""Every way an operation ends does every step of an ending (shared/operations/finish.py): the terminal write, the
`bridge.operations.finished` metric once, the owner's fan-out, the webhook's first attempt when a callback waits for
it, the duration learned when a poll saw a succeeded operation end, and the workbook's lane slot released.

Each case drives one path through its real entry point (the poll function, its last delivery, the HTTP start, a
GET that resumes a start, the lane's advance step, cancel, the purge) over the in-process fakes of
tests/unit/fakes.py, with one Excel request at a time per workbook (WORKBOOK_CONCURRENCY=1) and the operation
holding its workbook's slot. Metrics are read with opentelemetry-sdk's InMemoryMetricReader, as
tests/unit/test_telemetry.py does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from shared.crypto.sealing import seal
from shared.lanes import admission as lane_flow
from shared.lanes.line import LaneState, admit
from shared.lanes.store import lane_key
from shared.observability import telemetry
from shared.operations import changes, purge, reads
from shared.operations import poll_step as poller
from shared.operations import start as operations
from shared.operations.record import (
    CANCELED,
    FAILED,
    NOT_STARTED,
    RUNNING,
    STARTING,
    SUCCEEDED,
    TIMED_OUT,
    WAITING,
    WEBHOOK_PENDING,
    Operation,
    iso,
    new_operation_id,
)
from shared.storage.messages import PollState, encode, encode_lane
from tests.unit.fakes import (
    GRAPH,
    FakeClock,
    accepted,
    fake_runtime,
    reply,
    running,
    succeeded,
    transport_error,
    workbook_url,
)

WORKBOOK = "/me/drive/items/01ITEM"
LANE = lane_key(WORKBOOK, "default")
CALLBACK = "https://hooks.example.com/cb"
LOC = f"{GRAPH}{WORKBOOK}/workbook/operations/op1"
SESSION = workbook_url() + "/createSession"
DAY = 86_400.0
PARAMETERS = {"persistChanges": True}


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def finished_metric() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.bind(TracerProvider(), MeterProvider(metric_readers=[reader]))
    yield reader
    telemetry.bind()  # back to the global (no-op) providers


def finished_points(reader: InMemoryMetricReader) -> list[tuple[int, dict[str, Any]]]:
    data = reader.get_metrics_data()
    return [
        (point.value, dict(point.attributes))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "bridge.operations.finished"
        for point in metric.data.data_points
    ]


class World:
    """A runtime over the fakes with lanes on; `holding` stores an operation that holds its workbook's slot."""

    def __init__(self) -> None:
        self.rt, self.f = fake_runtime(WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS="600")

    def holding(self, status: str, *, age: float = 0.0, idle: float | None = None, **changes: Any) -> Operation:
        now = time.time()
        operation_id = new_operation_id(now - age)
        op = Operation(
            id=operation_id,
            status=status,
            action="createSession",
            workbook=WORKBOOK,
            operation_url=LOC if status == RUNNING else None,
            created_at=iso(now - age),
            updated_at=iso(now - (age if idle is None else idle)),
            base_url="https://bridge.example.test/api",
            callback_sealed=seal(CALLBACK, self.rt.settings.webhook_secrets, operation_id),
            webhook_state=WEBHOOK_PENDING,
            callback_format="binary",
            lane=LANE,
            generation=1,
        ).with_(**changes)
        op = run(self.rt.store.create(op))
        lanes = self.rt.lanes
        assert lanes is not None

        def take(state: LaneState) -> tuple[LaneState, None]:
            return admit(state, op.id, now, 1, 600)[0], None

        run(lanes.change(LANE, take))
        assert self.holders() == [op.id]
        return op

    def holders(self) -> list[str]:
        assert self.rt.lanes is not None
        state = run(self.rt.lanes.read(LANE))[0]
        return [h.operation_id for h in state.holders] + [w.operation_id for w in state.waiting]

    def queued(self, kind: str, operation_id: str) -> list[dict[str, Any]]:
        return [m for m in self.f.deliveries.decoded() if m["kind"] == kind and m["id"] == operation_id]


# --- the paths -------------------------------------------------------------------------------------------------


def poll_sees_graph_end(w: World) -> str:
    op = w.holding(RUNNING)
    w.f.graph.script("GET", LOC, succeeded())
    run(poller.handle_message(w.rt, encode(PollState(op.id, op.generation, 1)), 1, "m1"))
    return op.id


def poll_times_out(w: World) -> str:
    op = w.holding(RUNNING, age=w.rt.timing.timeout + 1)
    run(poller.handle_message(w.rt, encode(PollState(op.id, op.generation, 1)), 1, "m1"))
    return op.id


def last_delivery_fails(w: World) -> str:
    op = w.holding(RUNNING)
    w.f.graph.script("GET", LOC, running())
    w.f.polls.fail("send_message")  # the next poll cannot be queued: the step fails on its last delivery
    run(
        poller.handle_message(
            w.rt, encode(PollState(op.id, op.generation, 1)), w.rt.settings.poll_max_dequeue_count, "m1"
        )
    )
    return op.id


def http_start(*answers: Any) -> Callable[[World], str]:
    def start(w: World) -> str:
        w.f.graph.script("POST", SESSION, *answers)
        body = {"workbook": WORKBOOK, "action": "createSession", "parameters": PARAMETERS, "callbackUrl": CALLBACK}
        answer = run(operations.start(w.rt, json.dumps(body).encode(), None, "https://bridge.example.test/api"))
        return str(answer.operation.id)

    return start


def resumed_start(w: World) -> str:
    """A start whose request died after sending: its intent is found `starting` past the in-flight window."""
    op = w.holding(NOT_STARTED, age=120, start_phase=STARTING)
    run(reads.get(w.rt, op.id))
    return op.id


def waiter_times_out(w: World) -> str:
    op = w.holding(WAITING, age=w.rt.timing.timeout + 1)
    run(lane_flow.handle_message(w.rt, encode_lane(LANE)))
    return op.id


def deferred_start_refused(w: World) -> str:
    request = {"workbook": WORKBOOK, "action": "createSession", "parameters": PARAMETERS, "sessionId": None}
    op = w.holding(WAITING, lane_request=request)
    w.f.graph.script("POST", SESSION, reply(400, {"error": {"code": "invalidRequest", "message": "no"}}))
    run(lane_flow.handle_message(w.rt, encode_lane(LANE)))
    return op.id


def deferred_start_not_sendable(w: World) -> str:
    """A stored request no Graph request can carry (a session id with a line feed, written by an older version)."""
    request = {"workbook": WORKBOOK, "action": "createSession", "parameters": PARAMETERS, "sessionId": "abc\n"}
    op = w.holding(WAITING, lane_request=request)
    run(lane_flow.handle_message(w.rt, encode_lane(LANE)))
    assert w.f.graph.calls == []
    return op.id


def cancel(w: World) -> str:
    op = w.holding(RUNNING)
    run(changes.cancel(w.rt, op.id))
    return op.id


def purge_strands(w: World) -> str:
    op = w.holding(RUNNING, age=3 * DAY, idle=2 * DAY)
    assert run(purge.run(w.rt)).stranded == 1
    return op.id


@dataclass(frozen=True)
class Case:
    end: Callable[[World], str]
    status: str
    webhook: bool = True  # cancel is the caller leaving: no webhook (its subscriptions may still hear it)
    learns: bool = False  # only a poll that saw Graph's end of a succeeded operation knows its duration


CASES = {
    "poll: Graph's end": Case(poll_sees_graph_end, SUCCEEDED, learns=True),
    "poll: deadline": Case(poll_times_out, TIMED_OUT),
    "poll: last delivery failed": Case(last_delivery_fails, FAILED),
    "start: synchronous answer": Case(http_start(reply(201, {"id": "session-1"})), SUCCEEDED),
    "start: untrusted Location": Case(http_start(accepted("https://elsewhere.example/op")), FAILED),
    "start: outcome unknown": Case(http_start(transport_error()), FAILED),
    "start: resumed by a GET": Case(resumed_start, FAILED),
    "lane: waiter timed out": Case(waiter_times_out, TIMED_OUT),
    "lane: deferred start refused": Case(deferred_start_refused, FAILED),
    "start: request not sendable": Case(deferred_start_not_sendable, FAILED),
    "cancel": Case(cancel, CANCELED, webhook=False),
    "purge: stranded": Case(purge_strands, FAILED),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_ending_does_every_step(name: str, clock: FakeClock, finished_metric: InMemoryMetricReader) -> None:
    case = CASES[name]
    w = World()
    operation_id = case.end(w)
    op = run(w.rt.store.get(operation_id))
    assert op is not None and op.status == case.status and op.terminal
    assert w.holders() == []  # the lane slot is released
    assert finished_points(finished_metric) == [
        (1, {"bridge.action": "createSession", "bridge.operation.status": case.status})
    ]  # recorded once
    assert len(w.queued("fanout", operation_id)) == 1
    attempts = [m["attempt"] for m in w.queued("webhook", operation_id)]
    assert attempts == ([1] if case.webhook else [])
    assert bool(w.f.history.entities) == case.learns


def test_a_redelivered_poll_message_settles_a_terminal_record(clock: FakeClock) -> None:
    """The step that ended it died right after the terminal write: the next delivery of its message queues the
    webhook's first attempt and the fan-out and releases the lane slot."""
    w = World()
    op = w.holding(SUCCEEDED, completed_at=iso(clock.now), event_id="event-1", fanout_state="pending")
    run(poller.handle_message(w.rt, encode(PollState(op.id, op.generation, 1)), 2, "m1"))
    assert [m["attempt"] for m in w.queued("webhook", op.id)] == [1]
    assert len(w.queued("fanout", op.id)) == 1
    assert w.holders() == [] and w.f.graph.calls == []


def test_an_ending_whose_write_is_not_the_paths_does_nothing_after_it(
    clock: FakeClock, finished_metric: InMemoryMetricReader
) -> None:
    """Another writer moves the record between the purge's read and its terminal write: the purge skips it (it
    was not stranded after all), so it records no metric, queues no webhook and keeps the lane slot."""
    w = World()
    op = w.holding(RUNNING, age=3 * DAY, idle=2 * DAY)
    w.f.table.before(
        "update_entity",
        lambda: w.f.table.touch(op.id, "operation", UpdatedAt=iso(clock.now)),
        match=lambda entity: entity["PartitionKey"] == op.id,
    )
    assert run(purge.run(w.rt)).stranded == 0
    assert run(w.rt.store.get(op.id)).status == RUNNING
    assert finished_points(finished_metric) == []
    assert w.queued("webhook", op.id) == [] and w.holders() == [op.id]
