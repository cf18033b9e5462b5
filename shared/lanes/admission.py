"""The lane per workbook as use cases: admit a start, advance the lane, release a slot, share Graph's throttling.

Decisions are in shared/lanes/line.py (pure), the entity in shared/lanes/store.py; this module applies them around
the operation records. A start that must wait is stored `waiting` with its validated request; the lane's
advance step (a `lane` message on the poll queue) starts it later with the same write-ahead start as the HTTP
path (start_flow.send_start). See docs/design.md, "The lane per workbook".
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.api.problems import Problem
from shared.crypto.keyring import UnsealError
from shared.lanes.line import (
    LaneFull,
    LaneState,
    admit,
    advance,
    plan_recheck,
    renew,
    throttle,
    throttle_wait,
)
from shared.lanes.slots import enabled, lanes_of, note_throttle, release_slot, send_recheck
from shared.lanes.store import lane_key
from shared.observability import telemetry
from shared.operations import write_ahead as start_flow
from shared.operations.finish import Ending, finish, guarded
from shared.operations.outcome import end_start, resume_start
from shared.operations.record import (
    FAILED,
    NOT_STARTED,
    PREPARED,
    TIMED_OUT,
    WAITING,
    DamagedRecord,
    Operation,
    iso,
    parse_iso,
    with_event,
)
from shared.operations.requests import StartRequest
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.clock import backoff_delay, timed_out, whole_seconds
from shared.storage.messages import BadMessage, decode_lane
from shared.wire.strict_json import dumps, loads_stored

log = logging.getLogger(__name__)

MAX_INLINE_REQUEST_CHARS = 30_000  # a longer request goes to a blob (Table Storage: 32 K characters a string)


# --- the start -------------------------------------------------------------------------------------------------


async def _stored_request(rt: Runtime, operation_id: str, request: StartRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workbook": request.workbook,
        "action": request.action,
        "parameters": request.parameters,
        "sessionId": request.session_id,
    }
    text = dumps(body, separators=(",", ":"))
    if len(text) > MAX_INLINE_REQUEST_CHARS and rt.store.results is not None:
        return {"blob": await rt.store.results.put(operation_id, text)}
    return body


async def request_of(rt: Runtime, op: Operation) -> StartRequest:
    """The validated request stored on a waiting record."""
    data = op.lane_request or {}
    if "blob" in data and rt.store.results is not None:
        text = await rt.store.results.read(str(data["blob"]))
        data = loads_stored(text) if text else {}
    return StartRequest(
        workbook=data["workbook"],
        action=data["action"],
        parameters=data["parameters"],
        session_id=data.get("sessionId"),
        callback_url=None,
        client_reference=op.client_reference,
        fail_on_error=op.fail_on_error,
        callback_format=op.callback_format,
    )


async def admit_start(
    rt: Runtime,
    request: StartRequest,
    operation_id: str,
    now: float,
    base_url: str,
    acting: start_flow.Acting,
    key_hash: str | None,
) -> Operation:
    """The HTTP start with a lane: store the record `waiting` (with its request), take a ticket; a request that
    holds a slot at once is sent now, exactly as without a lane; the others answer 202 with their place."""
    lane = lane_key(request.workbook, acting.caller.owner)
    record = await start_flow.record_for(rt, request, operation_id, now, base_url, acting)
    try:
        record = await rt.store.create(
            record.with_(
                status=WAITING,
                lane=lane,
                lane_request=await _stored_request(rt, operation_id, request),
                trace_parent=telemetry.current_traceparent(),
            )
        )
    except Conflict:
        existing = await rt.store.get(operation_id)
        if existing is None:
            raise
        return await resume_start(rt, existing, now, retry=True)
    except Exception:
        raise await start_flow.unstored(rt, operation_id, key_hash) from None
    concurrency, lease = rt.settings.workbook_concurrency, rt.settings.lane_lease_seconds

    def decide(state: LaneState) -> tuple[LaneState, tuple[bool, int | None, int | None]]:
        state, admission = admit(state, record.id, now, concurrency, lease)
        if admission.holds:
            return state, (True, None, None)
        state, delay = plan_recheck(state, now, concurrency)
        return state, (False, admission.position, delay)

    async def prepare(_: LaneState, out: tuple[bool, int | None, int | None]) -> None:
        await send_recheck(rt, lane, out[2])

    try:
        _, (holds, place, _delay) = await lanes_of(rt).change(lane, decide, prepare)
    except LaneFull:
        await start_flow.abandon(rt, record, key_hash)
        raise Problem(
            429,
            "workbookBusy",
            "Too many requests wait for this workbook",
            "Nothing was stored; retry later.",
            headers={"Retry-After": "30"},
        ) from None
    except Exception:
        log.exception("could not admit operation %s to its workbook's lane", operation_id)
        await start_flow.abandon(rt, record, key_hash)
        raise Problem(
            503,
            "storageUnavailable",
            "The operation could not be queued",
            "Nothing was sent to Graph; retry the request.",
            headers={"Retry-After": "5"},
        ) from None
    if holds:
        log.info("operation %s holds its workbook's lane; starting it now", record.id)
        return await _begin(rt, record, request, acting.assertion, key_hash, http=True)
    log.info("operation %s waits in its workbook's lane (position %s)", record.id, place)
    return record.with_(lane_position=place)


async def _begin(
    rt: Runtime, op: Operation, request: StartRequest, assertion: str | None, key_hash: str | None, *, http: bool
) -> Operation:
    """The write-ahead start of a slot holder: `waiting` -> `starting` (ETag-guarded: a duplicate advance never
    sends twice), then start_flow.send_start. Graph not doing the work: the HTTP path abandons (the caller
    retries); a deferred start waits out the throttle and tries again (bounded), or fails with Graph's error."""
    now = time.time()
    try:
        intent = await rt.store.update(
            with_event(
                op.with_(status=NOT_STARTED, start_phase=PREPARED, updated_at=iso(now), started_at=iso(now)),
                iso(now),
                "status",
                status=NOT_STARTED,
            ),  # its poll schedule counts from here
            {"status", "start_phase", "updated_at", "started_at", "history"},
        )
    except Conflict:
        log.info("operation %s was started (or ended) elsewhere", op.id)
        return await rt.store.get(op.id) or op
    except Exception:
        if not http:
            raise  # the lane message is retried: the record is still `waiting` and holds its slot
        # The record is stored (`waiting`, holding its slot): it stays accepted and the advance step sends it.
        # Answering "nothing was stored" instead could not be kept if the record's removal failed too.
        log.exception("could not store the intent of operation %s; its lane will start it", op.id)
        try:
            await rt.polls.send_lane(op.lane or "", 0)
        except Exception:
            log.warning("could not queue the lane of %s; its lease or a GET of it recovers it", op.id)
        return op.with_(lane_position=0)
    telemetry.lane_wait(now - parse_iso(op.created_at))  # once: the write above succeeds once per record
    try:
        return await start_flow.send_start(rt, request, intent, assertion, key_hash)
    except start_flow.NotSent as exc:
        if exc.graph_status == 429:
            await note_throttle(rt, intent, exc.retry_after, time.time())
        intent = exc.intent or intent  # as this request last wrote it (`starting` once marked)
        if http:
            await start_flow.abandon(rt, intent, key_hash)  # frees the slot too (on_terminal)
            if exc.problem is None:
                raise exc.__cause__ or exc from None
            raise exc.problem from None
        return await _deferred_not_sent(rt, intent, exc)


async def _deferred_not_sent(rt: Runtime, intent: Operation, exc: start_flow.NotSent) -> Operation:
    now = time.time()
    attempts = intent.lane_attempts + 1
    lane = intent.lane or ""
    if exc.retryable and attempts <= rt.settings.max_transient_failures:
        back = intent.with_(status=WAITING, start_phase=None, lane_attempts=attempts, updated_at=iso(now))
        try:
            back = await rt.store.update(back, {"status", "start_phase", "lane_attempts", "updated_at"})
        except Conflict:
            return await rt.store.get(intent.id) or intent
        delay = backoff_delay(attempts, exc.retry_after, rt.timing)
        lease = rt.settings.lane_lease_seconds
        # Keep the slot (renewed) and hold the whole lane until then: the advance step starts it again.
        await lanes_of(rt).change(lane, lambda s: (throttle(renew(s, intent.id, now, lease), now + delay), None))
        await rt.polls.send_lane(lane, whole_seconds(delay))
        log.warning(
            "deferred start of %s not sent (Graph %s); attempt %s again in %.0f s",
            intent.id,
            exc.graph_status,
            attempts,
            delay,
        )
        return back
    error = exc.error or {
        "code": "graphUnavailable",
        "message": f"Graph did not take the request after {attempts} attempts "
        f"(last: {exc.graph_status or 'not reached'}).",
    }
    log.warning("deferred start of %s failed (Graph %s)", intent.id, exc.graph_status)
    return await end_start(rt, intent, Ending(FAILED, error=error), now, None)


async def _end_unsent(rt: Runtime, op: Operation, status: str, error: dict[str, Any]) -> Operation:
    """End a waiting record that was never sent (nothing reached Graph), and free its slot. A record that moved
    meanwhile is left to what moved it."""
    return await finish(rt, op, Ending(status, error=error), time.time(), guarded(rt)) or op


async def start_deferred(rt: Runtime, op: Operation) -> Operation:
    """Start a `waiting` record that holds its slot (the advance step). One that waited past
    OPERATION_TIMEOUT_SECONDS ends `timedOut` unsent: it would be timed out right after Graph took it."""
    if timed_out(time.time() - parse_iso(op.created_at), rt.timing):
        return await _end_unsent(
            rt,
            op,
            TIMED_OUT,
            {
                "code": "operationTimedOut",
                "message": f"The request waited for its workbook's lane longer than {rt.timing.timeout:g} seconds "
                "(OPERATION_TIMEOUT_SECONDS); it was never sent to Graph.",
            },
        )
    assertion = None
    if op.credential_sealed and rt.settings.delegated is not None:
        try:
            assertion = rt.settings.keyring.unseal(op.credential_sealed, op.id)
        except UnsealError as exc:
            return await _end_unsent(rt, op, FAILED, {"code": "credentialUnavailable", "message": str(exc)})
    with telemetry.resumed_span("start deferred", op.trace_parent, {"bridge.operation.id": op.id}):
        return await _begin(rt, op, await request_of(rt, op), assertion, None, http=False)


# --- the advance step ------------------------------------------------------------------------------------------


async def handle_message(rt: Runtime, text: str) -> None:
    """A `lane` message on the poll queue. Raises only for storage failures (the host retries: safe twice)."""
    try:
        lane = decode_lane(text)
    except BadMessage as exc:
        log.error("dropping unreadable lane message: %s", exc)
        return
    if not enabled(rt):
        log.info("lane message dropped: WORKBOOK_CONCURRENCY=0")
        return
    await advance_lane(rt, lane)


async def _member(rt: Runtime, operation_id: str) -> Operation | None:
    """A lane member's record; one that cannot be read (reported) counts as gone: it will never be started or
    end by itself, so it must not hold the workbook."""
    try:
        return await rt.store.get(operation_id)
    except DamagedRecord:
        return None


async def _gone(rt: Runtime, state: LaneState, now: float) -> tuple[frozenset[str], dict[str, Operation]]:
    """Holders and the first waiters (as many as could take a free slot) whose record is terminal or missing."""
    gone: set[str] = set()
    seen: dict[str, Operation] = {}
    live = 0
    for holder in state.holders:
        op = await _member(rt, holder.operation_id)
        if op is None or op.terminal:
            gone.add(holder.operation_id)
        else:
            seen[op.id] = op
            live += holder.lease_until > now
    free = rt.settings.workbook_concurrency - live
    for waiter in state.waiting:
        if free <= 0:
            break
        op = await _member(rt, waiter.operation_id)
        if op is None or op.terminal:
            gone.add(waiter.operation_id)
        else:
            seen[op.id] = op
            free -= 1
    return frozenset(gone), seen


async def advance_lane(rt: Runtime, lane: str) -> None:
    """Free dead slots, promote waiters in order, start every holder still `waiting`; plan the next recheck."""
    now = time.time()
    concurrency, lease = rt.settings.workbook_concurrency, rt.settings.lane_lease_seconds
    current, _ = await lanes_of(rt).read(lane)
    gone, _ = await _gone(rt, current, now)

    def decide(state: LaneState) -> tuple[LaneState, tuple[tuple[str, ...], int | None]]:
        state, promoted = advance(state, now, concurrency, lease, gone)
        state, delay = plan_recheck(state, now, concurrency)
        return state, (promoted, delay)

    async def prepare(_: LaneState, out: tuple[tuple[str, ...], int | None]) -> None:
        await send_recheck(rt, lane, out[1])

    state, (promoted, _delay) = await lanes_of(rt).change(lane, decide, prepare)
    if promoted:
        log.info("lane %s: promoted %s", lane, ", ".join(promoted))
    if throttle_wait(state, now) > 0:
        return
    for holder in state.holders:
        op = await _member(rt, holder.operation_id)
        if op is None or op.terminal:
            await release_slot(rt, lane, holder.operation_id)
        elif op.status == WAITING:
            await start_deferred(rt, op)
        elif op.start_phase:  # a start that died half way: finish it as a GET would (never sent twice)
            op = await resume_start(rt, op, time.time(), retry=False)
            if op.status == WAITING:  # it died before sending: send it now
                await start_deferred(rt, op)
