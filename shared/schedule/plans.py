"""When to poll: pure schedules. A schedule is fixed when the operation is created (a `Plan`, a few numbers
the record keeps) and maps the time since creation to the next poll offset, so the poller and the status
endpoint agree without any write per poll. No clock reads, no I/O. Which plan a new operation gets is
shared/schedule/learned.py's; the front door to all of it is shared/schedule/clock.py.

Offsets are whole seconds from creation (queue visibility is whole seconds). From one poll offset `t` the
next is `t + gap(t)` with

    gap(t) = clamp(floor(r * max(t, FLOOR_ELAPSED)), MIN_GAP, timing.maximum)

where r is the cold policy's relative gap, or the learned one inside the plan's window [start, end). An
operation finishing anywhere in (t, t + gap] is seen at t + gap, so its detection lag is at most
r * max(duration, 10 s): the relative lag is bounded by r by construction (the 1 s floor aside).

- Cold (no history): first poll at `floor(r * 10 s)`, then the gaps above. Graph's guidance is kept: never
  more than `timing.maximum` (240 s) between polls, counting from creation.
- Learned: a window [start, end) of dense polls (small r) where the operation is expected to end, and before it
  the plan's `early` offset: filler polls every `timing.maximum` seconds lead from creation to `early`, then the
  cold gaps lead from `early` to the window. `early` = start: only fillers before the window (a kind with
  enough runs of its own); `early` = 0: the cold gaps from creation (a plan shaped by a pooled prior, never
  later than the cold schedule); in between: a guard band of cold gaps just before the window (a kind with
  few runs). After the window, the cold gaps.
- Deadline: no offset past `timing.timeout`; the last poll is at the deadline.
- Earliest: no poll before `timing.initial` (POLL_INITIAL_DELAY_SECONDS, default 1 s, below the cold plan's first
  poll at 2 s, so by default it changes nothing); planned polls before it are merged into one at it.
- Graph's Retry-After always wins when it asks for longer (shared/schedule/clock.py `poll_delay`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.schedule.timing import Timing

FLOOR_ELAPSED = 10.0  # relative lag is measured against max(duration, 10 s): shorter ones get 10 s worth
MIN_GAP = 1  # whole seconds
MIN_RELATIVE_GAP = 0.01  # a stored plan asking for denser polls than this is not ours: cold
MAX_OFFSET = 10 * 365 * 86400


@dataclass(frozen=True)
class ColdPolicy:
    relative_gap: float = 0.2


@dataclass(frozen=True)
class Plan:
    """What the operation record stores at creation (3 or 4 numbers). start == end: the cold schedule."""

    start: int = 0  # offset of the window's first poll (the window opens here)
    end: int = 0  # the learned gaps apply to offsets in [start, end)
    relative_gap: float = 0.0  # r inside the window
    early: int | None = None  # the cold gaps lead from here to the window, fillers before; None: = start

    @property
    def cold(self) -> bool:
        return self.end <= self.start

    @property
    def early_from(self) -> int:
        return self.start if self.early is None else self.early

    def encode(self) -> str:
        """ "" (cold), "start,end,gap" (only fillers before the window: the format every version reads) or
        "start,end,gap,early". Code that knows only three numbers reads four as cold, which is safe."""
        if self.cold:
            return ""
        text = f"{self.start},{self.end},{self.relative_gap:g}"
        return text if self.early_from == self.start else f"{text},{self.early_from}"

    @staticmethod
    def decode(text: str | None) -> Plan:
        """A record's plan; anything unreadable is the cold plan (always safe)."""
        parts = (text or "").split(",")
        try:
            if len(parts) not in (3, 4):
                return COLD
            start, end, gap = int(parts[0]), int(parts[1]), float(parts[2])
            early = int(parts[3]) if len(parts) == 4 else start
        except ValueError:
            return COLD
        if start < 1 or end > MAX_OFFSET or not MIN_RELATIVE_GAP <= gap <= 1.0 or not 0 <= early <= start:
            return COLD
        return Plan(start, end, gap, None if early == start else early)


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
        cold_gap = self.cold.relative_gap
        early = 0 if plan.cold else plan.early_from
        if early <= 0:
            offset = _gap(0, cold_gap, self.timing)
        else:
            offset = early - cap * ((early - 1) // cap)  # fillers: never more than `cap` apart
        while offset < deadline:
            yield offset
            if offset < early:
                gap = min(cap, early - offset)  # fillers, landing on `early`
            elif not plan.cold and plan.start <= offset < plan.end:
                gap = _gap(offset, plan.relative_gap, self.timing)
            else:  # the guard band before the window, or past its end
                gap = _gap(offset, cold_gap, self.timing)
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
        """Seconds from now (`elapsed` since creation) to the next planned poll: the `next_poll` hook that
        shared.graph.lro.decide and shared/schedule/clock.py's Retry-After take."""
        return self.next_offset(elapsed) - elapsed


def next_poll_offset(elapsed: float, plan: Plan, timing: Timing, cold: ColdPolicy | None = None) -> float:
    """The schedule as a plain function: (elapsed, plan, timing) -> offset from creation of the next poll."""
    return Schedule(plan, timing, cold or ColdPolicy()).next_offset(elapsed)
