"""When a webhook attempt may be sent and when a redelivery may start. Pure: no clock reads, no I/O.

One protocol for both kinds of webhook (an operation's own callback, a subscription's), over the same view of
their delivery state (a `Ledger`: the operation record's webhook fields, or one subscription delivery entity):
- an attempt runs only while its event is pending with exactly `attempt - 1` attempts recorded and no retry
  wait (Retry-After) left;
- one POST per attempt: Storage queues deliver at least once, so a delivery message can have copies. The first
  copy claims the attempt on the ledger (ETag-guarded) before it POSTs; a copy that finds the claim held sends
  nothing and comes back when the claim's lease ends, to take over only if the holder died;
- one delivery chain per operation: `POST .../webhook/redeliver` is refused while the webhook is pending,
  unless that chain has visibly died (nothing happened long past its due time). Issue 9: 1,501 redeliver calls
  sent 1,037 POSTs for one operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.operations.record import WEBHOOK_PENDING, Operation, parse_iso

CLAIM_MARGIN_SECONDS = 10.0  # beyond the POST timeout: for the holder to record the attempt (one table write)
STALLED_CHAIN_SECONDS = 300.0  # past its due time plus a lease, a pending chain with no news is taken as lost


def claim_lease(webhook_timeout: float) -> float:
    """How long a claimed attempt belongs to its holder: the POST's timeout and the time to record it."""
    return webhook_timeout + CLAIM_MARGIN_SECONDS


@dataclass(frozen=True)
class Ledger:
    """A webhook's delivery state as the attempt protocol reads it, whatever record keeps it."""

    event_id: str | None  # the event this receiver is owed
    state: str  # "pending" while owed and neither delivered nor given up (else why not, for the logs)
    attempts: int  # attempts recorded
    claimed_attempt: int | None = None  # the attempt a delivery claimed and has not recorded yet
    claimed_at: float | None = None  # when it claimed it (the lease runs from here)
    next_attempt_at: float | None = None  # a retry's due time (Retry-After may push it past the message)

    @property
    def pending(self) -> bool:
        return self.state == WEBHOOK_PENDING


def operation_ledger(op: Operation) -> Ledger:
    """An operation's own webhook: the record's webhook fields (the claim's time is its last attempt's)."""
    return Ledger(
        event_id=op.event_id if op.terminal else None,
        state=op.webhook_state if op.terminal else "not finished",
        attempts=op.webhook_attempts,
        claimed_attempt=op.webhook_claimed_attempt,
        claimed_at=parse_iso(op.webhook_last_attempt_at) if op.webhook_last_attempt_at else None,
        next_attempt_at=parse_iso(op.webhook_next_attempt_at) if op.webhook_next_attempt_at else None,
    )


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


def claim_held(ledger: Ledger, attempt: int, now: float, lease: float) -> float | None:
    """Seconds the claim on `attempt` still holds, or None when the attempt is free to claim."""
    if ledger.claimed_attempt != attempt or ledger.claimed_at is None:
        return None
    left = ledger.claimed_at + lease - now
    return left if left > 0 else None


def attempt_verdict(ledger: Ledger | None, event_id: str, attempt: int, now: float, lease: float) -> Verdict:
    """Whether a message for `attempt` of `event_id` runs now (Go), comes back later (Wait) or is dropped."""
    if ledger is None or ledger.event_id != event_id:
        return Drop("not the current event")
    if not ledger.pending:
        return Drop(f"the webhook is {ledger.state}")
    if ledger.attempts >= attempt:
        return Drop(f"attempt {attempt} is stale (attempts so far: {ledger.attempts})")
    if ledger.attempts < attempt - 1:  # the attempt before it is not recorded: its own message carries the chain
        return Drop(f"attempt {attempt} is ahead of the record (attempts so far: {ledger.attempts})")
    if ledger.next_attempt_at is not None and now < ledger.next_attempt_at - 1:
        return Wait(max(1, math.ceil(ledger.next_attempt_at - now)), "the retry is not due yet (Retry-After)")
    held = claim_held(ledger, attempt, now, lease)
    if held is not None:  # back when the lease ends: recorded by then (this copy is stale), or taken over
        return Wait(math.ceil(held) + 1, "claimed by another delivery")
    return Go()


def _due(op: Operation) -> float:
    """When the pending chain should next show progress: the later of its next attempt and its last claim."""
    times = [op.webhook_next_attempt_at, op.webhook_last_attempt_at, op.completed_at, op.updated_at]
    return max(parse_iso(t) for t in times if t)


def redelivery_wait(op: Operation, now: float, lease: float) -> int | None:
    """None when a redelivery may start now; else the seconds to tell the caller to wait (Retry-After).

    A webhook that is not pending (delivered or failed) may be redelivered. A pending one already has a
    chain of attempts; a second chain would double every POST, so it is refused until the chain ends or is
    overdue by a lease plus STALLED_CHAIN_SECONDS (its queue message was lost: redelivery is the repair)."""
    if op.webhook_state != WEBHOOK_PENDING:
        return None
    overdue_at = _due(op) + lease + STALLED_CHAIN_SECONDS
    if now >= overdue_at:
        return None
    return max(1, math.ceil(min(_due(op) + lease, overdue_at) - now))
