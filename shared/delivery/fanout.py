"""Subscription events: fan a finished operation out to its owner's subscriptions, and deliver each one.

Both run from the webhook queue (the `deliver_webhook` function, dispatched by message kind):
- `fanout` message: queued *before* the terminal write (shared/operations/finish.py), so a crash after the write
  cannot lose it; the poll handler re-queues it for a terminal record whose fan-out is still pending. It lists the
  owner's subscriptions (one partition query), creates one delivery entity per matching subscription
  (insert-if-absent) and queues its first attempt, then writes the fan-out marker (a separate entity: the record's
  ETag is left alone).
- `subscription` message: one attempt of the one webhook attempt of shared/delivery/attempt.py (the same claim
  protocol, retry policy and SSRF checks as operation webhooks), its ledger the delivery entity; the `webhook-id`
  is deterministic per (event, subscription). A subscription deleted before an attempt gets nothing more.

Guarantee: every subscription active when the fan-out runs gets the event (at least once; more than one
POST only if the bridge dies between a POST and recording it, always with the same `webhook-id`), and
duplicated or retried messages never send a second POST for the same attempt.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.delivery.attempt import Attempted, Delivery, Target, run
from shared.delivery.claims import Drop, Ledger, Wait
from shared.delivery.fanout_rules import fanout_verdict, needs_first_attempt, subscription_ledger
from shared.delivery.policy import Delivered, GiveUp, Retry
from shared.operations.record import FANOUT_PENDING, DamagedRecord, Operation, is_operation_id, iso
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.storage.messages import (
    BadMessage,
    FanoutTask,
    SubscriptionAttempt,
    decode_fanout,
    decode_subscription_attempt,
    message_kind,
)
from shared.subscriptions.record import DELIVERED, GAVE_UP, UNSUBSCRIBED, Subscription, SubscriptionDelivery
from shared.subscriptions.rules import is_subscription_id, matches
from shared.subscriptions.store import SubscriptionStore

log = logging.getLogger(__name__)
KINDS = frozenset({"fanout", "subscription"})


def subscriptions(rt: Runtime) -> SubscriptionStore:
    return SubscriptionStore(rt.store.table)


async def queue_fanout(rt: Runtime, op: Operation, tries: int = 0, delay: int = 0) -> None:
    """Queue the fan-out of `op`'s terminal event (call it before the terminal write is made)."""
    if op.event_id and op.fanout_state == FANOUT_PENDING:
        await rt.deliveries.send_fanout(FanoutTask(op.id, op.event_id, tries), delay)


async def handle_message(rt: Runtime, text: str) -> None:
    try:
        if message_kind(text) == "fanout":
            await _fanout(rt, decode_fanout(text))
        else:
            await _attempt(rt, decode_subscription_attempt(text))
    except BadMessage as exc:
        log.error("dropping unreadable subscription message: %s", exc)
    except DamagedRecord as exc:  # reported where it was read; retrying cannot make it readable
        log.error("dropping subscription message for %s: its record is damaged", exc.operation_id)


async def _fanout(rt: Runtime, task: FanoutTask) -> None:
    op = await rt.store.get(task.operation_id) if is_operation_id(task.operation_id) else None
    store = subscriptions(rt)
    done = op is not None and op.terminal and await store.fanned_out(op.id, task.event_id)
    verdict = fanout_verdict(op, task, done)
    if isinstance(verdict, Wait):
        await rt.deliveries.send_fanout(FanoutTask(task.operation_id, task.event_id, task.tries + 1), verdict.delay)
        return
    if isinstance(verdict, Drop) or op is None:
        log.info("fan-out of %s not run: %s", task.operation_id[:40], getattr(verdict, "reason", "gone"))
        return
    owner = op.owner or rt.settings.default_owner
    now = time.time()
    fired = 0
    for subscription in await store.list(owner):
        if not matches(subscription, op):
            continue
        fresh = SubscriptionDelivery(op.id, subscription.id, task.event_id, since=now)
        delivery = await store.create_delivery(fresh) or await store.get_delivery(op.id, subscription.id)
        if delivery is not None and delivery.event_id == task.event_id and needs_first_attempt(delivery):
            await rt.deliveries.send_subscription_attempt(SubscriptionAttempt(op.id, subscription.id, task.event_id, 1))
            fired += 1
    await store.mark_fanned_out(op.id, task.event_id)
    log.info("operation %s fanned out to %s subscription(s)", op.id, fired)


class SubscriptionWebhook(Delivery):
    """One event on its way to one subscription: its ledger is the delivery entity, its messages `subscription`
    tasks. Its subscription and operation are read once the attempt may run (`ready`)."""

    kind = "subscription"
    span = "subscription POST"

    def __init__(
        self,
        rt: Runtime,
        delivery: SubscriptionDelivery,
        subscription: Subscription | None = None,
        op: Operation | None = None,
    ) -> None:
        self.rt, self.delivery, self.subscription, self.op = rt, delivery, subscription, op
        self.operation_id = delivery.operation_id

    def _with(self, delivery: SubscriptionDelivery) -> SubscriptionWebhook:
        return SubscriptionWebhook(self.rt, delivery, self.subscription, self.op)

    @property
    def ledger(self) -> Ledger:
        return subscription_ledger(self.delivery)

    @property
    def since(self) -> float:
        return self.delivery.since

    def target(self) -> Target:
        if self.subscription is None or self.op is None:  # not `assert`: -O
            raise RuntimeError("a subscription attempt's target is read before it is ready")
        subscription = self.subscription
        return Target(
            self.op,
            subscription.callback_sealed,
            subscription.id,
            self.delivery.webhook_id,
            subscription.callback_format,
        )

    def attributes(self, attempt: int) -> dict[str, Any]:
        return {
            "bridge.operation.id": self.delivery.operation_id,
            "bridge.subscription.id": self.delivery.subscription_id,
            "bridge.webhook.attempt": attempt,
            "http.request.method": "POST",
        }

    async def ready(self) -> bool:
        store = subscriptions(self.rt)
        self.subscription = await store.get(self.delivery.subscription_id)
        self.op = await self.rt.store.get(self.delivery.operation_id)
        if self.subscription is not None and self.op is not None:
            return True
        try:  # unsubscribed before this attempt: nothing more is sent for it
            await store.update_delivery(self.delivery.with_(state=UNSUBSCRIBED, next_attempt_at=None))
        except Conflict:
            pass
        log.info(
            "subscription %s is gone; its delivery of %s stopped", self.delivery.subscription_id, self.operation_id
        )
        return False

    async def claim(self, attempt: int, now: float) -> Delivery:
        claimed = self.delivery.with_(claimed_attempt=attempt, last_attempt_at=iso(now))
        return self._with(await subscriptions(self.rt).update_delivery(claimed))

    async def record(self, attempted: Attempted) -> None:
        outcome, verdict = attempted.outcome, attempted.verdict
        recorded = self.delivery.with_(
            attempts=attempted.attempt,
            last_status=outcome.status_code,
            last_error=outcome.error,
            last_attempt_at=iso(attempted.at),
            next_attempt_at=None,
            claimed_attempt=None,
        )
        if isinstance(verdict, Delivered):
            recorded = recorded.with_(state=DELIVERED, last_error=None)
        elif isinstance(verdict, Retry):
            recorded = recorded.with_(next_attempt_at=attempted.at + verdict.delay)
        elif isinstance(verdict, GiveUp):
            recorded = recorded.with_(state=GAVE_UP, last_error=verdict.reason)
        await subscriptions(self.rt).update_delivery(recorded)

    async def reload(self) -> Delivery | None:
        fresh = await subscriptions(self.rt).get_delivery(self.delivery.operation_id, self.delivery.subscription_id)
        return self._with(fresh) if fresh is not None else None

    async def queue(self, attempt: int, delay: int) -> None:
        d = self.delivery
        await self.rt.deliveries.send_subscription_attempt(
            SubscriptionAttempt(d.operation_id, d.subscription_id, d.event_id, attempt), delay
        )


async def _attempt(rt: Runtime, task: SubscriptionAttempt) -> None:
    if not is_operation_id(task.operation_id) or not is_subscription_id(task.subscription_id):
        log.error("dropping subscription attempt with malformed ids")
        return
    delivery = await subscriptions(rt).get_delivery(task.operation_id, task.subscription_id)
    if delivery is None:
        log.info("subscription attempt %s for %s not sent: no such delivery", task.attempt, task.operation_id)
        return
    await run(rt, SubscriptionWebhook(rt, delivery), task.event_id, task.attempt)
