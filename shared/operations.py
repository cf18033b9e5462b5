"""What the HTTP functions do: start or track, read, list and cancel operations."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import lane_flow, lane_slots, telemetry
from .deliverer import queue_next_attempt
from .fanout import queue_fanout
from .graph_answers import innermost_code
from .identity import Caller
from .lifecycle import TERMINAL_FIELDS, schedule_for, terminal_state
from .messages import PollState
from .outbound import Refused, check_target
from .polling import status_retry_after
from .problems import FieldError, Problem, invalid, not_found
from .records import (  # Reply lives with the record so shared/responses.py need not import this module
    ACTIVE,
    CANCELED,
    FAILED,
    STARTING,
    STATUSES,
    TIMED_OUT,
    WAITING,
    WEBHOOK_FAILED,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Operation,
    Reply,
    is_operation_id,
    iso,
    new_operation_id,
    parse_iso,
    status_url,
    to_json,
    with_event,
)
from .redelivery import claim_lease, redelivery_wait
from .runtime import Runtime
from .start_flow import (
    IDEMPOTENCY_IN_FLIGHT_SECONDS,
    Acting,
    NotSent,
    abandon,
    first_poll_delay,
    record_for,
    resume_start,
    send_start,
    store_and_enqueue,
)
from .status_links import ROUTE as STATUS_ROUTE
from .status_links import LinkRefused, link_expiry
from .store import BadContinuation, Conflict, Page
from .strict_json import dumps
from .validation import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    LIST_TOP_DEFAULT,
    LIST_TOP_MAX,
    StartRequest,
    TrackRequest,
    parse_json_body,
    parse_operation_request,
)

log = logging.getLogger(__name__)

STALL_GRACE_SECONDS = 300.0


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


@dataclass(frozen=True)
class StatusLink:
    """Access through a signed status URL (`se`, `sig` from its query) instead of a caller identity."""

    expires: str | None
    sig: str | None


Access = Caller | StatusLink


def status_link(rt: Runtime, op: Operation) -> str:
    """The operation's status URL for pollers: signed when STATUS_LINK_KEYS is set, else the keyed route."""
    signer = rt.settings.status_links
    if not signer.configured:
        return status_url(op)
    expires = link_expiry(parse_iso(op.created_at), rt.timing.timeout)
    return f"{op.base_url}/{STATUS_ROUTE}/{op.id}?{signer.query(op.id, expires)}"


def _reply(rt: Runtime, op: Operation, now: float, *, created: bool = False) -> Reply:
    """Retry-After while active: the time to the poll the record's schedule plans next (the poller follows the
    same schedule_for, so nothing is written per poll to keep them agreeing)."""
    retry = (
        status_retry_after(now - parse_iso(op.created_at), rt.timing, next_poll=schedule_for(op, rt.timing).next_poll)
        if op.status in ACTIVE
        else None
    )
    return Reply(op, retry, status_link(rt, op), created)


def _fingerprint(payload: Any) -> str:
    return hashlib.sha256(dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_idempotency_key(key: str, caller: Caller) -> str:
    """The stored form of a key: hashed, and scoped to its owner (two callers may use the same key)."""
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise invalid(
            [FieldError("Idempotency-Key", f"must be 1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters")]
        )
    return hashlib.sha256(f"{caller.owner}\n{key}".encode()).hexdigest()


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
    )
    if request.callback_url:
        try:
            await check_target(request.callback_url, rt.outbound, rt.resolver)
        except Refused as exc:
            raise invalid([FieldError("callbackUrl", exc.reason)]) from None
    now = time.time()
    operation_id = new_operation_id(now)
    key_hash = _check_idempotency_key(idempotency_key, caller) if idempotency_key is not None else None
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
                in_flight = now - parse_iso(existing.updated_at) < IDEMPOTENCY_IN_FLIGHT_SECONDS
                if existing.start_phase == STARTING and in_flight:
                    raise _in_progress()
                # The same request again: finish what the first one left (never send the Excel request again).
                resumed = await resume_start(rt, existing, now, retry=True)
                return _reply(rt, await rearm_if_stalled(rt, resumed, now), now, created=bool(resumed.callback_sealed))
            if now - claim.created_at < IDEMPOTENCY_IN_FLIGHT_SECONDS:
                raise _in_progress()
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
    elif lane_slots.enabled(rt):  # one Excel request at a time per workbook (shared/lane_flow.py)
        op = await lane_flow.admit_start(rt, request, operation_id, now, base_url, acting, key_hash)
    else:
        op = await _start(rt, request, operation_id, now, base_url, acting, key_hash)
    telemetry.annotate(**{"bridge.operation.id": op.id, "bridge.action": op.action or "tracked"})
    telemetry.operation_started(op.action)
    return _reply(rt, op, time.time(), created=bool(op.callback_sealed))  # after Graph's answer: the poll is queued


def _in_progress() -> Problem:
    # 429, not 409: Logic Apps' default retry policy retries 408, 429 and 5xx but never 409
    # (error-exception-handling.md), and this request will succeed once the first one is stored.
    return Problem(
        429,
        "requestInProgress",
        "A request with this Idempotency-Key is in progress",
        "Retry after the number of seconds in Retry-After.",
        headers={"Retry-After": "1"},
    )


async def _track(
    rt: Runtime, request: TrackRequest, operation_id: str, now: float, base_url: str, acting: Acting
) -> Operation:
    op = await record_for(rt, request, operation_id, now, base_url, acting)
    log.info("tracking operation %s (%s)", op.id, op.action or "action unknown")
    return await store_and_enqueue(rt, op, first_poll_delay(rt, op, time.time()))


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
    """Write-ahead: the intent (`starting`) is stored before the Excel request, Graph's answer (`answered`)
    right after it, and only then is the follow-up queued (complete_start)."""
    intent = (await record_for(rt, request, operation_id, now, base_url, acting)).with_(start_phase=STARTING)
    try:
        intent = await rt.store.create(intent)
    except Conflict:
        existing = await rt.store.get(operation_id)
        if existing is None:
            raise
        return await resume_start(rt, existing, now, retry=True)
    except Exception:
        log.exception("could not store the intent of operation %s", operation_id)
        if key_hash:
            await rt.store.release_idempotency(key_hash)
        raise Problem(
            503,
            "storageUnavailable",
            "The operation could not be stored",
            "Nothing was stored and nothing was sent to Graph; retry the request.",
            headers={"Retry-After": "5"},
        ) from None
    try:
        return await send_start(rt, request, intent, acting.assertion, key_hash)
    except NotSent as exc:
        await abandon(rt, intent, key_hash)
        if exc.problem is None:
            raise exc.__cause__ or exc from None
        raise exc.problem from None


async def get(rt: Runtime, operation_id: str, caller: Access | None = None) -> Reply:
    op = await _load(rt, operation_id, caller)
    now = time.time()
    if op.start_phase:
        op = await resume_start(rt, op, now, retry=False)
    if op.status == WAITING:
        op = await lane_slots.with_position(rt, op)  # its place in its workbook's lane
    return _reply(rt, await rearm_if_stalled(rt, op, now), now)


async def _load(rt: Runtime, operation_id: str, access: Access | None) -> Operation:
    """The operation, if it exists and this access may see it; others' operations are 404, as if absent.

    A signed status URL opens its own operation whoever presents it (it is a capability, like a SAS);
    a caller sees the operations they own (or all, with the read-all role)."""
    if isinstance(access, StatusLink):
        _check_link(rt, operation_id, access)
        op = await rt.store.get(operation_id)
        if op is None:
            raise not_found(operation_id)
        return op
    caller = access or Caller(rt.settings.default_owner)
    op = await rt.store.get(operation_id) if is_operation_id(operation_id) else None
    if op is None or not caller.may_see(op.owner or rt.settings.default_owner):  # ownerless: older records
        raise not_found(operation_id)
    return op


def _check_link(rt: Runtime, operation_id: str, link: StatusLink) -> None:
    if not is_operation_id(operation_id):
        raise not_found(operation_id)
    try:
        rt.settings.status_links.verify(operation_id, link.expires, link.sig, time.time())
    except LinkRefused as exc:
        status = 401 if not (link.expires or link.sig) else 403
        raise Problem(
            status,
            "statusLinkRefused",
            "This status URL does not open this operation",
            exc.reason,
            headers={"WWW-Authenticate": 'SignedURL realm="status"'} if status == 401 else {},
        ) from None


async def rearm_if_stalled(rt: Runtime, op: Operation, now: float) -> Operation:
    """Self-healing: an active record long past its deadline has lost its queue message; start a new chain."""
    if op.status not in ACTIVE or op.status == WAITING:  # a waiting record has no chain: its lane starts it
        return op
    grace = max(STALL_GRACE_SECONDS, 2 * rt.timing.maximum)
    if now - parse_iso(op.created_at) < rt.timing.timeout + grace or now - parse_iso(op.updated_at) < grace:
        return op  # within its life, or re-armed a moment ago
    try:
        op = await rt.store.update(
            op.with_(generation=op.generation + 1, updated_at=iso(now), chain_message=None),
            {"generation", "updated_at", "chain_message"},
        )
    except Conflict:
        return op
    log.warning("operation %s had no poll chain; re-armed as generation %s", op.id, op.generation)
    await rt.polls.send(PollState(op.id, op.generation, op.poll_count), 0)
    return op


_TOP = re.compile(r"[0-9]{1,3}")


def parse_top(top: str | None, default: int | None = LIST_TOP_DEFAULT) -> int | None:
    """`top` as 1-LIST_TOP_MAX (100) in ASCII digits, or None when it is not. `str.isdigit` is not enough: it accepts
    "²" (which int() refuses) and "٣" (which int() reads as 3)."""
    if top is None:
        return default
    if not _TOP.fullmatch(top) or not 1 <= int(top) <= LIST_TOP_MAX:
        return None
    return int(top)


async def list_page(
    rt: Runtime, status: str | None, top: str | None, token: str | None, caller: Caller | None = None
) -> Page:
    caller = caller or Caller(rt.settings.default_owner)
    errors: list[FieldError] = []
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", "must be one of " + ", ".join(STATUSES)))
    count = parse_top(top)
    if count is None:
        errors.append(FieldError("top", f"must be a whole number from 1 to {LIST_TOP_MAX}"))
    if errors or count is None:
        raise invalid(errors)
    try:
        return await rt.store.list(status, count, token, None if caller.reads_all else caller.owner)
    except BadContinuation:
        raise Problem(
            400,
            "invalidRequest",
            "The continuation token is not valid",
            errors=[FieldError("continuationToken", "use the value from a previous page's nextLink")],
        ) from None


async def cancel(rt: Runtime, operation_id: str, caller: Access | None = None) -> Reply:
    """Stop tracking (and stop webhooks: for Logic Apps this is "unsubscribe"). Idempotent.

    An active operation becomes `canceled` without a webhook (the subscriber is the one leaving); a
    finished one keeps its state, and webhook retries still pending for it stop.
    """

    async def step() -> Reply | None:
        op = await _load(rt, operation_id, caller)
        now = time.time()
        if op.status in ACTIVE:
            changed = terminal_state(
                op, CANCELED, now, error={"code": "canceled", "message": "Tracking was canceled by the caller."}
            )
            changed = changed.with_(generation=op.generation + 1, webhook_state=WEBHOOK_NONE)
            fields = TERMINAL_FIELDS
            await queue_fanout(rt, changed)  # only subscriptions that asked for "canceled" get it
        elif op.webhook_state == WEBHOOK_PENDING:
            changed = op.with_(
                webhook_state=WEBHOOK_FAILED,
                webhook_next_attempt_at=None,
                webhook_last_error="deliveries stopped: the caller canceled (unsubscribed)",
            )
            changed = with_event(changed, iso(now), "webhookStopped")
            fields = {"webhook_state", "webhook_next_attempt_at", "webhook_last_error", "history"}
        else:
            return _reply(rt, op, now)
        try:
            changed = await rt.store.update(changed, fields)
        except Conflict:
            return None
        log.info("operation %s canceled by the caller", op.id)
        if op.status in ACTIVE:
            telemetry.operation_finished(changed.action, changed.status, changed.poll_count)
        if changed.terminal:
            await lane_slots.on_terminal(rt, changed)  # frees its lane slot at once, or its place in line
        return _reply(rt, changed, now)

    return await _until_written(step)


async def cancel_by_key(rt: Runtime, idempotency_key: str, caller: Caller | None = None) -> Reply:
    """Cancel the operation started with this Idempotency-Key: an unsubscribe URL a workflow can build
    before it knows the operation id (Logic Apps' HTTP Webhook action)."""
    caller = caller or Caller(rt.settings.default_owner)
    operation_id = await rt.store.idempotency_operation(_check_idempotency_key(idempotency_key, caller))
    if operation_id is None:
        raise Problem(404, "operationNotFound", "No operation was started with this Idempotency-Key")
    return await cancel(rt, operation_id, caller)


async def redeliver(rt: Runtime, operation_id: str, caller: Caller | None = None) -> Reply:
    """Send the operation's terminal event again, same webhook-id, with a fresh retry window."""

    async def step() -> Reply | None:
        op = await _load(rt, operation_id, caller)
        if not op.callback_sealed:
            raise Problem(409, "noWebhook", "This operation has no callbackUrl", "There is nothing to redeliver.")
        if op.status in ACTIVE or not op.event_id:
            raise Problem(
                409, "operationNotFinished", "The operation has not finished", "Its webhook is sent when it finishes."
            )
        now = time.time()
        wait = redelivery_wait(op, now, claim_lease(rt.settings.webhook_timeout))
        if wait is not None:
            # One chain of attempts per operation: a second one would POST every attempt twice. 409, not 429:
            # retrying the same call cannot help until this chain ends (see webhook.state / nextAttemptAt).
            raise Problem(
                409,
                "redeliveryInProgress",
                "This webhook is already being delivered",
                "Its delivery is pending (webhook.nextAttemptAt); redeliver it once it is delivered or failed.",
                headers={"Retry-After": str(wait)},
            )
        pending = op.with_(
            webhook_state=WEBHOOK_PENDING,
            webhook_dead_lettered_at=None,
            webhook_next_attempt_at=iso(now),
            webhook_claimed_attempt=None,
        )
        pending = with_event(pending, iso(now), "redeliver", attempt=op.webhook_attempts + 1)
        try:  # ETag-guarded: of concurrent calls, one wins; the others see it pending and get 409
            pending = await rt.store.update(
                pending,
                {
                    "webhook_state",
                    "webhook_dead_lettered_at",
                    "webhook_next_attempt_at",
                    "webhook_claimed_attempt",
                    "history",
                },
            )
        except Conflict:
            return None
        await queue_next_attempt(rt, pending)
        log.info("webhook of %s queued for redelivery (attempt %s)", op.id, pending.webhook_attempts + 1)
        return Reply(pending, None, status_url(pending))

    return await _until_written(step)


CONFLICT_ATTEMPTS = 5


async def _until_written(step: Callable[[], Awaitable[Reply | None]]) -> Reply:
    """The one conflict-retry loop of the HTTP side: `step` reads the record, decides, and makes its ETag-guarded
    write, answering None when that write lost to another writer (Conflict); then it reads and decides again.
    A record that keeps changing is a 409 the caller can retry, never a 5xx."""
    for _ in range(CONFLICT_ATTEMPTS):
        reply = await step()
        if reply is not None:
            return reply
    raise Problem(409, "concurrentUpdate", "The operation kept changing", "Retry the request.")


FAILURE_STATUS = {FAILED: 422, TIMED_OUT: 422, CANCELED: 409}


def failure_problem(op: Operation) -> Problem | None:
    """With failOnError, a finished-but-unsuccessful operation is answered as a problem (so Logic Apps'
    "has failed" branches run): failed and timedOut give 422, canceled gives 409; the record rides along."""
    if not op.fail_on_error or op.status not in FAILURE_STATUS:
        return None
    error = op.error or {}
    return Problem(
        FAILURE_STATUS[op.status],
        innermost_code(error) if error else op.status,
        f"The operation {op.status}",
        str(error.get("message") or ""),
        extra={"operation": to_json(op)},
    )
