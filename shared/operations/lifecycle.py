"""How an operation record moves to its end: the terminal state, the fields that write it, and (with
shared/schedule/plans.py) the poll schedule a record carries. Pure: no clock reads, no I/O. The finish use case
(shared/operations/finish.py) makes every terminal state with it; the HTTP side's reads and the poll chain read the
schedule, so neither imports the other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from shared.operations.record import (
    FANOUT_PENDING,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Operation,
    iso,
    parse_iso,
    with_event,
)
from shared.operations.result_size import bounded
from shared.schedule.history import history_keys
from shared.schedule.plans import Plan, Schedule
from shared.schedule.timing import Timing

TRACKED_KIND = "tracked"  # the history kind of a tracked operation whose action is unknown


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


@dataclass(frozen=True)
class RecordSchedule:
    """A record's schedule, in seconds since the record's creation (what the poller and the status endpoint
    count). The plan's offsets count from when the Excel request was sent: `shift` seconds after creation when
    the operation waited in its workbook's lane (shared/lanes/admission.py), else 0. Its deadline stays the record's."""

    schedule: Schedule
    shift: float = 0.0

    @property
    def plan(self) -> Plan:
        return self.schedule.plan

    def next_offset(self, elapsed: float) -> float:
        """Seconds since creation of the first planned poll after `elapsed` since creation."""
        return self.schedule.next_offset(max(0.0, elapsed - self.shift)) + self.shift

    def next_poll(self, elapsed: float) -> float:
        """Seconds from now (`elapsed` since creation) to the next planned poll (polling.decide's `next_poll`)."""
        return self.schedule.next_poll(max(0.0, elapsed - self.shift))

    def observed_duration(self, elapsed: float) -> float:
        """The duration to learn from an operation first seen finished `elapsed` after creation: Excel's time only,
        not the time it waited for its workbook."""
        return self.schedule.observed_duration(max(0.0, elapsed - self.shift))


def schedule_for(op: Operation, timing: Timing) -> RecordSchedule:
    """The poll schedule of this record: its plan (fixed at creation) over the deployment's timing, counted from
    when its Excel request was sent. The one source of "when is the next poll": the poller's `decide` and the
    status endpoint's Retry-After use it."""
    shift = max(0.0, parse_iso(op.started_at) - parse_iso(op.created_at)) if op.started_at else 0.0
    remaining = replace(timing, timeout=max(1.0, timing.timeout - shift))
    return RecordSchedule(Schedule(Plan.decode(op.poll_plan), remaining), shift)


def detection_lag(op: Operation, timing: Timing, now: float) -> float:
    """How late the poll at `now` that first saw the operation's end probably is: Graph gives no end time, so
    the end lies between the previous planned poll and this one (observed_duration takes the middle) and the lag
    is the rest of the bracket. The `bridge.operation.detection_lag` metric; docs/performance.md's definition."""
    planned = schedule_for(op, timing)
    elapsed = max(0.0, now - parse_iso(op.created_at))
    return max(0.0, elapsed - planned.shift - planned.observed_duration(elapsed))


def history_keys_for(owner: str, action: str | None, workbook: str | None) -> list[tuple[str, str]]:
    """The duration-history keys of an operation, most specific first (owner + action + workbook, then owner +
    action); a tracked operation without an action is its own kind, `tracked`."""
    return history_keys(owner, action or TRACKED_KIND, workbook)
