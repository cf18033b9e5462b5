"""Table entities that no write has touched for a while, for the purge's sweeps of the kinds that carry no expiry
of their own (the duration history, lanes, owner index entries).

Found by the Table service's own `Timestamp`, the time of an entity's last write, which the service keeps and no
client can set ("Understanding the Table service data model", system properties), and deleted only if still
untouched since it was found (If-Match its ETag: "Delete Entity", 412 when it changed). A filter on `Timestamp`
is a scan of the table or of a partition range: hourly background work, never on a caller's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables.aio import TableClient


@dataclass(frozen=True)
class Aged:
    partition: str
    row: str
    etag: str | None


def _after(prefix: str) -> str:
    """The first key after every key that starts with `prefix` (for a PartitionKey range)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def untouched(table: TableClient, before: float, limit: int, prefix: str | None = None) -> list[Aged]:
    """Up to `limit` entities last written before `before` (Unix seconds), in partitions starting with `prefix`."""
    query = "Timestamp lt @before"
    parameters: dict[str, Any] = {"before": datetime.fromtimestamp(before, UTC)}
    if prefix:
        query = "PartitionKey ge @lo and PartitionKey lt @hi and " + query
        parameters.update(lo=prefix, hi=_after(prefix))
    found: list[Aged] = []
    async for entity in table.query_entities(
        query, parameters=parameters, results_per_page=limit, select=["PartitionKey", "RowKey"]
    ):
        found.append(Aged(str(entity["PartitionKey"]), str(entity["RowKey"]), entity.metadata.get("etag")))
        if len(found) >= limit:
            break
    return found


async def delete_unchanged(table: TableClient, aged: Aged) -> bool:
    """Delete it if nothing wrote it since it was found; False if something did (or it is gone already)."""
    try:
        await table.delete_entity(
            aged.partition, aged.row, etag=aged.etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceNotFoundError, ResourceModifiedError):
        return False
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return False
        raise
    return True
