"""The learned schedule wired into the start path, the poller and the status endpoint, over the in-process fakes
of tests/unit/fakes.py (an ETag-enforcing table; Graph answers as graph-excel-async-facts.md describes them:
202 + Location for the start, `{"status": "running"}` while it runs)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from shared.api.problems import Problem
from shared.graph.lro import PollState
from shared.operations import poll_step as poller
from shared.operations import reads as operation_reads
from shared.operations import start as operations
from shared.operations.record import Operation, iso, parse_iso
from shared.schedule.clock import schedule_for, whole_seconds
from shared.schedule.history import history_keys
from shared.schedule.plans import Plan
from shared.schedule.timing import Timing
from tests.unit.fakes import GRAPH, FakeClock, accepted, fake_runtime, running

TIMING = Timing(1.0, 240.0, 3600.0, 8)
WORKBOOK = "/me/drive/items/01ABC"
LOCATION = f"{GRAPH}/me/drive/items/01ABC/workbook/operations/op-1"


class World:
    """A runtime over the fakes of tests/unit/fakes.py: Graph answers the start with 202 + Location and every
    status GET with running; the duration history is the fake table behind rt.history."""

    def __init__(self) -> None:
        self.rt, self.f = fake_runtime()
        self.f.graph.always("POST", f"{GRAPH}{WORKBOOK}/workbook/createSession", accepted(LOCATION))
        self.f.graph.always("GET", LOCATION, running())

    @property
    def delays(self) -> list[int]:
        return [delay for _, delay in self.f.polls.sent]

    def stored(self, operation_id: str) -> Operation | None:
        return asyncio.run(self.rt.store.get(operation_id))

    def learn(self, *durations: float, action: str = "createSession") -> None:
        store = self.rt.history
        assert store is not None
        for i, seconds in enumerate(durations):
            keys = history_keys("default", action, WORKBOOK)
            asyncio.run(store.record(keys, seconds, f"past-{action}-{i}", 1_767_225_000.0 + i))

    def start(self, **extra: Any) -> operations.Reply:
        body = {"workbook": WORKBOOK, "action": "createSession", "parameters": {"persistChanges": True}, **extra}
        return asyncio.run(operations.start(self.rt, json.dumps(body).encode(), None, "http://h/api"))


@pytest.fixture(autouse=True)
def _clock(clock: FakeClock) -> FakeClock:
    """A frozen clock: the delays compared below cannot drift across a whole second."""
    return clock


def test_a_cold_start_plans_cold_and_polls_first_at_two_seconds() -> None:
    w = World()
    reply = w.start()
    assert reply.operation.poll_plan is None
    [delay] = w.delays
    assert delay == 2 and reply.retry_after == 2  # the cold plan's first poll (the old code: 1 s, doubling)


def test_a_learned_start_stores_its_plan_and_polls_first_in_the_learned_window() -> None:
    w = World()
    w.learn(100.0, 104.0, 96.0, 102.0, 98.0)
    reply = w.start()
    plan = Plan.decode(reply.operation.poll_plan)
    assert not plan.cold and 30 < plan.start < 96 and plan.end > 104
    [delay] = w.delays
    first = schedule_for(reply.operation, TIMING).next_offset(0)
    assert delay == reply.retry_after and abs(delay - first) <= 1
    assert delay > 2  # not the cold first poll: nothing is likely to be done before the window


def test_a_tracked_operation_with_an_action_gets_the_same_learned_plan() -> None:
    w = World()
    w.learn(100.0, 104.0, 96.0)
    started = w.start().operation.poll_plan
    body = {"operationUrl": LOCATION, "action": "createSession"}
    reply = asyncio.run(operations.start(w.rt, json.dumps(body).encode(), None, "http://h/api"))
    assert reply.operation.poll_plan == started is not None


def test_the_hint_moves_the_first_poll() -> None:
    w = World()
    reply = w.start(expectedDurationSeconds=120)
    [delay] = w.delays
    assert not Plan.decode(reply.operation.poll_plan).cold and delay > 20 and delay == reply.retry_after


@pytest.mark.parametrize("hint", [0, -5, "60", True, None, 3600.5, 1e9])
def test_a_bad_hint_is_a_400_naming_the_field(hint: Any) -> None:
    w = World()
    with pytest.raises(Problem) as caught:
        w.start(expectedDurationSeconds=hint)
    assert caught.value.status == 400
    assert [e.field for e in caught.value.errors] == ["expectedDurationSeconds"]
    assert w.f.polls.sent == [] and [k for k in w.f.table.entities if k[1] == "operation"] == []


def test_a_history_read_failure_does_not_fail_the_start() -> None:
    w = World()
    w.learn(100.0, 104.0, 96.0)
    w.f.history.fail("get_entity", ConnectionError("table unavailable"), times=100)
    reply = w.start()
    assert reply.operation.poll_plan is None and reply.status_code == 202


def _running(w: World, plan: Plan, elapsed: float) -> Operation:
    op = Operation(
        id="1234567890123abcdef0123",
        status="running",
        action="createSession",
        workbook=WORKBOOK,
        operation_url=LOCATION,
        created_at=iso(time.time() - elapsed),
        updated_at=iso(time.time() - elapsed),
        base_url="http://h/api",
        owner="default",
        poll_plan=plan.encode() or None,
    )
    return asyncio.run(w.rt.store.create(op))


@pytest.mark.parametrize("plan", [Plan(), Plan(60, 140, 0.12)], ids=["cold", "learned"])
def test_the_status_retry_after_is_the_delay_the_poller_sends(plan: Plan) -> None:
    w = World()
    schedule = schedule_for(_running(World(), plan, 0), TIMING)
    # a moment halfway between two whole seconds before a planned poll
    offset = schedule.next_offset(70.0)
    elapsed = offset - 3.5
    op = _running(w, plan, elapsed)
    promised = operation_reads.reply_for(w.rt, op, time.time()).retry_after
    asyncio.run(poller.poll_once(w.rt, op, PollState(op.id, op.generation)))
    [delay] = w.delays
    assert promised == delay == whole_seconds(3.5) == 4
    stored = w.stored(op.id)
    assert stored is not None and stored.poll_plan == op.poll_plan  # nothing about the schedule is written per poll


def test_records_written_before_plans_existed_read_as_cold() -> None:
    w = World()
    op = _running(w, Plan(), 5.0)
    assert schedule_for(op, TIMING).plan.cold and math.isclose(schedule_for(op, TIMING).next_offset(5.0), 6.0)


def test_a_start_that_waited_for_its_workbook_counts_its_schedule_from_when_it_was_sent() -> None:
    """A record that waited in its workbook's lane (started_at later than created_at) polls on its plan counted
    from the Excel request, not from its creation, and learns Excel's time only (not the wait)."""
    w = World()
    waited = _running(w, Plan(), 0.0)
    created = parse_iso(waited.created_at)
    sent = waited.with_(started_at=iso(created + 100.0))
    cold = schedule_for(waited, TIMING)
    after_wait = schedule_for(sent, TIMING)
    first = cold.next_offset(0.0)  # the cold plan's first poll after the request was sent
    assert math.isclose(after_wait.next_poll(100.0), first)
    assert math.isclose(after_wait.next_offset(100.0), 100.0 + first)
    assert after_wait.observed_duration(100.0 + first) == cold.observed_duration(first)
    assert after_wait.next_poll(100.0) < cold.next_poll(100.0)  # counted from creation it would wait longer
