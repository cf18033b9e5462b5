"""shared/schedule/history_store.py and shared/schedule/learning.py against the in-process table of tests/unit/fakes.py,
which enforces ETags as Table Storage does: Insert Entity of an existing key is 409 EntityAlreadyExists, Update Entity
with a stale If-Match is 412 Precondition Failed (learn.microsoft.com, Table service REST "Insert Entity" /
"Update Entity"; the SDK raises ResourceExistsError and ResourceModifiedError for them, azure-data-tables
_error.py). Every fake call yields to the event loop, so concurrent merges interleave between read and write."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from azure.data.tables.aio import TableClient

from shared.graph.lro import Finish, PollState
from shared.operations import poll_step as poller
from shared.operations.lifecycle import history_keys_for
from shared.operations.record import Operation
from shared.schedule.history import MAX_MERGE_ATTEMPTS, DurationHistory, decode, operation_tag
from shared.schedule.history_store import HistoryStore
from shared.schedule.learning import learn, plan_for
from shared.schedule.plans import COLD, Plan
from shared.schedule.timing import Timing
from tests.unit.fakes import FakeClock, FakeTable, fake_runtime

TIMING = Timing(1.0, 240.0, 3600.0, 8)
KEY = ("p", "createSession.*")


def history(table: FakeTable, key: tuple[str, str] = KEY) -> DurationHistory:
    entity = table.row(*key)
    if entity is None:
        return DurationHistory()
    return decode({k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")})


def writes(table: FakeTable) -> int:
    return sum(1 for method, _, _ in table.calls if method in ("create_entity", "update_entity"))


def _store(table: FakeTable) -> HistoryStore:
    return HistoryStore(cast(TableClient, table))


def test_a_first_finish_inserts_and_the_next_replaces() -> None:
    table = FakeTable()
    store = _store(table)
    assert asyncio.run(store.merge(KEY, 12.0, "op-1"))
    assert asyncio.run(store.merge(KEY, 14.0, "op-2"))
    assert history(table).durations() == [12.0, 14.0] and history(table).count == 2


def test_two_concurrent_finishes_are_both_merged() -> None:
    table = FakeTable()  # both read (no entity / the same ETag) before either writes: every call yields

    async def both() -> list[bool]:
        store = _store(table)
        await store.merge(KEY, 5.0, "op-0")
        return list(await asyncio.gather(store.merge(KEY, 10.0, "op-1"), store.merge(KEY, 20.0, "op-2")))

    assert asyncio.run(both()) == [True, True]
    assert sorted(history(table).durations()) == [5.0, 10.0, 20.0]


def test_two_concurrent_first_finishes_insert_once_and_merge_the_other() -> None:
    table = FakeTable()

    async def both() -> None:
        store = _store(table)
        await asyncio.gather(store.merge(KEY, 10.0, "op-1"), store.merge(KEY, 20.0, "op-2"))

    asyncio.run(both())
    assert sorted(history(table).durations()) == [10.0, 20.0]  # the loser of the insert (409) replaced


def test_a_redelivered_finish_is_not_counted_twice() -> None:
    table = FakeTable()
    store = _store(table)
    asyncio.run(store.merge(KEY, 12.0, "op-1"))
    before = writes(table)
    assert asyncio.run(store.merge(KEY, 12.0, "op-1"))
    assert writes(table) == before and history(table).count == 1


def test_conflict_exhaustion_drops_this_point_only(caplog: pytest.LogCaptureFixture) -> None:
    table = FakeTable()
    store = _store(table)
    asyncio.run(store.merge(KEY, 1.0, "op-0"))
    others = iter(range(100))

    async def another_finish() -> None:  # someone writes between every read and write of ours
        await HistoryStore(cast(TableClient, table)).merge(KEY, 2.0, f"other-{next(others)}")

    def ours(entity: dict[str, Any]) -> bool:  # our write (it carries our point's tag), not the other finishes'
        return operation_tag("op-lost") in str(entity)

    table.before("update_entity", another_finish, times=100, match=ours)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(store.merge(KEY, 99.0, "op-lost")) is False
    merged = history(table)
    assert operation_tag("op-lost") not in [e.tag for e in merged.entries]
    assert merged.count == 1 + MAX_MERGE_ATTEMPTS  # every other finish counted, only ours dropped
    assert "dropped" in caplog.text


def test_plan_for_reads_the_most_specific_key_first_and_learns() -> None:
    table = FakeTable()
    store = _store(table)
    specific, general = history_keys_for("alice", "createSession", "/me/drive/items/1")
    for i, seconds in enumerate((100.0, 110.0, 90.0)):
        asyncio.run(store.merge(specific, seconds, f"op-{i}"))
    asyncio.run(store.merge(general, 5.0, "op-g"))
    plan = asyncio.run(plan_for(store, TIMING, "alice", "createSession", "/me/drive/items/1"))
    assert not plan.cold and plan.start < 90 < 110 < plan.end  # the workbook's own runs, not the 5 s one
    other = asyncio.run(plan_for(store, TIMING, "alice", "createSession", "/me/drive/items/2"))
    assert not other.cold and other.start <= 5 <= other.end  # another workbook: the owner + action summary


def test_a_history_read_failure_plans_cold(caplog: pytest.LogCaptureFixture) -> None:
    table = FakeTable()
    table.fail("get_entity", ConnectionError("table unavailable"), times=100)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(plan_for(_store(table), TIMING, "alice", "createSession", None)) == COLD
    assert "cold schedule" in caplog.text
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


def test_learn_merges_the_observed_duration_into_both_keys() -> None:
    table = FakeTable()
    asyncio.run(learn(_store(table), TIMING, _done(), "alice"))
    for key in history_keys_for("alice", "createSession", "/me/drive/items/1"):
        [seconds] = history(table, key).durations()
        assert 24.0 < seconds < 30.0  # between the poll before 30 s (cold: 24 s... 28 s) and 30 s


@pytest.mark.parametrize("status", ["failed", "timedOut", "canceled"])
def test_only_succeeded_operations_are_learned(status: str) -> None:
    table = FakeTable()
    asyncio.run(learn(_store(table), TIMING, _done(status), "alice"))
    assert table.entities == {}


class BrokenHistory(HistoryStore):
    def __init__(self) -> None:
        self.calls = 0

    async def merge(self, key: tuple[str, str], seconds: float, operation_id: str) -> bool:
        self.calls += 1
        raise ConnectionError("table unavailable")


def test_a_history_write_failure_never_fails_the_finish(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    history_store = BrokenHistory()
    rt.history = history_store
    op = asyncio.run(rt.store.create(_done().with_(status="running", completed_at=None)))
    asyncio.run(poller.finish(rt, op, Finish("succeeded", PollState(op.id, 0, polls=3)), 1767225630.0))
    stored = asyncio.run(rt.store.get(op.id))
    assert stored is not None and stored.status == "succeeded"  # the terminal write stands
    assert history_store.calls == 2  # both keys were tried, after the terminal write
