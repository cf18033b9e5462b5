"""Operation ids, timestamps and the record's entity / JSON forms: shared.operations.record."""

from __future__ import annotations

import json

import pytest

from shared.operations.record import (
    ROW_KEY,
    WEBHOOK_NONE,
    Operation,
    delivery_format,
    from_entity,
    is_operation_id,
    iso,
    new_operation_id,
    parse_iso,
    to_entity,
    to_json,
)

SEALED = "s1.c2VhbGVkLWNhbGxiYWNrLXRva2VuLWJ5dGVz"
OP_URL = "https://graph.microsoft.com/beta/me/drive/items/01ABC/workbook/operations/op-77?sessionId=secret-session"


def full_operation() -> Operation:
    return Operation(
        id="8285435199999a1b2c3d4e5",
        status="failed",
        action="createTableRow",
        workbook="/me/drive/items/01ABC",
        operation_url=OP_URL,
        created_at="2024-05-01T12:00:00.000Z",
        updated_at="2024-05-01T12:00:05.250Z",
        base_url="https://bridge.example.com/api",
        client_reference="order-42",
        completed_at="2024-05-01T12:00:05.250Z",
        poll_count=6,
        generation=2,
        result={"index": 3, "values": [["a", 1, None, True]]},
        error={"code": "InvalidArgument", "message": "m", "innerError": {"code": "x", "message": "é"}},
        callback_sealed=SEALED,
        event_id="evt-1",
        webhook_state="failed",
        webhook_attempts=3,
        webhook_last_status=503,
        webhook_last_attempt_at="2024-05-01T12:01:00.000Z",
        webhook_last_error="receiver answered 503",
        etag="W/\"datetime'2024'\"",
    )


def minimal_operation() -> Operation:
    return Operation(
        id="8285435199999a1b2c3d4e5",
        status="running",
        action=None,
        workbook="/me/drive/items/01ABC",
        operation_url=None,
        created_at="2024-05-01T12:00:00.000Z",
        updated_at="2024-05-01T12:00:00.000Z",
        base_url="https://bridge.example.com/api",
    )


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("earlier", "later"), [(1_700_000_000.0, 1_700_000_000.001), (0.0, 1.0), (1e9, 2e9)])
def test_new_operation_id_sorts_newest_first(earlier, later):
    old, new = new_operation_id(earlier), new_operation_id(later)
    assert new < old
    assert sorted([old, new]) == [new, old]


def test_new_operation_ids_are_unique_and_valid():
    ids = {new_operation_id(1_700_000_000.0) for _ in range(50)}
    assert len(ids) == 50
    assert all(is_operation_id(i) and len(i) == 23 for i in ids)
    assert {i[:13] for i in ids} == {"8299999999999"}


def test_new_operation_id_encodes_inverted_millis():
    assert new_operation_id(1_700_000_000.123)[:13] == f"{9_999_999_999_999 - 1_700_000_000_123:013d}"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("8285435199999a1b2c3d4e5", True),
        ("0000000000000ffffffffff", True),
        ("8285435199999A1B2C3D4E5", False),
        ("8285435199999a1b2c3d4e", False),
        ("8285435199999a1b2c3d4e5f", False),
        ("828543519999ga1b2c3d4e5", False),
        ("../../etc", False),
        ("", False),
    ],
)
def test_is_operation_id(value, ok):
    assert is_operation_id(value) is ok


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.123, "2023-11-14T22:13:20.123Z"),
        (1_714_564_800.5, "2024-05-01T12:00:00.500Z"),
    ],
)
def test_iso_and_parse_iso(ts, text):
    assert iso(ts) == text
    assert parse_iso(text) == pytest.approx(ts, abs=1e-6)


@pytest.mark.parametrize("ts", [1.0, 1_714_564_800.0, 1_714_564_800.999, 4_102_444_800.25])
def test_iso_round_trip(ts):
    assert parse_iso(iso(ts)) == pytest.approx(ts, abs=1e-3)
    assert iso(parse_iso(iso(ts))) == iso(ts)


# --- entity form ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [full_operation, minimal_operation])
def test_entity_round_trip(make):
    op = make()
    entity = to_entity(op)
    assert entity["PartitionKey"] == op.id
    assert entity["RowKey"] == ROW_KEY
    back = from_entity(entity, etag="W/x")
    assert back == op
    assert back.etag == "W/x"
    assert back.result == op.result
    assert back.error == op.error


def test_entity_stores_json_fields_as_text_and_none_as_empty():
    entity = to_entity(minimal_operation())
    assert entity["ResultJson"] == "null"
    assert entity["ErrorJson"] == "null"
    assert entity["OperationUrl"] == ""
    assert entity["Action"] == ""
    assert entity["WebhookState"] == WEBHOOK_NONE
    full = to_entity(full_operation())
    assert json.loads(full["ResultJson"]) == full_operation().result
    assert json.loads(full["ErrorJson"])["innerError"]["message"] == "é"
    assert all(isinstance(v, str | int | float | bool) for v in full.values())


def test_to_entity_only_limits_fields():
    entity = to_entity(full_operation(), only={"status", "error"})
    assert entity == {
        "PartitionKey": full_operation().id,
        "RowKey": ROW_KEY,
        "Status": "failed",
        "ErrorJson": json.dumps(full_operation().error, separators=(",", ":")),
    }


def test_from_entity_defaults_for_missing_properties():
    op = from_entity(
        {
            "PartitionKey": "8285435199999a1b2c3d4e5",
            "Status": "running",
            "Workbook": "/me/drive/items/x",
            "CreatedAt": "2024-05-01T12:00:00.000Z",  # a record without these is damaged (test_damaged_records.py)
            "UpdatedAt": "2024-05-01T12:00:00.000Z",
        }
    )
    assert op.poll_count == 0 and op.generation == 0 and op.webhook_attempts == 0
    assert op.webhook_state == WEBHOOK_NONE
    assert op.result is None and op.error is None


# --- public JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("include_webhook", [True, False])
def test_to_json_never_leaks_secrets(include_webhook):
    op = full_operation()
    body = to_json(op, include_webhook=include_webhook)
    text = json.dumps(body)
    assert SEALED not in text
    assert OP_URL not in text
    assert "secret-session" not in text
    assert "operations/op-77" not in text
    assert ("webhook" in body) is include_webhook


def test_to_json_fields_and_links():
    op = full_operation()
    body = to_json(op)
    assert body["id"] == op.id
    assert body["status"] == "failed"
    assert body["clientReference"] == "order-42"
    assert body["pollCount"] == 6
    assert body["result"] == op.result
    assert body["error"] == op.error
    assert body["webhook"] == {
        "state": "failed",
        "attempts": 3,
        "lastStatusCode": 503,
        "lastAttemptAt": "2024-05-01T12:01:00.000Z",
        "lastError": "receiver answered 503",
        "nextAttemptAt": None,
        "deadLetteredAt": None,
        "format": "structured",  # a record from before callbackFormat: what it was promised
    }
    assert body["failOnError"] is False
    assert body["links"]["self"] == f"https://bridge.example.com/api/operations/{op.id}"
    assert body["links"]["cancel"] == body["links"]["self"]
    assert body["links"]["redeliver"] == body["links"]["self"] + "/webhook/redeliver"  # it has a callback


# --- callbackFormat ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_callback_format_round_trips_through_the_entity(fmt):
    op = full_operation().with_(callback_format=fmt)
    entity = to_entity(op)
    assert entity["CallbackFormat"] == fmt
    assert from_entity(entity, op.etag).callback_format == fmt
    assert to_json(from_entity(entity))["webhook"]["format"] == fmt


def test_older_records_without_a_format_are_delivered_structured():
    entity = to_entity(full_operation())
    entity.pop("CallbackFormat", None)
    op = from_entity(entity)
    assert op.callback_format is None
    assert delivery_format(op) == "structured" and to_json(op)["webhook"]["format"] == "structured"
    assert "format" not in to_json(minimal_operation())["webhook"]  # no callback, no format
