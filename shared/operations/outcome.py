"""Graph's answer to a start and what follows it: the answer stored before anything else can fail, a start that
ended at once finished through shared/operations/finish.py, the follow-up queued (the first poll, or what the finish
queued, again), and a start its request left undone resumed. The intent, sending the Excel request and abandoning
it are shared/operations/write_ahead.py's (see docs/design.md, "Write-ahead at start").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.api.problems import Problem
from shared.operations.finish import Ending, Write, finish, guarded, settle
from shared.operations.lifecycle import OUTCOME_FIELDS
from shared.operations.phases import Phase, judge
from shared.operations.record import ACTIVE, ANSWERED, FAILED, WAITING, Operation, iso, parse_iso, status_url
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.clock import first_poll_delay
from shared.storage.messages import PollState

log = logging.getLogger("shared.operations.start")  # the start's log lines keep the category they had

OUTCOME_UNKNOWN = "graphOutcomeUnknown"


FOLLOW_UP_GRACE_SECONDS = 10.0  # a GET finishes an `answered` start left this long (its request died)


def unknown_error(detail: str) -> dict[str, Any]:
    """The error of a start whose Excel request may have reached Graph, with no answer stored."""
    return {
        "code": OUTCOME_UNKNOWN,
        "message": f"The request was sent to Graph but its outcome is unknown ({detail}); the bridge will not send "
        "it again. Check the workbook before repeating it with a new Idempotency-Key.",
    }


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
        raise reached_problem(outcome, key_hash, "its outcome could not be confirmed") from None
    if current is not None and current.start_phase == ANSWERED:
        return await complete_start(rt, current, retry=True, key_hash=key_hash)
    return current or outcome


async def _write_answer(rt: Runtime, outcome: Operation, key_hash: str | None) -> Operation:
    """The start's write of Graph's answer (before anything else can fail). A storage failure of an answer with a
    result is tried once more without it (resultNotStored); Conflict is the caller's to resolve."""
    try:
        return await _store_outcome(rt, outcome)
    except Conflict:
        raise
    except Exception:
        log.exception("could not store Graph's answer for operation %s", outcome.id)
        if outcome.result is None:
            raise reached_problem(outcome, key_hash, "its outcome could not be stored") from None
    # Perhaps only the result could not be stored (its blob): keep the outcome, say the result is lost.
    bare = outcome.with_(
        result=None,
        error={
            "code": "resultNotStored",
            "message": "Graph did the work, but the bridge could not store its result; read it from the workbook.",
        },
    )
    try:
        return await rt.store.update(bare, OUTCOME_FIELDS)
    except Conflict:
        raise
    except Exception:
        log.exception("could not store Graph's answer for operation %s, even without its result", outcome.id)
        raise reached_problem(outcome, key_hash, "its outcome could not be stored") from None


async def record_outcome(rt: Runtime, outcome: Operation, key_hash: str | None) -> Operation:
    """Store Graph's `202 + Location` (the operation goes on), then queue its first poll."""
    outcome = outcome.with_(start_phase=ANSWERED)
    try:
        op = await _write_answer(rt, outcome, key_hash)
    except Conflict:
        return await _after_conflict(rt, outcome, key_hash)
    return await complete_start(rt, op, retry=False, key_hash=key_hash)


async def _finish_answered(
    rt: Runtime, op: Operation, ending: Ending, now: float, write: Write, key_hash: str | None, *, sent: bool
) -> Operation | None:
    """A start's ending through the finish use case, marked `answered` until complete_start clears it. `sent`: this
    request holds Graph's answer, which is stored even if the fan-out cannot be queued first. A failure after the
    terminal write (queuing its webhook) is a 503 that says Graph was reached, as any follow-up's."""
    written = False

    async def marked(done: Operation) -> Operation | None:
        nonlocal written
        stored = await write(done)
        written = True
        return stored

    try:
        return await finish(rt, op, ending, now, marked, fanout_required=not sent, start_phase=ANSWERED)
    except Exception as exc:
        if not written or isinstance(exc, Problem):
            raise
        log.exception("could not queue the follow-up of operation %s", op.id)
        raise reached_problem(op, key_hash, "its outcome is stored but what follows could not be queued") from None


async def end_start(rt: Runtime, intent: Operation, ending: Ending, now: float, key_hash: str | None) -> Operation:
    """A start that ended at once (Graph's synchronous answer, an untrusted or missing Location, an unknown
    outcome, a request that cannot be sent, a deferred start Graph refused): finished with the start's own write,
    then the phase cleared."""

    async def answer(done: Operation) -> Operation:
        return await _write_answer(rt, done, key_hash)

    try:
        op = await _finish_answered(rt, intent, ending, now, answer, key_hash, sent=True)
    except Conflict:
        return await _after_conflict(rt, intent, key_hash)
    return await complete_start(rt, op or intent, retry=False, key_hash=key_hash)


def reached_problem(op: Operation, key_hash: str | None, what: str) -> Problem:
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


async def complete_start(rt: Runtime, op: Operation, *, retry: bool, key_hash: str | None = None) -> Operation:
    """Queue what follows Graph's stored answer, then clear the `answered` phase: the first poll of an active
    operation; for one that ended, what its finish queued (again, idempotently, on a retry: settle). Idempotent: a
    retry re-arms the chain with a new generation so that a message the first attempt may have sent is stale
    (exactly one chain)."""
    if op.start_phase != ANSWERED:
        return op
    try:
        if op.status in ACTIVE:
            if retry:
                op = await rt.store.update(
                    op.with_(generation=op.generation + 1, chain_message=None), {"generation", "chain_message"}
                )
            await rt.polls.send(
                PollState(op.id, op.generation, op.poll_count),
                0 if retry else first_poll_delay(op, rt.timing, time.time()),
            )
        elif retry:
            await settle(rt, op)  # its webhook, fan-out and lane slot, if the request that ended it died before
        op = await rt.store.update(op.with_(start_phase=None), {"start_phase"})
    except Conflict:
        return await rt.store.get(op.id) or op
    except Exception:
        log.exception("could not queue the follow-up of operation %s", op.id)
        raise reached_problem(op, key_hash, "its outcome is stored but what follows could not be queued") from None
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
            dict(NOT_SENT_ERROR)
            if verdict is Phase.NOT_SENT
            else unknown_error("the request that sent it did not finish")
        )
        ended = await _finish_answered(
            rt, op, Ending(FAILED, error=error), now, guarded(rt, OUTCOME_FIELDS), None, sent=False
        )
        if ended is None:
            return await rt.store.get(op.id) or op
        log.warning(
            "operation %s: its start %s; ended as failed",
            op.id,
            "was never sent" if verdict is Phase.NOT_SENT else "has an unknown outcome",
        )
        return await complete_start(rt, ended, retry=False)
    if op.start_phase == ANSWERED and (retry or now - parse_iso(op.updated_at) >= FOLLOW_UP_GRACE_SECONDS):
        return await complete_start(rt, op, retry=True)
    return op


NOT_SENT = "startNotSent"
NOT_SENT_ERROR = {
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
