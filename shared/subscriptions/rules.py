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

Deliveries are created insert-if-absent and advanced with ETag-guarded updates (shared/delivery/fanout.py).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from shared.api.problems import FieldError, invalid
from shared.delivery.targets import OutboundPolicy
from shared.graph.actions import table as action_table
from shared.operations.record import BINARY, Operation
from shared.operations.requests import parse_callback_format, parse_callback_url
from shared.subscriptions.record import (
    DEFAULT_STATUSES,
    EVENT_STATUSES,
    Subscription,
    owner_key,
)

MAX_PER_OWNER = 100
_ID_RE = re.compile(r"^[0-9a-f]{48}$")
_FIELDS = {"callbackUrl", "actions", "statuses", "callbackFormat"}


def new_subscription_id(owner: str) -> str:
    """48 hex digits: the owner key (the partition) and 64 random bits."""
    return owner_key(owner) + secrets.token_hex(8)


def is_subscription_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))


@dataclass(frozen=True)
class SubscriptionRequest:
    callback_url: str
    actions: tuple[str, ...]
    statuses: tuple[str, ...]
    callback_format: str


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
    actions = _choices(payload, "actions", action_table.names(), (), errors)
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
