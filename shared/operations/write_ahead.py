"""The start's write-ahead pieces that the HTTP side (shared/operations/start.py) and the lane's deferred start
(shared/lanes/admission.py) share: the intent record, sending the Excel request (after its ETag-guarded `starting`
mark: shared/operations/phases.py), abandoning an intent (Graph's answer and what follows it are
shared/operations/outcome.py's). Both use cases import this module, so neither
imports the other (see docs/design.md, "Write-ahead at start").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid
from shared.crypto.sealing import seal
from shared.graph.actions import table as action_table
from shared.graph.answers import innermost_code
from shared.graph.client import RequestNotSendable, TransportFailure
from shared.graph.lro import Accepted, Ended, GraphRefused, decide_start
from shared.graph.tokens import DelegatedCredentialError, TokenSource, delegated_tokens
from shared.lanes import slots as lane_slots
from shared.operations.finish import Ending
from shared.operations.outcome import end_start, record_outcome, unknown_error
from shared.operations.phases import send_deadline
from shared.operations.record import (  # Reply lives with the record: shared/api/responses.py imports no use case
    FAILED,
    NOT_STARTED,
    ROW_KEY,
    STARTING,
    SUCCEEDED,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Operation,
    iso,
)
from shared.operations.requests import IDEMPOTENCY_KEY_MAX_LENGTH, StartRequest, TrackRequest
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.clock import whole_seconds
from shared.schedule.learning import plan_for
from shared.storage.messages import PollState

log = logging.getLogger("shared.operations.start")  # the start's log lines keep the category they had


@dataclass(frozen=True)
class Acting:
    """Who a new operation acts for: its owner and, in delegated mode, their token (and its sealed form)."""

    caller: Caller
    assertion: str | None = None
    sealed_assertion: str | None = None


async def record_for(
    rt: Runtime,
    request: StartRequest | TrackRequest,
    operation_id: str,
    now: float,
    base_url: str,
    acting: Acting,
) -> Operation:
    """A new operation's record (`notStarted`) from its request, with the poll plan its kind has learned
    (shared/schedule/learning.py: plan_for). Each caller sets its own phase on it: tracked as is, the start's intent
    `prepared`, a lane's `waiting`."""
    plan = await plan_for(
        rt.history, rt.timing, acting.caller.owner, request.action, request.workbook, request.expected_duration
    )
    callback_url = request.callback_url
    return Operation(
        id=operation_id,
        status=NOT_STARTED,
        action=request.action,
        workbook=request.workbook,
        operation_url=request.operation_url if isinstance(request, TrackRequest) else None,
        created_at=iso(now),
        updated_at=iso(now),
        base_url=base_url,
        client_reference=request.client_reference,
        callback_sealed=seal(callback_url, rt.settings.webhook_secrets, operation_id) if callback_url else None,
        webhook_state=WEBHOOK_PENDING if callback_url else WEBHOOK_NONE,
        fail_on_error=request.fail_on_error,
        owner=acting.caller.owner,
        credential_sealed=acting.sealed_assertion,
        callback_format=request.callback_format if callback_url else None,
        poll_plan=plan.encode() or None,
    )


async def store_and_enqueue(rt: Runtime, op: Operation, delay: int) -> Operation:
    """Create a tracked operation's record, then its first queue message; undo the record if the message
    cannot be sent. (Tracking sends nothing to Graph, so undoing it loses nothing.)"""
    try:
        op = await rt.store.create(op)
    except Conflict:
        existing = await rt.store.get(op.id)
        if existing is None:
            raise
        return existing
    try:
        await rt.polls.send(PollState(op.id, op.generation), delay)
    except Exception:
        log.exception("could not enqueue operation %s; removing its record", op.id)
        await rt.store.delete(op.id)
        raise Problem(
            503,
            "storageUnavailable",
            "The operation could not be queued",
            "Nothing was stored; retry the request.",
            headers={"Retry-After": "5"},
        ) from None
    return op


def _reached_graph(exc: TransportFailure) -> bool:
    """Whether a failed request may have reached Graph: only a connection that was never made proves not."""
    return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)


async def abandon(rt: Runtime, intent: Operation, key_hash: str | None) -> None:
    """Graph refused (or was never reached): remove the intent and free the key, so a retry starts afresh. Only if
    the record is still the one this request wrote (its ETag): one a retry took over, or a cancel ended, stays."""
    try:
        if not await rt.store.delete_row(intent.id, ROW_KEY, intent.etag):
            log.info("operation %s changed since its intent was written (taken over or ended): kept", intent.id)
            return
        await rt.store.delete_index(intent.owner or "", intent.id)
    except Exception:  # left as it is: a retry with the key, a GET or the purge ends it (safe side)
        log.exception("could not remove the intent of operation %s", intent.id)
        return
    if key_hash:
        await rt.store.release_idempotency(key_hash)
    await lane_slots.on_terminal(rt, intent)  # its lane slot, if it held one


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
            claimed = await _claim_sending(rt, intent, tokens)
        except NotSent as exc:
            exc.intent = intent
            raise
        if claimed is None:
            return await rt.store.get(intent.id) or intent
        try:
            return await _exchange(rt, request, claimed, tokens, key_hash)
        except NotSent as exc:
            exc.intent = claimed
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


async def _exchange(
    rt: Runtime, request: StartRequest, intent: Operation, tokens: TokenSource | None, key_hash: str | None
) -> Operation:
    """The Excel request of a marked intent, cut at `send_deadline` (past it the outcome is unknown), and Graph's
    answer stored."""
    operation_id = intent.id
    try:
        async with asyncio.timeout(send_deadline(rt.settings.graph_timeout)):
            response = await rt.graph.start(action_table.request_for(rt.settings.graph_base_url, request), tokens)
    except RequestNotSendable as exc:  # never sent, and never sendable: ends now, not retried, not a 500
        log.error("start of operation %s cannot be sent: %s", operation_id, exc)
        error = {"code": "requestNotSendable", "message": f"{exc}; Graph was not called."}
        return await end_start(rt, intent, Ending(FAILED, error=error), time.time(), key_hash)
    except (TransportFailure, TimeoutError) as exc:
        if isinstance(exc, TransportFailure) and not _reached_graph(exc):
            raise NotSent(
                Problem(
                    503,
                    "graphUnavailable",
                    "Graph did not answer",
                    f"{exc}; the request never reached Graph and nothing was stored; retry.",
                    headers={"Retry-After": "5"},
                )
            ) from None
        detail = str(exc) or "no answer in time"
        log.warning("start of operation %s: %s after sending; its outcome is unknown", operation_id, detail)
        return await end_start(rt, intent, Ending(FAILED, error=unknown_error(detail)), time.time(), key_hash)
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
        ending = Ending(decision.status, error=decision.error, result=decision.result)
        return await end_start(rt, intent, ending, answered, key_hash)
    # Graph refused: it did not do the work
    raise NotSent(_graph_problem(decision), decision.status, decision.retry_after, decision.error)


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


def idempotency_key_hash(key: str, caller: Caller) -> str:
    """The stored form of a key: hashed, and scoped to its owner (two callers may use the same key)."""
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise invalid(
            [FieldError("Idempotency-Key", f"must be 1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters")]
        )
    return hashlib.sha256(f"{caller.owner}\n{key}".encode()).hexdigest()


async def unstored(rt: Runtime, operation_id: str, key_hash: str | None) -> Problem:
    """A new record could not be stored (nothing was sent to Graph): its Idempotency-Key claim is released and
    the caller gets a 503 to retry. For the start's intent and for a lane's waiter alike."""
    log.exception("could not store operation %s", operation_id)
    if key_hash:
        await rt.store.release_idempotency(key_hash)
    return Problem(
        503,
        "storageUnavailable",
        "The operation could not be stored",
        "Nothing was stored and nothing was sent to Graph; retry the request.",
        headers={"Retry-After": "5"},
    )
