"""The doubling poll schedule the bridge used before its schedules were planned per operation (issue 10), kept
for the benches' `doubling` policy: polls at `initial`, then gaps doubling up to the cap (1, 2, 4, 8, ... 240,
240 s from creation with the production defaults). The app no longer uses it (shared/schedule/clock.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.schedule.clock import NextPoll, whole_seconds
from shared.schedule.timing import Timing


def offsets(timing: Timing) -> Iterator[float]:
    """Offsets from creation of the regular polls: initial, then gaps doubling up to the cap."""
    offset = max(timing.initial, 0.0)
    step = max(offset, 1.0)
    while True:
        yield offset
        offset += step
        step = min(step * 2, timing.maximum)


def next_regular_poll(elapsed: float, timing: Timing) -> float:
    """Seconds from now to the first regular poll strictly after `elapsed` seconds since creation."""
    return next(offset for offset in offsets(timing) if offset > elapsed) - elapsed


def next_poll(timing: Timing) -> NextPoll:
    """The schedule as lro.decide's `next_poll`."""
    return lambda elapsed: next_regular_poll(elapsed, timing)


def first_delay(timing: Timing) -> float:
    """The start path queued the first poll after whole_seconds(POLL_INITIAL_DELAY_SECONDS)."""
    return float(whole_seconds(timing.initial))
