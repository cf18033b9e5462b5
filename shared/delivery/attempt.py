"""One webhook attempt, as operation webhooks and subscription deliveries both make it: one claim protocol, one POST.

A kind (shared/delivery/operation_webhooks.py, shared/delivery/fanout.py) says where its delivery state lives (a
`Delivery`: its ledger, how to claim and record an attempt on it, how to queue a message for an attempt) and what
it sends (a `Target`); `run` does the rest, the same for both:

1. the verdict (shared/delivery/claims.py, pure): an attempt runs only while its event is pending with exactly
   `attempt - 1` attempts recorded; a retry not yet due, or an attempt another delivery claimed, comes back later
   (its message queued again for then); anything else is dropped;
2. the claim: an ETag-guarded write of the attempt on the ledger; a copy that loses the race comes back when the
   claim's lease ends (the POST timeout plus 10 s);
3. the POST: the callback unsealed and checked against the SSRF rules again (nothing is sent if either fails),
   the event rendered (shared/delivery/formats.py), signed (Standard Webhooks) and sent with the trace headers
   (shared/delivery/sender.py), redirects never followed;
4. the decision (shared/delivery/policy.py), its jitter seeded by the webhook-id and the attempt;
5. a retry's message queued, before the record, so a crash after it repeats this attempt rather than losing the
   chain;
6. the record, ETag-guarded, re-applied on a fresh ledger while the claim is still this delivery's (another
   writer's unrelated change), given up when the ledger moved on (a cancel, an unsubscribe).

Guarantees: one POST per attempt however many copies of its message run; more than one only if the bridge dies
between a POST and its record (its message comes back after the lease and takes over), always with the same
`webhook-id`; the chain is never lost (until an attempt is recorded, its own message is not deleted, or a copy
waits for the lease; a retry's message exists before the attempt is recorded).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from shared.crypto.sealing import SealingError, unseal
from shared.delivery.claims import Drop, Ledger, Wait, attempt_verdict, claim_lease
from shared.delivery.events import event_message
from shared.delivery.formats import webhook_headers
from shared.delivery.policy import Delivered, GiveUp, Retry, RetryPolicy, Verdict, decide, jitter
from shared.delivery.sender import DeliveryOutcome, deliver
from shared.delivery.targets import Refused, check_url
from shared.observability import telemetry
from shared.operations.record import Operation
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime

log = logging.getLogger(__name__)

RECORD_TRIES = 5  # a ledger that keeps changing under a claim this delivery holds: the message is retried
OUTCOMES = {Delivered: "delivered", Retry: "retrying", GiveUp: "failed"}  # the timeline's word per verdict


def retry_policy(rt: Runtime) -> RetryPolicy:
    """The deployment's webhook retry policy (operation webhooks and subscription deliveries alike)."""
    return RetryPolicy(rt.settings.webhook_retry_initial_delay, rt.settings.webhook_retry_window)


@dataclass(frozen=True)
class Target:
    """What one attempt sends and where: the event of `operation` in `callback_format` (None: the record's own)
    under `webhook_id`, to the callback sealed for `sealed_for`."""

    operation: Operation
    callback_sealed: str
    sealed_for: str
    webhook_id: str
    callback_format: str | None = None


@dataclass(frozen=True)
class Attempted:
    """One attempt made: what the receiver answered and what the policy decided."""

    attempt: int
    outcome: DeliveryOutcome
    verdict: Verdict
    at: float


class Delivery(ABC):
    """One webhook's delivery state where its kind keeps it, read as a `Ledger`."""

    kind: str  # the metric's `bridge.webhook.kind`: "operation" or "subscription"
    span: str  # the POST span's name
    operation_id: str  # the operation whose event it delivers

    @property
    @abstractmethod
    def ledger(self) -> Ledger: ...

    @property
    @abstractmethod
    def since(self) -> float:
        """When the retry window started."""

    @abstractmethod
    def target(self) -> Target:
        """Called once `ready` said yes."""

    @abstractmethod
    def attributes(self, attempt: int) -> dict[str, Any]:
        """The span's attributes (ids only: never a URL, a key or a body)."""

    async def ready(self) -> bool:
        """Anything its kind checks once the attempt may run (False: it stopped the delivery itself)."""
        return True

    @abstractmethod
    async def claim(self, attempt: int, now: float) -> Delivery:
        """The ledger with `attempt` claimed at `now`, written ETag-guarded (Conflict if it changed)."""

    @abstractmethod
    async def record(self, attempted: Attempted) -> None:
        """The attempt recorded on the ledger (claim cleared), ETag-guarded (Conflict if it changed)."""

    @abstractmethod
    async def reload(self) -> Delivery | None:
        """The ledger as stored now (None: gone)."""

    @abstractmethod
    async def queue(self, attempt: int, delay: int) -> None:
        """A message for `attempt`, visible in `delay` seconds."""


async def run(rt: Runtime, delivery: Delivery, event_id: str, attempt: int) -> None:
    """One delivery of the message for `attempt` of `event_id` (steps 1-6 above). Raises only for storage
    failures (the host retries the message: safe, by the claim)."""
    lease = claim_lease(rt.settings.webhook_timeout)
    verdict = attempt_verdict(delivery.ledger, event_id, attempt, time.time(), lease)
    name = f"{delivery.kind} webhook attempt {attempt} for {delivery.operation_id}"
    if isinstance(verdict, Drop):
        log.info("%s not sent: %s", name, verdict.reason)
        return
    if isinstance(verdict, Wait):
        log.info("%s not sent yet (%s); checking again in %ss", name, verdict.reason, verdict.delay)
        await delivery.queue(attempt, verdict.delay)
        return
    if not await delivery.ready():
        return
    try:
        delivery = await delivery.claim(attempt, time.time())
    except Conflict:  # another copy claimed it first: back after its lease, in case that copy dies
        log.info("%s was claimed by another delivery; checking again after its lease", name)
        await delivery.queue(attempt, math.ceil(lease) + 1)
        return
    with telemetry.span(delivery.span, delivery.attributes(attempt), SpanKind.CLIENT) as span:
        outcome = await _post(rt, delivery.target())
        now = time.time()
        decided = decide(
            status=outcome.status_code,
            retry_after=outcome.retry_after,
            error=outcome.error,
            refused=outcome.refused,
            attempt=attempt,
            elapsed=now - delivery.since,
            policy=retry_policy(rt),
            rng=jitter(delivery.target().webhook_id, attempt),
        )
        outcome_name = type(decided).__name__.lower()  # delivered | retry | giveup
        telemetry.set_attributes(
            span, {"http.response.status_code": outcome.status_code, "bridge.webhook.outcome": outcome_name}
        )
    if isinstance(decided, Retry):  # before the record: a crash after it repeats this attempt, never ends the chain
        await delivery.queue(attempt + 1, decided.delay)
    if not await _record(delivery, Attempted(attempt, outcome, decided, now)):
        log.info("%s: its ledger moved on meanwhile (stopped, or recorded elsewhere); kept as it is", name)
        return
    telemetry.webhook_attempt(outcome_name, outcome.status_code, delivery.kind)  # once per recorded attempt
    if isinstance(decided, GiveUp):
        telemetry.webhook_dead_lettered(delivery.kind)
    log.info("%s: %s (%s)", name, outcome_name, outcome.status_code or outcome.error)


async def _record(delivery: Delivery, attempted: Attempted) -> bool:
    """Record the attempt; after a conflict, again on the fresh ledger while it still shows this claim."""
    for _ in range(RECORD_TRIES):
        try:
            await delivery.record(attempted)
            return True
        except Conflict:
            fresh = await delivery.reload()
            ledger = fresh.ledger if fresh is not None else None
            if (
                fresh is None
                or ledger is None
                or not ledger.pending
                or ledger.event_id != delivery.ledger.event_id
                or ledger.attempts != attempted.attempt - 1
                or ledger.claimed_attempt != attempted.attempt
            ):
                return False
            delivery = fresh
    raise RuntimeError(f"the webhook ledger of {delivery.operation_id} kept changing")


async def _post(rt: Runtime, target: Target) -> DeliveryOutcome:
    """One signed POST, after the SSRF checks; nothing is sent when a check fails."""
    try:
        url = unseal(target.callback_sealed, rt.settings.webhook_secrets, target.sealed_for)
        check_url(url, rt.outbound)
    except SealingError as exc:
        return DeliveryOutcome(None, str(exc), refused=True)
    except Refused as exc:
        return DeliveryOutcome(None, exc.reason, refused=True)
    message = event_message(target.operation, target.callback_format, event_id=target.webhook_id)
    headers = webhook_headers(
        rt.settings.webhook_secrets, target.webhook_id, int(time.time()), message.body, message.headers
    )
    headers.update(telemetry.trace_headers())  # the receiver may continue the trace (not signed: body only)
    return await deliver(rt.webhook_http, url, headers, message.body, rt.settings.webhook_timeout)
