"""The subscription records and their table entities (see shared/subscriptions/rules.py for the layout): what the
store persists, with no I/O and nothing above the records layer imported."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from shared.operations.record import BINARY, CALLBACK_FORMATS, CANCELED, FAILED, SUCCEEDED, TIMED_OUT

EVENT_STATUSES = (SUCCEEDED, FAILED, TIMED_OUT, CANCELED)


DEFAULT_STATUSES = (SUCCEEDED, FAILED, TIMED_OUT)  # a caller's own cancel is an event only when asked for


PARTITION_PREFIX = "subs-"


ROW_PREFIX = "sub-"


DELIVERY_ROW_PREFIX = "subdelivery-"


FANOUT_ROW_KEY = "fanout"


# Deterministic delivery ids: uuid5 over (event id, subscription id) in this namespace.
DELIVERY_NAMESPACE = uuid.UUID("7f1f4a0c-2f5e-4c1b-9a57-0d3b7a1e6c21")


PENDING, DELIVERED, GAVE_UP, UNSUBSCRIBED = "pending", "delivered", "failed", "unsubscribed"


def owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def partition_for_owner(owner: str) -> str:
    return PARTITION_PREFIX + owner_key(owner)


def partition_of(subscription_id: str) -> str:
    return PARTITION_PREFIX + subscription_id[:32]


def delivery_id(event_id: str, subscription_id: str) -> str:
    """The `webhook-id` (and CloudEvents `id`) of one event sent to one subscription: the same on every attempt."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}/{subscription_id}"))


@dataclass(frozen=True)
class Subscription:
    id: str
    owner: str
    callback_sealed: str
    actions: tuple[str, ...]  # empty: every action
    statuses: tuple[str, ...]
    callback_format: str
    created_at: str
    base_url: str
    etag: str | None = field(default=None, compare=False)


def to_entity(subscription: Subscription) -> dict[str, Any]:
    return {
        "PartitionKey": partition_of(subscription.id),
        "RowKey": ROW_PREFIX + subscription.id,
        "Owner": subscription.owner,
        "CallbackSealed": subscription.callback_sealed,
        "ActionsJson": json.dumps(list(subscription.actions)),
        "StatusesJson": json.dumps(list(subscription.statuses)),
        "CallbackFormat": subscription.callback_format,
        "CreatedAt": subscription.created_at,
        "BaseUrl": subscription.base_url,
    }


def from_entity(entity: dict[str, Any], etag: str | None = None) -> Subscription:
    callback_format = str(entity.get("CallbackFormat") or BINARY)
    return Subscription(
        id=str(entity["RowKey"])[len(ROW_PREFIX) :],
        owner=str(entity["Owner"]),
        callback_sealed=str(entity["CallbackSealed"]),
        actions=tuple(json.loads(entity.get("ActionsJson") or "[]")),
        statuses=tuple(json.loads(entity.get("StatusesJson") or "[]")) or DEFAULT_STATUSES,
        callback_format=callback_format if callback_format in CALLBACK_FORMATS else BINARY,
        created_at=str(entity.get("CreatedAt") or ""),
        base_url=str(entity.get("BaseUrl") or ""),
        etag=etag,
    )


@dataclass(frozen=True)
class SubscriptionDelivery:
    """One event on its way to one subscription: its attempts recorded, and the attempt a delivery claimed and has
    not recorded yet (the claim's time is `last_attempt_at`; shared/delivery/claims.py)."""

    operation_id: str
    subscription_id: str
    event_id: str
    since: float  # when the fan-out created it: the retry window starts here
    state: str = PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: float | None = None  # set while a retry waits (Retry-After may push it out)
    claimed_attempt: int | None = None  # absent from entities written before claims had their own field
    etag: str | None = field(default=None, compare=False)

    @property
    def webhook_id(self) -> str:
        return delivery_id(self.event_id, self.subscription_id)

    def with_(self, **changes: Any) -> SubscriptionDelivery:
        return replace(self, **changes)


def delivery_to_entity(d: SubscriptionDelivery) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": d.operation_id,
        "RowKey": DELIVERY_ROW_PREFIX + d.subscription_id,
        "EventId": d.event_id,
        "Since": d.since,
        "State": d.state,
        "Attempts": d.attempts,
        "LastStatus": d.last_status if d.last_status is not None else "",
        "LastError": d.last_error or "",
        "LastAttemptAt": d.last_attempt_at or "",
        "NextAttemptAt": d.next_attempt_at if d.next_attempt_at is not None else "",
        "ClaimedAttempt": d.claimed_attempt if d.claimed_attempt is not None else "",
    }
    return entity


def delivery_from_entity(entity: dict[str, Any], etag: str | None = None) -> SubscriptionDelivery:
    def optional(name: str) -> Any:
        value = entity.get(name)
        return None if value in ("", None) else value

    last_status, next_at, claimed = optional("LastStatus"), optional("NextAttemptAt"), optional("ClaimedAttempt")
    return SubscriptionDelivery(
        operation_id=str(entity["PartitionKey"]),
        subscription_id=str(entity["RowKey"])[len(DELIVERY_ROW_PREFIX) :],
        event_id=str(entity["EventId"]),
        since=float(entity["Since"]),
        state=str(entity.get("State") or PENDING),
        attempts=int(entity.get("Attempts") or 0),
        last_status=None if last_status is None else int(last_status),
        last_error=optional("LastError"),
        last_attempt_at=optional("LastAttemptAt"),
        next_attempt_at=None if next_at is None else float(next_at),
        claimed_attempt=None if claimed is None else int(claimed),
        etag=etag,
    )
