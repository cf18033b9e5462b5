"""Ending an operation: the one use case every ending goes through (the poll step and its last delivery, the start,
the lane, cancel, the purge), and the settling that a redelivered poll message does for a record already terminal.

An ending, in this order:
1. the terminal record: shared/operations/lifecycle.py's `terminal_state`, plus the path's own fields (a new
   generation for cancel and the purge, the start's `answered` phase, cancel's silenced webhook);
2. the owner's fan-out queued *before* the write, so a crash after the write cannot lose the subscriptions' event;
3. the terminal write, ETag-guarded, under the path's own conflict rule (a `Write`): it answers the stored record,
   or None when the record is not this path's to end any more, and then nothing else happens;
4. the `bridge.operations.finished` metric, once per terminal write;
5. the webhook's first attempt queued, when the record has a callback still pending;
6. the duration learned, when a poll saw Graph's end of a succeeded operation (the observed duration);
7. the lane slot released (never raises: the advance step or the lease frees it otherwise).
Steps 2, 5 and 7 are idempotent; `settle` runs them again for a record found terminal, as a redelivered poll
message does when the step that ended its operation died before them (docs/design.md, "Ending an operation").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.delivery.fanout import queue_fanout, subscriptions
from shared.delivery.operation_webhooks import queue_next_attempt
from shared.lanes import slots as lane_slots
from shared.observability import telemetry
from shared.operations.lifecycle import TERMINAL_FIELDS, terminal_state
from shared.operations.record import FANOUT_PENDING, WEBHOOK_PENDING, Operation
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.learning import learn

log = logging.getLogger(__name__)

Write = Callable[[Operation], Awaitable[Operation | None]]
"""A path's terminal write and its conflict rule: the stored record, or None when it is not the path's to end."""


@dataclass(frozen=True)
class Ending:
    """How an operation ends: its terminal status and what it carries. `lag` and `learn` belong to a poll that saw
    Graph's end (the detection-lag metric; the duration history learns from a succeeded one)."""

    status: str
    error: dict[str, Any] | None = None
    result: Any = None
    poll_count: int | None = None  # the poll chain's count; None keeps the record's
    lag: float | None = None
    learn: bool = False


def guarded(rt: Runtime, fields: set[str] = TERMINAL_FIELDS) -> Write:
    """One ETag-guarded write; a conflict means the record moved meanwhile and is not this path's to end (the
    purge skips it, cancel reads and decides again, a waiter ended by its lane is left to what moved it)."""

    async def write(done: Operation) -> Operation | None:
        try:
            return await rt.store.update(done, fields)
        except Conflict:
            return None

    return write


async def finish(
    rt: Runtime,
    op: Operation,
    ending: Ending,
    now: float,
    write: Write,
    *,
    fanout_required: bool = True,
    **changes: Any,
) -> Operation | None:
    """End `op` (steps 1-7 above) and answer the stored terminal record, or None when `write` found it was not
    this path's to end. `changes` are the path's own fields on top of the terminal state. `fanout_required`
    False: a failure to queue the fan-out is logged, not raised (the start, whose answer must be stored first)."""
    with telemetry.span("finish operation", {"bridge.operation.id": op.id, "bridge.operation.status": ending.status}):
        done = terminal_state(
            op, ending.status, now, result=ending.result, error=ending.error, poll_count=ending.poll_count
        )
        done = done.with_(**changes) if changes else done
        try:
            await queue_fanout(rt, done)  # before the write: a crash after it cannot lose the subscriptions' event
        except Exception:
            if fanout_required:
                raise
            log.exception("could not queue the fan-out of operation %s (a retry or GET queues it)", op.id)
        stored = await write(done)
        if stored is None:
            return None
        log.info("operation %s ended %s after %s polls", stored.id, stored.status, stored.poll_count)
        telemetry.operation_finished(stored.action, stored.status, stored.poll_count, ending.lag)
        if stored.webhook_state == WEBHOOK_PENDING:
            await queue_next_attempt(rt, stored)  # the deliverer sends attempt 1 once, however often it is queued
        if ending.learn:  # never raises; a second merge of the same operation is a no-op
            await learn(rt.history, rt.timing, stored, stored.owner or rt.settings.default_owner)
        await lane_slots.on_terminal(rt, stored)  # after the terminal write: the next one in its workbook's lane
        return stored


async def settle(rt: Runtime, op: Operation) -> None:
    """What follows a terminal write, again, for a record found terminal (idempotent): its webhook's first attempt
    if none was made, its fan-out if not done, its lane slot. The step that ended it may have died before them."""
    if not op.terminal:
        return
    if op.webhook_state == WEBHOOK_PENDING and op.webhook_attempts == 0:
        await queue_next_attempt(rt, op)
    if op.fanout_state == FANOUT_PENDING and not await subscriptions(rt).fanned_out(op.id, op.event_id or ""):
        await queue_fanout(rt, op)  # duplicates are harmless (shared/delivery/fanout.py); a lost one is not
    await lane_slots.on_terminal(rt, op)
