"""shared/history_store.py and shared/learning.py against an in-process table that enforces ETags as Table
Storage does: Insert Entity of an existing key is 409 EntityAlreadyExists, Update Entity with a stale If-Match is
412 Precondition Failed (learn.microsoft.com, Table service REST "Insert Entity" / "Update Entity"; the SDK raises
ResourceExistsError and ResourceModifiedError for them, azure-data-tables _error.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared import poller
from shared.duration_history import MAX_MERGE_ATTEMPTS, DurationHistory, decode, operation_tag
from shared.history_store import HistoryStore
from shared.learning import learn, plan_for
from shared.lifecycle import history_keys_for
from shared.polling import Finish, PollState, Timing
from shared.records import Operation
from shared.runtime import Runtime
from shared.schedule import COLD, Plan
from shared.settings import load_settings
from tests.unit.test_write_ahead import FakeQueue, FakeStore

TIMING = Timing(1.0, 240.0, 3600.0, 8)
KEY = ("p", "createSession.*")


class Entity(dict[str, Any]):
    def __init__(self, data: dict[str, Any], etag: str) -> None:
        super().__init__(data)
        self.metadata = {"etag": etag}


class EtagTable:
    """Get/insert/replace with Table Storage's conditions. `before_write` runs between a caller's read and its
    write (to model another finish writing in between); `pause` yields to the event loop at that point."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self.version = 0
        self.writes = 0
        self.before_write: Callable[[], Awaitable[None]] | None = None
        self.pause = False
        self.fail_reads = False

    def _put(self, key: tuple[str, str], entity: dict[str, Any]) -> None:
        self.version += 1
        self.rows[key] = (
            {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")},
            f'W/"{self.version}"',
        )

    async def get_entity(self, partition_key: str, row_key: str) -> Entity:
        if self.fail_reads:
            raise ConnectionError("table unavailable")
        row = self.rows.get((partition_key, row_key))
        if row is None:
            raise ResourceNotFoundError("ResourceNotFound")
        return Entity(dict(row[0]), row[1])

    async def _interleave(self) -> None:
        if self.pause:
            await asyncio.sleep(0)
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            await hook()
            self.before_write = hook

    async def create_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        await self._interleave()
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ResourceExistsError("EntityAlreadyExists")
        self.writes += 1
        self._put(key, entity)
        return {"etag": self.rows[key][1]}

    async def update_entity(
        self, entity: dict[str, Any], mode: UpdateMode, etag: str, match_condition: MatchConditions
    ) -> dict[str, Any]:
        assert mode is UpdateMode.REPLACE and match_condition is MatchConditions.IfNotModified
        await self._interleave()
        key = (entity["PartitionKey"], entity["RowKey"])
        if key not in self.rows:
            raise ResourceNotFoundError("ResourceNotFound")
        if self.rows[key][1] != etag:
            raise ResourceModifiedError("UpdateConditionNotSatisfied")  # 412
        self.writes += 1
        self._put(key, entity)
        return {"etag": self.rows[key][1]}

    async def create_table(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def history(self, key: tuple[str, str] = KEY) -> DurationHistory:
        return decode(self.rows[key][0]) if key in self.rows else DurationHistory()


def _store(table: EtagTable) -> HistoryStore:
    return HistoryStore(cast(TableClient, table))


def test_a_first_finish_inserts_and_the_next_replaces() -> None:
    table = EtagTable()
    store = _store(table)
    assert asyncio.run(store.merge(KEY, 12.0, "op-1"))
    assert asyncio.run(store.merge(KEY, 14.0, "op-2"))
    assert table.history().durations() == [12.0, 14.0] and table.history().count == 2


def test_two_concurrent_finishes_are_both_merged() -> None:
    table = EtagTable()
    table.pause = True  # both read (no entity / the same ETag) before either writes

    async def both() -> list[bool]:
        store = _store(table)
        await store.merge(KEY, 5.0, "op-0")
        return list(await asyncio.gather(store.merge(KEY, 10.0, "op-1"), store.merge(KEY, 20.0, "op-2")))

    assert asyncio.run(both()) == [True, True]
    assert sorted(table.history().durations()) == [5.0, 10.0, 20.0]


def test_two_concurrent_first_finishes_insert_once_and_merge_the_other() -> None:
    table = EtagTable()
    table.pause = True

    async def both() -> None:
        store = _store(table)
        await asyncio.gather(store.merge(KEY, 10.0, "op-1"), store.merge(KEY, 20.0, "op-2"))

    asyncio.run(both())
    assert sorted(table.history().durations()) == [10.0, 20.0]  # the loser of the insert (409) replaced


def test_a_redelivered_finish_is_not_counted_twice() -> None:
    table = EtagTable()
    store = _store(table)
    asyncio.run(store.merge(KEY, 12.0, "op-1"))
    writes = table.writes
    assert asyncio.run(store.merge(KEY, 12.0, "op-1"))
    assert table.writes == writes and table.history().count == 1


def test_conflict_exhaustion_drops_this_point_only(caplog: pytest.LogCaptureFixture) -> None:
    table = EtagTable()
    store = _store(table)
    asyncio.run(store.merge(KEY, 1.0, "op-0"))
    others = iter(range(100))

    async def another_finish() -> None:  # someone writes between every read and write of ours
        await HistoryStore(cast(TableClient, table)).merge(KEY, 2.0, f"other-{next(others)}")

    table.before_write = another_finish
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(store.merge(KEY, 99.0, "op-lost")) is False
    table.before_write = None
    history = table.history()
    assert operation_tag("op-lost") not in [e.tag for e in history.entries]
    assert history.count == 1 + MAX_MERGE_ATTEMPTS  # every other finish counted, only ours dropped
    assert "dropped" in caplog.text


def test_plan_for_reads_the_most_specific_key_first_and_learns() -> None:
    table = EtagTable()
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
    table = EtagTable()
    table.fail_reads = True
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
    table = EtagTable()
    asyncio.run(learn(_store(table), TIMING, _done(), "alice"))
    for key in history_keys_for("alice", "createSession", "/me/drive/items/1"):
        [seconds] = table.history(key).durations()
        assert 24.0 < seconds < 30.0  # between the poll before 30 s (cold: 24 s... 28 s) and 30 s


@pytest.mark.parametrize("status", ["failed", "timedOut", "canceled"])
def test_only_succeeded_operations_are_learned(status: str) -> None:
    table = EtagTable()
    asyncio.run(learn(_store(table), TIMING, _done(status), "alice"))
    assert table.rows == {}


class BrokenHistory(HistoryStore):
    def __init__(self) -> None:
        self.calls = 0

    async def merge(self, key: tuple[str, str], seconds: float, operation_id: str) -> bool:
        self.calls += 1
        raise ConnectionError("table unavailable")


def test_a_history_write_failure_never_fails_the_finish() -> None:
    store, polls, history = FakeStore(), FakeQueue(), BrokenHistory()
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    rt = cast(
        Runtime,
        type(
            "FakeRuntime",
            (),
            {
                "settings": settings,
                "store": store,
                "polls": polls,
                "deliveries": FakeQueue(),
                "timing": TIMING,
                "history": history,
            },
        )(),
    )
    op = asyncio.run(store.create(_done().with_(status="running", completed_at=None)))
    asyncio.run(poller.finish(rt, op, Finish("succeeded", PollState(op.id, 0, polls=3)), 1767225630.0))
    assert store.records[op.id].status == "succeeded"  # the terminal write stands
    assert history.calls == 2  # both keys were tried, after the terminal write
