"""Subscriptions and their delivery state in the operations table (see shared/subscriptions/rules.py for the keys)."""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.operations.store import Conflict, is_precondition_failure
from shared.subscriptions.record import (
    DELIVERY_ROW_PREFIX,
    FANOUT_ROW_KEY,
    ROW_PREFIX,
    Subscription,
    SubscriptionDelivery,
    delivery_from_entity,
    delivery_to_entity,
    from_entity,
    partition_for_owner,
    partition_of,
    to_entity,
)


class SubscriptionStore:
    """Shares the operations table's client (it does not close it)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    async def create(self, subscription: Subscription) -> Subscription:
        try:
            await self._table.create_entity(to_entity(subscription))
        except ResourceExistsError:
            raise Conflict(subscription.id) from None
        return subscription

    async def get(self, subscription_id: str) -> Subscription | None:
        try:
            entity = await self._table.get_entity(partition_of(subscription_id), ROW_PREFIX + subscription_id)
        except ResourceNotFoundError:
            return None
        return from_entity(dict(entity), entity.metadata.get("etag"))

    async def delete(self, subscription_id: str) -> None:
        """Idempotent: deleting an absent subscription is not an error."""
        try:
            await self._table.delete_entity(partition_of(subscription_id), ROW_PREFIX + subscription_id)
        except ResourceNotFoundError:
            pass

    async def list(self, owner: str) -> list[Subscription]:
        """The owner's subscriptions: one partition query (at most MAX_PER_OWNER entities)."""
        found: list[Subscription] = []
        entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_for_owner(owner)})
        async for entity in entities:
            if str(entity["RowKey"]).startswith(ROW_PREFIX):
                found.append(from_entity(dict(entity), entity.metadata.get("etag")))
        return found

    # The fan-out marker: written once an operation's event was handed to every matching subscription. A
    # separate entity, not a field of the record, so it never moves the record's ETag under its other writers.
    async def mark_fanned_out(self, operation_id: str, event_id: str) -> None:
        await self._table.upsert_entity(
            {"PartitionKey": operation_id, "RowKey": FANOUT_ROW_KEY, "EventId": event_id}, mode=UpdateMode.REPLACE
        )

    async def fanned_out(self, operation_id: str, event_id: str) -> bool:
        try:
            entity = await self._table.get_entity(operation_id, FANOUT_ROW_KEY)
        except ResourceNotFoundError:
            return False
        return entity.get("EventId") == event_id

    # Delivery state: one entity per (event, subscription) in the operation's partition.
    async def create_delivery(self, delivery: SubscriptionDelivery) -> SubscriptionDelivery | None:
        """Insert if absent; None when it already exists (a duplicate fan-out)."""
        try:
            meta = await self._table.create_entity(delivery_to_entity(delivery))
        except ResourceExistsError:
            return None
        return delivery.with_(etag=meta.get("etag"))

    async def get_delivery(self, operation_id: str, subscription_id: str) -> SubscriptionDelivery | None:
        try:
            entity = await self._table.get_entity(operation_id, DELIVERY_ROW_PREFIX + subscription_id)
        except ResourceNotFoundError:
            return None
        return delivery_from_entity(dict(entity), entity.metadata.get("etag"))

    async def update_delivery(self, delivery: SubscriptionDelivery) -> SubscriptionDelivery:
        """Replace, only if the entity is still the one `delivery` was read as (its ETag); else Conflict."""
        try:
            meta = await self._table.update_entity(
                delivery_to_entity(delivery),
                mode=UpdateMode.REPLACE,
                etag=delivery.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            raise Conflict(delivery.operation_id) from None
        except HttpResponseError as exc:
            if is_precondition_failure(exc):
                raise Conflict(delivery.operation_id) from None
            raise
        return delivery.with_(etag=meta.get("etag"))
