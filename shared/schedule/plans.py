"""When to poll: pure schedules. A schedule is fixed when the operation is created (a `Plan`, a few numbers
the record keeps) and maps the time since creation to the next poll offset, so the poller and the status
endpoint agree without any write per poll. No clock reads, no I/O.

Offsets are whole seconds from creation (queue visibility is whole seconds). From one poll offset `t` the
next is `t + gap(t)` with

    gap(t) = clamp(floor(r * max(t, FLOOR_ELAPSED)), MIN_GAP, timing.maximum)

where r is the cold policy's relative gap, or the learned one inside the plan's window [start, end). An
operation finishing anywhere in (t, t + gap] is seen at t + gap, so its detection lag is at most
r * max(duration, 10 s): the relative lag is bounded by r by construction (the 1 s floor aside).

- Cold (no history): first poll at `floor(r * 10 s)`, then the gaps above. Graph's guidance is kept: never
  more than `timing.maximum` (240 s) between polls, counting from creation.
- Learned (a duration summary, or a caller's `expectedDurationSeconds` hint): no polls where completion is
  unlikely, then dense polls (small r) from a low predicted quantile to a high one, then the cold gaps.
  If the window starts later than `timing.maximum`, filler polls every `timing.maximum` seconds lead to it.
- Deadline: no offset past `timing.timeout`; the last poll is at the deadline.
- Earliest: no poll before `timing.initial` (POLL_INITIAL_DELAY_SECONDS, default 1 s, below the cold plan's first
  poll at 2 s, so by default it changes nothing); planned polls before it are merged into one at it.
- Graph's Retry-After always wins when it asks for longer (`shared.graph.lro.decide` takes the max).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from statistics import NormalDist

from shared.schedule.history import DurationHistory, sample_quantile
from shared.schedule.timing import Timing

FLOOR_ELAPSED = 10.0  # relative lag is measured against max(duration, 10 s): shorter ones get 10 s worth
MIN_GAP = 1  # whole seconds
MIN_RELATIVE_GAP = 0.01  # a stored plan asking for denser polls than this is not ours: cold


@dataclass(frozen=True)
class ColdPolicy:
    relative_gap: float = 0.2


@dataclass(frozen=True)
class LearnedPolicy:
    relative_gap: float = 0.12  # gaps inside the predicted window
    low_quantile: float = 0.13  # the window opens here ...
    high_quantile: float = 0.999  # ... and closes here (then the cold gaps)
    prior_spread: float = 0.5  # log-sd assumed for a kind before its runs say otherwise
    prior_weight: float = 2.0  # how many runs' worth that assumption weighs
    min_samples: int = 1  # fewer runs than this: cold (unless hinted)
    widening: float = 1.0  # multiplies z * s / sqrt(n), the allowance for the quantiles' sampling error


@dataclass(frozen=True)
class Plan:
    """What the operation record stores at creation (3 numbers). start == end: the cold schedule."""

    start: int = 0  # offset of the first poll of the learned window
    end: int = 0  # the learned gaps apply to offsets in [start, end)
    relative_gap: float = 0.0  # r inside the window

    @property
    def cold(self) -> bool:
        return self.end <= self.start

    def encode(self) -> str:
        return "" if self.cold else f"{self.start},{self.end},{self.relative_gap:g}"

    @staticmethod
    def decode(text: str | None) -> Plan:
        """A record's plan; anything unreadable is the cold plan (always safe)."""
        try:
            start, end, gap = (text or "").split(",")
            plan = Plan(int(start), int(end), float(gap))
        except ValueError:
            return COLD
        if plan.start < 1 or plan.end > 10 * 365 * 86400 or not MIN_RELATIVE_GAP <= plan.relative_gap <= 1.0:
            return COLD
        return plan


COLD = Plan()


def _gap(offset: int, relative_gap: float, timing: Timing) -> int:
    wanted = math.floor(relative_gap * max(offset, FLOOR_ELAPSED) + 1e-9)
    return int(max(MIN_GAP, min(wanted, math.floor(timing.maximum))))


@dataclass
class Schedule:
    """The poll offsets of one operation. Cheap to build; offsets are produced lazily and cached."""

    plan: Plan
    timing: Timing
    cold: ColdPolicy = field(default_factory=ColdPolicy)
    _offsets: list[int] = field(default_factory=list, init=False, repr=False)
    _source: Iterator[int] | None = field(default=None, init=False, repr=False)

    def offsets(self) -> Iterator[int]:
        """Poll offsets from creation, strictly increasing, gaps in [1, maximum], the last at the deadline; none
        before `timing.initial` (POLL_INITIAL_DELAY_SECONDS): planned polls earlier than that become one at it."""
        earliest = min(math.ceil(max(self.timing.initial, 0.0) - 1e-9), math.ceil(self.timing.timeout))
        previous = 0
        for offset in self._planned():
            offset = max(offset, earliest)
            if offset > previous:
                previous = offset
                yield offset

    def _planned(self) -> Iterator[int]:
        cap = max(MIN_GAP, math.floor(self.timing.maximum))
        deadline = self.timing.timeout
        plan = self.plan
        if plan.cold:
            offset = _gap(0, self.cold.relative_gap, self.timing)
        else:
            offset = plan.start - cap * ((plan.start - 1) // cap)  # fillers: never more than `cap` apart
        while offset < deadline:
            yield offset
            in_window = not plan.cold and plan.start <= offset < plan.end
            gap = _gap(offset, plan.relative_gap if in_window else self.cold.relative_gap, self.timing)
            if not plan.cold and offset < plan.start:
                gap = min(cap, plan.start - offset)
            offset += gap
        yield math.ceil(deadline)

    def _extend_past(self, elapsed: float) -> bool:
        if self._source is None:
            self._source = self.offsets()
        while not self._offsets or self._offsets[-1] <= elapsed:
            try:
                self._offsets.append(next(self._source))
            except StopIteration:
                return False
        return True

    def next_offset(self, elapsed: float) -> float:
        """The first planned poll offset strictly after `elapsed`; past the deadline, the deadline."""
        if elapsed >= self.timing.timeout or not self._extend_past(elapsed):
            return max(self.timing.timeout, elapsed)
        return min(float(self._offsets[bisect.bisect_right(self._offsets, elapsed)]), self.timing.timeout)

    def previous_offset(self, elapsed: float) -> float:
        """The last planned poll offset strictly before `elapsed` (0: creation)."""
        self._extend_past(elapsed)
        index = bisect.bisect_left(self._offsets, elapsed)
        return float(self._offsets[index - 1]) if index > 0 else 0.0

    def observed_duration(self, elapsed: float) -> float:
        """What to record in the duration history for an operation first seen finished at `elapsed`: Graph
        gives no timestamps, so the duration is only known to lie between the previous poll and this one;
        take the middle of that bracket."""
        return (self.previous_offset(elapsed) + elapsed) / 2

    def next_poll(self, elapsed: float) -> float:
        """Seconds from now (`elapsed` since creation) to the next planned poll: the hook `polling.decide` and
        `polling.status_retry_after` take as `next_poll`."""
        return self.next_offset(elapsed) - elapsed


# --- the learned plan ---------------------------------------------------------------------------------


_STANDARD = NormalDist()


def learned_plan(
    history: DurationHistory | None, timing: Timing, hint: float | None = None, policy: LearnedPolicy | None = None
) -> Plan:
    """The plan for a new operation of a kind with this history (and the caller's expectedDurationSeconds).

    The window runs from the predicted `low_quantile` to the predicted `high_quantile` of the next run's
    duration. Prediction: the sample's own quantiles, widened in log space by `widening` * z * s / sqrt(n) (z of
    that quantile), an allowance of the order of the estimate's sampling error that shrinks as runs accumulate;
    s is the sample's log-sd pooled with `prior_spread` (worth `prior_weight` runs) so that a few similar runs
    do not make the window collapse. With fewer than 3 runs the window is at least mean(log) -/+ z * s. A hint alone is
    treated as one run of that duration. No history and no hint: the cold plan.
    """
    policy = policy or LearnedPolicy()
    durations = history.durations() if history is not None else []
    if hint is not None and math.isfinite(hint) and hint > 0 and len(durations) < policy.min_samples:
        durations = [*durations, hint]
    durations = [max(d, 0.5) for d in durations]
    n = len(durations)
    if n < max(policy.min_samples, 1):
        return COLD
    logs = [math.log(d) for d in durations]
    mean = sum(logs) / n
    squares = sum((x - mean) ** 2 for x in logs)
    spread = math.sqrt((policy.prior_weight * policy.prior_spread**2 + squares) / (policy.prior_weight + n - 1))
    z_low = -_STANDARD.inv_cdf(policy.low_quantile)
    z_high = _STANDARD.inv_cdf(policy.high_quantile)
    low = math.log(sample_quantile(durations, policy.low_quantile)) - policy.widening * z_low * spread / math.sqrt(n)
    high = math.log(sample_quantile(durations, policy.high_quantile)) + policy.widening * z_high * spread / math.sqrt(n)
    if n < 3:  # one or two runs say nothing about the tails: centre on them with the pooled spread
        low = min(low, mean - z_low * spread)
        high = max(high, mean + z_high * spread)
    start = max(1, math.floor(math.exp(low)))
    end = min(math.ceil(math.exp(high)), math.ceil(timing.timeout))
    if end <= start:
        return COLD
    return Plan(start, end, policy.relative_gap)


def next_poll_offset(elapsed: float, plan: Plan, timing: Timing, cold: ColdPolicy | None = None) -> float:
    """The schedule as a plain function: (elapsed, plan, timing) -> offset from creation of the next poll."""
    return Schedule(plan, timing, cold or ColdPolicy()).next_offset(elapsed)
