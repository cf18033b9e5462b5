"""When to poll next and what to do with a Graph answer. Pure: no clock reads, no I/O.

The regular schedule is a function of time since the operation was created: polls fall at
T0 = initial, then gaps that double up to the cap (1, 2, 4, 8, ... 240, 240 s). Because it depends only
on the creation time, the status endpoint can tell a caller when the next poll will be without the
poller writing anything per poll. Graph's Retry-After always wins when it asks for longer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from shared.graph.answers import Answer, Kind, graph_error, header, parse_retry_after, result_from
from shared.schedule.timing import Timing
from shared.storage.messages import MAX_REASON_LENGTH, MAX_VISIBILITY_SECONDS, PollState

__all__ = ["MAX_REASON_LENGTH", "MAX_VISIBILITY_SECONDS", "PollState"]  # the message format's old home


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
NextPoll = Callable[
    [float], float
]  # seconds since creation -> seconds to the next planned poll (shared.schedule.plans)


def _schedule(timing: Timing) -> Iterator[float]:
    """Offsets from creation of the regular polls: initial, then gaps doubling up to the cap."""
    offset = max(timing.initial, 0.0)
    step = max(offset, 1.0)
    while True:
        yield offset
        offset += step
        step = min(step * 2, timing.maximum)


def next_regular_poll(elapsed: float, timing: Timing) -> float:
    """Seconds from now to the first regular poll strictly after `elapsed` seconds since creation."""
    return next(offset for offset in _schedule(timing) if offset > elapsed) - elapsed


def whole_seconds(delay: float) -> int:
    """Queue visibility is whole seconds: round up so a Retry-After of 2.128 s waits 3 s, never 2."""
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(delay - 1e-9)))


def status_retry_after(elapsed: float, timing: Timing, next_poll: NextPoll | None = None) -> int:
    """The Retry-After the status endpoint gives while the operation runs: time to our next poll.
    `next_poll` is the operation's schedule (shared.schedule.plans.Schedule.next_poll); None: the doubling one."""
    delay = next_poll(elapsed) if next_poll is not None else next_regular_poll(elapsed, timing)
    return max(1, whole_seconds(delay))


def transient_backoff(failures: int, timing: Timing, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the failures-th consecutive transient answer (1-based)."""
    base = max(timing.initial, 1.0) * float(2 ** max(failures - 1, 0))
    ceiling = min(base, timing.maximum)
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return max(1.0, ceiling * jitter)


def _bounded(delay: float, elapsed: float, timing: Timing) -> int:
    remaining = timing.timeout - elapsed
    seconds = whole_seconds(delay)
    if remaining > 0 and seconds > remaining:
        seconds = max(1, whole_seconds(remaining))
    return max(1, seconds)


def timed_out(elapsed: float, timing: Timing) -> bool:
    return elapsed >= timing.timeout


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
    next_poll: NextPoll | None = None,
) -> Decision:
    """Turn one classified answer to `GET <operation>` into the next step. `next_poll` is the operation's
    schedule (shared.schedule.plans.Schedule.next_poll); None: the doubling one (next_regular_poll)."""
    polled = replace(state, polls=state.polls + 1)
    if answer.kind in (Kind.RUNNING, Kind.NOT_STARTED):
        regular = next_poll(elapsed) if next_poll is not None else next_regular_poll(elapsed, timing)
        delay = max(regular, answer.retry_after or 0.0)
        status = "running" if answer.kind is Kind.RUNNING else "notStarted"
        return Reschedule(
            _bounded(delay, elapsed, timing), replace(polled, transient_failures=0, last_transient=""), status
        )
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
    delay = max(transient_backoff(failures, timing, rng), answer.retry_after or 0.0)
    return Reschedule(_bounded(delay, elapsed, timing), polled, None)


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
