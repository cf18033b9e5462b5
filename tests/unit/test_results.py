"""Big results: when a result goes to a blob, what the record holds, and what readers get back."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import ContainerClient

from shared.operations.record import ROW_KEY, Operation
from shared.operations.result_size import MAX_RESULT_BYTES, TABLE_RESULT_MAX_CHARS, bounded, needs_blob, result_json
from shared.operations.store import OperationStore
from shared.storage.result_blobs import ResultBlobs
from tests.unit.fakes import FakeContainer, FakeTable

# Table Storage: a string property holds at most 64 KiB, i.e. 32 K UTF-16 characters
# (learn.microsoft.com, "Understanding the Table service data model", Property types).
TABLE_STRING_CHARS = 32 * 1024


def _store(with_blobs: bool = True) -> tuple[OperationStore, FakeTable, FakeContainer]:
    """The real store over the fake table (which refuses a string property over 32 K characters, as the service
    does: PropertyValueTooLarge) and the fake results container behind the real ResultBlobs."""
    table, container = FakeTable(), FakeContainer()
    results = ResultBlobs(cast(ContainerClient, container)) if with_blobs else None
    return OperationStore(cast(TableClient, table), results=results), table, container


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
    store, table, container = _store()
    result = {"index": 0, "values": [["y" * 40_000]]}
    created = asyncio.run(store.create(_op(result)))
    entity = table.entities[(created.id, ROW_KEY)]
    assert entity["ResultJson"] == "" and entity["ResultBlob"] == created.result_blob
    assert json.loads(container.blobs[entity["ResultBlob"]]) == result
    read = asyncio.run(store.get(created.id))
    assert read is not None and read.result == result


def test_a_small_result_stays_inline() -> None:
    store, table, container = _store()
    created = asyncio.run(store.create(_op({"index": 0, "values": [[1]]})))
    entity = table.entities[(created.id, ROW_KEY)]
    assert json.loads(entity["ResultJson"]) == {"index": 0, "values": [[1]]} and entity["ResultBlob"] == ""
    assert container.blobs == {}


def test_without_a_blob_store_the_table_refuses_a_big_result() -> None:
    store, table, _ = _store(with_blobs=False)
    with pytest.raises(HttpResponseError) as refused:
        asyncio.run(store.create(_op({"values": [["y" * 40_000]]})))
    assert refused.value.error_code == "PropertyValueTooLarge"
    assert [k for k in table.entities if k[1] == ROW_KEY] == []  # nothing half-written
