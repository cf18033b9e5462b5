"""What Graph's long-running-operation answers mean for the next step: the start's answer, the status, the result.
Pure: no clock reads, no I/O.

How long to wait is the clock's (shared/schedule/clock.py): a decision asks it for the delay of a "still running"
answer (`poll_delay`, from the operation's `next_poll`) and of a transient one (`backoff_delay`), and never reads
the schedule itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.graph.answers import Answer, Kind, graph_error, header, parse_retry_after, result_from
from shared.schedule.clock import NextPoll, backoff_delay, poll_delay, until_deadline
from shared.schedule.timing import Timing
from shared.storage.messages import MAX_REASON_LENGTH, MAX_VISIBILITY_SECONDS, PollState

__all__ = ["MAX_REASON_LENGTH", "MAX_VISIBILITY_SECONDS", "NextPoll", "PollState"]  # the message format's old home


@dataclass(frozen=True)
class Reschedule:
    delay: int
    state: PollState
    status: str | None  # notStarted or running as Graph says now; None when this answer says nothing


@dataclass(frozen=True)
class Finish:
    status: str  # succeeded | failed | timedOut
    state: PollState
    error: dict[str, Any] | None = None
    result_url: str | None = None

    @property
    def needs_result(self) -> bool:
        """Succeeded with a resourceLocation: the result GET comes next (decide_result)."""
        return self.status == "succeeded" and bool(self.result_url)


Decision = Reschedule | Finish


def timeout_error(timing: Timing, state: PollState | None = None) -> dict[str, Any]:
    """The timedOut error; when the latest answers were transient failures, the last one is its innerError,
    so a caller can tell "Excel was still working" from "Graph kept failing"."""
    error: dict[str, Any] = {
        "code": "operationTimedOut",
        "message": f"The operation did not finish within {timing.timeout:g} seconds (OPERATION_TIMEOUT_SECONDS).",
    }
    if state is not None and state.transient_failures > 0:
        error["innerError"] = {
            "code": "transientFailure",
            "message": f"The last {state.transient_failures} answer(s) from Graph were transient failures; "
            f"last: {state.last_transient or 'unknown'}.",
        }
    return error


def decide(
    answer: Answer,
    state: PollState,
    elapsed: float,
    timing: Timing,
    rng: random.Random | None = None,
    *,
    next_poll: NextPoll,
) -> Decision:
    """Turn one classified answer to `GET <operation>` into the next step. `next_poll` is the operation's
    schedule (shared/schedule/clock.py `schedule_for(op, timing).next_poll`)."""
    polled = replace(state, polls=state.polls + 1)
    if answer.kind in (Kind.RUNNING, Kind.NOT_STARTED):
        delay = poll_delay(next_poll(elapsed), answer.retry_after, elapsed, timing)
        status = "running" if answer.kind is Kind.RUNNING else "notStarted"
        return Reschedule(delay, replace(polled, transient_failures=0, last_transient=""), status)
    if answer.kind is Kind.SUCCEEDED:
        return Finish("succeeded", polled, result_url=answer.resource_location)
    if answer.kind is Kind.FAILED:
        return Finish("failed", polled, error=answer.error)
    if answer.kind is Kind.NOT_FOUND:
        return Finish(
            "failed",
            polled,
            error=_wrap(
                "operationNotFound", "Graph no longer knows this operation (it expired or never existed).", answer.error
            ),
        )
    if answer.kind is Kind.UNAUTHORIZED:
        return Finish(
            "failed",
            polled,
            error=_wrap(
                "graphUnauthorized",
                "Graph refused the bridge's token even after a fresh one was fetched.",
                answer.error,
            ),
        )
    if answer.kind is Kind.REJECTED:
        return Finish("failed", polled, error=answer.error)
    return transient(answer, state, elapsed, timing, rng)


def transient(
    answer: Answer, state: PollState, elapsed: float, timing: Timing, rng: random.Random | None = None
) -> Decision:
    """A transient answer (429/5xx/timeout/bad body): back off, or give up after the bound."""
    failures = state.transient_failures + 1
    polled = replace(
        state, polls=state.polls + 1, transient_failures=failures, last_transient=answer.reason[:MAX_REASON_LENGTH]
    )
    if failures > timing.max_transient_failures:
        return Finish(
            "failed",
            polled,
            error={
                "code": "graphUnavailable",
                "message": f"Graph answered {failures} transient failures in a row; last: {answer.reason}.",
            },
        )
    delay = backoff_delay(failures, answer.retry_after, timing, rng)
    return Reschedule(until_deadline(delay, elapsed, timing), polled, None)


def decide_result(
    answer: Answer, decision: Finish, elapsed: float, timing: Timing, rng: random.Random | None = None
) -> Decision:
    """Turn the classified answer to `GET <resourceLocation>` (after `decision`, a succeeded Finish with a
    result_url) into the next step: `decision` itself when the result is there (its body is the result), a
    retry for a transient answer, else failed: the bridge's own refusal as it is, Graph's error as innerError."""
    if answer.kind is Kind.SUCCEEDED:
        return decision
    if answer.kind is Kind.TRANSIENT:
        return transient(answer, decision.state, elapsed, timing, rng)
    if answer.own and answer.error:
        return Finish("failed", decision.state, error=answer.error)  # the bridge's own refusal says it best
    return Finish(
        "failed",
        decision.state,
        error=_wrap("resultUnavailable", "The operation succeeded but its result could not be read.", answer.error),
    )


# --- the answer to the start (POST/PATCH/DELETE with Prefer: respond-async) --------------------------------


@dataclass(frozen=True)
class Accepted:
    """202 with a trusted Location: the operation runs; poll it there."""

    location: str


@dataclass(frozen=True)
class Ended:
    """Graph's answer to the start already ends the operation: a synchronous 2xx result, or a 202 that cannot
    be followed. The record is stored terminal (Graph may have done the work: never send it again)."""

    status: str  # succeeded | failed
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class GraphRefused:
    """Graph did not do the work (4xx, 429, 5xx): nothing is kept; the caller is told, with Graph's error."""

    status: int
    error: dict[str, Any]
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


StartDecision = Accepted | Ended | GraphRefused


def decide_start(
    status: int,
    headers: dict[str, str],
    body: bytes,
    action: str | None,
    trusted: Callable[[str], bool],
    graph_origin: str = "",
) -> StartDecision:
    """What Graph's answer to the start means (Graph Excel LRO: 202 + Location, or a synchronous 200/201)."""
    if status == 202:
        location = header(headers, "location")
        if location and trusted(location):
            return Accepted(location)
        error = (
            {
                "code": "untrustedOperationOrigin",
                "message": f"Graph's Location is not on {graph_origin}; it was not followed.",
            }
            if location
            else {"code": "missingOperationLocation", "message": "Graph answered 202 without a Location header."}
        )
        return Ended("failed", error=error)
    if 200 <= status < 300:
        return Ended("succeeded", result=result_from(action, body))
    return GraphRefused(status, graph_error(body, status), parse_retry_after(header(headers, "retry-after")))


def _wrap(code: str, message: str, inner: dict[str, Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innerError"] = inner
    return error
