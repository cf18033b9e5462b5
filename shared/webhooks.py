"""Terminal-status webhooks: CloudEvents 1.0 events signed the Standard Webhooks way.

Two CloudEvents HTTP content modes (cloudevents/spec, cloudevents/bindings/http-protocol-binding.md):
- binary (the default): attributes in `ce-*` headers, `Content-Type: application/json`, the body is the
  event's data alone. Logic Apps parses application/json bodies natively (logic-apps-content-type.md), so
  `body('X')?['status']` works in a workflow.
- structured: the whole event as the body, `Content-Type: application/cloudevents+json`. Logic Apps keeps
  that content type as `{"$content-type": ..., "$content": <base64>}`.
Either way the Standard Webhooks headers sign the exact bytes sent.

Pure parts (signing, event building; secret parsing is shared/webhook_keys.py) are separate from the one I/O
call (`deliver`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from .outbound import Refused
from .records import BINARY, STRUCTURED
from .retry_after import parse_retry_after
from .webhook_keys import SECRET_PREFIX, WebhookSecretError, parse_webhook_secrets

__all__ = ["SECRET_PREFIX", "WebhookSecretError", "parse_webhook_secrets"]  # their home: shared/webhook_keys.py

log = logging.getLogger(__name__)

EVENT_TYPE_PREFIX = "workbook.operation."
EVENT_SOURCE = "/excel-async-bridge/operations"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
BINARY_CONTENT_TYPE = "application/json; charset=utf-8"


def sign(keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per key, space separated."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    signatures = ["v1," + base64.b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode() for key in keys]
    return " ".join(signatures)


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


@dataclass(frozen=True)
class DeliveryOutcome:
    status_code: int | None
    error: str | None
    retry_after: float | None = None
    refused: bool = False


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
) -> DeliveryOutcome:
    """One POST attempt. 2xx is delivered; redirects are never followed. Never raises for I/O errors.

    `session` must resolve names through `outbound.PinnedResolver`, whose refusals come back as `refused`.
    """
    try:
        async with session.post(
            URL(url, encoded=True),  # as given: signed callback URLs (Logic Apps' sig=) must not be re-quoted
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.content.read(64 * 1024)  # enough to reuse the connection; the body is not used
            ok = 200 <= response.status < 300
            return DeliveryOutcome(
                response.status,
                None if ok else f"receiver answered {response.status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except Refused as exc:
        return DeliveryOutcome(None, exc.reason, refused=True)
    except TimeoutError:
        return DeliveryOutcome(None, f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return DeliveryOutcome(None, f"connection failed: {type(exc).__name__}")
