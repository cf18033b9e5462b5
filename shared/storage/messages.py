"""The queue messages: what rides on the poll queue (one message per operation in flight, or a lane's advance)
and on the webhook queue (one per webhook attempt, fan-out or subscription attempt), with their strict, versioned
JSON codecs. Pure: no I/O. Every message is small JSON with a version; anything else is a BadMessage, dropped,
never retried. Each one sent also carries the sender's W3C trace context (`tp`, `ts`), optional when read.

The decisions read and return these values; the queue adapter (shared/storage/queues.py) sends what the codecs
make, so neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.wire.strict_json import JsonRefused, dumps, loads

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # a Storage queue message becomes visible at most 7 days after it is sent
MAX_REASON_LENGTH = 200  # the last transient reason rides in every poll message: keep it small


@dataclass(frozen=True)
class PollState:
    """What the queue message carries from poll to poll (so uneventful polls write no table entity)."""

    operation_id: str
    generation: int
    polls: int = 0
    transient_failures: int = 0
    last_transient: str = ""  # why the latest transient answer failed (while transient_failures > 0)


# The W3C trace context of the step that sent a message rides in it under these short fields, so the step that
# processes it continues the operation's trace (shared/observability/telemetry.py). Optional: messages sent before they
# existed, or by hand, have none and are processed as before; unknown fields were always ignored, so an older
# worker reading a newer message during a rolling deploy is fine too.
TRACE_FIELDS = {"traceparent": "tp", "tracestate": "ts"}
MAX_TRACE_CHARS = {"traceparent": 55, "tracestate": 512}  # W3C: traceparent is 55 chars; tracestate <= 512


def trace_fields(carrier: dict[str, str]) -> dict[str, str]:
    """The message fields for a W3C carrier (`traceparent`, `tracestate`); oversized values are left out."""
    return {
        field: carrier[name]
        for name, field in TRACE_FIELDS.items()
        if isinstance(carrier.get(name), str) and 0 < len(carrier[name]) <= MAX_TRACE_CHARS[name]
    }


def trace_carrier(raw: dict[str, object]) -> dict[str, str]:
    """The W3C carrier a decoded message holds; empty when it has none (or a malformed one: never an error)."""
    carrier: dict[str, str] = {}
    for name, field in TRACE_FIELDS.items():
        value = raw.get(field)
        if isinstance(value, str) and 0 < len(value) <= MAX_TRACE_CHARS[name]:
            carrier[name] = value
    return carrier if "traceparent" in carrier else {}


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


LANE_KIND = "lane"  # on the poll queue: advance a workbook's lane (shared/lanes/admission.py)


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
