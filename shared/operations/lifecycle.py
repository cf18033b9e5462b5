"""How an operation record moves to its end: the terminal state and the fields that write it. Pure: no clock
reads, no I/O. The finish use case (shared/operations/finish.py) makes every terminal state with it. (The poll
schedule a record carries is the clock's: shared/schedule/clock.py.)"""

from __future__ import annotations

import uuid
from typing import Any

from shared.operations.record import (
    FANOUT_PENDING,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Operation,
    iso,
    with_event,
)
from shared.operations.result_size import bounded


def terminal_state(
    op: Operation,
    status: str,
    now: float,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    poll_count: int | None = None,
) -> Operation:
    """The operation in a terminal state, with a webhook due if it has a callback (a result over
    MAX_RESULT_BYTES is not kept: shared/storage/result_blobs.py)."""
    result, error = bounded(result, error)
    polls = op.poll_count if poll_count is None else poll_count
    code = error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None
    op = with_event(op, iso(now), "status", status=status, polls=polls, code=code)
    return op.with_(
        status=status,
        completed_at=iso(now),
        updated_at=iso(now),
        result=result,
        error=error,
        poll_count=polls,
        event_id=str(uuid.uuid4()),
        webhook_state=WEBHOOK_PENDING if op.callback_sealed else WEBHOOK_NONE,
        credential_sealed=None,  # nothing acts for the caller any more: erase their sealed token
        fanout_state=FANOUT_PENDING,  # the owner's subscriptions: queue_fanout before this is written
    )


TERMINAL_FIELDS = {
    "status",
    "completed_at",
    "updated_at",
    "result",
    "error",
    "poll_count",
    "event_id",
    "webhook_state",
    "generation",
    "credential_sealed",
    "fanout_state",
    "history",
}
OUTCOME_FIELDS = TERMINAL_FIELDS | {"operation_url", "start_phase"}  # Graph's answer to a start
