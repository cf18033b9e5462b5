"""Listing per owner reads the owner's index partition (shared/operations/listing.py), against Azurite.

Table Storage docs (table-storage-design-for-query.md): a query on PartitionKey and a RowKey range is a
range query inside one partition; a filter on other properties "results in a table scan". So the list of one
owner must be a PartitionKey query, never `Owner eq ...`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from devhost.services import AzuritePorts
from shared.operations.listing import index_partition
from shared.operations.record import FAILED, RUNNING, SUCCEEDED, Operation, iso, new_operation_id
from shared.operations.store import OperationStore


class Recording:
    """The table client, recording each query's filter; `fail_record_create` models a crash after the index,
    `fail_index_status` one after a record's status write, before its index entry's."""

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.filters: list[str] = []
        self.fail_record_create = False
        self.fail_index_status = False

    async def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        if self.fail_index_status and str(entity["PartitionKey"]).startswith("owner-"):
            raise ResourceNotFoundError("the process died before the index entry's write")
        return await self.table.upsert_entity(entity, **kwargs)

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any:
        self.filters.append(query_filter)
        return self.table.query_entities(query_filter, **kwargs)

    async def create_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        if self.fail_record_create and entity["RowKey"] == "operation":
            raise ConnectionResetError("the process died between the index and the record")
        return await self.table.create_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def record(owner: str, at: float, status: str = SUCCEEDED) -> Operation:
    return Operation(
        id=new_operation_id(at),
        status=status,
        action="createSession",
        workbook="/me/x",
        operation_url=None,
        created_at=iso(at),
        updated_at=iso(at),
        base_url="http://x/api",
        completed_at=iso(at) if status != RUNNING else None,
        owner=owner,
    )


def run(azurite: AzuritePorts, scenario: Any) -> Any:
    async def main() -> Any:
        name = "idx" + uuid.uuid4().hex[:12]
        async with TableClient.from_connection_string(azurite.connection_string, name) as table:
            await table.create_table()
            recording = Recording(table)
            return await scenario(OperationStore(recording), recording)  # type: ignore[arg-type]

    return asyncio.run(main())


def test_an_owner_lists_their_own_newest_first_from_the_index(azurite: AzuritePorts) -> None:
    async def scenario(store: OperationStore, table: Recording) -> None:
        now = time.time()
        alice = [record("alice", now - i, FAILED if i % 3 == 0 else SUCCEEDED) for i in range(7)]
        bob = [record("bob", now - i - 0.5) for i in range(4)]
        for op in [*alice, *bob]:
            await store.create(op)
        table.filters.clear()
        first = await store.list(None, 3, None, "alice")
        assert [op.id for op in first.operations] == [op.id for op in alice[:3]]  # newest first
        assert first.continuation
        rest = await store.list(None, 10, first.continuation, "alice")
        assert [op.id for op in rest.operations] == [op.id for op in alice[3:]] and rest.continuation is None
        failed = await store.list(FAILED, 10, None, "alice")
        assert [op.id for op in failed.operations] == [op.id for op in alice if op.status == FAILED]
        assert {op.owner for op in (await store.list(None, 100, None, "bob")).operations} == {"bob"}
        # every query was on the owner's index partition (point reads fetch the records)
        assert table.filters and all(f.startswith("PartitionKey eq @pk") for f in table.filters), table.filters
        assert not any("Owner" in f for f in table.filters)
        # read-all callers keep the scan, which sees everyone
        everyone = await store.list(None, 100, None, None)
        assert {op.id for op in everyone.operations} == {op.id for op in [*alice, *bob]}

    run(azurite, scenario)


def test_a_crash_between_index_and_record_leaves_an_entry_that_is_skipped(azurite: AzuritePorts) -> None:
    async def scenario(store: OperationStore, table: Recording) -> None:
        kept = record("carol", time.time() - 1)
        await store.create(kept)
        lost = record("carol", time.time())
        table.fail_record_create = True
        with pytest.raises(ConnectionResetError):
            await store.create(lost)
        table.fail_record_create = False
        # the index entry was written first ...
        entry = await table.get_entity(index_partition("carol"), lost.id)
        assert entry["RowKey"] == lost.id
        # ... and the list skips it, never failing, never losing the record that exists
        page = await store.list(None, 10, None, "carol")
        assert [op.id for op in page.operations] == [kept.id]
        # an old orphan is removed when the list meets it
        await table.upsert_entity(
            {"PartitionKey": index_partition("carol"), "RowKey": lost.id, "IndexedAt": time.time() - 3600}
        )
        await store.list(None, 10, None, "carol")
        assert [
            e["RowKey"]
            async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": index_partition("carol")})
        ] == [kept.id]
        # deleting a record (an undone start) deletes its entry too
        await store.delete(kept.id)
        assert (await store.list(None, 10, None, "carol")).operations == []
        assert [
            e async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": index_partition("carol")})
        ] == []

    run(azurite, scenario)


def test_the_status_filter_reads_the_index_and_survives_a_stale_entry(azurite: AzuritePorts) -> None:
    async def scenario(store: OperationStore, table: Recording) -> None:
        now = time.time()
        ops = [await store.create(record("dave", now - i, RUNNING)) for i in range(3)]
        table.filters.clear()
        assert [op.id for op in (await store.list(RUNNING, 10, None, "dave")).operations] == [o.id for o in ops]
        assert all("Status eq @status" in f and f.startswith("PartitionKey eq @pk") for f in table.filters)
        # ops[1] finishes; the index entry's write is lost (the process died after the record's write)
        table.fail_index_status = True
        done = await store.update(ops[1].with_(status=FAILED, completed_at=iso(now)), {"status", "completed_at"})
        table.fail_index_status = False
        assert done.status == FAILED
        running = await store.list(RUNNING, 10, None, "dave")
        assert [op.id for op in running.operations] == [ops[0].id, ops[2].id]  # the record decides
        # the entry was repaired when the list met it: the failed filter now finds it
        assert [op.id for op in (await store.list(FAILED, 10, None, "dave")).operations] == [ops[1].id]

    run(azurite, scenario)
