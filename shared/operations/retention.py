"""Pure decisions of the data lifecycle: when a record expires, what the purge may delete, message TTLs.

No I/O here: shared/operations/purge.py and shared/operations/store.py act on these answers.
"""

from __future__ import annotations

from shared.operations.record import ACTIVE, Operation, iso, parse_iso

DAY = 86_400.0
DEFAULT_RETENTION_DAYS = 30
MAX_MESSAGE_TTL_SECONDS = 7 * 24 * 3600  # never longer than the SDK's own default (7 days)
MESSAGE_TTL_MARGIN_SECONDS = 24 * 3600  # room for a storage or host outage before a message may expire
MIN_TTL_AFTER_VISIBLE_SECONDS = 60  # a message must stay alive a while after it becomes visible
STRANDED_AFTER_SECONDS = 24 * 3600  # an active record this long past its deadline has no chain left


def expires_at(op: Operation, retention_seconds: float) -> str | None:
    """When a terminal record (and everything kept for it) may be deleted; None while it is active."""
    if op.status in ACTIVE or not op.completed_at:
        return None
    return iso(parse_iso(op.completed_at) + retention_seconds)


def is_expired(op: Operation, retention_seconds: float, now: float) -> bool:
    """Only terminal records expire; an active record is never purged, whatever its age."""
    expiry = op.expires_at or expires_at(op, retention_seconds)
    return op.status not in ACTIVE and expiry is not None and parse_iso(expiry) <= now


def is_stranded(op: Operation, operation_timeout: float, now: float) -> bool:
    """Active long past its deadline (and untouched for as long): its chain is gone; the purge fails it."""
    if op.status not in ACTIVE:
        return False
    limit = operation_timeout + STRANDED_AFTER_SECONDS
    return now - parse_iso(op.created_at) > limit and now - parse_iso(op.updated_at) > STRANDED_AFTER_SECONDS


def message_ttl(delay: int, life: float) -> int:
    """A queue message's time-to-live: visible after `delay`, useful for `life` more seconds, plus a margin.

    Bounded by 7 days, and always longer than the visibility delay (Put Message: "visibilitytimeout ...
    must be ... less than the time-to-live value")."""
    ttl = int(delay + life + MESSAGE_TTL_MARGIN_SECONDS)
    return max(delay + MIN_TTL_AFTER_VISIBLE_SECONDS, min(MAX_MESSAGE_TTL_SECONDS, ttl))
