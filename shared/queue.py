"""The two queues: polls (one message per operation in flight) and webhook deliveries (one per attempt).

Every message is small JSON with a version; anything else is a BadMessage, dropped, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from .messages import MAX_REASON_LENGTH, MAX_VISIBILITY_SECONDS, PollState
from .retention import message_ttl
from .strict_json import JsonRefused, dumps, loads

MESSAGE_VERSION = 1
MAX_COUNTER = 2**31 - 1  # generation, polls, transient failures, attempts: Table Storage Edm.Int32 holds them
MAX_MESSAGE_CHARS = 64 * 1024  # a Storage queue message is at most 64 KiB
MAX_ID_CHARS = 128
MAX_SINCE = 2.0**33  # seconds since the epoch (the year 2242): a timestamp, not a counter


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
    return dumps(message, separators=(",", ":"))


def _object(text: str) -> dict[str, Any]:
    """The message as a JSON object of our version; BadMessage for anything else (whatever the cause)."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        raise BadMessage("not a message of ours (type or size)")
    try:
        raw = loads(text, max_depth=2)
    except JsonRefused as exc:
        raise BadMessage(f"not strict JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadMessage("not a JSON object")
    version = raw.get("v")
    if type(version) is not int or version != MESSAGE_VERSION:  # `true == 1` in Python: exact type only
        raise BadMessage("unknown message version")
    return raw


def _counter(raw: dict[str, Any], name: str, default: int | None = None, minimum: int = 0) -> int:
    """An exact JSON integer (not a bool, a float or a string) in [minimum, MAX_COUNTER]."""
    value = raw.get(name, default)
    if value is None:
        raise BadMessage(f"missing {name}")
    if type(value) is not int:
        raise BadMessage(f"{name} must be an integer")
    if not minimum <= value <= MAX_COUNTER:
        raise BadMessage(f"{name} out of range")
    return value


def _identifier(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise BadMessage(f"missing or malformed {name}")
    return value


def decode(text: str) -> PollState:
    raw = _object(text)
    operation_id = _identifier(raw, "id")
    why = raw.get("why", "")
    if not isinstance(why, str):
        raise BadMessage("malformed transient reason")
    return PollState(
        operation_id,
        _counter(raw, "gen"),
        _counter(raw, "polls", 0),
        _counter(raw, "transient", 0),
        why[:MAX_REASON_LENGTH],
    )


@dataclass(frozen=True)
class DeliveryTask:
    """One webhook attempt: which event, which attempt, and when this run of attempts began."""

    operation_id: str
    event_id: str
    attempt: int
    since: float


def encode_delivery(task: DeliveryTask) -> str:
    return dumps(
        {
            "v": MESSAGE_VERSION,
            "kind": "webhook",
            "id": task.operation_id,
            "event": task.event_id,
            "attempt": task.attempt,
            "since": task.since,
        },
        separators=(",", ":"),
    )


def decode_delivery(text: str) -> DeliveryTask:
    raw = _object(text)
    if raw.get("kind") != "webhook":
        raise BadMessage("not a webhook delivery message")
    operation_id, event_id = _identifier(raw, "id"), _identifier(raw, "event")
    attempt = _counter(raw, "attempt", minimum=1)
    since = raw.get("since")
    if not isinstance(since, int | float) or isinstance(since, bool) or not 0 <= since <= MAX_SINCE:
        raise BadMessage("since must be a timestamp")
    return DeliveryTask(operation_id, event_id, attempt, float(since))


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


def message_kind(text: str) -> str | None:
    """The `kind` of a webhook-queue message (webhook, fanout, subscription), None if unreadable."""
    try:
        kind = _object(text).get("kind")
    except BadMessage:
        return None
    return kind if isinstance(kind, str) else None


def encode_fanout(task: FanoutTask) -> str:
    return dumps(
        {"v": MESSAGE_VERSION, "kind": "fanout", "id": task.operation_id, "event": task.event_id, "tries": task.tries},
        separators=(",", ":"),
    )


def decode_fanout(text: str) -> FanoutTask:
    raw = _object(text)
    if raw.get("kind") != "fanout":
        raise BadMessage("not a fan-out message")
    return FanoutTask(_identifier(raw, "id"), _identifier(raw, "event"), _counter(raw, "tries", 0))


def encode_subscription_attempt(task: SubscriptionAttempt) -> str:
    return dumps(
        {
            "v": MESSAGE_VERSION,
            "kind": "subscription",
            "id": task.operation_id,
            "sub": task.subscription_id,
            "event": task.event_id,
            "attempt": task.attempt,
        },
        separators=(",", ":"),
    )


def decode_subscription_attempt(text: str) -> SubscriptionAttempt:
    raw = _object(text)
    if raw.get("kind") != "subscription":
        raise BadMessage("not a subscription delivery message")
    return SubscriptionAttempt(
        _identifier(raw, "id"), _identifier(raw, "sub"), _identifier(raw, "event"), _counter(raw, "attempt", minimum=1)
    )


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

    async def ping(self) -> None:
        """One cheap read (Get Queue Metadata) to show the queue answers (used by /api/health)."""
        await self.client.get_queue_properties()

    async def send_text(self, text: str, delay: int) -> None:
        visible_in = max(0, min(delay, MAX_VISIBILITY_SECONDS))
        await self.client.send_message(
            text, visibility_timeout=visible_in, time_to_live=message_ttl(visible_in, self.life)
        )


class PollQueue(StorageQueue):
    async def send(self, state: PollState, delay: int) -> None:
        await self.send_text(encode(state), delay)

    async def send_lane(self, lane: str, delay: int = 0) -> None:
        await self.send_text(encode_lane(lane), delay)


class DeliveryQueue(StorageQueue):
    """The webhook queue: operation webhook attempts, subscription fan-outs and subscription attempts."""

    async def send(self, task: DeliveryTask, delay: int = 0) -> None:
        await self.send_text(encode_delivery(task), delay)

    async def send_fanout(self, task: FanoutTask, delay: int = 0) -> None:
        await self.send_text(encode_fanout(task), delay)

    async def send_subscription_attempt(self, task: SubscriptionAttempt, delay: int = 0) -> None:
        await self.send_text(encode_subscription_attempt(task), delay)


LANE_KIND = "lane"  # on the poll queue: advance a workbook's lane (shared/lane_flow.py)


def encode_lane(lane: str) -> str:
    return dumps({"v": MESSAGE_VERSION, "kind": LANE_KIND, "lane": lane}, separators=(",", ":"))


def decode_lane(text: str) -> str:
    raw = _object(text)
    if raw.get("kind") != LANE_KIND:
        raise BadMessage("not a lane message")
    lane = _identifier(raw, "lane")
    if not lane.startswith("lane-") or not all(c in "0123456789abcdef" for c in lane[5:]) or len(lane) != 37:
        raise BadMessage("malformed lane key")
    return lane
