"""When a fan-out runs, waits or is dropped, and a subscription delivery as the attempt protocol reads it. Pure: no
clock reads, no I/O.

The at-least-once rules (shared/delivery/fanout.py does the I/O):
- A fan-out message runs only for the operation's current, terminal event whose fan-out is not done; it
  waits (bounded) while the record is not yet terminal, because it is queued before the terminal write.
- Each (event, subscription) delivery is created insert-if-absent, so duplicated fan-outs create nothing
  new; its first attempt is queued while it still has no attempts.
- Its attempts follow the one webhook attempt protocol of shared/delivery/claims.py, over `subscription_ledger`.
"""

from __future__ import annotations

from shared.delivery.claims import Drop, Go, Ledger, Verdict, Wait
from shared.operations.record import Operation, parse_iso
from shared.storage.messages import FanoutTask
from shared.subscriptions.record import PENDING, SubscriptionDelivery

FANOUT_WAIT_SECONDS = 5
FANOUT_MAX_TRIES = 24  # two minutes: the terminal write follows its fan-out message within one function run


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
    """A delivery that no attempt has been recorded for yet: (re)queue attempt 1. Its copies are harmless (claims)."""
    return delivery.state == PENDING and delivery.attempts == 0


def subscription_ledger(delivery: SubscriptionDelivery) -> Ledger:
    """One subscription delivery, as shared/delivery/claims.py reads a webhook's delivery state. Entities written
    before claims had their own field (`ClaimedAttempt`) decode without a claim: their attempt counter counted
    claimed attempts, and the message queued ahead of each claim carries their chain on."""
    return Ledger(
        event_id=delivery.event_id,
        state=delivery.state,
        attempts=delivery.attempts,
        claimed_attempt=delivery.claimed_attempt,
        claimed_at=parse_iso(delivery.last_attempt_at) if delivery.last_attempt_at else None,
        next_attempt_at=delivery.next_attempt_at,
    )
