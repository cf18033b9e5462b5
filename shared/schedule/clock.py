"""The clock: every time the bridge decides. Start here to change when anything happens. Pure: no clock reads
(the callers pass `now`), no I/O.

- the first poll after a start (`first_poll_delay`), and the next poll after a running answer (`poll_delay`:
  the record's schedule, Graph's Retry-After when it asks for longer, cut at the deadline);
- the Retry-After shown to callers while an operation runs (`retry_after_for`: the time to that same poll);
- the backoff after transient failures (`transient_backoff`, `backoff_delay`);
- the deadline (`timed_out`, `until_deadline`) and when a chain counts as lost (`stalled`);
- queue visibility in whole seconds (`whole_seconds`);
- a record's schedule (`schedule_for`) and what its end tells the history (`observed_duration`, `detection_lag`);
- a new operation's plan from the history (`plan_for`).

Behind it: shared/schedule/plans.py (a plan's poll offsets), shared/schedule/learned.py (which plan a new
operation gets), shared/schedule/history.py (the duration sample), shared/schedule/timing.py (the settings).
shared/graph/lro.py decides what Graph's answers mean and asks this module how long to wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from shared.operations.record import Operation, parse_iso
from shared.schedule.history import DurationHistory
from shared.schedule.learned import LearnedPolicy
from shared.schedule.learned import plan_for as _learned_plan_for
from shared.schedule.plans import Plan, Schedule
from shared.schedule.timing import Timing
from shared.storage.messages import MAX_VISIBILITY_SECONDS

NextPoll = Callable[[float], float]  # seconds since creation -> seconds to the next planned poll


def whole_seconds(delay: float) -> int:
    """Queue visibility is whole seconds: round up so a Retry-After of 2.128 s waits 3 s, never 2."""
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(delay - 1e-9)))


# --- the deadline -------------------------------------------------------------------------------------


def timed_out(elapsed: float, timing: Timing) -> bool:
    """Past OPERATION_TIMEOUT_SECONDS (`elapsed` since creation): the operation ends `timedOut`."""
    return elapsed >= timing.timeout


STALL_GRACE_SECONDS = 300.0


def stalled(op: Operation, timing: Timing, now: float) -> bool:
    """An active record that has outlived its deadline by a grace period (at least two poll caps), and was not
    re-armed within that grace either, has lost its poll chain: a read of it starts a new one."""
    grace = max(STALL_GRACE_SECONDS, 2 * timing.maximum)
    return now - parse_iso(op.created_at) >= timing.timeout + grace and now - parse_iso(op.updated_at) >= grace


def until_deadline(delay: float, elapsed: float, timing: Timing) -> int:
    """`delay` in whole seconds (at least 1), cut so that the next poll is no later than the deadline (rounded
    up to the second), so `timedOut` is on time."""
    remaining = timing.timeout - elapsed
    seconds = whole_seconds(delay)
    if remaining > 0 and seconds > remaining:
        seconds = max(1, whole_seconds(remaining))
    return max(1, seconds)


# --- the poll schedule of a record --------------------------------------------------------------------


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
        """Seconds from now (`elapsed` since creation) to the next planned poll (lro.decide's `next_poll`)."""
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


def _elapsed(op: Operation, now: float) -> float:
    return max(0.0, now - parse_iso(op.created_at))


def first_poll_delay(op: Operation, timing: Timing, now: float) -> int:
    """Whole seconds from `now` to the record's first planned poll (cold: 2 s after creation)."""
    return whole_seconds(schedule_for(op, timing).next_poll(_elapsed(op, now)))


def poll_delay(planned: float, retry_after: float | None, elapsed: float, timing: Timing) -> int:
    """The wait before the next poll after an answer that says "still running": the planned one (`planned`
    seconds from now), or Graph's Retry-After when it asks for longer, in whole seconds, cut at the deadline."""
    return until_deadline(max(planned, retry_after or 0.0), elapsed, timing)


def status_retry_after(elapsed: float, next_poll: NextPoll) -> int:
    """The Retry-After the status endpoint gives while the operation runs: whole seconds to our next poll."""
    return max(1, whole_seconds(next_poll(elapsed)))


def retry_after_for(op: Operation, timing: Timing, now: float) -> int:
    """The Retry-After of an active record's `GET`: the time to the poll its schedule plans next (the poller
    follows the same schedule, so nothing is written per poll to keep them agreeing)."""
    return status_retry_after(_elapsed(op, now), schedule_for(op, timing).next_poll)


# --- transient failures -------------------------------------------------------------------------------


def transient_backoff(failures: int, timing: Timing, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the failures-th consecutive transient answer (1-based)."""
    base = max(timing.initial, 1.0) * float(2 ** max(failures - 1, 0))
    ceiling = min(base, timing.maximum)
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return max(1.0, ceiling * jitter)


def backoff_delay(failures: int, retry_after: float | None, timing: Timing, rng: random.Random | None = None) -> float:
    """The wait after the failures-th transient answer in a row: the backoff, or Graph's Retry-After when longer."""
    return max(transient_backoff(failures, timing, rng), retry_after or 0.0)


# --- what an end tells the history --------------------------------------------------------------------


def observed_duration(op: Operation, timing: Timing) -> float:
    """What a finished record adds to its kind's history: Graph gives no end time, so the end lies between the
    previous planned poll and the one that saw it (the middle of that bracket), Excel's time only."""
    elapsed = parse_iso(op.completed_at) - parse_iso(op.created_at) if op.completed_at else 0.0
    return schedule_for(op, timing).observed_duration(max(0.0, elapsed))


def detection_lag(op: Operation, timing: Timing, now: float) -> float:
    """How late the poll at `now` that first saw the operation's end probably is: the rest of the bracket whose
    middle observed_duration takes. The `bridge.operation.detection_lag` metric; docs/performance.md's definition."""
    planned = schedule_for(op, timing)
    elapsed = _elapsed(op, now)
    return max(0.0, elapsed - planned.shift - planned.observed_duration(elapsed))


def plan_for(
    own: DurationHistory | None,
    pool: DurationHistory | None,
    timing: Timing,
    hint: float | None = None,
    policy: LearnedPolicy | None = None,
) -> Plan:
    """A new operation's plan from its own kind's history, the owner + action pool and the caller's hint
    (shared/schedule/learned.py has the rules)."""
    return _learned_plan_for(own, pool, timing, hint, policy)
