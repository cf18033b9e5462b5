"""Webhook deliveries: what the `webhook-deliveries` queue function does with one attempt.

One message per attempt. An attempt runs only if the record still expects it (terminal, same event,
state pending, `attempts == attempt - 1`), so duplicated or stale messages send nothing new. The next
attempt's message is queued before this attempt is recorded (ETag-guarded), so a crash in between
repeats the attempt rather than losing the chain; the receiver dedupes on `webhook-id`.
"""

from __future__ import annotations

import logging
import math
import time

from opentelemetry.trace import SpanKind

from shared.crypto.sealing import SealingError, unseal
from shared.delivery import fanout
from shared.delivery.attempt import retry_policy
from shared.delivery.claims import claim_held, claim_lease
from shared.delivery.events import event_message
from shared.delivery.formats import webhook_headers
from shared.delivery.policy import Delivered, GiveUp, Retry, decide
from shared.delivery.sender import DeliveryOutcome, deliver
from shared.delivery.targets import Refused, check_url
from shared.observability import telemetry
from shared.operations.record import (
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    DamagedRecord,
    Operation,
    is_operation_id,
    iso,
    with_event,
)
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.storage.messages import BadMessage, DeliveryTask, decode_delivery, message_kind

log = logging.getLogger(__name__)

OUTCOME_FIELDS = {
    "webhook_state",
    "webhook_attempts",
    "webhook_last_status",
    "webhook_last_attempt_at",
    "webhook_last_error",
    "webhook_next_attempt_at",
    "webhook_dead_lettered_at",
    "webhook_claimed_attempt",
    "history",
}
CLAIM_FIELDS = {"webhook_claimed_attempt", "webhook_last_attempt_at"}
_OUTCOMES = {Delivered: "delivered", Retry: "retrying", GiveUp: "failed"}  # the timeline's word per verdict


async def queue_next_attempt(rt: Runtime, op: Operation, since: float | None = None, delay: int = 0) -> None:
    """Queue the attempt the record expects next (attempts + 1)."""
    if not op.event_id:
        return
    task = DeliveryTask(op.id, op.event_id, op.webhook_attempts + 1, time.time() if since is None else since)
    await rt.deliveries.send(task, delay)


def _expected(op: Operation, task: DeliveryTask) -> str | None:
    """Why this attempt should not run, or None when it should."""
    if not op.terminal or op.event_id != task.event_id:
        return "not the operation's current event"
    if op.webhook_state != WEBHOOK_PENDING:
        return f"webhook is {op.webhook_state}"
    if op.webhook_attempts != task.attempt - 1:
        return f"attempt {task.attempt} is stale (attempts so far: {op.webhook_attempts})"
    return None


async def handle_message(rt: Runtime, text: str) -> None:
    """The webhook queue's function: operation webhook attempts here, subscription messages in fanout."""
    if message_kind(text) in fanout.KINDS:
        await fanout.handle_message(rt, text)
        return
    try:
        task = decode_delivery(text)
    except BadMessage as exc:
        log.error("dropping unreadable webhook message: %s", exc)
        return
    try:
        op = await rt.store.get(task.operation_id) if is_operation_id(task.operation_id) else None
    except DamagedRecord:  # reported where it was read; retrying cannot make it readable
        log.error("dropping webhook message for %s: its record is damaged", task.operation_id)
        return
    if op is None:
        log.error("dropping webhook message for unknown operation %s", task.operation_id[:40])
        return
    telemetry.annotate(**{"bridge.operation.id": op.id, "bridge.webhook.attempt": task.attempt})
    skip = _expected(op, task)
    if skip:
        log.info("webhook attempt %s for %s not sent: %s", task.attempt, op.id, skip)
        return
    claimed = await _claim(rt, op, task)
    if claimed is None:
        return
    op = claimed
    with telemetry.span(
        "webhook POST",
        {"bridge.operation.id": op.id, "bridge.webhook.attempt": task.attempt, "http.request.method": "POST"},
        SpanKind.CLIENT,
    ) as span:
        outcome = await _attempt(rt, op)
        now = time.time()
        verdict = decide(
            status=outcome.status_code,
            retry_after=outcome.retry_after,
            error=outcome.error,
            refused=outcome.refused,
            attempt=task.attempt,
            elapsed=now - task.since,
            policy=retry_policy(rt),
        )
        outcome_name = type(verdict).__name__.lower()  # delivered | retry | giveup
        telemetry.set_attributes(
            span, {"http.response.status_code": outcome.status_code, "bridge.webhook.outcome": outcome_name}
        )
    recorded = op.with_(
        webhook_attempts=task.attempt,
        webhook_last_status=outcome.status_code,
        webhook_last_attempt_at=iso(now),
        webhook_last_error=outcome.error,
        webhook_next_attempt_at=None,
        webhook_claimed_attempt=None,
    )
    if isinstance(verdict, Delivered):
        recorded = recorded.with_(webhook_state=WEBHOOK_DELIVERED, webhook_dead_lettered_at=None)
    elif isinstance(verdict, Retry):
        recorded = recorded.with_(webhook_next_attempt_at=iso(now + verdict.delay))
        await rt.deliveries.send(DeliveryTask(op.id, task.event_id, task.attempt + 1, task.since), verdict.delay)
    elif isinstance(verdict, GiveUp):
        recorded = recorded.with_(
            webhook_state=WEBHOOK_FAILED, webhook_last_error=verdict.reason, webhook_dead_lettered_at=iso(now)
        )
    recorded = with_event(
        recorded,
        iso(now),
        "webhook",
        attempt=task.attempt,
        statusCode=outcome.status_code,
        outcome=_OUTCOMES[type(verdict)],
        error=recorded.webhook_last_error,
        nextAttemptAt=recorded.webhook_next_attempt_at,
    )
    try:
        await rt.store.update(recorded, OUTCOME_FIELDS)
    except Conflict:
        log.info("webhook attempt %s for %s was recorded by another delivery", task.attempt, op.id)
        return
    telemetry.webhook_attempt(outcome_name, outcome.status_code)  # once per recorded attempt
    if isinstance(verdict, GiveUp):
        telemetry.webhook_dead_lettered()
    log.info(
        "webhook attempt %s for %s: %s (%s)",
        task.attempt,
        op.id,
        type(verdict).__name__.lower(),
        outcome.status_code or outcome.error,
    )


async def _claim(rt: Runtime, op: Operation, task: DeliveryTask) -> Operation | None:
    """Claim this attempt on the record (ETag-guarded) so that copies of its message POST nothing.

    A copy that finds the attempt claimed (or loses the race to claim it) is queued again for when the
    claim's lease ends: by then the holder has recorded the attempt (the copy is stale and dropped) or has
    died (the copy takes over), so the chain is never lost and each attempt is sent once."""
    now = time.time()
    lease = claim_lease(rt.settings.webhook_timeout)
    held = claim_held(op, task.attempt, now, lease)
    if held is None:
        try:
            return await rt.store.update(
                op.with_(webhook_claimed_attempt=task.attempt, webhook_last_attempt_at=iso(now)), CLAIM_FIELDS
            )
        except Conflict:
            held = lease
    log.info(
        "webhook attempt %s for %s is claimed by another delivery; checking again in %ss",
        task.attempt,
        op.id,
        math.ceil(held),
    )
    await rt.deliveries.send(task, math.ceil(held) + 1)
    return None


async def _attempt(rt: Runtime, op: Operation) -> DeliveryOutcome:
    """One signed POST, after the SSRF checks; nothing is sent when a check fails."""
    try:
        url = unseal(op.callback_sealed or "", rt.settings.webhook_secrets, op.id)
        check_url(url, rt.outbound)
    except SealingError as exc:
        return DeliveryOutcome(None, str(exc), refused=True)
    except Refused as exc:
        return DeliveryOutcome(None, exc.reason, refused=True)
    message = event_message(op)
    headers = webhook_headers(
        rt.settings.webhook_secrets, op.event_id or op.id, int(time.time()), message.body, message.headers
    )
    headers.update(telemetry.trace_headers())  # the receiver may continue the trace (not signed: body only)
    return await deliver(rt.webhook_http, url, headers, message.body, rt.settings.webhook_timeout)
