"""Pure decisions of the data lifecycle: when a record expires, what the purge may delete, message TTLs.

No I/O here: shared/operations/purge.py and shared/operations/store.py act on these answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.operations.record import ACTIVE, TERMINAL, Operation, iso, parse_iso

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


DELETE, RETIRE = "delete", "retire"


def _time(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def damaged_fate(raw: Mapping[str, Any], retention_seconds: float, operation_timeout: float, now: float) -> str | None:
    """What the purge does with a record it cannot read, judged on the few properties that still read
    (shared/operations/damaged.py FATE_PROPERTIES) by the rules that hold for readable ones: DELETE a terminal one
    once it has expired, RETIRE (end it failed, so that it expires in turn) an active one once it is stranded,
    None otherwise (kept as it is; its own GET reports it). A property it needs that does not read: None."""
    status = raw.get("Status")
    if status in TERMINAL:
        expiry = _time(raw, "ExpiresAt")
        completed = _time(raw, "CompletedAt")
        if expiry is None and completed is not None:
            expiry = completed + retention_seconds
        return DELETE if expiry is not None and expiry <= now else None
    created, updated = _time(raw, "CreatedAt"), _time(raw, "UpdatedAt")
    if status not in ACTIVE or created is None or updated is None:
        return None
    stranded = now - created > operation_timeout + STRANDED_AFTER_SECONDS and now - updated > STRANDED_AFTER_SECONDS
    return RETIRE if stranded else None


def message_ttl(delay: int, life: float) -> int:
    """A queue message's time-to-live: visible after `delay`, useful for `life` more seconds, plus a margin.

    Bounded by 7 days, and always longer than the visibility delay (Put Message: "visibilitytimeout ...
    must be ... less than the time-to-live value")."""
    ttl = int(delay + life + MESSAGE_TTL_MARGIN_SECONDS)
    return max(delay + MIN_TTL_AFTER_VISIBLE_SECONDS, min(MAX_MESSAGE_TTL_SECONDS, ttl))
