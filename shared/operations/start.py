"""The HTTP side's start: start an Excel request or track an operation URL someone else got, idempotently
(shared/operations/reads.py reads, shared/operations/changes.py cancels and redelivers)."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid
from shared.delivery.resolver import check_target
from shared.delivery.targets import Refused
from shared.lanes import admission as lane_flow
from shared.lanes import slots as lane_slots
from shared.observability import telemetry
from shared.operations.outcome import resume_start
from shared.operations.phases import Phase, claim_left, judge, retry_after
from shared.operations.reads import rearm_if_stalled, reply_for
from shared.operations.record import (  # Reply lives with the record: shared/api/responses.py imports no use case
    PREPARED,
    WAITING,
    Operation,
    Reply,
    new_operation_id,
    parse_iso,
)
from shared.operations.requests import (
    StartRequest,
    TrackRequest,
    parse_json_body,
    parse_operation_request,
)
from shared.operations.store import Conflict
from shared.operations.write_ahead import (
    Acting,
    NotSent,
    abandon,
    idempotency_key_hash,
    record_for,
    send_start,
    store_and_enqueue,
    unstored,
)
from shared.runtime.worker import Runtime
from shared.schedule.clock import first_poll_delay
from shared.wire.strict_json import dumps

log = logging.getLogger(__name__)


def _delegated_assertion(rt: Runtime, caller: Caller, authorization: str | None) -> str | None:
    """In delegated mode the caller must be signed in; their bearer token is what Graph is called with."""
    if rt.settings.delegated is None:
        return None
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if caller.object_id is None or not token:
        raise Problem(
            401,
            "unauthenticated",
            "Sign-in required",
            "GRAPH_AUTH=delegated calls Graph as the signed-in caller: send an Entra ID access token "
            "for the bridge's API (App Service Authentication validates it).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


def _fingerprint(payload: Any) -> str:
    return hashlib.sha256(dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def start(
    rt: Runtime,
    body: bytes,
    idempotency_key: str | None,
    base_url: str,
    caller: Caller | None = None,
    authorization: str | None = None,
    content_type: str | None = None,
) -> Reply:
    caller = caller or Caller(rt.settings.default_owner)
    assertion = _delegated_assertion(rt, caller, authorization)
    payload = parse_json_body(body, content_type)
    request = parse_operation_request(
        payload,
        graph_origin=rt.settings.graph_origin,
        allow_private_callbacks=rt.settings.webhook_allow_private_networks,
        webhooks_configured=bool(rt.settings.webhook_secrets),
        allowed_callback_hosts=rt.settings.webhook_allowed_hosts,
        max_expected_duration=rt.timing.timeout,
        body_bytes=len(body),
    )
    if request.callback_url:
        try:
            await check_target(request.callback_url, rt.outbound, rt.resolver)
        except Refused as exc:
            raise invalid([FieldError("callbackUrl", exc.reason)]) from None
    now = time.time()
    operation_id = new_operation_id(now)
    key_hash = idempotency_key_hash(idempotency_key, caller) if idempotency_key is not None else None
    if key_hash:
        claim = await rt.store.claim_idempotency(key_hash, operation_id, _fingerprint(payload))
        if claim.existing:
            if claim.fingerprint != _fingerprint(payload):
                raise Problem(
                    409,
                    "idempotencyKeyReused",
                    "Idempotency-Key already used with another body",
                    "Use a new Idempotency-Key for a different request.",
                    [FieldError("Idempotency-Key", "already used with a different request body")],
                )
            existing = await rt.store.get(claim.operation_id)
            if existing is not None:
                phase, left = judge(
                    existing.start_phase, now - parse_iso(existing.updated_at), rt.settings.graph_timeout
                )
                if phase is Phase.IN_FLIGHT:
                    raise _in_progress(left)
                if phase is Phase.NOT_SENT and existing.status != WAITING and isinstance(request, StartRequest):
                    # The first attempt died before sending: nothing was done, so this request sends it.
                    op = await _send(rt, request, existing, Acting(caller, assertion), key_hash)
                    return reply_for(rt, op, time.time(), created=bool(op.callback_sealed))
                # The same request again: finish what the first one left (never send the Excel request again).
                resumed = await resume_start(rt, existing, now, retry=True)
                return reply_for(
                    rt, await rearm_if_stalled(rt, resumed, now), now, created=bool(resumed.callback_sealed)
                )
            if left := claim_left(now - claim.created_at):
                raise _in_progress(left)
            # The first attempt died before writing its intent, so it never called Graph: take over.
            operation_id = claim.operation_id
    acting = Acting(caller, assertion, rt.settings.keyring.seal(assertion, operation_id) if assertion else None)
    if isinstance(request, TrackRequest):
        try:
            op = await _track(rt, request, operation_id, now, base_url, acting)
        except BaseException:
            if key_hash:
                await rt.store.release_idempotency(key_hash)
            raise
    elif lane_slots.enabled(rt):  # one Excel request at a time per workbook (shared/lanes/admission.py)
        op = await lane_flow.admit_start(rt, request, operation_id, now, base_url, acting, key_hash)
    else:
        op = await _start(rt, request, operation_id, now, base_url, acting, key_hash)
    telemetry.annotate(**{"bridge.operation.id": op.id, "bridge.action": op.action or "tracked"})
    telemetry.operation_started(op.action)
    return reply_for(rt, op, time.time(), created=bool(op.callback_sealed))  # after Graph's answer: the poll is queued


def _in_progress(left: float) -> Problem:
    # 429, not 409: Logic Apps' default retry policy retries 408, 429 and 5xx but never 409
    # (error-exception-handling.md), and this request will succeed once the first one is stored. Retry-After:
    # the seconds left of the first request's window (shared/operations/phases.py), after which it is judged.
    return Problem(
        429,
        "requestInProgress",
        "A request with this Idempotency-Key is in progress",
        "Retry after the number of seconds in Retry-After.",
        headers={"Retry-After": str(retry_after(left))},
    )


async def _track(
    rt: Runtime, request: TrackRequest, operation_id: str, now: float, base_url: str, acting: Acting
) -> Operation:
    op = await record_for(rt, request, operation_id, now, base_url, acting)
    log.info("tracking operation %s (%s)", op.id, op.action or "action unknown")
    return await store_and_enqueue(rt, op, first_poll_delay(op, rt.timing, time.time()))


# What the bridge writes when it cannot know whether Graph applied the request (it was sent, no answer came
# back, or the answer could not be recorded): the operation ends `failed` with this code and is never sent again.


async def _start(
    rt: Runtime,
    request: StartRequest,
    operation_id: str,
    now: float,
    base_url: str,
    acting: Acting,
    key_hash: str | None,
) -> Operation:
    """Write-ahead: the intent (`prepared`) is stored before the Excel request, marked `starting` just before it
    is sent, Graph's answer (`answered`) stored right after it, and only then is the follow-up queued."""
    intent = (await record_for(rt, request, operation_id, now, base_url, acting)).with_(start_phase=PREPARED)
    try:
        intent = await rt.store.create(intent)
    except Conflict:
        existing = await rt.store.get(operation_id)
        if existing is None:
            raise
        return await resume_start(rt, existing, now, retry=True)
    except Exception:
        raise await unstored(rt, operation_id, key_hash) from None
    return await _send(rt, request, intent, acting, key_hash)


async def _send(
    rt: Runtime, request: StartRequest, intent: Operation, acting: Acting, key_hash: str | None
) -> Operation:
    """Send a `prepared` intent (this request's own, or one whose request died before sending it); when Graph
    did not do the work, remove it and answer why."""
    try:
        return await send_start(rt, request, intent, acting.assertion, key_hash)
    except NotSent as exc:
        await abandon(rt, exc.intent or intent, key_hash)
        if exc.problem is None:
            raise exc.__cause__ or exc from None
        raise exc.problem from None
