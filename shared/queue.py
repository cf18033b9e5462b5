"""The two queues: polls (one message per operation in flight) and webhook deliveries (one per attempt).

Every message is small JSON with a version; anything else is a BadMessage, dropped, never retried. Each one
sent also carries the sender's W3C trace context (`tp`, `ts`: shared/messages.py), optional when read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from . import telemetry
from .messages import MAX_REASON_LENGTH, MAX_VISIBILITY_SECONDS, PollState, trace_carrier, trace_fields
from .retention import message_ttl
from .strict_json import JsonRefused, dumps, loads

MESSAGE_VERSION = 1
MAX_COUNTER = 2**31 - 1  # generation, polls, transient failures, attempts: Table Storage Edm.Int32 holds them
MAX_MESSAGE_CHARS = 64 * 1024  # a Storage queue message is at most 64 KiB
MAX_ID_CHARS = 128
MAX_SINCE = 2.0**33  # seconds since the epoch (the year 2242): a timestamp, not a counter


class BadMessage(ValueError):
    """The message is not one of ours (or not this version): it is dropped, never retried."""


Trace = dict[str, str] | None  # a W3C carrier (traceparent, tracestate) to put in the message


def _dump(message: dict[str, object], trace: Trace) -> str:
    return dumps({**message, **trace_fields(trace)} if trace else message, separators=(",", ":"))


def encode(state: PollState, trace: Trace = None) -> str:
    message: dict[str, object] = {
        "v": MESSAGE_VERSION,
        "id": state.operation_id,
        "gen": state.generation,
        "polls": state.polls,
        "transient": state.transient_failures,
    }
    if state.last_transient:
        message["why"] = state.last_transient
    return _dump(message, trace)


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


def trace_context(text: str) -> dict[str, str]:
    """The sender's W3C trace context in a message of ours; empty for a message without one (or not ours)."""
    try:
        return trace_carrier(_object(text))
    except BadMessage:
        return {}


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


def encode_delivery(task: DeliveryTask, trace: Trace = None) -> str:
    return _dump(
        {
            "v": MESSAGE_VERSION,
            "kind": "webhook",
            "id": task.operation_id,
            "event": task.event_id,
            "attempt": task.attempt,
            "since": task.since,
        },
        trace,
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


def encode_fanout(task: FanoutTask, trace: Trace = None) -> str:
    return _dump(
        {"v": MESSAGE_VERSION, "kind": "fanout", "id": task.operation_id, "event": task.event_id, "tries": task.tries},
        trace,
    )


def decode_fanout(text: str) -> FanoutTask:
    raw = _object(text)
    if raw.get("kind") != "fanout":
        raise BadMessage("not a fan-out message")
    return FanoutTask(_identifier(raw, "id"), _identifier(raw, "event"), _counter(raw, "tries", 0))


def encode_subscription_attempt(task: SubscriptionAttempt, trace: Trace = None) -> str:
    return _dump(
        {
            "v": MESSAGE_VERSION,
            "kind": "subscription",
            "id": task.operation_id,
            "sub": task.subscription_id,
            "event": task.event_id,
            "attempt": task.attempt,
        },
        trace,
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
        """Send a message as it is (the poison replay: it keeps the trace context it had)."""
        visible_in = max(0, min(delay, MAX_VISIBILITY_SECONDS))
        await self.client.send_message(
            text, visibility_timeout=visible_in, time_to_live=message_ttl(visible_in, self.life)
        )

    async def send_traced(self, build: Callable[[Trace], str], delay: int) -> None:
        """Send the message `build` makes with the trace context of a PRODUCER span for this send, so the
        step that processes it is that span's child (one trace per operation across the queue hops)."""
        with telemetry.producer_span(getattr(self.client, "queue_name", None) or "queue") as carrier:
            await self.send_text(build(carrier or None), delay)


class PollQueue(StorageQueue):
    async def send(self, state: PollState, delay: int) -> None:
        await self.send_traced(lambda trace: encode(state, trace), delay)

    async def send_lane(self, lane: str, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_lane(lane, trace), delay)


class DeliveryQueue(StorageQueue):
    """The webhook queue: operation webhook attempts, subscription fan-outs and subscription attempts."""

    async def send(self, task: DeliveryTask, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_delivery(task, trace), delay)

    async def send_fanout(self, task: FanoutTask, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_fanout(task, trace), delay)

    async def send_subscription_attempt(self, task: SubscriptionAttempt, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_subscription_attempt(task, trace), delay)


LANE_KIND = "lane"  # on the poll queue: advance a workbook's lane (shared/lane_flow.py)


def encode_lane(lane: str, trace: Trace = None) -> str:
    return _dump({"v": MESSAGE_VERSION, "kind": LANE_KIND, "lane": lane}, trace)


def decode_lane(text: str) -> str:
    raw = _object(text)
    if raw.get("kind") != LANE_KIND:
        raise BadMessage("not a lane message")
    lane = _identifier(raw, "lane")
    if not lane.startswith("lane-") or not all(c in "0123456789abcdef" for c in lane[5:]) or len(lane) != 37:
        raise BadMessage("malformed lane key")
    return lane
