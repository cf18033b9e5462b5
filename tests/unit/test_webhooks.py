"""Webhook secrets, Standard Webhooks signatures and CloudEvents bodies: shared.crypto.webhook_keys,
shared.delivery.formats and shared.delivery.sender."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cloudevents.http import from_http
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.crypto.webhook_keys import WebhookSecretError, parse_webhook_secrets, sign
from shared.delivery.formats import EVENT_SOURCE, build_event, render_event, webhook_headers

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


# --- content modes: what the cloudevents SDK and standardwebhooks make of the exact bytes sent ---


DATA = {"id": "op-5", "status": "succeeded", "result": {"index": 0, "values": [["é", 1]]}, "error": None}
ATTRS = {"event_id": "evt-5", "status": "succeeded", "time": "2024-05-01T12:00:00.000Z", "subject": "op-5"}


def sent(fmt: str, keys: tuple[bytes, ...] = (KEY_A,)) -> tuple[dict[str, str], bytes]:
    message = render_event(fmt, **ATTRS, data=DATA)
    return webhook_headers(keys, "evt-5", int(time.time()), message.body, message.headers), message.body


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_both_formats_parse_as_the_same_cloudevent_and_verify(fmt):
    headers, body = sent(fmt)
    Webhook(whsec(KEY_A)).verify(body, headers)  # raises unless the signature covers these exact bytes
    event = from_http(headers, body)
    assert event["specversion"] == "1.0" and event["id"] == "evt-5" and event["source"] == EVENT_SOURCE
    assert event["type"] == "workbook.operation.succeeded" and event["subject"] == "op-5"
    assert event["time"] == "2024-05-01T12:00:00.000Z"
    assert event.data == DATA


def test_binary_mode_is_plain_json_data_with_ce_headers():
    # Logic Apps parses application/json natively (logic-apps-content-type.md), so body('X')?['status'] works.
    headers, body = sent("binary")
    assert headers["content-type"].split(";")[0] == "application/json"
    assert json.loads(body) == DATA
    assert {k: v for k, v in headers.items() if k.startswith("ce-")} == {
        "ce-specversion": "1.0",
        "ce-id": "evt-5",
        "ce-source": EVENT_SOURCE,
        "ce-type": "workbook.operation.succeeded",
        "ce-time": "2024-05-01T12:00:00.000Z",
        "ce-subject": "op-5",
    }


def test_structured_mode_is_the_whole_event_without_ce_headers():
    headers, body = sent("structured")
    assert headers["content-type"].split(";")[0] == "application/cloudevents+json"
    assert not [k for k in headers if k.startswith("ce-")]
    assert json.loads(body)["data"] == DATA


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_each_format_renders_the_same_bytes_every_time(fmt):
    first = render_event(fmt, **ATTRS, data=DATA)
    again = render_event(fmt, **ATTRS, data=dict(reversed(list(DATA.items()))))
    assert first == again


def test_binary_body_tampering_fails_verification():
    headers, body = sent("binary")
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(KEY_A)).verify(body.replace(b"succeeded", b"failed"), headers)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="callback format"):
        render_event("xml", **ATTRS, data=DATA)
