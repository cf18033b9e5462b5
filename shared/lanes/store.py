"""Lane entities in the operations table: one per workbook, read and written with ETags.

`PartitionKey` = `lane-<sha256(lane key)[:32]>`, `RowKey` = `lane`. Properties: `Holders` (JSON
`[[operation id, ticket, lease until], ...]`), `Waiting` (JSON `[[operation id, ticket], ...]` in ticket order),
`NextTicket`, `ThrottleUntil`, `RecheckAt`. An idle lane is deleted (ETag-guarded), so the table keeps lanes only
for workbooks in use. Every change is a read, a pure decision (shared/lanes/line.py) and a
write guarded by the ETag read (insert-only for a new lane); 412/409 means someone else changed it: read again
and decide again.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.lanes.line import Holder, LaneState, Waiter, idle
from shared.operations.store import is_precondition_failure
from shared.wire.strict_json import dumps, loads_stored

LANE_PREFIX = "lane-"
LANE_ROW_KEY = "lane"
MAX_TRIES = 100  # ETag races: 50 requests arriving at once on one workbook all admit through one entity

T = TypeVar("T")


class LaneContention(Exception):
    """The lane entity kept changing under us (MAX_TRIES ETag conflicts in a row)."""


def lane_key(workbook: str, owner: str | None) -> str:
    """The lane (partition) of a workbook. A caller-relative path (`/me/...`) names a different file for each
    caller, so it is qualified by the owner; other paths (`/drives/{id}/...`, `/sites/...`) are global.
    Hashed: a workbook path may hold characters Table Storage keys may not."""
    path = workbook.strip()
    if path.lower().startswith("/me/") or path.lower() == "/me":
        path = f"{owner or ''}\n{path}"
    return LANE_PREFIX + hashlib.sha256(path.encode()).hexdigest()[:32]


def to_entity(key: str, state: LaneState) -> dict[str, Any]:
    return {
        "PartitionKey": key,
        "RowKey": LANE_ROW_KEY,
        "Holders": dumps([[h.operation_id, h.ticket, h.lease_until] for h in state.holders], separators=(",", ":")),
        "Waiting": dumps([[w.operation_id, w.ticket] for w in state.waiting], separators=(",", ":")),
        "NextTicket": state.next_ticket,
        "ThrottleUntil": float(state.throttle_until),
        "RecheckAt": float(state.recheck_at) if state.recheck_at is not None else -1.0,
    }


def from_entity(entity: dict[str, Any]) -> LaneState:
    holders = loads_stored(entity.get("Holders") or "[]")
    waiting = loads_stored(entity.get("Waiting") or "[]")
    recheck = float(entity.get("RecheckAt", -1.0))
    return LaneState(
        holders=tuple(Holder(str(h[0]), int(h[1]), float(h[2])) for h in holders),
        waiting=tuple(Waiter(str(w[0]), int(w[1])) for w in waiting),
        next_ticket=int(entity.get("NextTicket") or 1),
        throttle_until=float(entity.get("ThrottleUntil") or 0.0),
        recheck_at=recheck if recheck >= 0 else None,
    )


class LaneStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def read(self, key: str) -> tuple[LaneState, str | None]:
        """The lane and its ETag (None: no entity yet)."""
        try:
            entity = await self._table.get_entity(key, LANE_ROW_KEY)
        except ResourceNotFoundError:
            return LaneState(), None
        return from_entity(dict(entity)), entity.metadata.get("etag")

    async def write(self, key: str, state: LaneState, etag: str | None) -> bool:
        """Write if unchanged since read (`etag`; None: only if it still does not exist). False on a race.
        An idle lane (nobody holds or waits, no throttle pending) is deleted instead, with the same ETag."""
        entity = to_entity(key, state)
        try:
            if idle(state, time.time()):
                if etag is not None:
                    await self._table.delete_entity(
                        key, LANE_ROW_KEY, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            elif etag is None:
                await self._table.create_entity(entity)
            else:
                await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            if is_precondition_failure(exc) or exc.status_code in (404, 409):
                return False
            raise
        return True

    async def change(
        self,
        key: str,
        decide: Callable[[LaneState], tuple[LaneState, T]],
        prepare: Callable[[LaneState, T], Awaitable[None]] | None = None,
    ) -> tuple[LaneState, T]:
        """Read, decide, write with the ETag; on a race read and decide again. `decide` must be pure (it may run
        several times). Nothing is written when the decision leaves the state as it was. `prepare` runs after
        the decision and before its write (queue the message the new state promises: a crash after it only
        leaves a message that finds nothing to do)."""
        for attempt in range(MAX_TRIES):
            state, etag = await self.read(key)
            new, out = decide(state)
            if new == state:
                return state, out
            if prepare is not None:
                await prepare(new, out)
            if await self.write(key, new, etag):
                return new, out
            # Jitter only (not security): spreads the retries of requests that raced for the entity.
            await asyncio.sleep(random.uniform(0.0, min(0.05 * (attempt + 1), 0.5)))  # nosec B311
        raise LaneContention(key)
