"""The lane's use cases (shared/lane_flow.py) on the at-least-once cases, with in-process fakes that enforce
ETags as Table Storage does (a stale write fails; shared/lane_store.py turns 412/409 into a re-read): a
duplicated advance message, concurrent advance steps, a crash between the terminal write and the release,
and a deferred start that Graph throttles or refuses.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import cast

from shared import lane_flow, lane_slots, operations, poller
from shared.graph import GraphResponse
from shared.lane_store import LaneStore, lane_key
from shared.lanes import LaneState, advance, idle
from shared.polling import PollState, Timing
from shared.queue import encode, encode_lane
from shared.records import FAILED, SUCCEEDED, WAITING, Operation
from shared.runtime import Runtime
from shared.settings import load_settings
from tests.unit.test_write_ahead import FakeGraph, FakeQueue, FakeStore, accepted

WORKBOOK = "/me/drive/items/01ITEM"
LANE = lane_key(WORKBOOK, "default")


class FakeLaneStore(LaneStore):
    """LaneStore over a dict: each write checks the ETag it read (insert-only when it read none)."""

    def __init__(self) -> None:
        self.entities: dict[str, tuple[LaneState, str]] = {}
        self.version = 0
        self.writes = 0

    async def read(self, key: str) -> tuple[LaneState, str | None]:
        await asyncio.sleep(0)  # let concurrent steps interleave between read and write
        found = self.entities.get(key)
        return (found[0], found[1]) if found else (LaneState(), None)

    async def write(self, key: str, state: LaneState, etag: str | None) -> bool:
        await asyncio.sleep(0)
        found = self.entities.get(key)
        if (found[1] if found else None) != etag:
            return False
        self.version += 1
        self.writes += 1
        if idle(state, time.time()):  # as LaneStore.write: an idle lane is deleted
            self.entities.pop(key, None)
        else:
            self.entities[key] = (state, str(self.version))
        return True


class YieldingStore(FakeStore):
    """FakeStore whose reads and writes yield to the event loop, so concurrent steps interleave between them."""

    async def get(self, operation_id: str) -> Operation | None:
        await asyncio.sleep(0)
        return await super().get(operation_id)

    async def update(self, op: Operation, changed: set[str]) -> Operation:
        await asyncio.sleep(0)
        return await super().update(op, changed)


@dataclass
class LaneQueue(FakeQueue):
    lanes: list[tuple[str, int]] = field(default_factory=list)

    async def send_lane(self, lane: str, delay: int = 0) -> None:
        self.lanes.append((lane, delay))


@dataclass
class World:
    store: FakeStore = field(default_factory=YieldingStore)
    graph: FakeGraph = field(default_factory=lambda: FakeGraph([]))
    polls: LaneQueue = field(default_factory=LaneQueue)
    deliveries: FakeQueue = field(default_factory=FakeQueue)
    lanes: FakeLaneStore = field(default_factory=FakeLaneStore)

    def __post_init__(self) -> None:
        self.store.results = None  # type: ignore[attr-defined]
        settings = load_settings(
            {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "GRAPH_BASE_URL": "http://127.0.0.1:1/v1.0",
                "LANE_LEASE_SECONDS": "60",
            }
        )
        ns = {
            "settings": settings,
            "store": self.store,
            "graph": self.graph,
            "polls": self.polls,
            "deliveries": self.deliveries,
            "timing": Timing(1, 30, 3600, 8),
            "lanes": self.lanes,
            "history": None,
        }
        self.rt = cast(Runtime, type("FakeRuntime", (), ns)())

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
        return self.lanes.entities.get(LANE, (LaneState(), ""))[0]

    def record(self, operation_id: str) -> Operation:
        return self.store.records[operation_id]

    def end(self, operation_id: str, status: str = SUCCEEDED) -> Operation:
        """The holder's terminal write, as poller.finish makes it, but without what follows (a crash)."""
        op = self.record(operation_id)
        done = operations.terminal_state(op, status, time.time()).with_(fanout_state=None)  # no subscriptions
        return asyncio.run(self.store.update(done, operations.TERMINAL_FIELDS))

    def advance(self) -> None:
        asyncio.run(lane_flow.handle_message(self.rt, encode_lane(LANE)))


def _two() -> tuple[World, str, str]:
    w = World(graph=FakeGraph([accepted(), accepted()]))
    first, second = w.post(0), w.post(1)
    assert first.operation.status == "notStarted" and second.operation.status == WAITING
    assert second.operation.lane_position == 1
    return w, first.operation.id, second.operation.id


def test_a_waiter_is_stored_with_its_request_and_its_place() -> None:
    w, holder, waiter = _two()
    assert w.graph.starts == 1
    stored = w.record(waiter)
    assert stored.lane == LANE and stored.lane_request is not None
    assert stored.lane_request["parameters"]["values"] == [[1]] and stored.lane_request["sessionId"] == "s"
    assert [h.operation_id for h in w.lane().holders] == [holder]
    assert w.polls.lanes == [(LANE, 60)]  # a recheck at the holder's lease expiry


def test_a_duplicated_advance_message_sends_the_excel_request_once() -> None:
    w, holder, waiter = _two()
    w.end(holder)
    w.advance()
    w.advance()  # the same message delivered again
    assert w.graph.starts == 2
    assert w.record(waiter).status == "notStarted" and w.record(waiter).operation_url


def test_concurrent_advance_steps_send_it_once() -> None:
    w, holder, waiter = _two()
    w.end(holder)

    async def both() -> None:
        message = encode_lane(LANE)
        await asyncio.gather(lane_flow.handle_message(w.rt, message), lane_flow.handle_message(w.rt, message))

    asyncio.run(both())
    assert w.graph.starts == 2
    assert [h.operation_id for h in w.lane().holders] == [waiter]


def test_a_crash_between_the_terminal_write_and_the_release_does_not_block_the_lane() -> None:
    w, holder, waiter = _two()
    w.end(holder)  # ... and the process died: no release, no advance message
    assert [h.operation_id for h in w.lane().holders] == [holder]
    # The holder's poll message comes back, finds the record terminal, and releases the lane.
    asyncio.run(poller.handle_message(w.rt, encode(PollState(holder, 0)), 2, "m-1"))
    assert [h.operation_id for h in w.lane().holders] == []
    assert w.polls.lanes[-1] == (LANE, 0)
    w.advance()
    assert w.graph.starts == 2 and w.record(waiter).status == "notStarted"


def test_the_advance_step_frees_a_terminal_holder_even_without_a_release() -> None:
    w, holder, waiter = _two()
    w.end(holder, FAILED)
    w.advance()  # the recheck message planned at admission
    assert w.graph.starts == 2 and [h.operation_id for h in w.lane().holders] == [waiter]


def test_a_release_twice_changes_nothing_the_second_time() -> None:
    w, holder, _ = _two()
    done = w.end(holder)
    asyncio.run(lane_slots.on_terminal(w.rt, done))
    writes, sent = w.lanes.writes, len(w.polls.lanes)
    asyncio.run(lane_slots.on_terminal(w.rt, done))
    assert (w.lanes.writes, len(w.polls.lanes)) == (writes, sent)


def test_a_deferred_start_throttled_by_graph_keeps_its_slot_and_waits_out_retry_after() -> None:
    w, holder, waiter = _two()
    w.graph.answers[:] = [GraphResponse(429, {"retry-after": "7"}, b"{}"), accepted()]
    w.end(holder)
    before = time.time()
    w.advance()
    op = w.record(waiter)
    assert op.status == WAITING and op.lane_attempts == 1 and op.start_phase is None
    assert [h.operation_id for h in w.lane().holders] == [waiter]
    assert w.lane().throttle_until >= before + 7
    assert w.polls.lanes[-1] == (LANE, 7)
    w.advance()  # a message arriving early (a duplicate): still throttled, nothing is sent
    assert w.graph.starts == 2


def test_a_deferred_start_that_graph_refuses_fails_with_graphs_error_and_frees_the_lane() -> None:
    w, holder, waiter = _two()
    body = json.dumps({"error": {"code": "ItemNotFound", "message": "The table does not exist."}}).encode()
    w.graph.answers[:] = [GraphResponse(404, {}, body)]
    w.end(holder)
    w.advance()
    op = w.record(waiter)
    assert op.status == FAILED and op.error is not None and op.error["code"] == "ItemNotFound"
    assert w.lane().holders == () and w.lane().waiting == ()


def test_cancel_of_a_waiter_takes_it_out_of_the_line_and_it_is_never_sent() -> None:
    w, holder, waiter = _two()
    asyncio.run(operations.cancel(w.rt, waiter))
    assert w.lane().waiting == ()
    w.end(holder)
    w.advance()
    assert w.graph.starts == 1


def test_a_429_on_a_poll_throttles_the_workbook_for_its_siblings() -> None:
    w, holder, _ = _two()
    op = w.record(holder)
    asyncio.run(lane_slots.note_throttle(w.rt, op, 5.0, time.time()))
    wait = asyncio.run(lane_slots.throttled_for(w.rt, op.with_(id="another", lane=None), time.time()))
    assert 4.0 < wait <= 5.0


def test_a_waiter_past_the_operation_timeout_ends_timed_out_and_is_never_sent() -> None:
    w, holder, waiter = _two()
    old = w.record(waiter)
    asyncio.run(w.store.update(old.with_(created_at="2000-01-01T00:00:00.000Z"), {"created_at"}))
    w.end(holder)
    w.advance()
    assert w.graph.starts == 1
    assert w.record(waiter).status == "timedOut" and w.lane().holders == ()


def test_the_advance_step_finishes_a_deferred_start_that_died_after_sending() -> None:
    w, holder, waiter = _two()
    w.end(holder)
    # The waiter was promoted and sent, then the worker died: `starting` long ago, no answer stored.
    asyncio.run(w.lanes.change(LANE, lambda s: (advance(s, time.time(), 1, 60.0, frozenset({holder}))[0], None)))
    old = w.record(waiter)
    asyncio.run(
        w.store.update(
            old.with_(status="notStarted", start_phase="starting", updated_at="2000-01-01T00:00:00.000Z"),
            {"status", "start_phase", "updated_at"},
        )
    )
    w.advance()
    assert w.graph.starts == 1  # never sent again
    op = w.record(waiter)
    assert op.status == FAILED and op.error is not None and op.error["code"] == "graphOutcomeUnknown"
    assert w.lane().holders == ()


def test_fifty_requests_at_once_get_one_slot_and_fifty_distinct_places() -> None:
    w = World(graph=FakeGraph([accepted()]))

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
    assert w.graph.starts == 1
    assert sorted(r.operation.lane_position or 0 for r in replies) == list(range(50))  # 0: the one sent
    lane = w.lane()
    assert len(lane.holders) == 1 and len(lane.waiting) == 49
    assert [x.ticket for x in lane.waiting] == sorted({x.ticket for x in lane.waiting})
