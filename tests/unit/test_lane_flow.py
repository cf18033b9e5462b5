"""The lane's use cases (shared/lanes/admission.py) on the at-least-once cases, over the in-process fakes of
tests/unit/fakes.py, which enforce ETags as Table Storage does (a stale write fails; shared/lanes/store.py turns
412/409 into a re-read): a
duplicated advance message, concurrent advance steps, a crash between the terminal write and the release,
and a deferred start that Graph throttles or refuses.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shared.graph.lro import PollState
from shared.lanes import admission as lane_flow
from shared.lanes import slots as lane_slots
from shared.lanes.line import LaneState, advance
from shared.lanes.store import lane_key
from shared.operations import changes as operation_changes
from shared.operations import lifecycle
from shared.operations import poll_step as poller
from shared.operations import start as operations
from shared.operations.record import FAILED, SUCCEEDED, WAITING, Operation
from shared.storage.messages import encode, encode_lane
from tests.unit.fakes import GRAPH, FakeClock, Reply, accepted, fake_runtime, reply, throttled

WORKBOOK = "/me/drive/items/01ITEM"
LANE = lane_key(WORKBOOK, "default")


ROWS = f"{GRAPH}{WORKBOOK}/workbook/tables/T/rows"


def location(n: int) -> str:
    return f"{GRAPH}{WORKBOOK}/workbook/operations/op-{n}"


class World:
    """A runtime over the fakes of tests/unit/fakes.py with one Excel request at a time per workbook: the real
    OperationStore and LaneStore over one ETag-enforcing table whose every call yields to the event loop (so
    concurrent steps interleave between a read and its write), the real queues and Graph client."""

    def __init__(self, *answers: Reply) -> None:
        self.rt, self.f = fake_runtime(WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS="60")
        self.f.graph.script("POST", ROWS, *answers)

    @property
    def starts(self) -> int:
        """Excel requests sent to Graph."""
        return len(self.f.graph.to(ROWS, "POST"))

    @property
    def lanes(self) -> list[tuple[str, int]]:
        """(lane, delay) of every lane message queued on the poll queue."""
        return [(json.loads(text)["lane"], delay) for text, delay in self.f.polls.sent if '"lane"' in text]

    def lane_writes(self) -> int:
        return len(self.f.table.writes(LANE))

    def post(self, n: int) -> operations.Reply:
        body = json.dumps(
            {
                "workbook": WORKBOOK,
                "action": "createTableRow",
                "sessionId": "s",
                "parameters": {"table": "T", "values": [[n]]},
            }
        ).encode()
        return asyncio.run(operations.start(self.rt, body, None, "http://h/api", content_type="application/json"))

    def lane(self) -> LaneState:
        assert self.rt.lanes is not None
        return asyncio.run(self.rt.lanes.read(LANE))[0]

    def record(self, operation_id: str) -> Operation:
        op = asyncio.run(self.rt.store.get(operation_id))
        assert op is not None
        return op

    def end(self, operation_id: str, status: str = SUCCEEDED) -> Operation:
        """The holder's terminal write, as poller.finish makes it, but without what follows (a crash)."""
        op = self.record(operation_id)
        done = lifecycle.terminal_state(op, status, time.time()).with_(fanout_state=None)  # no subscriptions
        return asyncio.run(self.rt.store.update(done, lifecycle.TERMINAL_FIELDS))

    def advance(self) -> None:
        asyncio.run(lane_flow.handle_message(self.rt, encode_lane(LANE)))


@pytest.fixture(autouse=True)
def _clock(clock: FakeClock) -> FakeClock:
    return clock


def _two() -> tuple[World, str, str]:
    w = World(accepted(location(0)), accepted(location(1)))
    first, second = w.post(0), w.post(1)
    assert first.operation.status == "notStarted" and second.operation.status == WAITING
    assert second.operation.lane_position == 1
    return w, first.operation.id, second.operation.id


def test_a_waiter_is_stored_with_its_request_and_its_place() -> None:
    w, holder, waiter = _two()
    assert w.starts == 1
    stored = w.record(waiter)
    assert stored.lane == LANE and stored.lane_request is not None
    assert stored.lane_request["parameters"]["values"] == [[1]] and stored.lane_request["sessionId"] == "s"
    assert [h.operation_id for h in w.lane().holders] == [holder]
    assert w.lanes == [(LANE, 60)]  # a recheck at the holder's lease expiry


def test_a_duplicated_advance_message_sends_the_excel_request_once() -> None:
    w, holder, waiter = _two()
    w.end(holder)
    w.advance()
    w.advance()  # the same message delivered again
    assert w.starts == 2
    assert w.record(waiter).status == "notStarted" and w.record(waiter).operation_url


def test_concurrent_advance_steps_send_it_once() -> None:
    w, holder, waiter = _two()
    w.end(holder)

    async def both() -> None:
        message = encode_lane(LANE)
        await asyncio.gather(lane_flow.handle_message(w.rt, message), lane_flow.handle_message(w.rt, message))

    asyncio.run(both())
    assert w.starts == 2
    assert [h.operation_id for h in w.lane().holders] == [waiter]


def test_a_crash_between_the_terminal_write_and_the_release_does_not_block_the_lane() -> None:
    w, holder, waiter = _two()
    w.end(holder)  # ... and the process died: no release, no advance message
    assert [h.operation_id for h in w.lane().holders] == [holder]
    # The holder's poll message comes back, finds the record terminal, and releases the lane.
    asyncio.run(poller.handle_message(w.rt, encode(PollState(holder, 0)), 2, "m-1"))
    assert [h.operation_id for h in w.lane().holders] == []
    assert w.lanes[-1] == (LANE, 0)
    w.advance()
    assert w.starts == 2 and w.record(waiter).status == "notStarted"


def test_the_advance_step_frees_a_terminal_holder_even_without_a_release() -> None:
    w, holder, waiter = _two()
    w.end(holder, FAILED)
    w.advance()  # the recheck message planned at admission
    assert w.starts == 2 and [h.operation_id for h in w.lane().holders] == [waiter]


def test_a_release_twice_changes_nothing_the_second_time() -> None:
    w, holder, _ = _two()
    done = w.end(holder)
    asyncio.run(lane_slots.on_terminal(w.rt, done))
    writes, sent = w.lane_writes(), len(w.lanes)
    asyncio.run(lane_slots.on_terminal(w.rt, done))
    assert (w.lane_writes(), len(w.lanes)) == (writes, sent)


def test_a_deferred_start_throttled_by_graph_keeps_its_slot_and_waits_out_retry_after() -> None:
    w, holder, waiter = _two()
    w.f.graph.scripts[("POST", ROWS)][:] = [throttled("7"), accepted(location(1))]
    w.end(holder)
    before = time.time()
    w.advance()
    op = w.record(waiter)
    assert op.status == WAITING and op.lane_attempts == 1 and op.start_phase is None
    assert [h.operation_id for h in w.lane().holders] == [waiter]
    assert w.lane().throttle_until >= before + 7
    assert w.lanes[-1] == (LANE, 7)
    w.advance()  # a message arriving early (a duplicate): still throttled, nothing is sent
    assert w.starts == 2


def test_a_deferred_start_that_graph_refuses_fails_with_graphs_error_and_frees_the_lane() -> None:
    w, holder, waiter = _two()
    body = {"error": {"code": "ItemNotFound", "message": "The table does not exist."}}
    w.f.graph.scripts[("POST", ROWS)][:] = [reply(404, body)]
    w.end(holder)
    w.advance()
    op = w.record(waiter)
    assert op.status == FAILED and op.error is not None and op.error["code"] == "ItemNotFound"
    assert w.lane().holders == () and w.lane().waiting == ()


def test_cancel_of_a_waiter_takes_it_out_of_the_line_and_it_is_never_sent() -> None:
    w, holder, waiter = _two()
    asyncio.run(operation_changes.cancel(w.rt, waiter))
    assert w.lane().waiting == ()
    w.end(holder)
    w.advance()
    assert w.starts == 1


def test_a_429_on_a_poll_throttles_the_workbook_for_its_siblings() -> None:
    w, holder, _ = _two()
    op = w.record(holder)
    asyncio.run(lane_slots.note_throttle(w.rt, op, 5.0, time.time()))
    wait = asyncio.run(lane_slots.throttled_for(w.rt, op.with_(id="another", lane=None), time.time()))
    assert 4.0 < wait <= 5.0


def test_a_waiter_past_the_operation_timeout_ends_timed_out_and_is_never_sent() -> None:
    w, holder, waiter = _two()
    old = w.record(waiter)
    asyncio.run(w.rt.store.update(old.with_(created_at="2000-01-01T00:00:00.000Z"), {"created_at"}))
    w.end(holder)
    w.advance()
    assert w.starts == 1
    assert w.record(waiter).status == "timedOut" and w.lane().holders == ()


def test_the_advance_step_finishes_a_deferred_start_that_died_after_sending() -> None:
    w, holder, waiter = _two()
    w.end(holder)
    # The waiter was promoted and sent, then the worker died: `starting` long ago, no answer stored.
    assert w.rt.lanes is not None
    asyncio.run(w.rt.lanes.change(LANE, lambda s: (advance(s, time.time(), 1, 60.0, frozenset({holder}))[0], None)))
    old = w.record(waiter)
    asyncio.run(
        w.rt.store.update(
            old.with_(status="notStarted", start_phase="starting", updated_at="2000-01-01T00:00:00.000Z"),
            {"status", "start_phase", "updated_at"},
        )
    )
    w.advance()
    assert w.starts == 1  # never sent again
    op = w.record(waiter)
    assert op.status == FAILED and op.error is not None and op.error["code"] == "graphOutcomeUnknown"
    assert w.lane().holders == ()


def test_fifty_requests_at_once_get_one_slot_and_fifty_distinct_places() -> None:
    w = World(accepted(location(0)))

    async def post(n: int) -> operations.Reply:
        body = json.dumps(
            {
                "workbook": WORKBOOK,
                "action": "createTableRow",
                "sessionId": "s",
                "parameters": {"table": "T", "values": [[n]]},
            }
        ).encode()
        return await operations.start(w.rt, body, None, "http://h/api", content_type="application/json")

    async def all_at_once() -> list[operations.Reply]:
        return await asyncio.gather(*(post(n) for n in range(50)))

    replies = asyncio.run(all_at_once())
    assert w.starts == 1
    assert sorted(r.operation.lane_position or 0 for r in replies) == list(range(50))  # 0: the one sent
    lane = w.lane()
    assert len(lane.holders) == 1 and len(lane.waiting) == 49
    assert [x.ticket for x in lane.waiting] == sorted({x.ticket for x in lane.waiting})
