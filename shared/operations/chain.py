"""Which delivery of a poll message owns the chain. Pure: no I/O.

A poll chain is live while exactly one queue message will be acted on. A message is acted on when its
generation is the record's (it is the chain's latest message), or when it is the queue message that last
claimed the chain (`Operation.chain_message`): a redelivery claims by bumping the record's generation and
writing its own message id, so every successor an earlier delivery may have queued becomes stale, while
the claiming message itself (whose text still carries the older generation, queue messages cannot be
changed by the function) stays live through any number of further failed deliveries. See docs/design.md,
"The poll chain as a state machine".
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    STALE = "stale"  # another message carries the chain: drop this one
    LIVE = "live"  # first delivery of the chain's latest message: poll
    CLAIM = "claim"  # a redelivery of a live message: bump the generation (own the chain), then poll


def judge(
    record_generation: int,
    record_chain_message: str | None,
    message_generation: int,
    message_id: str | None,
    dequeue_count: int,
) -> Verdict:
    """What one delivery of a poll message means for the chain of an active record."""
    owner = message_id is not None and message_id != "" and message_id == record_chain_message
    if message_generation == record_generation or (owner and message_generation < record_generation):
        return Verdict.LIVE if dequeue_count <= 1 else Verdict.CLAIM
    return Verdict.STALE


def is_last_delivery(dequeue_count: int, max_dequeue_count: int) -> bool:
    """After a failed delivery with this count the host moves the message to `<queue>-poison`
    (azure-webjobs-sdk QueueProcessor: `message.DequeueCount >= MaxDequeueCount` on failure)."""
    return dequeue_count >= max_dequeue_count
