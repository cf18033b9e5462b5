"""The duration history in Table Storage (DURATION_HISTORY_TABLE): point reads, and one finish written into
its slot. The decisions (what the entity holds, which slot a finish takes) are shared/schedule/history.py's;
this module only reads and writes.

Per key and finish: one Insert Or Merge (upsert, merge mode) of the finish's slot, unconditional, so there is no
read first, no ETag and no race to lose (learn.microsoft.com, "Insert Or Merge Entity"). Per start: one point
read per key, in parallel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.schedule.history import DurationHistory, decode, finish_properties

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

    async def _entity(self, key: Key) -> dict[str, Any] | None:
        try:
            return dict(await self._table.get_entity(*key))
        except ResourceNotFoundError:
            return None

    async def read(self, keys: Sequence[Key]) -> list[DurationHistory | None]:
        """The samples at these keys (None: no entity), read in parallel. Raises on a storage failure."""
        entities = await asyncio.gather(*(self._entity(key) for key in keys))
        return [decode(entity) if entity is not None else None for entity in entities]

    async def owner_rows(self, partition: str, limit: int = 500) -> list[tuple[str, DurationHistory]]:
        """Every summary of one owner's partition (history_keys' PartitionKey), up to `limit`."""
        rows: list[tuple[str, DurationHistory]] = []
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, results_per_page=100)
        async for entity in query:
            rows.append((str(entity["RowKey"]), decode(dict(entity))))
            if len(rows) >= limit:
                break
        return rows

    async def record(self, keys: Sequence[Key], seconds: float, operation_id: str, at: float) -> None:
        """Write one finished operation's duration into its slot at every key (one upsert each, in parallel).
        Writing the same finish again writes the same values. Raises on a storage failure."""
        properties = finish_properties(seconds, operation_id, at)
        await asyncio.gather(
            *(
                self._table.upsert_entity({"PartitionKey": p, "RowKey": r, **properties}, mode=UpdateMode.MERGE)
                for p, r in keys
            )
        )
