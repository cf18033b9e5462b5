"""Reading an operation entity that may be damaged: the record, or a DamagedRecord that is reported once where it
was met (a log line naming the operation and the property, the `bridge.records.damaged` metric) and carries what
the rest of the app needs to isolate it: its owner and lane (if those properties still read), its ETag, and the
few raw properties the purge decides on (shared/operations/retention.py `damaged_fate`).

One damaged record must never break more than itself: its own GET answers a problem naming it, a list leaves it
out and flags it, its poll message is dropped, its lane slot freed, and the purge retires or deletes it and goes
on (docs/design.md, "Damaged records").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.observability import telemetry
from shared.operations.record import FAILED, ROW_KEY, DamagedRecord, Operation, from_entity, iso
from shared.wire.strict_json import dumps

log = logging.getLogger(__name__)

# What the purge may read of a damaged record: never its sealed credential, callback URL or result.
FATE_PROPERTIES = ("Status", "Owner", "Lane", "CreatedAt", "UpdatedAt", "CompletedAt", "ExpiresAt")


def _text(entity: Mapping[str, Any], name: str) -> str | None:
    value = entity.get(name)
    return value if isinstance(value, str) and value else None


def decoded(entity: Mapping[str, Any], etag: str | None, read: str) -> Operation:
    """`entity` as a record; a DamagedRecord (reported here, with `read` saying which read met it) otherwise."""
    try:
        return from_entity(dict(entity), etag)
    except DamagedRecord as exc:
        exc.owner, exc.lane, exc.etag = _text(entity, "Owner"), _text(entity, "Lane"), etag
        exc.raw = {name: entity[name] for name in FATE_PROPERTIES if name in entity}
        log.error(
            "operation %s: its stored record is damaged and cannot be read (property %s %s; met by %s)",
            exc.operation_id,
            exc.prop,
            exc.reason,
            read,
        )
        telemetry.damaged_record(read, exc.prop)
        raise


async def retire(
    table: TableClient, damaged: DamagedRecord, now: float, retention_seconds: float, error: dict[str, Any]
) -> bool:
    """End a damaged active record `failed` with `error` (the purge, once it is stranded): a merge of the terminal
    properties only, if the entity is unchanged since it was read; its sealed credential erased, stamped to expire
    like any terminal record. False if it changed or went meanwhile."""
    entity = {
        "PartitionKey": damaged.operation_id,
        "RowKey": ROW_KEY,
        "Status": FAILED,
        "ErrorJson": dumps(error, separators=(",", ":")),
        "CompletedAt": iso(now),
        "UpdatedAt": iso(now),
        "ExpiresAt": iso(now + retention_seconds),
        "CredentialSealed": "",
        "StartPhase": "",
    }
    try:
        await table.update_entity(
            entity, mode=UpdateMode.MERGE, etag=damaged.etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceNotFoundError, ResourceModifiedError):
        return False
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return False
        raise
    return True
