"""What Graph's answers mean for the next step (shared.graph.lro). The delays come from the clock
(tests/unit/test_clock.py); here `next_poll` is the doubling schedule (bench/doubling.py), so the expected delays
are the ones these tests had before the schedule moved out of lro."""

from __future__ import annotations

import math
import random

import pytest

from bench import doubling
from shared.graph.answers import Answer, Kind
from shared.graph.lro import Finish, PollState, Reschedule, decide, timeout_error, transient
from shared.schedule.timing import Timing as T

DEFAULT = T(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=3)
DOUBLING = doubling.next_poll(DEFAULT)
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


# --- decide -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [(Kind.RUNNING, "running"), (Kind.NOT_STARTED, "notStarted")])
def test_decide_in_progress_reschedules_with_status_and_resets_transient(kind, status):
    decision = decide(Answer(kind, 200), STATE, elapsed=1.5, timing=DEFAULT, next_poll=DOUBLING)
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
    decision = decide(Answer(Kind.RUNNING, 200, retry_after=retry_after), STATE, elapsed, DEFAULT, next_poll=DOUBLING)
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
    decision = decide(
        Answer(Kind.RUNNING, 200, retry_after=retry_after), STATE, elapsed, timing, next_poll=doubling.next_poll(timing)
    )
    assert isinstance(decision, Reschedule)
    assert decision.delay == delay


def test_decide_succeeded_finishes_with_result_url():
    url = "https://graph.microsoft.com/beta/me/drive/items/x/workbook/sessionInfoResource(key='a')?sessionId=s%3D1"
    decision = decide(Answer(Kind.SUCCEEDED, 200, resource_location=url), STATE, 10.0, DEFAULT, next_poll=DOUBLING)
    assert decision == Finish("succeeded", PollState("op-1", 2, 5, 2), error=None, result_url=url)


def test_decide_failed_keeps_the_error_chain():
    decision = decide(Answer(Kind.FAILED, 200, error=CHAIN), STATE, 10.0, DEFAULT, next_poll=DOUBLING)
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
    decision = decide(Answer(kind, 404, error=graph), STATE, 10.0, DEFAULT, next_poll=DOUBLING)
    assert isinstance(decision, Finish)
    assert decision.status == "failed"
    assert decision.error["code"] == code
    assert decision.error["message"]
    assert decision.error["innerError"] == graph
    assert decision.result_url is None


@pytest.mark.parametrize("kind", [Kind.NOT_FOUND, Kind.UNAUTHORIZED])
def test_decide_wrap_without_graph_error_has_no_inner(kind):
    decision = decide(Answer(kind, 404, error=None), STATE, 10.0, DEFAULT, next_poll=DOUBLING)
    assert isinstance(decision, Finish)
    assert "innerError" not in decision.error


def test_decide_rejected_passes_graphs_error_through():
    graph = {"code": "accessDenied", "message": "no", "innerError": {"code": "x", "message": ""}}
    decision = decide(Answer(Kind.REJECTED, 403, error=graph), STATE, 10.0, DEFAULT, next_poll=DOUBLING)
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error) == ("failed", graph)


def test_decide_transient_backs_off():
    decision = decide(
        Answer(Kind.TRANSIENT, 503, reason="Graph answered 503"), STATE, 10.0, DEFAULT, MaxRng(), next_poll=DOUBLING
    )
    assert isinstance(decision, Reschedule)
    assert decision.status is None
    assert decision.state == PollState("op-1", 2, 5, 3, "Graph answered 503")
    assert decision.delay == 4  # third consecutive failure: 1 * 2**2


def test_a_good_answer_forgets_the_last_transient_reason():
    failing = PollState("op-1", 2, 4, 2, "Graph answered 503")
    decision = decide(Answer(Kind.RUNNING, 200), failing, 10.0, DEFAULT, next_poll=DOUBLING)
    assert isinstance(decision, Reschedule)
    assert (decision.state.transient_failures, decision.state.last_transient) == (0, "")


def test_timed_out_after_transient_failures_names_the_last_one_as_inner_error():
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


def test_timeout_error_names_the_timeout():
    error = timeout_error(T(1.0, 240.0, 90.0, 3))
    assert error["code"] == "operationTimedOut"
    assert "90 seconds" in error["message"]


def test_decide_has_no_schedule_of_its_own():
    """The delay of a running answer comes from the operation's schedule only: there is no default to fall back
    on (the doubling schedule used to be one, hidden in lro)."""
    with pytest.raises(TypeError):
        decide(Answer(Kind.RUNNING, 200), STATE, 5.0, DEFAULT)  # type: ignore[call-arg]
    for planned in (0.2, 3.0, 77.0):
        decision = decide(Answer(Kind.RUNNING, 200), STATE, 5.0, DEFAULT, next_poll=lambda _e, p=planned: p)
        assert isinstance(decision, Reschedule) and decision.delay == max(1, math.ceil(planned))
