"""Webhook secrets, Standard Webhooks signatures and CloudEvents bodies: shared.webhooks."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.webhooks import (
    EVENT_SOURCE,
    WebhookSecretError,
    build_event,
    parse_webhook_secrets,
    sign,
    webhook_headers,
)

KEY_A = bytes(range(32))
KEY_B = b"another-secret-key-of-32-bytes!!"
KEY_C = b"a third key, never configured..."


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "keys"),
    [
        (whsec(KEY_A), (KEY_A,)),
        (base64.b64encode(KEY_A).decode(), (KEY_A,)),  # prefix optional
        (f"{whsec(KEY_A)} {whsec(KEY_B)}", (KEY_A, KEY_B)),
        (f"  {whsec(KEY_B)}   {base64.b64encode(KEY_A).decode()}  ", (KEY_B, KEY_A)),
        (whsec(b"x" * 16), (b"x" * 16,)),  # the minimum length
        ("", ()),
        ("   ", ()),
    ],
)
def test_parse_webhook_secrets(raw, keys):
    assert parse_webhook_secrets(raw) == keys


@pytest.mark.parametrize(
    "raw",
    [
        "whsec_not*base64!",
        "whsec_abc",  # bad padding
        f"{whsec(KEY_A)} whsec_%%%%",
        whsec(b"x" * 15),  # too short
        base64.b64encode(b"short").decode(),
        f"{whsec(KEY_A)} {whsec(b'tiny')}",
    ],
)
def test_parse_webhook_secrets_rejects(raw):
    with pytest.raises(WebhookSecretError):
        parse_webhook_secrets(raw)


# --- signing, checked with the reference implementation ---------------------------------------


def event_body() -> bytes:
    return build_event(
        event_id="evt-1",
        status="succeeded",
        time="2024-05-01T12:00:00.000Z",
        subject="op-1",
        data={"id": "op-1", "status": "succeeded", "result": {"index": 0, "values": [["é", 1]]}},
    )


@pytest.mark.parametrize("keys", [(KEY_A,), (KEY_B,), (KEY_A, KEY_B)])
def test_signature_verifies_with_standardwebhooks(keys):
    body = event_body()
    headers = webhook_headers(keys, "evt-1", int(time.time()), body)
    for key in keys:
        assert Webhook(whsec(key)).verify(body, headers) == json.loads(body)


def test_two_signatures_in_one_header():
    body = event_body()
    ts = int(time.time())
    header = sign((KEY_A, KEY_B), "evt-1", ts, body)
    parts = header.split(" ")
    assert len(parts) == 2
    assert all(p.startswith("v1,") for p in parts)
    assert parts[0] == sign((KEY_A,), "evt-1", ts, body)
    assert parts[1] == sign((KEY_B,), "evt-1", ts, body)


def test_unconfigured_secret_does_not_verify():
    body = event_body()
    headers = webhook_headers((KEY_A, KEY_B), "evt-1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(KEY_C)).verify(body, headers)


@pytest.mark.parametrize("change", ["body", "id", "timestamp"])
def test_tampering_fails_verification(change):
    body = event_body()
    ts = int(time.time())
    headers = webhook_headers((KEY_A,), "evt-1", ts, body)
    if change == "body":
        body = body.replace(b"succeeded", b"failed")
    elif change == "id":
        headers["webhook-id"] = "evt-2"
    else:
        headers["webhook-timestamp"] = str(ts - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(KEY_A)).verify(body, headers)


def test_sign_is_deterministic_and_depends_on_inputs():
    body = event_body()
    assert sign((KEY_A,), "m", 1, body) == sign((KEY_A,), "m", 1, body)
    assert sign((KEY_A,), "m", 1, body) != sign((KEY_A,), "m", 2, body)
    assert sign((KEY_A,), "m", 1, body) != sign((KEY_B,), "m", 1, body)


# --- events and headers -----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["succeeded", "failed", "timedOut", "canceled"])
def test_build_event_cloudevents_fields(status):
    data = {"id": "op-9", "status": status}
    raw = build_event(event_id="evt-9", status=status, time="2024-05-01T12:00:00.000Z", subject="op-9", data=data)
    event = json.loads(raw)
    assert event == {
        "specversion": "1.0",
        "id": "evt-9",
        "source": EVENT_SOURCE,
        "type": f"workbook.operation.{status}",
        "time": "2024-05-01T12:00:00.000Z",
        "subject": "op-9",
        "datacontenttype": "application/json",
        "data": data,
    }


def test_build_event_is_deterministic_bytes():
    kwargs = {"event_id": "e", "status": "failed", "time": "t", "subject": "s"}
    first = build_event(**kwargs, data={"b": 1, "a": {"y": 2, "x": 1}})
    second = build_event(**kwargs, data={"a": {"x": 1, "y": 2}, "b": 1})
    assert first == second
    assert b" " not in first  # compact separators
    assert first != build_event(**kwargs, data={"a": {"x": 1, "y": 2}, "b": 2})


def test_webhook_headers():
    body = b'{"x":1}'
    headers = webhook_headers((KEY_A,), "evt-7", 1714564800, body)
    assert headers["content-type"].startswith("application/cloudevents+json")
    assert headers["webhook-id"] == "evt-7"
    assert headers["webhook-timestamp"] == "1714564800"
    assert headers["webhook-signature"] == sign((KEY_A,), "evt-7", 1714564800, body)
    assert headers["user-agent"]
