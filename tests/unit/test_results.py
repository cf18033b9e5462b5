"""Big results: when a result goes to a blob, what the record holds, and what readers get back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.records import ROW_KEY, Operation
from shared.results import MAX_RESULT_BYTES, TABLE_RESULT_MAX_CHARS, bounded, needs_blob, result_json
from shared.store import OperationStore

# Table Storage: a string property holds at most 64 KiB, i.e. 32 K UTF-16 characters
# (learn.microsoft.com, "Understanding the Table service data model", Property types).
TABLE_STRING_CHARS = 32 * 1024


class Entity(dict[str, Any]):
    metadata: dict[str, Any]


class FakeTable:
    """The part of azure.data.tables.aio.TableClient the store uses, refusing a string property over 32 K
    characters as the service does (PropertyValueTooLarge)."""

    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], dict[str, Any]] = {}

    async def create_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        for value in entity.values():
            if isinstance(value, str) and len(value) > TABLE_STRING_CHARS:
                raise ValueError("PropertyValueTooLarge")
        self.entities[(entity["PartitionKey"], entity["RowKey"])] = dict(entity)
        return {"etag": "1"}

    async def upsert_entity(self, entity: dict[str, Any], mode: Any = None) -> dict[str, Any]:
        self.entities[(entity["PartitionKey"], entity["RowKey"])] = dict(entity)  # the owner index entry
        return {"etag": "1"}

    async def get_entity(self, partition: str, row: str) -> Entity:
        found = Entity(self.entities[(partition, row)])
        found.metadata = {"etag": "1"}
        return found


class FakeBlobs:
    def __init__(self) -> None:
        self.blobs: dict[str, str] = {}

    async def put(self, operation_id: str, text: str) -> str:
        name = f"{operation_id}/{len(self.blobs)}.json"
        self.blobs[name] = text
        return name

    async def read(self, name: str) -> str | None:
        return self.blobs.get(name)


def _op(result: Any) -> Operation:
    return Operation(
        id="1234567890123abcdef0123",
        status="succeeded",
        action="createTableRow",
        workbook="/me/x",
        operation_url=None,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        base_url="http://h/api",
        result=result,
    )


def test_thresholds_fit_the_table_limit() -> None:
    assert TABLE_RESULT_MAX_CHARS < TABLE_STRING_CHARS
    assert not needs_blob("x" * TABLE_RESULT_MAX_CHARS) and needs_blob("x" * (TABLE_RESULT_MAX_CHARS + 1))


def test_a_result_over_the_inline_maximum_is_replaced_by_an_error() -> None:
    small = {"values": [["x" * 100]]}
    assert bounded(small, None) == (small, None)
    huge = {"values": [["x" * MAX_RESULT_BYTES]]}
    result, error = bounded(huge, None)
    assert result is None and error is not None and error["code"] == "resultTooLarge"
    assert str(len(result_json(huge).encode())) in error["message"]


def test_a_big_result_goes_to_a_blob_and_reads_back_inline() -> None:
    table, blobs = FakeTable(), FakeBlobs()
    store = OperationStore(table, results=blobs)  # type: ignore[arg-type]
    result = {"index": 0, "values": [["y" * 40_000]]}
    created = asyncio.run(store.create(_op(result)))
    entity = table.entities[(created.id, ROW_KEY)]
    assert entity["ResultJson"] == "" and entity["ResultBlob"] == created.result_blob
    assert json.loads(blobs.blobs[entity["ResultBlob"]]) == result
    read = asyncio.run(store.get(created.id))
    assert read is not None and read.result == result


def test_a_small_result_stays_inline() -> None:
    table, blobs = FakeTable(), FakeBlobs()
    store = OperationStore(table, results=blobs)  # type: ignore[arg-type]
    created = asyncio.run(store.create(_op({"index": 0, "values": [[1]]})))
    entity = table.entities[(created.id, ROW_KEY)]
    assert json.loads(entity["ResultJson"]) == {"index": 0, "values": [[1]]} and entity["ResultBlob"] == ""
    assert blobs.blobs == {}


def test_without_a_blob_store_the_table_refuses_a_big_result() -> None:
    store = OperationStore(FakeTable())  # type: ignore[arg-type]
    try:
        asyncio.run(store.create(_op({"values": [["y" * 40_000]]})))
    except ValueError as exc:
        assert "PropertyValueTooLarge" in str(exc)
    else:
        raise AssertionError("the fake table should refuse a 40,000-character property")
