"""Webhook deliveries: what the `webhook-deliveries` queue function does with one attempt.

Operation webhooks (an operation's own callbackUrl) are one kind of the one webhook attempt of
shared/delivery/attempt.py: their delivery state is the operation record's webhook fields (claimed with
`WebhookClaimedAttempt`, recorded with the attempt's status and a timeline event), one message per attempt.
Subscription messages on the same queue go to shared/delivery/fanout.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.delivery import fanout
from shared.delivery.attempt import OUTCOMES, Attempted, Delivery, Target, run
from shared.delivery.claims import Ledger, operation_ledger
from shared.delivery.policy import Delivered, GiveUp, Retry
from shared.observability import telemetry
from shared.operations.record import (
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    DamagedRecord,
    Operation,
    is_operation_id,
    iso,
    with_event,
)
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


async def queue_next_attempt(rt: Runtime, op: Operation, since: float | None = None, delay: int = 0) -> None:
    """Queue the attempt the record expects next (attempts + 1)."""
    if not op.event_id:
        return
    task = DeliveryTask(op.id, op.event_id, op.webhook_attempts + 1, time.time() if since is None else since)
    await rt.deliveries.send(task, delay)


class OperationWebhook(Delivery):
    """An operation's own webhook: its ledger is the record, its messages `webhook` tasks."""

    kind = "operation"
    span = "webhook POST"

    def __init__(self, rt: Runtime, op: Operation, task: DeliveryTask) -> None:
        self.rt, self.op, self.task = rt, op, task
        self.operation_id = op.id

    @property
    def ledger(self) -> Ledger:
        return operation_ledger(self.op)

    @property
    def since(self) -> float:
        return self.task.since

    def target(self) -> Target:
        return Target(self.op, self.op.callback_sealed or "", self.op.id, self.op.event_id or self.op.id)

    def attributes(self, attempt: int) -> dict[str, Any]:
        return {"bridge.operation.id": self.op.id, "bridge.webhook.attempt": attempt, "http.request.method": "POST"}

    async def claim(self, attempt: int, now: float) -> Delivery:
        claimed = self.op.with_(webhook_claimed_attempt=attempt, webhook_last_attempt_at=iso(now))
        return OperationWebhook(self.rt, await self.rt.store.update(claimed, CLAIM_FIELDS), self.task)

    async def record(self, attempted: Attempted) -> None:
        outcome, verdict, now = attempted.outcome, attempted.verdict, attempted.at
        recorded = self.op.with_(
            webhook_attempts=attempted.attempt,
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
        elif isinstance(verdict, GiveUp):
            recorded = recorded.with_(
                webhook_state=WEBHOOK_FAILED, webhook_last_error=verdict.reason, webhook_dead_lettered_at=iso(now)
            )
        recorded = with_event(
            recorded,
            iso(now),
            "webhook",
            attempt=attempted.attempt,
            statusCode=outcome.status_code,
            outcome=OUTCOMES[type(verdict)],
            error=recorded.webhook_last_error,
            nextAttemptAt=recorded.webhook_next_attempt_at,
        )
        await self.rt.store.update(recorded, OUTCOME_FIELDS)

    async def reload(self) -> Delivery | None:
        op = await self.rt.store.get(self.op.id)
        return OperationWebhook(self.rt, op, self.task) if op is not None else None

    async def queue(self, attempt: int, delay: int) -> None:
        task = DeliveryTask(self.op.id, self.task.event_id, attempt, self.task.since)
        await self.rt.deliveries.send(task, delay)


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
    await run(rt, OperationWebhook(rt, op, task), task.event_id, task.attempt)
