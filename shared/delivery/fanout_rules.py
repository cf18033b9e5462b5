"""When a fan-out or a subscription attempt runs, waits or is dropped. Pure: no clock reads, no I/O.

The at-least-once rules (shared/delivery/fanout.py does the I/O):
- A fan-out message runs only for the operation's current, terminal event whose fan-out is not done; it
  waits (bounded) while the record is not yet terminal, because it is queued before the terminal write.
- Each (event, subscription) delivery is created insert-if-absent, so duplicated fan-outs create nothing
  new; its first attempt is queued while it still has no attempts.
- An attempt runs only if the delivery is pending with exactly `attempt - 1` attempts recorded; it is
  claimed (ETag-guarded) before anything is sent, so two copies of one message send one POST.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from shared.delivery.policy import RetryPolicy, backoff
from shared.operations.record import Operation
from shared.storage.messages import FanoutTask, SubscriptionAttempt
from shared.subscriptions.record import PENDING, SubscriptionDelivery

FANOUT_WAIT_SECONDS = 5
FANOUT_MAX_TRIES = 24  # two minutes: the terminal write follows its fan-out message within one function run


@dataclass(frozen=True)
class Go:
    pass


@dataclass(frozen=True)
class Wait:
    delay: int
    reason: str


@dataclass(frozen=True)
class Drop:
    reason: str


Verdict = Go | Wait | Drop


def fanout_verdict(op: Operation | None, task: FanoutTask, done: bool) -> Verdict:
    """`done`: the fan-out marker for this event exists."""
    if op is None or not op.terminal:
        if task.tries >= FANOUT_MAX_TRIES:
            return Drop("the operation never reached this terminal state (its write failed)")
        return Wait(FANOUT_WAIT_SECONDS, "the terminal write has not landed yet")
    if op.event_id != task.event_id:
        return Drop("not the operation's current event")
    if done:
        return Drop("already fanned out")
    return Go()


def needs_first_attempt(delivery: SubscriptionDelivery) -> bool:
    """A delivery that no attempt has claimed yet: (re)queue attempt 1. Its copies are harmless (claims)."""
    return delivery.state == PENDING and delivery.attempts == 0


def attempt_verdict(delivery: SubscriptionDelivery | None, task: SubscriptionAttempt, now: float) -> Verdict:
    if delivery is None or delivery.event_id != task.event_id:
        return Drop("no such delivery")
    if delivery.state != PENDING:
        return Drop(f"the delivery is {delivery.state}")
    if delivery.attempts != task.attempt - 1:
        return Drop(f"attempt {task.attempt} is stale (attempts so far: {delivery.attempts})")
    if delivery.next_attempt_at is not None and now < delivery.next_attempt_at - 1:
        return Wait(max(1, math.ceil(delivery.next_attempt_at - now)), "the retry is not due yet (Retry-After)")
    return Go()


def jitter(delivery: SubscriptionDelivery, attempt: int) -> random.Random:
    """The same jitter for the safety-net message and the verdict of one attempt."""
    # bandit B311 (random): retry jitter, not a secret; seeded so the safety net and the verdict agree
    return random.Random(f"{delivery.webhook_id}/{attempt}")  # nosec B311


def planned_delay(delivery: SubscriptionDelivery, attempt: int, policy: RetryPolicy) -> int:
    """When attempt + 1 is due if this one fails without a Retry-After (delivery_policy's backoff)."""
    return max(1, math.ceil(backoff(attempt, policy, jitter(delivery, attempt)) - 1e-9))
