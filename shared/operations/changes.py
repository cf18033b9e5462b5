"""The HTTP side's changes to an existing operation: cancel (by id or by Idempotency-Key) and redeliver its
webhook, each an ETag-guarded write retried while it loses to another writer."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from shared.api.identity import Caller
from shared.api.problems import Problem
from shared.delivery.claims import claim_lease, redelivery_wait
from shared.delivery.operation_webhooks import queue_next_attempt
from shared.operations.finish import Ending, finish, guarded
from shared.operations.reads import Access, load_for, reply_for
from shared.operations.record import (  # Reply lives with the record: shared/api/responses.py imports no use case
    ACTIVE,
    CANCELED,
    WEBHOOK_FAILED,
    WEBHOOK_NONE,
    WEBHOOK_PENDING,
    Reply,
    iso,
    status_url,
    with_event,
)
from shared.operations.store import Conflict
from shared.operations.write_ahead import (
    idempotency_key_hash,
)
from shared.runtime.worker import Runtime

log = logging.getLogger("shared.operations.start")  # the changes' log lines keep their category


async def cancel(rt: Runtime, operation_id: str, caller: Access | None = None) -> Reply:
    """Stop tracking (and stop webhooks: for Logic Apps this is "unsubscribe"). Idempotent.

    An active operation becomes `canceled` without a webhook (the subscriber is the one leaving); a
    finished one keeps its state, and webhook retries still pending for it stop.
    """

    async def step() -> Reply | None:
        op = await load_for(rt, operation_id, caller)
        now = time.time()
        if op.status in ACTIVE:  # ended through the finish use case: a record that moved is read and decided again
            ending = Ending(CANCELED, error={"code": "canceled", "message": "Tracking was canceled by the caller."})
            done = await finish(
                rt, op, ending, now, guarded(rt), generation=op.generation + 1, webhook_state=WEBHOOK_NONE
            )  # only subscriptions that asked for "canceled" get its fan-out
            if done is None:
                return None
            log.info("operation %s canceled by the caller", op.id)
            return reply_for(rt, done, now)
        if op.webhook_state != WEBHOOK_PENDING:
            return reply_for(rt, op, now)
        changed = op.with_(
            webhook_state=WEBHOOK_FAILED,
            webhook_next_attempt_at=None,
            webhook_last_error="deliveries stopped: the caller canceled (unsubscribed)",
        )
        changed = with_event(changed, iso(now), "webhookStopped")
        try:
            changed = await rt.store.update(
                changed, {"webhook_state", "webhook_next_attempt_at", "webhook_last_error", "history"}
            )
        except Conflict:
            return None
        log.info("operation %s canceled by the caller", op.id)
        return reply_for(rt, changed, now)

    return await _until_written(step)


async def cancel_by_key(rt: Runtime, idempotency_key: str, caller: Caller | None = None) -> Reply:
    """Cancel the operation started with this Idempotency-Key: an unsubscribe URL a workflow can build
    before it knows the operation id (Logic Apps' HTTP Webhook action)."""
    caller = caller or Caller(rt.settings.default_owner)
    operation_id = await rt.store.idempotency_operation(idempotency_key_hash(idempotency_key, caller))
    if operation_id is None:
        raise Problem(404, "operationNotFound", "No operation was started with this Idempotency-Key")
    return await cancel(rt, operation_id, caller)


async def redeliver(rt: Runtime, operation_id: str, caller: Caller | None = None) -> Reply:
    """Send the operation's terminal event again, same webhook-id, with a fresh retry window."""

    async def step() -> Reply | None:
        op = await load_for(rt, operation_id, caller)
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
