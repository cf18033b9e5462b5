"""When a webhook attempt may be sent and when a redelivery may start. Pure: no clock reads, no I/O.

Two bounds (issue 9: 1,501 redeliver calls sent 1,037 POSTs for one operation):
- one delivery chain per operation: `POST .../webhook/redeliver` is refused while the webhook is pending,
  unless that chain has visibly died (nothing happened long past its due time);
- one POST per attempt: Storage queues deliver at least once, so a delivery message can have copies. The
  first copy claims the attempt on the record (ETag-guarded) before it POSTs; a copy that finds the claim
  held sends nothing and comes back when the claim's lease ends, to take over only if the holder died.
"""

from __future__ import annotations

import math

from shared.operations.record import WEBHOOK_PENDING, Operation, parse_iso

CLAIM_MARGIN_SECONDS = 10.0  # beyond the POST timeout: for the holder to record the attempt (one table write)
STALLED_CHAIN_SECONDS = 300.0  # past its due time plus a lease, a pending chain with no news is taken as lost


def claim_lease(webhook_timeout: float) -> float:
    """How long a claimed attempt belongs to its holder: the POST's timeout and the time to record it."""
    return webhook_timeout + CLAIM_MARGIN_SECONDS


def claim_held(op: Operation, attempt: int, now: float, lease: float) -> float | None:
    """Seconds the claim on `attempt` still holds, or None when the attempt is free to claim."""
    if op.webhook_claimed_attempt != attempt or not op.webhook_last_attempt_at:
        return None
    left = parse_iso(op.webhook_last_attempt_at) + lease - now
    return left if left > 0 else None


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
