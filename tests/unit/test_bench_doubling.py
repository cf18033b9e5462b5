"""The doubling schedule, moved from shared.graph.lro to bench/doubling.py (the benches' `doubling` policy is its
only user): the same tests as before the move."""

from __future__ import annotations

import itertools

import pytest

from bench.doubling import next_regular_poll
from shared.schedule.timing import Timing as T

DEFAULT = T(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=3)


# --- regular schedule -------------------------------------------------------------------------


def schedule_offset(index: int, timing: T) -> float:
    """The index-th regular poll (0-based) as offset from creation, walked through next_regular_poll."""
    offset = -1.0
    for _ in range(index + 1):
        offset += next_regular_poll(offset, timing)
    return offset


@pytest.mark.parametrize(
    ("index", "offset"),
    [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (7, 128), (8, 256), (9, 496), (10, 736), (11, 976)],
)
def test_schedule_offset_doubles_gaps_up_to_the_cap(index, offset):
    assert schedule_offset(index, DEFAULT) == offset


def test_schedule_gaps_are_1_2_4_then_capped():
    offsets = [schedule_offset(i, DEFAULT) for i in range(14)]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps[:8] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert gaps[8:] == [240] * 5
    assert max(gaps) == DEFAULT.maximum


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        (T(0.0, 240.0, 3600.0, 3), [0, 1, 3, 7, 15]),
        (T(5.0, 240.0, 3600.0, 3), [5, 10, 20, 40, 80]),
        (T(1.0, 3.0, 3600.0, 3), [1, 2, 4, 7, 10]),
    ],
)
def test_schedule_offset_other_timings(timing, expected):
    assert [schedule_offset(i, timing) for i in range(5)] == expected


@pytest.mark.parametrize(
    ("elapsed", "wait"),
    [
        (0.0, 1.0),
        (0.25, 0.75),
        (1.0, 1.0),  # exactly on a poll: the next one, strictly after
        (1.5, 0.5),
        (2.0, 2.0),
        (3.0, 1.0),
        (100.0, 28.0),
        (128.0, 128.0),
        (300.0, 196.0),
        (496.0, 240.0),
    ],
)
def test_next_regular_poll(elapsed, wait):
    assert next_regular_poll(elapsed, DEFAULT) == pytest.approx(wait)


@pytest.mark.parametrize("elapsed", [0.0, 0.5, 1.0, 1.999, 2.0, 5.5, 63.9, 64.0, 255.0, 256.0, 1000.0, 3599.0])
def test_next_regular_poll_lands_on_the_schedule_strictly_after_elapsed(elapsed):
    wait = next_regular_poll(elapsed, DEFAULT)
    assert wait > 0
    offsets = [schedule_offset(i, DEFAULT) for i in range(40)]
    landing = elapsed + wait
    assert landing == pytest.approx(min(o for o in offsets if o > elapsed))
