"""Subscription events: fan a finished operation out to its owner's subscriptions, and deliver each one.

Both run from the webhook queue (the `deliver_webhook` function, dispatched by message kind):
- `fanout` message: queued *before* the terminal write (poller.finish, the synchronous-success path,
  a caller's cancel), so a crash after the write cannot lose it; the poll handler re-queues it for a
  terminal record whose fan-out is still pending. It lists the owner's subscriptions (one partition
  query), creates one delivery entity per matching subscription (insert-if-absent) and queues its first
  attempt, then writes the fan-out marker (a separate entity: the record's ETag is left alone).
- `subscription` message: one attempt, signed and checked like operation webhooks (same retry policy,
  same SSRF checks at delivery time). The next attempt's message is queued before the attempt is claimed
  (an ETag-guarded write of the attempt counter), and only the claimer POSTs; the `webhook-id` is
  deterministic per (event, subscription). A subscription deleted before an attempt gets nothing more.

Guarantee: every subscription active when the fan-out runs gets the event (at least once; more than one
POST only if the bridge dies between a POST and recording it, always with the same `webhook-id`), and
duplicated or retried messages never send a second POST for the same attempt.
"""

from __future__ import annotations

import logging
import time

from opentelemetry.trace import SpanKind

from shared.crypto.sealing import SealingError, unseal
from shared.delivery.attempt import retry_policy
from shared.delivery.events import event_message
from shared.delivery.fanout_rules import (
    Drop,
    Wait,
    attempt_verdict,
    fanout_verdict,
    jitter,
    needs_first_attempt,
    planned_delay,
)
from shared.delivery.formats import webhook_headers
from shared.delivery.policy import Delivered, GiveUp, Retry, decide
from shared.delivery.sender import DeliveryOutcome, deliver
from shared.delivery.targets import Refused, check_url
from shared.observability import telemetry
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


async def _attempt(rt: Runtime, task: SubscriptionAttempt) -> None:
    if not is_operation_id(task.operation_id) or not is_subscription_id(task.subscription_id):
        log.error("dropping subscription attempt with malformed ids")
        return
    store = subscriptions(rt)
    delivery = await store.get_delivery(task.operation_id, task.subscription_id)
    verdict = attempt_verdict(delivery, task, time.time())
    if isinstance(verdict, Wait):
        await rt.deliveries.send_subscription_attempt(task, verdict.delay)
        return
    if isinstance(verdict, Drop) or delivery is None:
        log.info(
            "subscription attempt %s for %s not sent: %s",
            task.attempt,
            task.operation_id,
            getattr(verdict, "reason", "gone"),
        )
        return
    subscription = await store.get(task.subscription_id)
    op = await rt.store.get(task.operation_id)
    if subscription is None or op is None:
        try:  # unsubscribed before this attempt: nothing more is sent for it
            await store.update_delivery(delivery.with_(state=UNSUBSCRIBED, next_attempt_at=None))
        except Conflict:
            pass
        log.info("subscription %s is gone; its delivery of %s stopped", task.subscription_id, task.operation_id)
        return
    policy = retry_policy(rt)
    # The safety net first: if this run dies after claiming the attempt, the chain goes on from there.
    await rt.deliveries.send_subscription_attempt(
        SubscriptionAttempt(task.operation_id, task.subscription_id, task.event_id, task.attempt + 1),
        planned_delay(delivery, task.attempt, policy),
    )
    now = time.time()
    try:
        delivery = await store.update_delivery(
            delivery.with_(attempts=task.attempt, last_attempt_at=iso(now), next_attempt_at=None)
        )
    except Conflict:
        log.info("subscription attempt %s for %s was claimed by another copy", task.attempt, task.operation_id)
        return
    attributes = {
        "bridge.operation.id": op.id,
        "bridge.subscription.id": subscription.id,
        "bridge.webhook.attempt": task.attempt,
        "http.request.method": "POST",
    }
    with telemetry.span("subscription POST", attributes, SpanKind.CLIENT) as span:
        outcome = await _post(rt, op, subscription, delivery)
        now = time.time()
        decided = decide(
            status=outcome.status_code,
            retry_after=outcome.retry_after,
            error=outcome.error,
            refused=outcome.refused,
            attempt=task.attempt,
            elapsed=now - delivery.since,
            policy=policy,
            rng=jitter(delivery, task.attempt),
        )
        outcome_name = type(decided).__name__.lower()  # delivered | retry | giveup
        telemetry.set_attributes(
            span, {"http.response.status_code": outcome.status_code, "bridge.webhook.outcome": outcome_name}
        )
    recorded = delivery.with_(last_status=outcome.status_code, last_error=outcome.error)
    if isinstance(decided, Delivered):
        recorded = recorded.with_(state=DELIVERED, last_error=None)
    elif isinstance(decided, Retry):
        recorded = recorded.with_(next_attempt_at=now + decided.delay)
    elif isinstance(decided, GiveUp):
        recorded = recorded.with_(state=GAVE_UP, last_error=decided.reason)
    try:
        await store.update_delivery(recorded)
    except Conflict:
        log.info("subscription delivery of %s changed while attempt %s ran", task.operation_id, task.attempt)
        return
    telemetry.webhook_attempt(outcome_name, outcome.status_code, "subscription")
    if isinstance(decided, GiveUp):
        telemetry.webhook_dead_lettered("subscription")
    log.info(
        "subscription attempt %s for %s: %s (%s)",
        task.attempt,
        op.id,
        type(decided).__name__.lower(),
        outcome.status_code or outcome.error,
    )


async def _post(
    rt: Runtime, op: Operation, subscription: Subscription, delivery: SubscriptionDelivery
) -> DeliveryOutcome:
    """One signed POST after the SSRF checks, exactly like an operation webhook; nothing sent if one fails."""
    try:
        url = unseal(subscription.callback_sealed, rt.settings.webhook_secrets, subscription.id)
        check_url(url, rt.outbound)
    except SealingError as exc:
        return DeliveryOutcome(None, str(exc), refused=True)
    except Refused as exc:
        return DeliveryOutcome(None, exc.reason, refused=True)
    message = event_message(op, subscription.callback_format, event_id=delivery.webhook_id)
    headers = webhook_headers(
        rt.settings.webhook_secrets, delivery.webhook_id, int(time.time()), message.body, message.headers
    )
    headers.update(telemetry.trace_headers())  # the receiver may continue the trace (not signed: body only)
    return await deliver(rt.webhook_http, url, headers, message.body, rt.settings.webhook_timeout)
