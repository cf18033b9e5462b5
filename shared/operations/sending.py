"""Sending a start's Excel request: the one send path of the HTTP start, of a keyed retry that takes a dead start
over, and of a deferred start from the workbook's lane (shared/lanes/admission.py). It fetches the token, writes
the `starting` mark (ETag-guarded: whoever writes it sends; shared/operations/phases.py), sends, and hands Graph's
answer to the write-ahead (shared/operations/write_ahead.py record_outcome); NotSent when Graph did not do the
work, so the caller removes the intent or puts it back in line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from shared.api.problems import Problem
from shared.graph.answers import innermost_code
from shared.graph.client import TransportFailure
from shared.graph.lro import Accepted, Ended, GraphRefused, decide_start, whole_seconds
from shared.graph.tokens import DelegatedCredentialError, TokenSource, delegated_tokens
from shared.operations.lifecycle import terminal_state
from shared.operations.phases import send_deadline
from shared.operations.record import FAILED, STARTING, SUCCEEDED, Operation, iso
from shared.operations.requests import StartRequest
from shared.operations.store import Conflict
from shared.operations.write_ahead import record_outcome, unknown_error
from shared.runtime.worker import Runtime

log = logging.getLogger("shared.operations.start")  # the start's log lines keep the category they had


class NotSent(Exception):
    """Graph did not do the work: it refused (`graph_status`), was provably never reached (None), or the call
    failed before a request went out (`problem` None: the original exception is the cause). The HTTP start
    abandons the intent and answers `problem`; a deferred start (shared/lanes/admission.py) retries or fails it."""

    def __init__(
        self,
        problem: Problem | None,
        graph_status: int | None = None,
        retry_after: float | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(problem.title if problem else "not sent")
        self.problem = problem
        self.graph_status = graph_status
        self.retry_after = retry_after
        self.error = error
        self.intent: Operation | None = None  # the record as this request last wrote it (to abandon it by its ETag)

    @property
    def retryable(self) -> bool:
        """Nothing was done and trying later may work: never reached, throttled, or Graph's own 5xx/408."""
        return self.graph_status is None or self.graph_status in (408, 429) or self.graph_status >= 500


async def send_start(
    rt: Runtime, request: StartRequest, intent: Operation, assertion: str | None, key_hash: str | None
) -> Operation:
    """Send the Excel request of a stored intent (`prepared`) and record Graph's answer: the one start path of
    the HTTP request, of a keyed retry that takes a dead one over, and of a deferred start from the workbook's
    lane. NotSent when Graph did not do the work (its `intent` is the record as this request last wrote it). When
    the `starting` mark loses to another writer (a retry took it over, a cancel or a GET ended it) nothing is
    sent and the record is answered as it is."""
    async with delegated_tokens(rt.settings, assertion) as tokens:  # closed when the request is answered
        try:
            return await _send(rt, request, intent, tokens, key_hash)
        except NotSent as exc:
            exc.intent = exc.intent or intent
            raise


def _delegated(exc: DelegatedCredentialError) -> NotSent:
    """The caller's credential cannot give a Graph token: Graph was not called (or answered 401)."""
    status = 401 if exc.code == "delegatedCredentialExpired" else 403
    problem = Problem(status, exc.code, "Graph cannot be called on your behalf", str(exc))
    return NotSent(problem, 401, error={"code": exc.code, "message": str(exc)})


async def _claim_sending(rt: Runtime, intent: Operation, tokens: TokenSource | None) -> Operation | None:
    """The token first (failing there sends nothing), then `starting`: the ETag-guarded mark that from now on the
    request may reach Graph. None when another writer got there first: this request must not send."""
    try:
        await (tokens or rt.tokens).token()
    except DelegatedCredentialError as exc:
        raise _delegated(exc) from None
    except Exception as exc:  # azure-identity fails before any request to Graph
        raise NotSent(None) from exc
    try:
        return await rt.store.update(
            intent.with_(start_phase=STARTING, updated_at=iso(time.time())), {"start_phase", "updated_at"}
        )
    except Conflict:
        log.info("operation %s: its start was taken over or ended meanwhile; this request sends nothing", intent.id)
        return None
    except Exception as exc:
        log.warning("operation %s: could not mark its start (%s); nothing was sent", intent.id, type(exc).__name__)
        problem = Problem(
            503,
            "storageUnavailable",
            "The operation could not be stored",
            "Nothing was sent to Graph; retry the request.",
            headers={"Retry-After": "5"},
        )
        raise NotSent(problem) from None


async def _send(
    rt: Runtime, request: StartRequest, intent: Operation, tokens: TokenSource | None, key_hash: str | None
) -> Operation:
    claimed = await _claim_sending(rt, intent, tokens)
    if claimed is None:
        return await rt.store.get(intent.id) or intent
    try:
        return await _exchange(rt, request, claimed, tokens, key_hash)
    except NotSent as exc:
        exc.intent = claimed
        raise


async def _exchange(
    rt: Runtime, request: StartRequest, intent: Operation, tokens: TokenSource | None, key_hash: str | None
) -> Operation:
    """The Excel request of a marked intent, cut at `send_deadline`, and Graph's answer stored."""
    try:
        async with asyncio.timeout(send_deadline(rt.settings.graph_timeout)):
            response = await rt.graph.start(rt.settings.graph_base_url, request, tokens)
    except (TransportFailure, TimeoutError) as exc:
        if isinstance(exc, TransportFailure) and not _reached_graph(exc):
            problem = Problem(
                503,
                "graphUnavailable",
                "Graph did not answer",
                f"{exc}; the request never reached Graph and nothing was stored; retry.",
                headers={"Retry-After": "5"},
            )
            raise NotSent(problem) from None
        detail = str(exc) or "no answer in time"
        log.warning("start of operation %s: %s after sending; its outcome is unknown", intent.id, detail)
        unknown = terminal_state(intent, FAILED, time.time(), error=unknown_error(detail))
        return await record_outcome(rt, unknown, key_hash)
    except DelegatedCredentialError as exc:  # a refresh after Graph answered 401: Graph did not do the work
        raise _delegated(exc) from None
    except Exception as exc:
        # Anything else fails before a request is sent, or after Graph answered 401 to it: either way Graph did
        # not do the work.
        raise NotSent(None) from exc
    answered = time.time()
    decision = decide_start(
        response.status, response.headers, response.body, request.action, rt.graph.trusted, rt.settings.graph_origin
    )
    if isinstance(decision, Accepted):
        log.info("started %s as operation %s", request.action, intent.id)
        return await record_outcome(
            rt, intent.with_(operation_url=decision.location, updated_at=iso(answered)), key_hash
        )
    if isinstance(decision, Ended):
        if decision.status == SUCCEEDED:
            log.info("%s for operation %s finished synchronously (%s)", request.action, intent.id, response.status)
        return await record_outcome(
            rt,
            terminal_state(intent, decision.status, answered, result=decision.result, error=decision.error),
            key_hash,
        )
    # Graph refused: it did not do the work
    raise NotSent(_graph_problem(decision), decision.status, decision.retry_after, decision.error)


def _reached_graph(exc: TransportFailure) -> bool:
    """Whether a failed request may have reached Graph: only a connection that was never made proves not."""
    return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)


def _graph_problem(refused: GraphRefused) -> Problem:
    error = refused.error
    code = innermost_code(error)
    if refused.retryable:
        return Problem(
            503,
            code,
            "Graph is busy or unavailable",
            "Nothing was stored; retry the request.",
            extra={"graphStatus": refused.status, "graphError": error},
            headers={"Retry-After": str(max(1, whole_seconds(refused.retry_after or 5)))},
        )
    if refused.status == 401:
        return Problem(
            502,
            code,
            "Graph refused the bridge's credentials",
            "The bridge's token was rejected even after a refresh.",
            extra={"graphStatus": refused.status, "graphError": error},
        )
    return Problem(
        refused.status if 400 <= refused.status < 500 else 502,
        code,
        "Graph rejected the request",
        str(error.get("message") or ""),
        extra={"graphStatus": refused.status, "graphError": error},
    )
