"""The learned poll schedule, as the start path and the poll chain use it: the plan a new operation gets from how
long its kind took before, and what a finished one adds. Storage failures here never fail a start or a poll
step: the plan falls back to the hint or cold, a lost finish is one run fewer in a sample of 64 (logged)."""

from __future__ import annotations

import logging

from shared.operations.record import SUCCEEDED, Operation, parse_iso
from shared.schedule.clock import observed_duration
from shared.schedule.clock import plan_for as clock_plan_for
from shared.schedule.history import history_keys
from shared.schedule.history_store import HistoryStore
from shared.schedule.plans import COLD, Plan
from shared.schedule.timing import Timing

log = logging.getLogger(__name__)


async def plan_for(
    history: HistoryStore | None,
    timing: Timing,
    owner: str,
    action: str | None,
    workbook: str | None,
    hint: float | None = None,
) -> Plan:
    """A new operation's plan: point reads of its own kind's sample and the owner + action pool, in parallel,
    then the clock's plan_for. A read that fails plans from the hint alone (cold without one)."""
    own = pool = None
    if history is not None:
        try:
            found = await history.read(history_keys(owner, action, workbook))
            own, pool = found[0], (found[1] if len(found) == 2 else None)  # no workbook: owner + action is its own
        except Exception as exc:
            log.warning(
                "could not read the duration history (%s); this operation is planned without it", type(exc).__name__
            )
    try:
        return clock_plan_for(own, pool, timing, hint=hint)
    except (ValueError, ArithmeticError):  # a damaged sample must not fail a start
        log.warning("could not plan from the duration history; cold schedule", exc_info=True)
        return COLD


async def learn(history: HistoryStore | None, timing: Timing, op: Operation, owner: str) -> None:
    """After the terminal write of a succeeded operation: write its observed duration into its slot of both keys.
    Never raises (it runs after the side effects a retry must not repeat)."""
    if history is None or op.status != SUCCEEDED or not op.completed_at:
        return
    try:
        await history.record(
            history_keys(owner, op.action, op.workbook),
            observed_duration(op, timing),
            op.id,
            parse_iso(op.completed_at),
        )
    except Exception as exc:
        log.warning("could not add operation %s to the duration history (%s)", op.id, type(exc).__name__)
