"""What the subscription HTTP functions do: register, read, list and delete owner-scoped subscriptions.

Registering starts nothing in Graph: Power Automate registers a connector's webhook trigger on every save,
enable or parameter change (connectors-native-webhook.md), so registration must have no other effect.
"""

from __future__ import annotations

import logging
import time

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid
from shared.crypto.sealing import seal
from shared.delivery.fanout import subscriptions
from shared.delivery.resolver import check_target
from shared.delivery.targets import Refused
from shared.operations.record import iso
from shared.operations.requests import parse_json_body
from shared.runtime.worker import Runtime
from shared.subscriptions.record import Subscription
from shared.subscriptions.rules import (
    MAX_PER_OWNER,
    is_subscription_id,
    new_subscription_id,
    parse_subscription_request,
)

log = logging.getLogger(__name__)


def not_found(subscription_id: str) -> Problem:
    return Problem(
        404, "subscriptionNotFound", "No such subscription", f"There is no subscription {subscription_id[:64]!r}."
    )


async def create(
    rt: Runtime, body: bytes, base_url: str, caller: Caller, content_type: str | None = None
) -> Subscription:
    request = parse_subscription_request(
        parse_json_body(body, content_type),
        allow_private_callbacks=rt.settings.webhook_allow_private_networks,
        webhooks_configured=bool(rt.settings.webhook_secrets),
        allowed_callback_hosts=rt.settings.webhook_allowed_hosts,
    )
    try:
        await check_target(request.callback_url, rt.outbound, rt.resolver)
    except Refused as exc:
        raise invalid([FieldError("callbackUrl", exc.reason)]) from None
    store = subscriptions(rt)
    if len(await store.list(caller.owner)) >= MAX_PER_OWNER:
        raise Problem(
            409,
            "tooManySubscriptions",
            "Too many subscriptions",
            f"An owner may have at most {MAX_PER_OWNER} subscriptions; delete some first.",
        )
    subscription_id = new_subscription_id(caller.owner)
    subscription = Subscription(
        id=subscription_id,
        owner=caller.owner,
        callback_sealed=seal(request.callback_url, rt.settings.webhook_secrets, subscription_id),
        actions=request.actions,
        statuses=request.statuses,
        callback_format=request.callback_format,
        created_at=iso(time.time()),
        base_url=base_url,
    )
    await store.create(subscription)
    log.info("subscription %s registered (%s)", subscription.id, ", ".join(subscription.statuses))
    return subscription


async def get(rt: Runtime, subscription_id: str, caller: Caller) -> Subscription:
    """The subscription if the caller may see it; another owner's is a 404, as if absent."""
    found = await subscriptions(rt).get(subscription_id) if is_subscription_id(subscription_id) else None
    if found is None or not caller.may_see(found.owner):
        raise not_found(subscription_id)
    return found


async def list_for(rt: Runtime, caller: Caller) -> list[Subscription]:
    """The caller's own subscriptions (one partition; Operations.ReadAll does not widen it)."""
    return sorted(await subscriptions(rt).list(caller.owner), key=lambda s: s.created_at)


async def delete(rt: Runtime, subscription_id: str, caller: Caller) -> None:
    """Unsubscribe. Idempotent: an absent (already deleted) subscription is 204 too, because the platform
    DELETEs the registration's Location whenever a flow is removed or re-registered and a repeated or late
    DELETE must not fail the flow; another owner's existing subscription is a 404 and is left alone."""
    if not is_subscription_id(subscription_id):
        raise not_found(subscription_id)
    store = subscriptions(rt)
    found = await store.get(subscription_id)
    if found is None:
        return
    if not caller.may_see(found.owner):
        raise not_found(subscription_id)
    await store.delete(subscription_id)
    log.info("subscription %s deleted", subscription_id)
