"""The operations list in Table Storage: the owner index (one entry per operation in its owner's partition, newest
first) and the pages read from it, or from a scan of the whole table for read-all callers.

A page ends with the position where the next one starts (a `Position`, as the table gives it); the HTTP side signs
it into the continuation token the caller sees (shared/crypto/page_tokens.py) and opens it again, so nothing here
ever reads a position a caller made up. The records themselves are read by id through the store
(shared/operations/store.py), which passes its `get` in: this module does not import the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.crypto.page_tokens import Position
from shared.operations.damaged import decoded
from shared.operations.record import ROW_KEY, DamagedRecord, Operation

log = logging.getLogger("shared.operations.store")  # the index's log lines keep their category

INDEX_PREFIX = "owner-"  # the owner index: PK owner-<sha256(owner)[:32]>, RK the operation id (newest first)
INDEX_ORPHAN_SECONDS = 300.0  # an index entry this old whose record is missing is a crash's leftover
INDEX_MAX_SCANNED = 1000  # per page: a rare status filter answers a short page with a continuation instead

Get = Callable[[str], Awaitable[Operation | DamagedRecord | None]]  # a record that cannot be read: its DamagedRecord


@dataclass(frozen=True)
class Page:
    operations: list[Operation]
    continuation: Position | None  # where the next page starts; None on the last page
    damaged: list[DamagedRecord] = field(default_factory=list)  # left out of `operations`, flagged in the answer


def index_partition(owner: str) -> str:
    """The owner's index partition (a hash: owners may contain any character, keys may not)."""
    return INDEX_PREFIX + hashlib.sha256(owner.encode()).hexdigest()[:32]


async def write_index(table: TableClient, op: Operation, now: float | None = None) -> None:
    """The owner index entry, written before the record: a crash in between leaves an entry without a
    record (skipped when listing), never a record missing from its owner's list. Idempotent."""
    await table.upsert_entity(
        {
            "PartitionKey": index_partition(op.owner or ""),
            "RowKey": op.id,
            "IndexedAt": time.time() if now is None else now,
            "Status": op.status,
        },
        mode=UpdateMode.REPLACE,
    )


async def index_status(table: TableClient, op: Operation) -> None:
    """Keep the entry's Status (a hint for the status filter) in step, after the record's write; a failure
    here only leaves a stale hint, which the list repairs when it reads the record."""
    try:
        await table.upsert_entity(
            {"PartitionKey": index_partition(op.owner or ""), "RowKey": op.id, "Status": op.status},
            mode=UpdateMode.MERGE,
        )
    except HttpResponseError:
        log.warning("could not update the index entry of %s; the list will repair it", op.id)


async def delete_index(table: TableClient, owner: str, operation_id: str) -> None:
    try:
        await table.delete_entity(index_partition(owner), operation_id)
    except ResourceNotFoundError:
        pass


async def scan(table: TableClient, status: str | None, top: int, position: Position | None, owner: str | None) -> Page:
    """The list as a filter over the whole table: read-all callers (every record matches, so each page is
    one read of `top` records), and, with `owner`, the query owners used before the index (the bench)."""
    query = "RowKey eq @rk"
    parameters: dict[str, Any] = {"rk": ROW_KEY}
    if owner is not None:
        query += " and Owner eq @owner"
        parameters["owner"] = owner
    if status:
        query += " and Status eq @status"
        parameters["status"] = status
    pages = table.query_entities(query, parameters=parameters, results_per_page=top).by_page(
        continuation_token=position  # type: ignore[arg-type]
    )
    operations: list[Operation] = []
    damaged: list[DamagedRecord] = []
    async for page in pages:
        async for entity in page:
            try:
                operations.append(decoded(entity, entity.metadata.get("etag"), "list"))
            except DamagedRecord as exc:
                damaged.append(exc)
        break
    return Page(operations, _position(getattr(pages, "continuation_token", None)), damaged)


def _position(token: Any) -> Position | None:
    """Table Storage's next partition and row keys ({"PartitionKey", "RowKey"}, either may be absent)."""
    if not isinstance(token, dict):
        return None
    position = {str(k): v for k, v in token.items() if isinstance(v, str) and v}
    return position or None


async def list_indexed(
    table: TableClient, get: Get, owner: str, status: str | None, top: int, position: Position | None
) -> Page:
    """One owner's operations from their index partition, newest first, the records read by id.

    The entry's Status narrows a status filter inside the partition; the record read decides (a stale
    entry, left by a crash between the record's write and the entry's, is skipped and repaired). At most
    INDEX_MAX_SCANNED entries are examined per page, then the page ends early with a continuation.
    Entries whose record is missing are skipped (and removed once old); damaged records are flagged."""
    after = (position or {}).get("after")
    partition = index_partition(owner)
    found: list[Operation] = []
    damaged: list[DamagedRecord] = []
    scanned = 0
    last: str | None = after
    while len(found) < top and scanned < INDEX_MAX_SCANNED:
        want = min(top - len(found), INDEX_MAX_SCANNED - scanned)
        entries = await _index_entries(table, partition, status, last, want)
        scanned += len(entries)
        records = await asyncio.gather(*(get(str(e["RowKey"])) for e in entries))
        for entry, op in zip(entries, records, strict=True):
            last = str(entry["RowKey"])
            if isinstance(op, DamagedRecord):
                damaged.append(op)  # in the owner's partition: theirs, whatever its Owner now says
                continue
            if op is None:
                await _drop_orphan(table, entry)
                continue
            if entry.get("Status") != op.status and op.owner == owner:
                await index_status(table, op)  # repair the hint
            if op.owner == owner and (not status or op.status == status):
                found.append(op)
                if len(found) == top:
                    break
        if len(entries) < want and (not entries or last == str(entries[-1]["RowKey"])):
            return Page(found, None, damaged)  # the partition is exhausted and every entry was examined
    return Page(found, {"after": last} if last else None, damaged)


async def _index_entries(
    table: TableClient, partition: str, status: str | None, after: str | None, count: int
) -> list[dict[str, Any]]:
    query = "PartitionKey eq @pk"
    parameters: dict[str, Any] = {"pk": partition}
    if after:
        query += " and RowKey gt @after"
        parameters["after"] = after
    if status:
        query += " and Status eq @status"
        parameters["status"] = status
    entries: list[dict[str, Any]] = []
    pages = table.query_entities(
        query,
        parameters=parameters,
        results_per_page=count,
        select=["PartitionKey", "RowKey", "IndexedAt", "Status"],
    ).by_page()
    async for page in pages:
        async for entity in page:
            entries.append(dict(entity))
        break
    return entries


async def _drop_orphan(table: TableClient, entry: dict[str, Any]) -> None:
    indexed = entry.get("IndexedAt")
    if isinstance(indexed, int | float) and time.time() - float(indexed) > INDEX_ORPHAN_SECONDS:
        try:
            await table.delete_entity(str(entry["PartitionKey"]), str(entry["RowKey"]))
        except (ResourceNotFoundError, HttpResponseError):
            pass
