"""shared/schedule/history_store.py and shared/schedule/learning.py against the in-process table of tests/unit/fakes.py,
whose upsert in merge mode updates the named properties of an existing entity and leaves the others, or inserts
(learn.microsoft.com, Table service REST "Insert Or Merge Entity"). Every fake call yields to the event loop, so
concurrent finishes interleave."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import cast

import pytest
from azure.data.tables.aio import TableClient

from shared.graph.lro import Finish, PollState
from shared.operations import poll_step as poller
from shared.operations.record import Operation, iso
from shared.schedule.history import DurationHistory, decode, history_keys, operation_tag
from shared.schedule.history_store import HistoryStore
from shared.schedule.learning import learn, plan_for
from shared.schedule.plans import COLD, Plan, Schedule
from shared.schedule.timing import Timing
from tests.unit.fakes import FakeClock, FakeTable, fake_runtime
from tests.unit.test_duration_history import ids_in_distinct_slots

TIMING = Timing(1.0, 240.0, 3600.0, 8)
KEY = ("p", "createSession.*")


def history(table: FakeTable, key: tuple[str, str] = KEY) -> DurationHistory:
    entity = table.row(*key)
    if entity is None:
        return DurationHistory()
    return decode({k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")})


def _store(table: FakeTable) -> HistoryStore:
    return HistoryStore(cast(TableClient, table))


def test_a_finish_is_one_upsert_per_key_and_no_read() -> None:
    table = FakeTable()
    store = _store(table)
    keys = history_keys("alice", "createSession", "/me/drive/items/1")
    asyncio.run(store.record(keys, 12.0, "op-1", 1_767_225_600.0))
    asyncio.run(store.record(keys, 14.0, "op-2", 1_767_225_601.0))
    assert [method for method, _, _ in table.calls] == ["upsert_entity"] * 4
    for key in keys:
        assert sorted(history(table, key).durations()) == [12.0, 14.0]


def test_fifty_concurrent_finishes_of_one_key_all_land() -> None:
    """Issue 21: no entity every finish must win an ETag race on. Every fake call yields to the event loop, so
    the 50 writes interleave; each one is kept in its slot (the ids here take 50 different slots)."""
    table = FakeTable()
    ops = ids_in_distinct_slots(50)

    async def burst() -> None:
        store = _store(table)
        await asyncio.gather(*(store.record([KEY], 10.0 + n, op, 1_767_225_600.0 + n) for n, op in enumerate(ops)))

    asyncio.run(burst())
    assert sorted(history(table).durations()) == [10.0 + n for n in range(50)]


def test_fifty_concurrent_learns_of_one_owner_and_action_all_reach_the_pool() -> None:
    """The same through the use case the poll step calls (learning.learn), 50 operations of one owner + action
    on 50 workbooks finishing at once: the owner + action pool gets every one (no point dropped)."""
    table = FakeTable()
    store = _store(table)
    ops = [
        _done().with_(id=op, workbook=f"/me/drive/items/{n}", completed_at=iso(1_767_225_630.0 + n))
        for n, op in enumerate(ids_in_distinct_slots(50, "1234567890123abcdef"))
    ]

    async def burst() -> None:
        await asyncio.gather(*(learn(store, TIMING, op, "alice") for op in ops))

    asyncio.run(burst())
    pool = history_keys("alice", "createSession", None)[0]
    assert history(table, pool).size == 50


def test_a_redelivered_finish_writes_the_same_values_again() -> None:
    table = FakeTable()
    store = _store(table)
    asyncio.run(store.record([KEY], 12.0, "op-1", 1_767_225_600.0))
    before = history(table)
    asyncio.run(store.record([KEY], 12.0, "op-1", 1_767_225_600.0))
    assert history(table) == before and before.size == 1


def test_an_entity_written_before_slots_is_read_then_extended() -> None:
    table = FakeTable()
    ring = ",".join(f"{d:.1f}:{operation_tag(f'old-{i}')}" for i, d in enumerate((30.0, 40.0)))
    asyncio.run(
        table.create_entity({"PartitionKey": KEY[0], "RowKey": KEY[1], "Version": 1, "Count": 9, "Recent": ring})
    )
    store = _store(table)
    [read] = asyncio.run(store.read([KEY]))
    assert read is not None and read.durations() == [30.0, 40.0] and read.count == 9
    asyncio.run(store.record([KEY], 50.0, "op-new", 1_767_225_600.0))
    after = history(table)
    assert after.durations() == [30.0, 40.0, 50.0]  # the old ring kept, the new run after it
    assert table.row(*KEY)["Recent"] == ring  # merged, not replaced


def test_plan_for_reads_the_workbooks_own_runs_and_the_pool() -> None:
    table = FakeTable()
    store = _store(table)
    specific, general = history_keys("alice", "createSession", "/me/drive/items/1")
    for i, seconds in enumerate((100.0, 110.0, 90.0)):
        asyncio.run(store.record([specific], seconds, f"op-{i}", 1_767_225_600.0 + i))
    for i in range(20):
        asyncio.run(store.record([general], 5.0 + 0.1 * i, f"op-g{i}", 1_767_225_600.0 + i))
    plan = asyncio.run(plan_for(store, TIMING, "alice", "createSession", "/me/drive/items/1"))
    assert not plan.cold and plan.start < 90 < 110 < plan.end  # the workbook's own runs, not the 5 s ones
    other = asyncio.run(plan_for(store, TIMING, "alice", "createSession", "/me/drive/items/2"))
    assert not other.cold and other.early == 0 and other.start <= 5 <= other.end  # another workbook: the pool


def test_a_pool_of_long_unrelated_runs_does_not_delay_a_new_workbooks_first_polls() -> None:
    """Issue 21's real run: the owner's earlier createSession work took about 200 s; a new workbook has no runs
    of its own. Its plan keeps the cold schedule's first poll (2 s): a 1 s operation is not seen at 100 s."""
    table = FakeTable()
    store = _store(table)
    general = history_keys("alice", "createSession", None)[0]
    for i in range(64):
        asyncio.run(store.record([general], 180.0 + i, f"op-{i}", 1_767_225_600.0 + i))
    plan = asyncio.run(plan_for(store, TIMING, "alice", "createSession", "/me/drive/items/new"))
    assert next(Schedule(plan, TIMING).offsets()) == 2


def test_a_history_read_failure_plans_cold(caplog: pytest.LogCaptureFixture) -> None:
    table = FakeTable()
    table.fail("get_entity", ConnectionError("table unavailable"), times=100)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(plan_for(_store(table), TIMING, "alice", "createSession", None)) == COLD
    assert "planned without it" in caplog.text
    hinted = asyncio.run(plan_for(_store(table), TIMING, "alice", "createSession", None, hint=60.0))
    assert not hinted.cold  # the hint still counts


def _done(status: str = "succeeded", plan: Plan = COLD) -> Operation:
    return Operation(
        id="1234567890123abcdef0123",
        status=status,
        action="createSession",
        workbook="/me/drive/items/1",
        operation_url="https://graph/op",
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:30.000Z",
        completed_at="2026-01-01T00:00:30.000Z",
        base_url="http://h/api",
        owner="alice",
        poll_plan=plan.encode() or None,
    )


def test_learn_writes_the_observed_duration_into_both_keys() -> None:
    table = FakeTable()
    asyncio.run(learn(_store(table), TIMING, _done(), "alice"))
    for key in history_keys("alice", "createSession", "/me/drive/items/1"):
        [seconds] = history(table, key).durations()
        assert 24.0 < seconds < 30.0  # between the poll before 30 s (cold: 24 s... 28 s) and 30 s


@pytest.mark.parametrize("status", ["failed", "timedOut", "canceled"])
def test_only_succeeded_operations_are_learned(status: str) -> None:
    table = FakeTable()
    asyncio.run(learn(_store(table), TIMING, _done(status), "alice"))
    assert table.entities == {}


class BrokenHistory(HistoryStore):
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []

    async def record(self, keys: Sequence[tuple[str, str]], seconds: float, operation_id: str, at: float) -> None:
        self.keys += keys
        raise ConnectionError("table unavailable")


def test_a_history_write_failure_never_fails_the_finish(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    history_store = BrokenHistory()
    rt.history = history_store
    op = asyncio.run(rt.store.create(_done().with_(status="running", completed_at=None)))
    asyncio.run(poller.finish(rt, op, Finish("succeeded", PollState(op.id, 0, polls=3)), 1767225630.0))
    stored = asyncio.run(rt.store.get(op.id))
    assert stored is not None and stored.status == "succeeded"  # the terminal write stands
    assert len(history_store.keys) == 2  # both keys were tried, after the terminal write
