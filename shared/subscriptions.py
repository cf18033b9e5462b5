"""Owner-scoped subscriptions ("an operation of mine finished") and their per-event delivery state. Pure.

A subscription lives in the operations table under a partition per owner, so the fan-out for a finished
operation is one partition query:

    PartitionKey  subs-<owner key>        RowKey  sub-<subscription id>

The owner key is the first 32 hex digits (128 bits) of sha256(owner); a subscription id starts with it,
so any id names its partition and every read by id is a point read. The delivery of one event to one
subscription is an entity in the operation's own partition (the operations list reads only
`RowKey eq 'operation'`, so neither kind leaks into it):

    PartitionKey  <operation id>          RowKey  subdelivery-<subscription id>
    PartitionKey  <operation id>          RowKey  fanout      (the event was fanned out)

Deliveries are created insert-if-absent and advanced with ETag-guarded updates (shared/fanout.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .outbound import OutboundPolicy
from .problems import FieldError, invalid
from .records import CANCELED, FAILED, SUCCEEDED, TIMED_OUT, Operation
from .validation import ACTIONS, parse_callback_format, parse_callback_url
from .webhooks import BINARY, CALLBACK_FORMATS

MAX_PER_OWNER = 100
EVENT_STATUSES = (SUCCEEDED, FAILED, TIMED_OUT, CANCELED)
DEFAULT_STATUSES = (SUCCEEDED, FAILED, TIMED_OUT)  # a caller's own cancel is an event only when asked for
PARTITION_PREFIX = "subs-"
ROW_PREFIX = "sub-"
DELIVERY_ROW_PREFIX = "subdelivery-"
FANOUT_ROW_KEY = "fanout"
_ID_RE = re.compile(r"^[0-9a-f]{48}$")
_FIELDS = {"callbackUrl", "actions", "statuses", "callbackFormat"}
# Deterministic delivery ids: uuid5 over (event id, subscription id) in this namespace.
DELIVERY_NAMESPACE = uuid.UUID("7f1f4a0c-2f5e-4c1b-9a57-0d3b7a1e6c21")

PENDING, DELIVERED, GAVE_UP, UNSUBSCRIBED = "pending", "delivered", "failed", "unsubscribed"


def owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def partition_for_owner(owner: str) -> str:
    return PARTITION_PREFIX + owner_key(owner)


def new_subscription_id(owner: str) -> str:
    """48 hex digits: the owner key (the partition) and 64 random bits."""
    return owner_key(owner) + secrets.token_hex(8)


def is_subscription_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def partition_of(subscription_id: str) -> str:
    return PARTITION_PREFIX + subscription_id[:32]


def delivery_id(event_id: str, subscription_id: str) -> str:
    """The `webhook-id` (and CloudEvents `id`) of one event sent to one subscription: the same on every attempt."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}/{subscription_id}"))


@dataclass(frozen=True)
class SubscriptionRequest:
    callback_url: str
    actions: tuple[str, ...]
    statuses: tuple[str, ...]
    callback_format: str


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


def _choices(
    payload: dict[str, Any], name: str, allowed: tuple[str, ...], default: tuple[str, ...], errors: list[FieldError]
) -> tuple[str, ...]:
    if name not in payload or payload[name] == []:
        return default
    value = payload[name]  # null is refused like any other non-array (the schema says an array)
    if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
        errors.append(FieldError(name, "must be an array of " + ", ".join(allowed)))
        return default
    return tuple(v for v in allowed if v in value)  # canonical order, no repeats


def parse_subscription_request(
    payload: Any,
    *,
    allow_private_callbacks: bool,
    webhooks_configured: bool,
    allowed_callback_hosts: tuple[str, ...] = (),
) -> SubscriptionRequest:
    """`POST /api/subscriptions` bodies; callbackUrl gets the same static checks as operation callbacks."""
    if not isinstance(payload, dict):
        raise invalid([FieldError("body", "must be a JSON object")])
    errors = [FieldError(name, "unknown field") for name in sorted(set(payload) - _FIELDS)]
    callback = None
    if payload.get("callbackUrl") is None:
        errors.append(FieldError("callbackUrl", "required: the URL each event is POSTed to"))
    else:
        callback = parse_callback_url(
            payload.get("callbackUrl"),
            OutboundPolicy(allow_private_callbacks, allowed_callback_hosts),
            webhooks_configured,
            errors,
        )
    actions = _choices(payload, "actions", ACTIONS, (), errors)
    statuses = _choices(payload, "statuses", EVENT_STATUSES, DEFAULT_STATUSES, errors)
    callback_format = parse_callback_format(payload, errors) if callback else BINARY
    if errors or callback is None:
        raise invalid(errors)
    return SubscriptionRequest(callback, actions, statuses, callback_format)


def matches(subscription: Subscription, op: Operation) -> bool:
    """Does this finished operation fire this subscription? Same owner is the store's job (the partition)."""
    if op.status not in subscription.statuses:
        return False
    return not subscription.actions or op.action in subscription.actions


def subscription_url(subscription: Subscription) -> str:
    return f"{subscription.base_url}/subscriptions/{subscription.id}"


def to_json(subscription: Subscription) -> dict[str, Any]:
    """The public form. Never contains the callback URL (it may carry a signature, e.g. Logic Apps' sig=)."""
    return {
        "id": subscription.id,
        "actions": list(subscription.actions),
        "statuses": list(subscription.statuses),
        "callbackFormat": subscription.callback_format,
        "createdAt": subscription.created_at,
        "owner": subscription.owner,
        "links": {"self": subscription_url(subscription)},
    }


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
    """One event on its way to one subscription: the attempt counter is what makes retries at-most-once."""

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
    }
    return entity


def delivery_from_entity(entity: dict[str, Any], etag: str | None = None) -> SubscriptionDelivery:
    def optional(name: str) -> Any:
        value = entity.get(name)
        return None if value in ("", None) else value

    last_status, next_at = optional("LastStatus"), optional("NextAttemptAt")
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
        etag=etag,
    )
