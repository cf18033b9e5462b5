"""Pure scheduling and decision logic of shared.graph.lro."""

from __future__ import annotations

import itertools
import random

import pytest

from shared.graph.answers import Answer, Kind
from shared.graph.lro import (
    MAX_VISIBILITY_SECONDS,
    Finish,
    PollState,
    Reschedule,
    decide,
    next_regular_poll,
    status_retry_after,
    timed_out,
    timeout_error,
    transient,
    transient_backoff,
    whole_seconds,
)
from shared.graph.lro import Timing as T

DEFAULT = T(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=3)
STATE = PollState("op-1", generation=2, polls=4, transient_failures=2)

CHAIN = {
    "code": "generalException",
    "message": "outer",
    "innerError": {"code": "middle", "message": "m", "innerError": {"code": "innermost", "message": "i"}},
}


class MaxRng:
    """Stands in for random.Random: uniform() always returns its upper bound."""

    def uniform(self, low: float, high: float) -> float:
        return high


class MinRng:
    def uniform(self, low: float, high: float) -> float:
        return low


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
    value = status_retry_after(elapsed, DEFAULT)
    assert value == retry_after
    assert isinstance(value, int)


def test_status_retry_after_is_at_least_one_when_the_poll_is_due_now():
    timing = T(0.0, 240.0, 3600.0, 3)
    assert status_retry_after(0.9999999999, timing) >= 1


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


# --- decide -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [(Kind.RUNNING, "running"), (Kind.NOT_STARTED, "notStarted")])
def test_decide_in_progress_reschedules_with_status_and_resets_transient(kind, status):
    decision = decide(Answer(kind, 200), STATE, elapsed=1.5, timing=DEFAULT)
    assert isinstance(decision, Reschedule)
    assert decision.status == status
    assert decision.delay == 1  # next regular poll at t=2 is 0.5 s away: one whole second
    assert decision.state == PollState("op-1", generation=2, polls=5, transient_failures=0)


@pytest.mark.parametrize(
    ("elapsed", "retry_after", "delay"),
    [
        (1.5, 2.128, 3),  # fractional Retry-After honoured, rounded up
        (0.0, 2.128, 3),
        (300.0, 2.128, 196),  # the regular schedule asks for longer: it wins
        (10.0, 600.0, 600),  # larger than POLL_MAX_DELAY_SECONDS: still honoured
        (10.0, None, 6),  # no Retry-After: next regular poll at 16
        (10.0, 0.0, 6),
    ],
)
def test_decide_running_delay(elapsed, retry_after, delay):
    decision = decide(Answer(Kind.RUNNING, 200, retry_after=retry_after), STATE, elapsed, DEFAULT)
    assert isinstance(decision, Reschedule)
    assert decision.delay == delay


@pytest.mark.parametrize(
    ("elapsed", "retry_after", "delay"),
    [
        (95.0, 30.0, 5),
        (97.5, 60.0, 3),
        (99.5, 60.0, 1),
        (99.99, None, 1),
        (50.0, 30.0, 30),  # fits before the deadline: untouched
    ],
)
def test_decide_running_delay_is_cut_at_the_deadline(elapsed, retry_after, delay):
    timing = T(1.0, 240.0, 100.0, 3)
    decision = decide(Answer(Kind.RUNNING, 200, retry_after=retry_after), STATE, elapsed, timing)
    assert isinstance(decision, Reschedule)
    assert decision.delay == delay


def test_decide_succeeded_finishes_with_result_url():
    url = "https://graph.microsoft.com/beta/me/drive/items/x/workbook/sessionInfoResource(key='a')?sessionId=s%3D1"
    decision = decide(Answer(Kind.SUCCEEDED, 200, resource_location=url), STATE, 10.0, DEFAULT)
    assert decision == Finish("succeeded", PollState("op-1", 2, 5, 2), error=None, result_url=url)


def test_decide_failed_keeps_the_error_chain():
    decision = decide(Answer(Kind.FAILED, 200, error=CHAIN), STATE, 10.0, DEFAULT)
    assert isinstance(decision, Finish)
    assert decision.status == "failed"
    assert decision.error == CHAIN
    assert decision.error["innerError"]["innerError"]["code"] == "innermost"
    assert decision.state.polls == 5


@pytest.mark.parametrize(
    ("kind", "code"), [(Kind.NOT_FOUND, "operationNotFound"), (Kind.UNAUTHORIZED, "graphUnauthorized")]
)
def test_decide_wraps_graph_error(kind, code):
    graph = {"code": "itemNotFound", "message": "gone"}
    decision = decide(Answer(kind, 404, error=graph), STATE, 10.0, DEFAULT)
    assert isinstance(decision, Finish)
    assert decision.status == "failed"
    assert decision.error["code"] == code
    assert decision.error["message"]
    assert decision.error["innerError"] == graph
    assert decision.result_url is None


@pytest.mark.parametrize("kind", [Kind.NOT_FOUND, Kind.UNAUTHORIZED])
def test_decide_wrap_without_graph_error_has_no_inner(kind):
    decision = decide(Answer(kind, 404, error=None), STATE, 10.0, DEFAULT)
    assert isinstance(decision, Finish)
    assert "innerError" not in decision.error


def test_decide_rejected_passes_graphs_error_through():
    graph = {"code": "accessDenied", "message": "no", "innerError": {"code": "x", "message": ""}}
    decision = decide(Answer(Kind.REJECTED, 403, error=graph), STATE, 10.0, DEFAULT)
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error) == ("failed", graph)


def test_decide_transient_backs_off():
    decision = decide(Answer(Kind.TRANSIENT, 503, reason="Graph answered 503"), STATE, 10.0, DEFAULT, MaxRng())
    assert isinstance(decision, Reschedule)
    assert decision.status is None
    assert decision.state == PollState("op-1", 2, 5, 3, "Graph answered 503")
    assert decision.delay == 4  # third consecutive failure: 1 * 2**2


def test_a_good_answer_forgets_the_last_transient_reason():
    failing = PollState("op-1", 2, 4, 2, "Graph answered 503")
    decision = decide(Answer(Kind.RUNNING, 200), failing, 10.0, DEFAULT)
    assert isinstance(decision, Reschedule)
    assert (decision.state.transient_failures, decision.state.last_transient) == (0, "")


def test_timed_out_after_transient_failures_names_the_last_one_as_inner_error():
    from shared.graph.lro import timeout_error

    error = timeout_error(DEFAULT, PollState("op-1", 0, 9, 3, "Graph answered 503"))
    assert error["code"] == "operationTimedOut"
    assert error["innerError"]["code"] == "transientFailure"
    assert "Graph answered 503" in error["innerError"]["message"]
    assert "3 answer" in error["innerError"]["message"]
    assert "innerError" not in timeout_error(DEFAULT, PollState("op-1", 0, 9, 0))


# --- transient --------------------------------------------------------------------------------


@pytest.mark.parametrize("failures_before", [0, 1, 2])
def test_transient_reschedules_until_bound(failures_before):
    state = PollState("op-1", 0, polls=1, transient_failures=failures_before)
    decision = transient(Answer(Kind.TRANSIENT, 500, reason="r"), state, 10.0, DEFAULT, random.Random(3))
    assert isinstance(decision, Reschedule)
    assert decision.status is None
    assert decision.state.transient_failures == failures_before + 1
    assert decision.state.polls == 2
    assert decision.delay >= 1


@pytest.mark.parametrize(("limit", "failures_before"), [(3, 3), (0, 0), (8, 8)])
def test_transient_gives_up_after_bound(limit, failures_before):
    timing = T(1.0, 240.0, 3600.0, limit)
    state = PollState("op-1", 0, polls=7, transient_failures=failures_before)
    answer = Answer(Kind.TRANSIENT, 503, reason="Graph answered 503")
    decision = transient(answer, state, 10.0, timing, random.Random(3))
    assert isinstance(decision, Finish)
    assert decision.status == "failed"
    assert decision.error["code"] == "graphUnavailable"
    assert "Graph answered 503" in decision.error["message"]
    assert decision.state.transient_failures == failures_before + 1
    assert decision.state.polls == 8


@pytest.mark.parametrize(("retry_after", "delay"), [(2.128, 3), (50.0, 50.0), (None, 1)])
def test_transient_honours_retry_after(retry_after, delay):
    state = PollState("op-1", 0, 0, 0)
    decision = transient(Answer(Kind.TRANSIENT, 429, retry_after=retry_after), state, 10.0, DEFAULT, MaxRng())
    assert isinstance(decision, Reschedule)
    assert decision.delay == delay


def test_transient_delay_cut_at_deadline():
    timing = T(1.0, 240.0, 100.0, 3)
    decision = transient(Answer(Kind.TRANSIENT, 429, retry_after=500.0), PollState("o", 0), 98.2, timing)
    assert isinstance(decision, Reschedule)
    assert decision.delay == 2


# --- timeout ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("elapsed", "expected"), [(0.0, False), (3599.9, False), (3600.0, True), (9000.0, True)])
def test_timed_out(elapsed, expected):
    assert timed_out(elapsed, DEFAULT) is expected


def test_timeout_error_names_the_timeout():
    error = timeout_error(T(1.0, 240.0, 90.0, 3))
    assert error["code"] == "operationTimedOut"
    assert "90 seconds" in error["message"]
