"""The in-process fakes keep the Storage rules the runtime relies on (tests/unit/fakes.py cites them): a fake
that let a stale write through would let every ETag test pass on broken code."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from tests.unit.fakes import FakeClock, FakeQueue, FakeTable


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_insert_of_an_existing_key_is_409() -> None:
    table = FakeTable()
    run(table.create_entity({"PartitionKey": "p", "RowKey": "r"}))
    with pytest.raises(ResourceExistsError):
        run(table.create_entity({"PartitionKey": "p", "RowKey": "r"}))


def test_a_write_with_a_stale_etag_is_412_and_each_write_gets_a_new_etag() -> None:
    table = FakeTable()
    first = run(table.create_entity({"PartitionKey": "p", "RowKey": "r", "A": 1}))["etag"]
    second = run(
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r", "A": 2}, etag=first, match_condition=MatchConditions.IfNotModified
        )
    )["etag"]
    assert second != first
    for call in (
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r"}, etag=first, match_condition=MatchConditions.IfNotModified
        ),
        table.delete_entity("p", "r", etag=first, match_condition=MatchConditions.IfNotModified),
    ):
        with pytest.raises(ResourceModifiedError) as refused:
            run(call)
        assert refused.value.status_code == 412
    assert table.row("p", "r") == {"PartitionKey": "p", "RowKey": "r", "A": 2}


def test_merge_keeps_other_properties_and_replace_drops_them() -> None:
    table = FakeTable()
    run(table.create_entity({"PartitionKey": "p", "RowKey": "r", "A": 1, "B": 1}))
    run(table.update_entity({"PartitionKey": "p", "RowKey": "r", "A": 2}, mode=UpdateMode.MERGE))
    assert table.row("p", "r") == {"PartitionKey": "p", "RowKey": "r", "A": 2, "B": 1}
    run(table.update_entity({"PartitionKey": "p", "RowKey": "r", "A": 3}, mode=UpdateMode.REPLACE))
    assert table.row("p", "r") == {"PartitionKey": "p", "RowKey": "r", "A": 3}


def test_a_missing_entity_is_404_except_for_delete() -> None:
    table = FakeTable()
    with pytest.raises(ResourceNotFoundError):
        run(table.get_entity("p", "r"))
    with pytest.raises(ResourceNotFoundError):
        run(table.update_entity({"PartitionKey": "p", "RowKey": "r"}))
    run(table.delete_entity("p", "r"))  # azure-data-tables 12.7 swallows the 404


def test_queries_understand_the_stores_filters_and_refuse_others() -> None:
    table = FakeTable()
    for pk, status, claimed in (("a", "running", 1.0), ("b", "failed", 5.0), ("c", "running", 9.0)):
        run(table.create_entity({"PartitionKey": pk, "RowKey": "operation", "Status": status, "At": claimed}))

    def keys(query: str, **parameters: Any) -> list[str]:
        async def collect() -> list[str]:
            return [e["PartitionKey"] async for e in table.query_entities(query, parameters=parameters)]

        return run(collect())

    assert keys("RowKey eq @rk and Status eq @s", rk="operation", s="running") == ["a", "c"]
    assert keys("PartitionKey ge @lo and PartitionKey lt @hi", lo="b", hi="c") == ["b"]
    assert keys("RowKey eq 'operation' and (Status eq 'failed' or At gt @t )", t=8.0) == ["b", "c"]
    assert keys("Missing eq 'x'") == []
    with pytest.raises(NotImplementedError):
        keys("startswith(PartitionKey, 'a')")


def test_a_string_property_over_32k_characters_is_refused() -> None:
    with pytest.raises(HttpResponseError) as refused:
        run(FakeTable().create_entity({"PartitionKey": "p", "RowKey": "r", "Big": "x" * 40_000}))
    assert refused.value.error_code == "PropertyValueTooLarge"


def test_a_received_message_is_hidden_counted_and_deleted_only_with_its_latest_pop_receipt(
    clock: FakeClock,
) -> None:
    queue = FakeQueue("q")
    run(queue.send_message("hello", visibility_timeout=10))
    assert queue.receive() is None  # not visible for 10 s
    clock.advance(10)
    first = queue.receive(visibility_timeout=30)
    assert first is not None and first.dequeue_count == 1 and queue.receive() is None
    clock.advance(30)
    second = queue.receive(visibility_timeout=30)
    assert second is not None and second.dequeue_count == 2
    with pytest.raises(HttpResponseError):
        run(queue.delete_message(first.id, first.pop_receipt))  # 400 PopReceiptMismatch
    run(queue.delete_message(second.id, second.pop_receipt))
    with pytest.raises(ResourceNotFoundError):
        run(queue.delete_message(second.id, second.pop_receipt))


def test_a_visibility_timeout_out_of_range_or_past_the_ttl_is_refused(clock: FakeClock) -> None:
    queue = FakeQueue("q")
    for kwargs in ({"visibility_timeout": 7 * 24 * 3600 + 1}, {"visibility_timeout": 60, "time_to_live": 60}):
        with pytest.raises(HttpResponseError):
            run(queue.send_message("x", **kwargs))
    run(queue.send_message("x", visibility_timeout=0, time_to_live=1))
    clock.advance(1)
    assert queue.receive() is None and queue.messages == []  # expired
