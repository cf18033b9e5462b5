"""Operation records (and idempotency keys) in Azure Table Storage, with ETag-guarded updates."""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.crypto.page_tokens import Position
from shared.operations import listing
from shared.operations.damaged import decoded
from shared.operations.listing import Page
from shared.operations.record import ROW_KEY, DamagedRecord, Operation, iso, to_entity
from shared.operations.result_size import needs_blob
from shared.operations.retention import DAY, DEFAULT_RETENTION_DAYS, expires_at
from shared.storage.result_blobs import ResultBlobs
from shared.wire.strict_json import loads_stored

log = logging.getLogger(__name__)

IDEMPOTENCY_ROW_KEY = "idempotency"
IDEMPOTENCY_PREFIX = "idem-"


class Conflict(Exception):
    """The entity changed since it was read (ETag mismatch) or already exists."""


@dataclass(frozen=True)
class IdempotencyClaim:
    operation_id: str
    fingerprint: str
    created_at: float
    existing: bool


def _is_precondition_failure(exc: HttpResponseError) -> bool:
    return isinstance(exc, ResourceModifiedError) or exc.status_code == 412


is_precondition_failure = _is_precondition_failure


def _stamped(op: Operation, changed: set[str] | None, retention_seconds: float) -> tuple[Operation, set[str] | None]:
    """Every write of a terminal record stamps its expiry and erases its sealed credential, whichever path
    ended it (poll, cancel, start, purge): nothing acts for the caller once it has ended."""
    if not op.terminal or (changed is not None and "status" not in changed and "completed_at" not in changed):
        return op, changed
    op = op.with_(expires_at=expires_at(op, retention_seconds), credential_sealed=None)
    return op, None if changed is None else changed | {"expires_at", "credential_sealed"}


class OperationStore:
    """Records in the table; with `results`, a result too big for a Table property goes to a blob first
    (shared/storage/result_blobs.py) and every read returns it as if inline."""

    def __init__(
        self,
        table: TableClient,
        retention_seconds: float = DEFAULT_RETENTION_DAYS * DAY,
        results: ResultBlobs | None = None,
    ) -> None:
        self._table = table
        self.retention_seconds = retention_seconds
        self._results = results

    @property
    def results(self) -> ResultBlobs | None:
        return self._results

    async def _entity(self, op: Operation, only: set[str] | None = None) -> tuple[dict[str, Any], Operation]:
        """The entity to write; a big result is uploaded first and the entity points to its blob."""
        entity = to_entity(op, only=only)
        if "ResultJson" in entity:
            text = entity["ResultJson"]
            if self._results is not None and needs_blob(text):
                name = await self._results.put(op.id, text)
                entity["ResultJson"], entity["ResultBlob"] = "", name
                op = op.with_(result_blob=name)
            else:
                entity["ResultBlob"] = ""
                op = op.with_(result_blob=None)
        return entity, op

    async def _hydrated(self, op: Operation) -> Operation:
        if op.result_blob and self._results is not None and op.result is None:
            text = await self._results.read(op.result_blob)
            return op.with_(result=loads_stored(text) if text else None)
        return op

    async def close(self) -> None:
        await self._table.close()
        if self._results is not None:
            await self._results.close()

    @property
    def table(self) -> TableClient:
        """The operations table (subscriptions live there too: shared/subscriptions/store.py)."""
        return self._table

    async def ensure_table(self) -> None:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass

    async def ping(self) -> None:
        """One cheap read to show the table answers (used by /api/health)."""
        async for _ in self._table.query_entities("PartitionKey eq 'health'", results_per_page=1):
            break

    async def write_index(self, op: Operation, now: float | None = None) -> None:
        """The owner index entry, written before the record (shared/operations/listing.py)."""
        await listing.write_index(self._table, op, now)

    async def delete_index(self, owner: str, operation_id: str) -> None:
        await listing.delete_index(self._table, owner, operation_id)

    async def create(self, op: Operation) -> Operation:
        op, _ = _stamped(op, None, self.retention_seconds)
        await self.write_index(op)
        entity, op = await self._entity(op)
        try:
            meta = await self._table.create_entity(entity)
        except ResourceExistsError:
            raise Conflict(op.id) from None
        return op.with_(etag=meta.get("etag"))

    async def get(self, operation_id: str, *, read: str = "get") -> Operation | None:
        """The record, None if absent; DamagedRecord (reported) if it cannot be read."""
        try:
            entity = await self._table.get_entity(operation_id, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return await self._hydrated(decoded(entity, entity.metadata.get("etag"), read))

    async def _listed(self, operation_id: str) -> Operation | DamagedRecord | None:
        try:
            return await self.get(operation_id, read="list")
        except DamagedRecord as exc:
            return exc

    async def update(self, op: Operation, changed: set[str]) -> Operation:
        """Merge `changed` fields, only if the entity is still the one `op` was read as (its ETag)."""
        op, stamped = _stamped(op, changed, self.retention_seconds)
        changed = stamped if stamped is not None else changed
        entity, op = await self._entity(op, changed)
        try:
            meta = await self._table.update_entity(
                entity,
                mode=UpdateMode.MERGE,
                etag=op.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            raise Conflict(op.id) from None
        except HttpResponseError as exc:
            if _is_precondition_failure(exc):
                raise Conflict(op.id) from None
            raise
        if "status" in changed and op.owner:
            await listing.index_status(self._table, op)
        return op.with_(etag=meta.get("etag"))

    async def delete(self, operation_id: str) -> None:
        """Delete the record, then its index entry (a crash in between leaves an entry that is skipped)."""
        try:
            op = await self.get(operation_id)
            owner = None if op is None else op.owner or ""
        except DamagedRecord as exc:
            owner = exc.owner or ""
        await self._table.delete_entity(operation_id, ROW_KEY)
        if owner is not None:
            await self.delete_index(owner, operation_id)

    async def list(self, status: str | None, top: int, continuation: Position | None, owner: str | None = None) -> Page:
        """Newest first; only `owner`'s operations (their index partition) unless owner is None (read-all).
        The pages and the index are shared/operations/listing.py's."""
        if owner is None:
            return await self.scan(status, top, continuation, None)
        return await self.list_indexed(owner, status, top, continuation)

    async def scan(self, status: str | None, top: int, continuation: Position | None, owner: str | None) -> Page:
        return await listing.scan(self._table, status, top, continuation, owner)

    async def list_indexed(self, owner: str, status: str | None, top: int, continuation: Position | None) -> Page:
        return await listing.list_indexed(self._table, self._listed, owner, status, top, continuation)

    # Purge (shared/operations/purge.py decides; these read and delete).
    async def expired_records(
        self, now: float, limit: int, damaged: builtins.list[DamagedRecord] | None = None
    ) -> builtins.list[Operation]:
        """Terminal records whose ExpiresAt has passed; older records without one: CompletedAt + retention."""
        cutoff = iso(now - self.retention_seconds)
        # the SDK substitutes @names between spaces only: keep them apart from the parentheses
        query = (
            "RowKey eq @rk and ((ExpiresAt ge '2' and ExpiresAt le @now ) or "
            "(CompletedAt ge '2' and CompletedAt le @cutoff ))"
        )
        return await self._records(query, {"rk": ROW_KEY, "now": iso(now), "cutoff": cutoff}, limit, damaged)

    async def stale_active_records(
        self, created_before: float, limit: int, damaged: builtins.list[DamagedRecord] | None = None
    ) -> builtins.list[Operation]:
        """Active records created before `created_before` (candidates for the stranded check)."""
        query = (
            "RowKey eq @rk and (Status eq 'notStarted' or Status eq 'running' or Status eq 'waiting' )"
            " and CreatedAt lt @before"
        )  # waiting: a lane that lost every message (shared/lanes/admission.py)
        return await self._records(query, {"rk": ROW_KEY, "before": iso(created_before)}, limit, damaged)

    async def _records(
        self, query: str, parameters: dict[str, Any], limit: int, damaged: builtins.list[DamagedRecord] | None
    ) -> builtins.list[Operation]:
        """Up to `limit` records; the damaged ones met on the way go to `damaged` (when given), not counted."""
        found: builtins.list[Operation] = []
        async for entity in self._table.query_entities(query, parameters=parameters, results_per_page=limit):
            try:
                found.append(decoded(entity, entity.metadata.get("etag"), "purge"))
            except DamagedRecord as exc:
                if damaged is not None and len(damaged) < limit:
                    damaged.append(exc)
                continue
            if len(found) >= limit:
                break
        return found

    async def partition_rows(self, operation_id: str) -> builtins.list[str]:
        """Row keys of everything kept in an operation's partition (record, fan-out marker, deliveries)."""
        rows: builtins.list[str] = []
        async for entity in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": operation_id}, select=["RowKey"]
        ):
            rows.append(str(entity["RowKey"]))
        return rows

    async def delete_row(self, partition: str, row: str, etag: str | None = None) -> bool:
        """Delete one entity (only if unchanged, given its ETag); False if it changed, absent is fine."""
        try:
            if etag:
                await self._table.delete_entity(
                    partition, row, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            else:
                await self._table.delete_entity(partition, row)
        except ResourceNotFoundError:
            return True
        except HttpResponseError as exc:
            if _is_precondition_failure(exc):
                return False
            raise
        return True

    async def old_idempotency_claims(self, claimed_before: float, limit: int) -> AsyncIterator[tuple[str, str]]:
        """(partition, operation id) of keys claimed before `claimed_before`: a range over the idem- partitions."""
        query = "PartitionKey ge @lo and PartitionKey lt @hi and RowKey eq @rk and ClaimedAt lt @before"
        parameters: dict[str, Any] = {
            "lo": IDEMPOTENCY_PREFIX,
            "hi": "idem.",
            "rk": IDEMPOTENCY_ROW_KEY,
            "before": float(claimed_before),
        }
        count = 0
        async for entity in self._table.query_entities(
            query, parameters=parameters, results_per_page=limit, select=["PartitionKey", "OperationId"]
        ):
            yield str(entity["PartitionKey"]), str(entity.get("OperationId") or "")
            count += 1
            if count >= limit:
                break

    # Idempotency keys: one entity per key (partition "idem-<sha256>"), created before Graph is called.
    async def claim_idempotency(self, key_hash: str, operation_id: str, fingerprint: str) -> IdempotencyClaim:
        claimed_at = time.time()
        entity: dict[str, str | float] = {
            "PartitionKey": f"{IDEMPOTENCY_PREFIX}{key_hash}",
            "RowKey": IDEMPOTENCY_ROW_KEY,
            "OperationId": operation_id,
            "Fingerprint": fingerprint,
            "ClaimedAt": claimed_at,
        }
        try:
            await self._table.create_entity(entity)
            return IdempotencyClaim(operation_id, fingerprint, claimed_at, existing=False)
        except ResourceExistsError:
            stored = await self._table.get_entity(f"idem-{key_hash}", IDEMPOTENCY_ROW_KEY)
            return IdempotencyClaim(
                str(stored["OperationId"]), str(stored["Fingerprint"]), float(str(stored["ClaimedAt"])), existing=True
            )

    async def idempotency_operation(self, key_hash: str) -> str | None:
        """The operation an Idempotency-Key was used for, if any."""
        try:
            stored = await self._table.get_entity(f"idem-{key_hash}", IDEMPOTENCY_ROW_KEY)
        except ResourceNotFoundError:
            return None
        return str(stored["OperationId"])

    async def release_idempotency(self, key_hash: str) -> None:
        try:
            await self._table.delete_entity(f"idem-{key_hash}", IDEMPOTENCY_ROW_KEY)
        except ResourceNotFoundError:
            pass
