"""The Graph long-running-operation dialect as pure decisions (shared.graph.lro): the status answer (`decide`),
the result GET (`decide_result`) and the answer to the start (`decide_start`), for every Kind of answer.

Graph's contract followed (shared reference graph-excel-async-facts.md and graph-get-workbookoperation.md):
the start answers 202 with a Location to poll, or 200/201 with the result at once; the operation's status is
notStarted | running | succeeded (with resourceLocation) | failed (with error); 429/5xx are transient, with a
Retry-After that may be fractional.
"""

from __future__ import annotations

import json

import pytest

from shared.graph.answers import Answer, Kind, classify_result
from shared.graph.lro import (
    Accepted,
    Ended,
    Finish,
    GraphRefused,
    PollState,
    Reschedule,
    decide,
    decide_result,
    decide_start,
)
from shared.schedule.plans import COLD, Schedule
from shared.schedule.timing import Timing

TIMING = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=3)
STATE = PollState("op-1", generation=1, polls=2)
SUCCEEDED = Finish("succeeded", PollState("op-1", generation=1, polls=3), result_url="https://graph/result")
GRAPH_ERROR = {"code": "itemNotFound", "message": "gone"}
PLANNED = Schedule(COLD, TIMING).next_poll  # the schedule plays no part in what an answer means


class MaxRng:
    def uniform(self, low: float, high: float) -> float:
        return high


@pytest.mark.parametrize(("kind", "status"), [(Kind.RUNNING, "running"), (Kind.NOT_STARTED, "notStarted")])
def test_status_running_reschedules_with_graphs_status(kind: Kind, status: str) -> None:
    decision = decide(Answer(kind, 200), STATE, 10.0, TIMING, next_poll=PLANNED)
    assert isinstance(decision, Reschedule) and decision.status == status and decision.state.polls == 3


def test_status_succeeded_asks_for_the_result_get() -> None:
    decision = decide(
        Answer(Kind.SUCCEEDED, 200, resource_location="https://graph/r"), STATE, 10.0, TIMING, next_poll=PLANNED
    )
    assert isinstance(decision, Finish) and decision.needs_result
    bare = decide(Answer(Kind.SUCCEEDED, 200), STATE, 10.0, TIMING, next_poll=PLANNED)
    assert isinstance(bare, Finish) and bare.status == "succeeded" and not bare.needs_result


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (Kind.FAILED, "itemNotFound"),
        (Kind.NOT_FOUND, "operationNotFound"),
        (Kind.UNAUTHORIZED, "graphUnauthorized"),
        (Kind.REJECTED, "itemNotFound"),
    ],
)
def test_status_refusals_end_failed(kind: Kind, code: str) -> None:
    decision = decide(Answer(kind, 400, error=GRAPH_ERROR), STATE, 10.0, TIMING, next_poll=PLANNED)
    assert isinstance(decision, Finish) and decision.status == "failed" and not decision.needs_result
    assert decision.error is not None and decision.error["code"] == code


def test_status_transient_backs_off_then_gives_up() -> None:
    decision = decide(
        Answer(Kind.TRANSIENT, 503, retry_after=7.2, reason="Graph answered 503"),
        STATE,
        10.0,
        TIMING,
        next_poll=PLANNED,
    )
    assert isinstance(decision, Reschedule) and decision.delay >= 8 and decision.status is None
    worn = PollState("op-1", 1, polls=5, transient_failures=3)
    ended = decide(Answer(Kind.TRANSIENT, 503, reason="Graph answered 503"), worn, 10.0, TIMING, next_poll=PLANNED)
    assert isinstance(ended, Finish) and ended.error is not None and ended.error["code"] == "graphUnavailable"


def test_result_there_is_the_succeeded_decision_itself() -> None:
    answer = classify_result(200, {}, json.dumps({"index": 1}).encode())
    assert decide_result(answer, SUCCEEDED, 10.0, TIMING) is SUCCEEDED


def test_result_transient_is_rescheduled_with_retry_after() -> None:
    answer = Answer(Kind.TRANSIENT, 429, retry_after=30.5, reason="Graph answered 429")
    decision = decide_result(answer, SUCCEEDED, 10.0, TIMING, MaxRng())  # type: ignore[arg-type]
    assert isinstance(decision, Reschedule) and decision.delay == 31
    assert decision.state.transient_failures == 1 and decision.status is None


def test_result_transient_past_the_bound_fails() -> None:
    worn = Finish("succeeded", PollState("op-1", 1, polls=6, transient_failures=3), result_url="https://graph/r")
    decision = decide_result(Answer(Kind.TRANSIENT, 500, reason="Graph answered 500"), worn, 10.0, TIMING)
    assert isinstance(decision, Finish) and decision.status == "failed"
    assert decision.error is not None and decision.error["code"] == "graphUnavailable"


@pytest.mark.parametrize("kind", [Kind.NOT_FOUND, Kind.UNAUTHORIZED, Kind.REJECTED, Kind.FAILED])
def test_result_graph_refusal_is_result_unavailable_with_graphs_error_inside(kind: Kind) -> None:
    decision = decide_result(Answer(kind, 404, error=GRAPH_ERROR), SUCCEEDED, 10.0, TIMING)
    assert isinstance(decision, Finish) and decision.status == "failed"
    assert decision.error == {
        "code": "resultUnavailable",
        "message": "The operation succeeded but its result could not be read.",
        "innerError": GRAPH_ERROR,
    }


def test_result_refusal_without_an_error_has_no_inner_error() -> None:
    decision = decide_result(Answer(Kind.REJECTED, 400), SUCCEEDED, 10.0, TIMING)
    assert isinstance(decision, Finish) and decision.error is not None and "innerError" not in decision.error


@pytest.mark.parametrize("code", ["untrustedOrigin", "delegatedCredentialExpired", "somethingNew"])
def test_result_the_bridges_own_refusal_is_the_error_as_it_is(code: str) -> None:
    own = {"code": code, "message": "the bridge said no"}
    decision = decide_result(Answer(Kind.REJECTED, error=own, own=True), SUCCEEDED, 10.0, TIMING)
    assert isinstance(decision, Finish) and decision.error == own  # marked on the Answer, not matched by code


def test_result_graph_error_with_an_own_looking_code_is_still_wrapped() -> None:
    graphs = {"code": "untrustedOrigin", "message": "Graph's own body"}
    decision = decide_result(Answer(Kind.REJECTED, 403, error=graphs), SUCCEEDED, 10.0, TIMING)
    assert isinstance(decision, Finish) and decision.error is not None
    assert decision.error["code"] == "resultUnavailable" and decision.error["innerError"] == graphs


def _trusted(url: str) -> bool:
    return url.startswith("https://graph.microsoft.com/")


LOCATION = "https://graph.microsoft.com/v1.0/me/drive/items/1/workbook/operations/o1"


def test_start_202_with_a_trusted_location_is_accepted() -> None:
    assert decide_start(202, {"Location": LOCATION}, b"", "createSession", _trusted) == Accepted(LOCATION)


def test_start_202_without_or_with_a_foreign_location_ends_failed() -> None:
    missing = decide_start(202, {}, b"", "createSession", _trusted)
    assert isinstance(missing, Ended) and missing.status == "failed"
    assert missing.error is not None and missing.error["code"] == "missingOperationLocation"
    foreign = decide_start(
        202, {"location": "https://evil.example/op"}, b"", "createSession", _trusted, "https://graph.microsoft.com"
    )
    assert isinstance(foreign, Ended) and foreign.error is not None
    assert foreign.error["code"] == "untrustedOperationOrigin" and "graph.microsoft.com" in foreign.error["message"]


@pytest.mark.parametrize("status", [200, 201])
def test_start_synchronous_result_ends_succeeded_with_the_result(status: int) -> None:
    body = json.dumps({"index": 3, "values": [[1, 2]], "@odata.context": "x"}).encode()
    decision = decide_start(status, {}, body, "createTableRow", _trusted)
    assert decision == Ended("succeeded", result={"index": 3, "values": [[1, 2]]})


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (409, False), (429, True), (500, True), (503, True), (504, True)],
)
def test_start_refusals_keep_graphs_error_and_retry_after(status: int, retryable: bool) -> None:
    body = json.dumps({"error": GRAPH_ERROR}).encode()
    decision = decide_start(status, {"Retry-After": "2.5"}, body, "createTableRow", _trusted)
    assert isinstance(decision, GraphRefused) and decision.status == status
    assert decision.retryable is retryable and decision.retry_after == 2.5
    assert decision.error["code"] == "itemNotFound"
