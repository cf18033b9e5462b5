"""The duration history in Table Storage (DURATION_HISTORY_TABLE): point reads, and the ETag merge of one
finished operation's duration. The decisions (what the entity holds, what to write) are
shared/schedule/history.py's; this module only reads and writes.

Per key and finish: one point read, then one conditional write (an insert when the entity is absent, else a
replace with If-Match its ETag). On 409 (someone inserted first) or 412 (someone wrote in between) it reads again
and re-merges, up to MAX_MERGE_ATTEMPTS writes, then drops this one point with a log line. Table Storage's
conditions (learn.microsoft.com, "Update Entity": If-Match, 412 Precondition Failed; "Insert Entity": 409
Conflict, EntityAlreadyExists) are what make two finishes at once both count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.operations.store import is_precondition_failure
from shared.schedule.history import DurationHistory, decode, merge_step, retry_after_conflict

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (PartitionKey, RowKey): shared.schedule.history.history_keys


class HistoryStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def ensure_table(self) -> None:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass

    async def close(self) -> None:
        await self._table.close()

    @property
    def table(self) -> TableClient:
        """The history table (the purge deletes summaries no finish touched for long: shared/operations/sweeps.py)."""
        return self._table

    async def _entity(self, key: Key) -> tuple[dict[str, Any] | None, str | None]:
        try:
            entity = await self._table.get_entity(*key)
        except ResourceNotFoundError:
            return None, None
        return dict(entity), entity.metadata.get("etag")

    async def read(self, keys: Sequence[Key]) -> list[DurationHistory | None]:
        """The summaries at these keys (None: no entity), read in parallel. Raises on a storage failure."""
        entities = await asyncio.gather(*(self._entity(key) for key in keys))
        return [decode(entity) if entity is not None else None for entity, _ in entities]

    async def owner_rows(self, partition: str, limit: int = 500) -> list[tuple[str, DurationHistory]]:
        """Every summary of one owner's partition (duration_history.history_keys' PartitionKey), up to `limit`."""
        rows: list[tuple[str, DurationHistory]] = []
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, results_per_page=100)
        async for entity in query:
            rows.append((str(entity["RowKey"]), decode(dict(entity))))
            if len(rows) >= limit:
                break
        return rows

    async def merge(self, key: Key, seconds: float, operation_id: str) -> bool:
        """Merge one finished operation's duration at `key`. True: merged (or already there); False: dropped
        after MAX_MERGE_ATTEMPTS conflicts. Raises on a storage failure other than a conflict."""
        attempt = 0
        while True:
            current, etag = await self._entity(key)
            write = merge_step(current, etag, seconds, operation_id)
            if write is None:
                return True  # this finish is already counted (a redelivered message, a retried write)
            entity = {"PartitionKey": key[0], "RowKey": key[1], **write.properties}
            attempt += 1
            try:
                if write.etag is None:
                    await self._table.create_entity(entity)
                else:
                    await self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=write.etag, match_condition=MatchConditions.IfNotModified
                    )
                return True
            except ResourceExistsError:
                pass  # inserted by another finish since the read
            except ResourceNotFoundError:
                pass  # deleted since the read: insert next time
            except HttpResponseError as exc:
                if not is_precondition_failure(exc):
                    raise
            if not retry_after_conflict(attempt):
                log.warning(
                    "duration of %s dropped from the history after %s conflicting writes", operation_id, attempt
                )
                return False
