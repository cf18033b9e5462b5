"""One step of an operation's poll chain: what the queue-triggered function does with a message.

Per uneventful poll: one entity read (cancel and duplicate-chain check), one Graph GET, one message
sent with a visibility delay; the host deletes the message it delivered. Nothing is written to the table
unless something changed (Graph's status moved, the operation ended, or a redelivery claims the chain).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from shared.crypto.keyring import UnsealError
from shared.graph.answers import Answer, Kind, classify_operation, classify_result, infer_action, result_from
from shared.graph.client import RequestNotSendable, TransportFailure, UntrustedOrigin
from shared.graph.lro import Finish, Reschedule, decide, decide_result, timeout_error
from shared.graph.tokens import DelegatedCredentialError, TokenSource, delegated_tokens
from shared.lanes import slots as lane_slots
from shared.observability import telemetry
from shared.operations import finish as ending
from shared.operations.chain import Verdict, is_last_delivery, judge
from shared.operations.lifecycle import TERMINAL_FIELDS
from shared.operations.record import (
    DamagedRecord,
    Operation,
    is_operation_id,
    iso,
    parse_iso,
    with_event,
)
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.clock import detection_lag, schedule_for, timed_out, whole_seconds
from shared.storage.messages import BadMessage, PollState, decode

log = logging.getLogger(__name__)


async def handle_message(rt: Runtime, text: str, dequeue_count: int, message_id: str | None = None) -> None:
    """Never raises for a bad message or a Graph problem: those end here, logged, not retried forever.
    A storage failure raises (the host retries the message), except on the message's last delivery before
    the poison queue: then the operation ends `failed` (pollStepFailed) instead of being left running."""
    try:
        state = decode(text)
    except BadMessage as exc:
        log.error("dropping unreadable poll message: %s", exc)
        return
    if not is_operation_id(state.operation_id):
        log.error("dropping poll message with a malformed operation id")
        return
    telemetry.annotate(**{"bridge.operation.id": state.operation_id, "bridge.poll": state.polls + 1})
    try:
        live = await _own_chain(rt, state, dequeue_count, message_id)
        if live is None:
            return
        await poll_once(rt, *live)
    except DamagedRecord as exc:
        await _end_damaged_chain(rt, exc)
    except Exception as exc:
        if not is_last_delivery(dequeue_count, rt.settings.poll_max_dequeue_count):
            raise
        await _give_up(rt, state, dequeue_count, message_id, exc)


async def _end_damaged_chain(rt: Runtime, damaged: DamagedRecord) -> None:
    """A record this code cannot read (reported where it was read): retrying cannot help and poisoning the
    message tells nobody more, so the chain ends here and its lane slot goes to the workbook's next request.
    Its own GET names it; the purge retires it once stranded (shared/operations/purge.py)."""
    log.error("operation %s: poll message dropped, its record is damaged; its chain ends", damaged.operation_id)
    await lane_slots.free_damaged(rt, damaged.lane, damaged.operation_id)


async def _own_chain(
    rt: Runtime, state: PollState, dequeue_count: int, message_id: str | None
) -> tuple[Operation, PollState] | None:
    """The record and the state to poll with if this delivery carries the live chain; None if not."""
    for _ in range(5):
        op = await rt.store.get(state.operation_id)
        if op is None:
            log.error("dropping poll message for unknown operation %s", state.operation_id)
            return None
        if op.terminal:
            await ending.settle(rt, op)  # its ending step may have died before its webhook, fan-out or lane release
            log.info("operation %s is %s; poll message dropped", op.id, op.status)
            return None
        verdict = judge(op.generation, op.chain_message, state.generation, message_id, dequeue_count)
        if verdict is Verdict.STALE:
            log.info(
                "dropping stale message for %s (generation %s, current %s)", op.id, state.generation, op.generation
            )
            return None
        if verdict is Verdict.LIVE:
            return op, replace(state, generation=op.generation)
        # A redelivery: an earlier delivery may already have queued a successor. Claim a new generation and
        # the chain for this message id, so the successor is stale and this message stays live if it fails again.
        try:
            op = await rt.store.update(
                op.with_(generation=op.generation + 1, chain_message=message_id or None),
                {"generation", "chain_message"},
            )
        except Conflict:
            continue  # the record changed (another claim, a status write, a cancel): judge again
        log.info(
            "redelivered message for %s (dequeue count %s): chain claimed as generation %s",
            op.id,
            dequeue_count,
            op.generation,
        )
        return op, replace(state, generation=op.generation)
    raise RuntimeError(f"operation {state.operation_id} kept changing while its poll message was judged")


async def _give_up(rt: Runtime, state: PollState, dequeue_count: int, message_id: str | None, exc: Exception) -> None:
    """The last delivery failed: end the operation visibly rather than leave it running with no chain,
    unless the chain has moved on to another message meanwhile (then that one carries it)."""
    op = await rt.store.get(state.operation_id)
    if op is None or op.terminal:
        return
    if judge(op.generation, op.chain_message, state.generation, message_id, dequeue_count) is Verdict.STALE:
        log.warning("operation %s: a poll message failed on its last delivery, but another carries the chain", op.id)
        return
    error = {
        "code": "pollStepFailed",
        "message": f"The bridge's poll step failed {rt.settings.poll_max_dequeue_count} times in a row "
        f"({type(exc).__name__}); the operation was ended rather than left running. Graph's "
        "operation may have finished: check the workbook.",
    }
    log.error("operation %s: poll step failed on its last delivery (%s); ending it as failed", op.id, exc)
    await finish(rt, op, Finish("failed", replace(state, generation=op.generation), error=error), time.time())


async def poll_once(rt: Runtime, op: Operation, state: PollState) -> None:
    """The driver: reads the clock once, then classify -> decide -> apply, for the status GET and (when Graph
    says succeeded with a resourceLocation) the result GET. Every decision is polling.py's."""
    now = time.time()
    elapsed = now - parse_iso(op.created_at)
    if timed_out(elapsed, rt.timing):
        await finish(rt, op, Finish("timedOut", state, error=timeout_error(rt.timing, state)), now)
        return
    throttled = await lane_slots.throttled_for(rt, op, now)  # the workbook's shared throttle (and lane lease)
    if throttled > 0:
        await reschedule(rt, op, Reschedule(max(1, whole_seconds(throttled)), state, None), now)
        return
    try:
        acting = _tokens_for(rt, op)
    except UnsealError as exc:
        await finish(rt, op, Finish("failed", state, error={"code": "credentialUnavailable", "message": str(exc)}), now)
        return
    result: Any = None
    async with acting as tokens:  # a delegated step's token source is closed once it has Graph's answers
        answer, _ = await _get(rt, op.operation_url or "", classify_operation, now, tokens)
        seen_end = answer.kind in (Kind.SUCCEEDED, Kind.FAILED)  # Graph said the operation ended
        telemetry.annotate(**{"bridge.graph.answer": answer.kind.value})
        if answer.status_code == 429:
            await lane_slots.note_throttle(rt, op, answer.retry_after, now)  # its siblings wait it out too
        decision = decide(answer, state, elapsed, rt.timing, next_poll=schedule_for(op, rt.timing).next_poll)
        if isinstance(decision, Finish) and decision.needs_result:
            url = decision.result_url or ""
            with telemetry.span("fetch result", {"bridge.operation.id": op.id}):
                answer, body = await _get(rt, url, classify_result, now, tokens)
            decision = decide_result(answer, decision, elapsed, rt.timing)
            if isinstance(decision, Finish) and decision.status == "succeeded":
                result = result_from(op.action or infer_action(url), body)
    if isinstance(decision, Reschedule):
        await reschedule(rt, op, decision, now)
        return
    lag = detection_lag(op, rt.timing, now) if seen_end else None
    await finish(rt, op, decision, now, result, lag)


Classifier = Callable[[int, dict[str, str], bytes, float], Answer]


def _tokens_for(rt: Runtime, op: Operation) -> AbstractAsyncContextManager[TokenSource | None]:
    """Delegated operations act for their caller (their sealed token, unsealed here: UnsealError); others use
    the app's identity (None)."""
    sealed = op.credential_sealed if rt.settings.delegated is not None else None
    return delegated_tokens(rt.settings, rt.settings.keyring.unseal(sealed, op.id) if sealed else None)


async def _get(
    rt: Runtime, url: str, classify: Classifier, now: float, tokens: TokenSource | None = None
) -> tuple[Answer, bytes]:
    """GET a Graph URL (token only for GRAPH_BASE_URL's origin) and classify the answer. The bridge's own
    refusals (an untrusted origin, a delegated credential that is gone) are REJECTED answers marked `own`."""
    try:
        response = await rt.graph.send("GET", url, tokens=tokens)
    except DelegatedCredentialError as exc:
        return Answer(Kind.REJECTED, error={"code": exc.code, "message": str(exc)}, own=True), b""
    except UntrustedOrigin as exc:
        return Answer(
            Kind.REJECTED,
            own=True,
            error={
                "code": "untrustedOrigin",
                "message": f"Graph pointed at {exc.origin}, which is not GRAPH_BASE_URL's origin; not followed.",
            },
        ), b""
    except RequestNotSendable as exc:  # the same every time: not transient
        return Answer(Kind.REJECTED, own=True, error={"code": "requestNotSendable", "message": str(exc)}), b""
    except TransportFailure as exc:
        return Answer(Kind.TRANSIENT, reason=str(exc)), b""
    return classify(response.status, response.headers, response.body, now), response.body


async def reschedule(rt: Runtime, op: Operation, decision: Reschedule, now: float) -> None:
    if decision.status and decision.status != op.status:
        for _ in range(5):
            changed = op.with_(status=decision.status, updated_at=iso(now), poll_count=decision.state.polls)
            changed = with_event(changed, iso(now), "status", status=decision.status, polls=decision.state.polls)
            try:
                await rt.store.update(changed, {"status", "updated_at", "poll_count", "history"})
                break
            except Conflict:
                fresh = await _still_ours(rt, op, decision.state)
                if fresh is None:
                    return
                op = fresh
        else:
            raise RuntimeError(f"operation {op.id} kept changing while its status was written")
    await rt.polls.send(decision.state, decision.delay)


async def _still_ours(rt: Runtime, op: Operation, state: PollState) -> Operation | None:
    """After an ETag conflict: the fresh record if this chain still owns it (same generation, still active)."""
    fresh = await rt.store.get(op.id)
    if fresh is None or fresh.terminal or fresh.generation != state.generation:
        log.info(
            "operation %s changed while polling (canceled, finished or claimed by another chain); this chain ends",
            op.id,
        )
        return None
    return fresh


async def finish(
    rt: Runtime, op: Operation, decision: Finish, now: float, result: Any = None, lag: float | None = None
) -> None:
    """The poll chain's ending (shared/operations/finish.py): its conflict rule re-applies the same terminal write on
    a fresh record the chain still owns (same generation, still active), so an unrelated write (the start's
    follow-up marker) never ends a chain; a cancel, a terminal record or another chain's claim stops it. `lag`: the
    detection lag when a poll saw Graph's end (the metric); a succeeded one is learned from."""

    async def while_owned(done: Operation) -> Operation | None:
        for _ in range(5):
            try:
                return await rt.store.update(done, TERMINAL_FIELDS)
            except Conflict:
                fresh = await _still_ours(rt, op, decision.state)
                if fresh is None:
                    return None
                done = fresh.with_(**{name: getattr(done, name) for name in TERMINAL_FIELDS})
        raise RuntimeError(f"operation {op.id} kept changing while it was finished")

    end = ending.Ending(decision.status, decision.error, result, decision.state.polls, lag, learn=True)
    await ending.finish(rt, op, end, now, while_owned)
