"""Operation records (and idempotency keys) in Azure Table Storage, with ETag-guarded updates."""

from __future__ import annotations

import base64
import binascii
import json
import time
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

from .problems import FieldError, Problem
from .records import ROW_KEY, Operation, from_entity, to_entity
from .results import ResultBlobs, needs_blob

IDEMPOTENCY_ROW_KEY = "idempotency"


class Conflict(Exception):
    """The entity changed since it was read (ETag mismatch) or already exists."""


@dataclass(frozen=True)
class IdempotencyClaim:
    operation_id: str
    fingerprint: str
    created_at: float
    existing: bool


@dataclass(frozen=True)
class Page:
    operations: list[Operation]
    continuation: str | None


def _is_precondition_failure(exc: HttpResponseError) -> bool:
    return isinstance(exc, ResourceModifiedError) or exc.status_code == 412


is_precondition_failure = _is_precondition_failure


def encode_continuation(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continuation(value: str) -> dict[str, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        token = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        token = None
    if not isinstance(token, dict) or not all(isinstance(v, str | None) for v in token.values()):
        raise Problem(
            400, "invalidRequest", "The continuation token is not valid",
            errors=[FieldError("continuationToken", "use the value from a previous page's nextLink")],
        )
    return token


class OperationStore:
    """Records in the table; with `results`, a result too big for a Table property goes to a blob first
    (shared/results.py) and every read returns it as if inline."""

    def __init__(self, table: TableClient, results: ResultBlobs | None = None) -> None:
        self._table = table
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
            return op.with_(result=json.loads(text) if text else None)
        return op

    async def close(self) -> None:
        await self._table.close()
        if self._results is not None:
            await self._results.close()

    @property
    def table(self) -> TableClient:
        """The operations table (subscriptions live there too: shared/subscription_store.py)."""
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

    async def create(self, op: Operation) -> Operation:
        entity, op = await self._entity(op)
        try:
            meta = await self._table.create_entity(entity)
        except ResourceExistsError:
            raise Conflict(op.id) from None
        return op.with_(etag=meta.get("etag"))

    async def get(self, operation_id: str) -> Operation | None:
        try:
            entity = await self._table.get_entity(operation_id, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return await self._hydrated(from_entity(dict(entity), entity.metadata.get("etag")))

    async def update(self, op: Operation, changed: set[str]) -> Operation:
        """Merge `changed` fields, only if the entity is still the one `op` was read as (its ETag)."""
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
        return op.with_(etag=meta.get("etag"))

    async def delete(self, operation_id: str) -> None:
        await self._table.delete_entity(operation_id, ROW_KEY)

    async def list(self, status: str | None, top: int, continuation: str | None, owner: str | None = None) -> Page:
        """Newest first; only `owner`'s operations unless owner is None (a caller who may read all)."""
        query = "RowKey eq @rk"
        parameters: dict[str, Any] = {"rk": ROW_KEY}
        if owner is not None:
            query += " and Owner eq @owner"
            parameters["owner"] = owner
        if status:
            query += " and Status eq @status"
            parameters["status"] = status
        pages = self._table.query_entities(query, parameters=parameters, results_per_page=top).by_page(
            continuation_token=decode_continuation(continuation) if continuation else None  # type: ignore[arg-type]
        )
        operations: list[Operation] = []
        async for page in pages:
            async for entity in page:
                operations.append(from_entity(dict(entity), entity.metadata.get("etag")))
            break
        return Page(operations, encode_continuation(getattr(pages, "continuation_token", None)))

    # Idempotency keys: one entity per key (partition "idem-<sha256>"), created before Graph is called.
    async def claim_idempotency(self, key_hash: str, operation_id: str, fingerprint: str) -> IdempotencyClaim:
        claimed_at = time.time()
        entity: dict[str, str | float] = {
            "PartitionKey": f"idem-{key_hash}",
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
