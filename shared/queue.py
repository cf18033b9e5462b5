"""The two queues: polls (one message per operation in flight) and webhook deliveries (one per attempt).

Every message is small JSON with a version; anything else is a BadMessage, dropped, never retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from .polling import MAX_REASON_LENGTH, MAX_VISIBILITY_SECONDS, PollState
from .retention import message_ttl

MESSAGE_VERSION = 1


class BadMessage(ValueError):
    """The message is not one of ours (or not this version): it is dropped, never retried."""


def encode(state: PollState) -> str:
    message: dict[str, object] = {
        "v": MESSAGE_VERSION,
        "id": state.operation_id,
        "gen": state.generation,
        "polls": state.polls,
        "transient": state.transient_failures,
    }
    if state.last_transient:
        message["why"] = state.last_transient
    return json.dumps(message, separators=(",", ":"))


def decode(text: str) -> PollState:
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
        raise BadMessage("unknown message version")
    if not isinstance(raw.get("id"), str):
        raise BadMessage("missing operation id")
    why = raw.get("why", "")
    if not isinstance(why, str):
        raise BadMessage("malformed transient reason")
    try:
        state = PollState(raw["id"], int(raw["gen"]), int(raw.get("polls", 0)), int(raw.get("transient", 0)),
                          why[:MAX_REASON_LENGTH])
    except (KeyError, TypeError, ValueError):
        raise BadMessage("missing or malformed fields") from None
    if state.generation < 0 or state.polls < 0 or state.transient_failures < 0:
        raise BadMessage("negative counters")
    return state


@dataclass(frozen=True)
class DeliveryTask:
    """One webhook attempt: which event, which attempt, and when this run of attempts began."""

    operation_id: str
    event_id: str
    attempt: int
    since: float


def encode_delivery(task: DeliveryTask) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "kind": "webhook", "id": task.operation_id, "event": task.event_id,
                       "attempt": task.attempt, "since": task.since}, separators=(",", ":"))


def decode_delivery(text: str) -> DeliveryTask:
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION or raw.get("kind") != "webhook":
        raise BadMessage("not a webhook delivery message")
    if not isinstance(raw.get("id"), str) or not isinstance(raw.get("event"), str):
        raise BadMessage("missing operation or event id")
    try:
        task = DeliveryTask(raw["id"], raw["event"], int(raw["attempt"]), float(raw["since"]))
    except (KeyError, TypeError, ValueError):
        raise BadMessage("missing or malformed fields") from None
    if task.attempt < 1:
        raise BadMessage("attempt must be >= 1")
    return task


@dataclass(frozen=True)
class FanoutTask:
    """Hand a finished operation's event to its owner's subscriptions. `tries` counts waits for the record."""

    operation_id: str
    event_id: str
    tries: int = 0


@dataclass(frozen=True)
class SubscriptionAttempt:
    """One attempt to deliver one event to one subscription."""

    operation_id: str
    subscription_id: str
    event_id: str
    attempt: int


def _load(text: str) -> dict[str, object]:
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
        raise BadMessage("unknown message version")
    return raw


def message_kind(text: str) -> str | None:
    """The `kind` of a webhook-queue message (webhook, fanout, subscription), None if unreadable."""
    try:
        kind = _load(text).get("kind")
    except BadMessage:
        return None
    return kind if isinstance(kind, str) else None


def encode_fanout(task: FanoutTask) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "kind": "fanout", "id": task.operation_id, "event": task.event_id,
                       "tries": task.tries}, separators=(",", ":"))


def decode_fanout(text: str) -> FanoutTask:
    raw = _load(text)
    if raw.get("kind") != "fanout" or not isinstance(raw.get("id"), str) or not isinstance(raw.get("event"), str):
        raise BadMessage("not a fan-out message")
    tries = raw.get("tries", 0)
    if not isinstance(tries, int) or tries < 0:
        raise BadMessage("malformed tries")
    return FanoutTask(str(raw["id"]), str(raw["event"]), tries)


def encode_subscription_attempt(task: SubscriptionAttempt) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "kind": "subscription", "id": task.operation_id,
                       "sub": task.subscription_id, "event": task.event_id, "attempt": task.attempt},
                      separators=(",", ":"))


def decode_subscription_attempt(text: str) -> SubscriptionAttempt:
    raw = _load(text)
    names = ("id", "sub", "event")
    if raw.get("kind") != "subscription" or not all(isinstance(raw.get(n), str) for n in names):
        raise BadMessage("not a subscription delivery message")
    attempt = raw.get("attempt")
    if not isinstance(attempt, int) or attempt < 1:
        raise BadMessage("attempt must be >= 1")
    return SubscriptionAttempt(str(raw["id"]), str(raw["sub"]), str(raw["event"]), attempt)


@dataclass
class StorageQueue:
    """`life`: how long a message stays useful once visible; its TTL is that plus a margin (retention.py)."""

    client: QueueClient
    life: float = 3600.0

    async def close(self) -> None:
        await self.client.close()

    async def ensure_queue(self) -> None:
        try:
            await self.client.create_queue()
        except ResourceExistsError:
            pass

    async def send_text(self, text: str, delay: int) -> None:
        visible_in = max(0, min(delay, MAX_VISIBILITY_SECONDS))
        await self.client.send_message(text, visibility_timeout=visible_in,
                                       time_to_live=message_ttl(visible_in, self.life))


class PollQueue(StorageQueue):
    async def send(self, state: PollState, delay: int) -> None:
        await self.send_text(encode(state), delay)


class DeliveryQueue(StorageQueue):
    """The webhook queue: operation webhook attempts, subscription fan-outs and subscription attempts."""

    async def send(self, task: DeliveryTask, delay: int = 0) -> None:
        await self.send_text(encode_delivery(task), delay)

    async def send_fanout(self, task: FanoutTask, delay: int = 0) -> None:
        await self.send_text(encode_fanout(task), delay)

    async def send_subscription_attempt(self, task: SubscriptionAttempt, delay: int = 0) -> None:
        await self.send_text(encode_subscription_attempt(task), delay)
