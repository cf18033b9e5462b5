"""The learned poll schedule, as the start path and the poll chain use it: the plan a new operation gets from
how long its kind took before, and what a finished one adds. Storage failures here never fail a start or a
poll step: the plan falls back to cold, a lost point is one run fewer in a sample of 64 (logged)."""

from __future__ import annotations

import logging

from shared.operations.lifecycle import history_keys_for, schedule_for
from shared.operations.record import SUCCEEDED, Operation, parse_iso
from shared.schedule.history import pick_history
from shared.schedule.history_store import HistoryStore
from shared.schedule.plans import COLD, Plan, learned_plan
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
    """A new operation's plan: point reads of its kind's summaries (most specific first), then learned_plan.
    A read that fails plans from the hint alone (cold without one)."""
    summary = None
    if history is not None:
        try:
            specific, *general = await history.read(history_keys_for(owner, action, workbook))
            summary = pick_history(specific, general[0] if general else None)
        except Exception as exc:
            log.warning(
                "could not read the duration history (%s); this operation gets the cold schedule", type(exc).__name__
            )
    try:
        return learned_plan(summary, timing, hint=hint)
    except (ValueError, ArithmeticError):  # a damaged summary must not fail a start
        log.warning("could not plan from the duration history; cold schedule", exc_info=True)
        return COLD


async def learn(history: HistoryStore | None, timing: Timing, op: Operation, owner: str) -> None:
    """After the terminal write of a succeeded operation: merge its observed duration into both keys. Never
    raises (it runs after the side effects a retry must not repeat)."""
    if history is None or op.status != SUCCEEDED or not op.completed_at:
        return
    elapsed = parse_iso(op.completed_at) - parse_iso(op.created_at)
    seconds = schedule_for(op, timing).observed_duration(elapsed)
    for key in history_keys_for(owner, op.action, op.workbook):
        try:
            await history.merge(key, seconds, op.id)
        except Exception as exc:
            log.warning("could not add operation %s to the duration history (%s)", op.id, type(exc).__name__)
