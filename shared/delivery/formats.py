"""Webhook bodies: an operation's terminal event as CloudEvents 1.0, in either HTTP content mode. Pure: no I/O.

Two CloudEvents HTTP content modes (cloudevents/spec, cloudevents/bindings/http-protocol-binding.md):
- binary (the default): attributes in `ce-*` headers, `Content-Type: application/json`, the body is the
  event's data alone. Logic Apps parses application/json bodies natively (logic-apps-content-type.md), so
  `body('X')?['status']` works in a workflow.
- structured: the whole event as the body, `Content-Type: application/cloudevents+json`. Logic Apps keeps
  that content type as `{"$content-type": ..., "$content": <base64>}`.
Either way the Standard Webhooks headers (shared/crypto/webhook_keys.py) sign the exact bytes sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.crypto.webhook_keys import sign
from shared.operations.record import BINARY, STRUCTURED

EVENT_TYPE_PREFIX = "workbook.operation."
EVENT_SOURCE = "/excel-async-bridge/operations"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
BINARY_CONTENT_TYPE = "application/json; charset=utf-8"


def build_event(*, event_id: str, status: str, time: str, subject: str, data: dict[str, Any]) -> bytes:
    """A CloudEvents 1.0 structured-mode JSON body; the same inputs always give the same bytes."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": EVENT_SOURCE,
        "type": EVENT_TYPE_PREFIX + status,
        "time": time,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()  # strict JSON out


@dataclass(frozen=True)
class EventMessage:
    """What is POSTed for one event: content headers (without the signature) and the exact body bytes."""

    headers: dict[str, str]
    body: bytes


def _data_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def render_event(
    callback_format: str, *, event_id: str, status: str, time: str, subject: str, data: dict[str, Any]
) -> EventMessage:
    """The event in the chosen content mode; the same inputs always give the same headers and bytes."""
    if callback_format == STRUCTURED:
        body = build_event(event_id=event_id, status=status, time=time, subject=subject, data=data)
        return EventMessage({"content-type": STRUCTURED_CONTENT_TYPE}, body)
    if callback_format != BINARY:
        raise ValueError(f"unknown callback format {callback_format!r}")
    # http-protocol-binding.md 3.1: in binary mode "the event data is carried in the body" and every
    # context attribute is a header named "ce-" + the attribute name; datacontenttype maps to Content-Type.
    headers = {
        "content-type": BINARY_CONTENT_TYPE,
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": EVENT_SOURCE,
        "ce-type": EVENT_TYPE_PREFIX + status,
        "ce-time": time,
        "ce-subject": subject,
    }
    return EventMessage(headers, _data_bytes(data))


def webhook_headers(
    keys: tuple[bytes, ...], event_id: str, timestamp: int, body: bytes, content: dict[str, str] | None = None
) -> dict[str, str]:
    """Standard Webhooks headers over `body`, plus the event's own headers (`content`; structured by default)."""
    return {
        **(content or {"content-type": STRUCTURED_CONTENT_TYPE}),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, event_id, timestamp, body),
        "user-agent": "excel-async-bridge-webhooks/1",
    }
