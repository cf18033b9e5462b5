"""The clock (shared/schedule/clock.py): every time the bridge decides, as pure functions. The tests of
whole_seconds, status_retry_after and the transient backoff moved here from the old tests of shared.graph.lro
(where these functions lived) unchanged, the status one given the doubling schedule it used to default to."""

from __future__ import annotations

import math
import random

import pytest

from bench import doubling
from shared.operations.record import Operation, iso
from shared.schedule.clock import (
    backoff_delay,
    detection_lag,
    first_poll_delay,
    observed_duration,
    poll_delay,
    retry_after_for,
    schedule_for,
    stalled,
    status_retry_after,
    timed_out,
    transient_backoff,
    until_deadline,
    whole_seconds,
)
from shared.schedule.plans import COLD, Plan, Schedule
from shared.schedule.timing import Timing as T
from shared.storage.messages import MAX_VISIBILITY_SECONDS

DEFAULT = T(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=3)
DOUBLING = doubling.next_poll(DEFAULT)
CREATED = 1_767_225_600.0


class MaxRng:
    """Stands in for random.Random: uniform() always returns its upper bound."""

    def uniform(self, low: float, high: float) -> float:
        return high


class MinRng:
    def uniform(self, low: float, high: float) -> float:
        return low


def record(plan: Plan = COLD, waited: float = 0.0, **fields: object) -> Operation:
    op = Operation(
        id="1234567890123abcdef0123",
        status="running",
        action="createSession",
        workbook="/me/drive/items/1",
        operation_url="https://graph/op",
        created_at=iso(CREATED),
        updated_at=iso(CREATED),
        base_url="http://h/api",
        poll_plan=plan.encode() or None,
        started_at=iso(CREATED + waited) if waited else None,
    )
    return op.with_(**fields) if fields else op


# --- whole seconds and the status endpoint ----------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [
        (2.128, 3),
        (3.0, 3),
        (2.0000000001, 2),  # float noise does not add a second
        (0.001, 1),
        (0.0, 0),
        (-5.0, 0),
        (240.0, 240),
        (MAX_VISIBILITY_SECONDS + 0.5, MAX_VISIBILITY_SECONDS),
        (1e12, MAX_VISIBILITY_SECONDS),
    ],
)
def test_whole_seconds(delay, seconds):
    assert whole_seconds(delay) == seconds
    assert isinstance(whole_seconds(delay), int)


@pytest.mark.parametrize(
    ("elapsed", "retry_after"),
    [(0.0, 1), (0.999, 1), (1.5, 1), (2.0, 2), (2.5, 2), (100.0, 28), (300.0, 196), (300.5, 196)],
)
def test_status_retry_after(elapsed, retry_after):
    value = status_retry_after(elapsed, DOUBLING)  # the doubling schedule's polls at 1, 2, 4, 8 ... 128, 256, 496
    assert value == retry_after
    assert isinstance(value, int)


def test_status_retry_after_is_at_least_one_when_the_poll_is_due_now():
    timing = T(0.0, 240.0, 3600.0, 3)
    assert status_retry_after(0.9999999999, doubling.next_poll(timing)) >= 1


# --- transient backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
@pytest.mark.parametrize("failures", [1, 2, 3, 4, 5, 8, 9, 12, 30])
def test_transient_backoff_stays_within_jitter_band(seed, failures):
    rng = random.Random(seed)
    ceiling = min(1.0 * 2 ** (failures - 1), DEFAULT.maximum)
    value = transient_backoff(failures, DEFAULT, rng)
    assert value >= 1.0
    assert max(1.0, 0.5 * ceiling) <= value <= ceiling


@pytest.mark.parametrize(
    ("failures", "high", "low"),
    [(1, 1.0, 1.0), (2, 2.0, 1.0), (3, 4.0, 2.0), (6, 32.0, 16.0), (9, 240.0, 120.0), (40, 240.0, 120.0)],
)
def test_transient_backoff_bounds_exactly(failures, high, low):
    assert transient_backoff(failures, DEFAULT, MaxRng()) == high
    assert transient_backoff(failures, DEFAULT, MinRng()) == low


def test_transient_backoff_uses_initial_delay_as_base():
    timing = T(10.0, 240.0, 3600.0, 3)
    assert transient_backoff(1, timing, MaxRng()) == 10.0
    assert transient_backoff(3, timing, MaxRng()) == 40.0


def test_transient_backoff_is_reproducible_with_a_seed():
    first = [transient_backoff(n, DEFAULT, random.Random(7)) for n in range(1, 10)]
    again = [transient_backoff(n, DEFAULT, random.Random(7)) for n in range(1, 10)]
    assert first == again


# --- the deadline -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("elapsed", "expected"), [(0.0, False), (3599.9, False), (3600.0, True), (9000.0, True)])
def test_timed_out(elapsed, expected):
    assert timed_out(elapsed, DEFAULT) is expected


@pytest.mark.parametrize(
    ("delay", "elapsed", "expected"),
    [(30.0, 50.0, 30), (30.0, 95.0, 5), (60.0, 97.5, 3), (60.0, 99.5, 1), (0.2, 10.0, 1), (500.0, 150.0, 500)],
)
def test_until_deadline_cuts_the_wait_at_the_deadline_in_whole_seconds(delay, elapsed, expected):
    assert until_deadline(delay, elapsed, T(1.0, 240.0, 100.0, 3)) == expected


@pytest.mark.parametrize(
    ("planned", "retry_after", "expected"),
    [(5.0, None, 5), (5.0, 2.128, 5), (1.2, 2.128, 3), (4.0, 600.0, 600), (0.3, None, 1), (7.5, 0.0, 8)],
)
def test_poll_delay_is_the_planned_poll_unless_graph_asks_for_longer(planned, retry_after, expected):
    assert poll_delay(planned, retry_after, 10.0, DEFAULT) == expected
    assert poll_delay(planned, retry_after, 3599.5, DEFAULT) == 1  # and never past the deadline


def test_backoff_delay_is_the_backoff_unless_graph_asks_for_longer():
    assert backoff_delay(3, None, DEFAULT, MaxRng()) == 4.0
    assert backoff_delay(3, 9.5, DEFAULT, MaxRng()) == 9.5
    assert backoff_delay(3, 1.0, DEFAULT, MinRng()) == 2.0


def test_a_chain_counts_as_lost_only_past_the_deadline_and_the_grace():
    grace = max(300.0, 2 * DEFAULT.maximum)
    old = record(updated_at=iso(CREATED + 10))
    assert not stalled(old, DEFAULT, CREATED + DEFAULT.timeout + grace - 1)
    assert stalled(old, DEFAULT, CREATED + DEFAULT.timeout + grace)
    touched = record(updated_at=iso(CREATED + DEFAULT.timeout + grace - 10))  # re-armed a moment ago
    assert not stalled(touched, DEFAULT, CREATED + DEFAULT.timeout + grace)


# --- one schedule per record ------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", [COLD, Plan(30, 3600, 0.12), Plan(30, 3600, 0.12, 10), Plan(400, 900, 0.12)])
@pytest.mark.parametrize("waited", [0.0, 42.5])
def test_the_first_poll_the_retry_after_and_the_poll_step_agree(plan, waited):
    """The start queues the first poll after first_poll_delay; a GET at any time tells Retry-After = the time to
    the poll the same schedule plans next; the poll step's decide plans that poll too."""
    op = record(plan, waited)
    schedule = Schedule(plan, T(1.0, 240.0, 3600.0 - waited, 3))
    first = first_poll_delay(op, DEFAULT, CREATED + waited)
    assert first == whole_seconds(schedule.next_offset(0.0))
    rng = random.Random(9)
    for _ in range(200):
        elapsed = waited + rng.uniform(0, 2000)
        planned = schedule.next_offset(elapsed - waited) - (elapsed - waited)
        assert retry_after_for(op, DEFAULT, CREATED + elapsed) == max(1, whole_seconds(planned))
        assert schedule_for(op, DEFAULT).next_poll(elapsed) == pytest.approx(planned)


def test_observed_duration_is_the_middle_of_the_last_bracket_and_detection_lag_the_rest():
    op = record(COLD).with_(status="succeeded", completed_at=iso(CREATED + 31.0))  # cold polls ... 26, 31
    assert observed_duration(op, DEFAULT) == pytest.approx((26 + 31) / 2)
    assert detection_lag(op, DEFAULT, CREATED + 31.0) == pytest.approx(31 - (26 + 31) / 2)
    waited = record(COLD, 100.0).with_(status="succeeded", completed_at=iso(CREATED + 131.0))
    assert observed_duration(waited, DEFAULT) == pytest.approx((26 + 31) / 2)  # Excel's time, not the wait
    assert math.isclose(detection_lag(waited, DEFAULT, CREATED + 131.0), 2.5)
