"""The start's write-ahead pieces that the HTTP side (shared/operations/start.py) and the lane's deferred start
(shared/lanes/admission.py) share: the intent record, recording Graph's answer and what follows it, finishing a
start its request left undone, abandoning an intent (sending is shared/operations/sending.py). Both use cases
import this module, so neither imports the other (see docs/design.md, "Write-ahead at start").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid
from shared.crypto.sealing import seal
from shared.delivery.fanout import queue_fanout
from shared.delivery.operation_webhooks import queue_next_attempt
from shared.graph.lro import whole_seconds
from shared.lanes import slots as lane_slots
from shared.observability import telemetry
from shared.operations.lifecycle import OUTCOME_FIELDS, schedule_for, terminal_state
from shared.operations.phases import Phase, judge
from shared.operations.record import (  # Reply lives with the record: shared/api/responses.py imports no use case
    ACTIVE,
    ANSWERED,
    FAILED,
    FANOUT_PENDING,
    NOT_STARTED,
    ROW_KEY,
    WAITING,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Operation,
    iso,
    parse_iso,
    status_url,
)
from shared.operations.requests import IDEMPOTENCY_KEY_MAX_LENGTH, StartRequest, TrackRequest
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
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
    `starting`, a lane's `waiting`."""
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


OUTCOME_UNKNOWN = "graphOutcomeUnknown"


FOLLOW_UP_GRACE_SECONDS = 10.0  # a GET finishes an `answered` start left this long (its request died)


def unknown_error(detail: str) -> dict[str, Any]:
    return {
        "code": OUTCOME_UNKNOWN,
        "message": f"The request was sent to Graph but its outcome is unknown ({detail}); the bridge will not send "
        "it again. Check the workbook before repeating it with a new Idempotency-Key.",
    }


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


OUTCOME_WRITE_BACKOFF = (0.5, 1.0, 2.0)  # then give up: 4 writes, each with the SDK's own retries inside


async def _store_outcome(rt: Runtime, outcome: Operation) -> Operation:
    """Write Graph's answer, retrying a storage failure a few times: it is the one write that stands between a
    side effect Graph already did and losing it. Conflict (the entity changed) is the caller's to read."""
    for pause in (*OUTCOME_WRITE_BACKOFF, None):
        try:
            return await rt.store.update(outcome, OUTCOME_FIELDS)
        except Conflict:
            raise
        except Exception as exc:
            if pause is None:
                raise
            log.warning(
                "storing Graph's answer for operation %s failed (%s); trying again in %s s",
                outcome.id,
                type(exc).__name__,
                pause,
            )
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


async def _after_conflict(rt: Runtime, outcome: Operation, key_hash: str | None) -> Operation:
    """The answer's write met a changed entity: a write of ours whose reply was lost, a keyed retry that took
    over, or a cancel. If the stored record holds an answer, finish it (re-armed: one chain whoever else is
    finishing it); otherwise it was resolved elsewhere."""
    try:
        current = await rt.store.get(outcome.id)
    except Exception:
        log.exception("could not read operation %s after a conflict", outcome.id)
        raise _reached_problem(outcome, key_hash, "its outcome could not be confirmed") from None
    if current is not None and current.start_phase == ANSWERED:
        return await complete_start(rt, current, retry=True, key_hash=key_hash)
    return current or outcome


async def record_outcome(rt: Runtime, outcome: Operation, key_hash: str | None) -> Operation:
    """Store Graph's answer (before anything else can fail), then queue what follows."""
    outcome = outcome.with_(start_phase=ANSWERED)
    if outcome.terminal:
        try:
            await queue_fanout(rt, outcome)  # before the write, as in poller.finish; duplicates are harmless
        except Exception:
            log.exception("could not queue the fan-out of operation %s (a retry or GET queues it)", outcome.id)
    try:
        op = await _store_outcome(rt, outcome)
    except Conflict:
        return await _after_conflict(rt, outcome, key_hash)
    except Exception:
        log.exception("could not store Graph's answer for operation %s", outcome.id)
        if outcome.result is None:
            raise _reached_problem(outcome, key_hash, "its outcome could not be stored") from None
        # Perhaps only the result could not be stored (its blob): keep the outcome, say the result is lost.
        bare = outcome.with_(
            result=None,
            error={
                "code": "resultNotStored",
                "message": "Graph did the work, but the bridge could not store its result; read it from the workbook.",
            },
        )
        try:
            op = await rt.store.update(bare, OUTCOME_FIELDS)
        except Conflict:
            return await _after_conflict(rt, outcome, key_hash)
        except Exception:
            log.exception("could not store Graph's answer for operation %s, even without its result", outcome.id)
            raise _reached_problem(outcome, key_hash, "its outcome could not be stored") from None
    if op.terminal:  # it ended at once (synchronous answer, or outcome unknown)
        telemetry.operation_finished(op.action, op.status, op.poll_count)
    return await complete_start(rt, op, retry=False, key_hash=key_hash)


def _reached_problem(op: Operation, key_hash: str | None, what: str) -> Problem:
    how = (
        "Retry with the same Idempotency-Key: the bridge finishes it without calling Graph again."
        if key_hash
        else f"Do not send it again: read {status_url(op)} (it finishes, or ends failed with {OUTCOME_UNKNOWN} "
        "if the outcome stays unknown)."
    )
    return Problem(
        503,
        "storageUnavailable",
        "The request reached Graph but the bridge could not finish it",
        f"The Excel request was sent to Graph as operation {op.id}; {what}. {how}",
        extra={"operationId": op.id, "reachedGraph": True},
        headers={"Retry-After": "5"},
    )


def first_poll_delay(rt: Runtime, op: Operation, now: float) -> int:
    """Whole seconds from `now` to the record's first planned poll (its schedule_for; cold: 2 s after creation)."""
    return whole_seconds(schedule_for(op, rt.timing).next_poll(max(0.0, now - parse_iso(op.created_at))))


async def complete_start(rt: Runtime, op: Operation, *, retry: bool, key_hash: str | None = None) -> Operation:
    """Queue what follows Graph's stored answer: the first poll, or the webhook (the fan-out was queued before
    the write; a retry queues it again, harmlessly). Idempotent: a retry re-arms the chain with a new
    generation so that a message the first attempt may have sent is stale (exactly one chain)."""
    if op.start_phase != ANSWERED:
        return op
    try:
        if op.status in ACTIVE:
            if retry:
                op = await rt.store.update(
                    op.with_(generation=op.generation + 1, chain_message=None), {"generation", "chain_message"}
                )
            await rt.polls.send(
                PollState(op.id, op.generation, op.poll_count), 0 if retry else first_poll_delay(rt, op, time.time())
            )
        else:
            if retry and op.fanout_state == FANOUT_PENDING:
                await queue_fanout(rt, op)
            if op.webhook_state == WEBHOOK_PENDING and op.webhook_attempts == 0:
                await queue_next_attempt(rt, op)  # the deliverer sends attempt 1 once, however often queued
        op = await rt.store.update(op.with_(start_phase=None), {"start_phase"})
    except Conflict:
        return await rt.store.get(op.id) or op
    except Exception:
        log.exception("could not queue the follow-up of operation %s", op.id)
        raise _reached_problem(op, key_hash, "its outcome is stored but what follows could not be queued") from None
    if op.terminal:
        await lane_slots.on_terminal(rt, op)  # a start that ended at once frees its workbook's lane
    return op


async def resume_start(rt: Runtime, op: Operation, now: float, *, retry: bool) -> Operation:
    """Finish a start its request left undone (shared/operations/phases.py says what a stale phase means).
    `prepared` past its window: never sent, nothing was done; a lane's request goes back in line, any other ends
    `failed` / startNotSent (a keyed retry sends it instead: shared/operations/start.py). `starting` past its
    window: maybe sent, the outcome is unknown: it ends failed, never re-sent. `answered`: queue the follow-up
    (at once for a retry with the key; after a grace period for a GET)."""
    verdict, _ = judge(op.start_phase, now - parse_iso(op.updated_at), rt.settings.graph_timeout)
    if verdict is Phase.NOT_SENT and op.lane_request is not None:
        return await _back_in_line(rt, op, now)
    if verdict in (Phase.NOT_SENT, Phase.UNKNOWN):
        error = (
            _not_sent_error() if verdict is Phase.NOT_SENT else unknown_error("the request that sent it did not finish")
        )
        ended = terminal_state(op, FAILED, now, error=error).with_(start_phase=ANSWERED)
        await queue_fanout(rt, ended)
        try:
            op = await rt.store.update(ended, OUTCOME_FIELDS)
        except Conflict:
            return await rt.store.get(op.id) or op
        log.warning(
            "operation %s: its start %s; ended as failed",
            op.id,
            "was never sent" if error["code"] == NOT_SENT else "has an unknown outcome",
        )
        return await complete_start(rt, op, retry=True)
    if op.start_phase == ANSWERED and (retry or now - parse_iso(op.updated_at) >= FOLLOW_UP_GRACE_SECONDS):
        return await complete_start(rt, op, retry=True)
    return op


NOT_SENT = "startNotSent"


def _not_sent_error() -> dict[str, Any]:
    return {
        "code": NOT_SENT,
        "message": "The bridge stopped before the Excel request was sent to Graph, so nothing was done. Send the "
        "request again (with a new Idempotency-Key).",
    }


async def _back_in_line(rt: Runtime, op: Operation, now: float) -> Operation:
    """A lane's request that was never sent: `waiting` again, holding its slot, for the lane to send."""
    back = op.with_(status=WAITING, start_phase=None, updated_at=iso(now))
    try:
        back = await rt.store.update(back, {"status", "start_phase", "updated_at"})
    except Conflict:
        return await rt.store.get(op.id) or op
    log.warning("operation %s: its deferred start was never sent; waiting again", op.id)
    return back


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
