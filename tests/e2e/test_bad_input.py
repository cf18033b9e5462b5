"""Bad input: a clear problem naming the field, and nothing stored, queued or sent to Graph."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from .harness import Bridge, BridgeFactory, Emulator, new_item

ITEM = new_item()
GOOD = {
    "workbook": f"/me/drive/items/{ITEM}",
    "action": "createTableRow",
    "parameters": {"table": "T", "values": [[1]]},
}

CASES: list[tuple[str, Any, str]] = [
    ("empty body", b"", "body"),
    ("not json", b"{nope", "body"),
    ("json array", b"[1, 2]", "body"),
    # Issue 9: each of these was a 500 (RecursionError, ValueError) or was sent on to Graph as invalid JSON
    ("nested 5000 deep", b'{"workbook": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
    ("integer of 4301 digits", b'{"action": "createSession", "workbook": ' + b"9" * 4301 + b"}", "body"),
    (
        "NaN",
        b'{"workbook": "/me/drive/items/X", "action": "createTableRow",'
        b' "parameters": {"table": "T", "values": [[NaN]]}}',
        "body",
    ),
    (
        "Infinity",
        b'{"workbook": "/me/drive/items/X", "action": "createTableRow",'
        b' "parameters": {"table": "T", "values": [[Infinity, 1e999]]}}',
        "body",
    ),
    (
        "duplicate key",
        b'{"workbook": "/me/drive/items/X", "workbook": "/me/drive/items/Y", "action": "createSession"}',
        "body",
    ),
    ("no workbook", {"action": "createSession"}, "workbook"),
    ("path workbook", {**GOOD, "workbook": "/me/drive/root:/a.xlsx:"}, "workbook"),
    ("traversal", {**GOOD, "workbook": "/me/drive/items/../../admin"}, "workbook"),
    ("bad action", {**GOOD, "action": "dropTable"}, "action"),
    ("unknown field", {**GOOD, "colour": "blue"}, "colour"),
    ("values not 2-d", {**GOOD, "parameters": {"table": "T", "values": [1, 2]}}, "parameters.values"),
    ("values with object", {**GOOD, "parameters": {"table": "T", "values": [[{"a": 1}]]}}, "parameters.values"),
    ("no table", {**GOOD, "parameters": {"values": [[1]]}}, "parameters.table"),
    ("negative index", {**GOOD, "parameters": {"table": "T", "values": [[1]], "index": -1}}, "parameters.index"),
    ("delete without index", {**GOOD, "action": "deleteTableRow", "parameters": {"table": "T"}}, "parameters.index"),
    (
        "persistChanges not bool",
        {**GOOD, "action": "createSession", "parameters": {"persistChanges": "yes"}},
        "parameters.persistChanges",
    ),
    ("session id with spaces", {**GOOD, "sessionId": "a b"}, "sessionId"),
    ("callback not a url", {**GOOD, "callbackUrl": "not a url"}, "callbackUrl"),
    ("callback with userinfo", {**GOOD, "callbackUrl": "https://user:pw@example.com/hook"}, "callbackUrl"),
    ("client reference too long", {**GOOD, "clientReference": "x" * 300}, "clientReference"),
    ("operation url not an operation", {"operationUrl": "{graph}/me/drive/items/x/workbook/tables"}, "operationUrl"),
    (
        "both workbook and operationUrl",
        {**GOOD, "operationUrl": "{graph}/me/drive/items/x/workbook/operations/y"},
        "workbook",
    ),
]


@pytest.fixture(scope="module")
def quiet(make_bridge: BridgeFactory) -> Bridge:
    """A bridge nobody else uses, so "nothing queued, nothing stored" can be checked exactly."""
    return make_bridge("quiet")


@pytest.mark.parametrize(("name", "body", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_problem_naming_the_field(
    quiet: Bridge, emulator: Emulator, name: str, body: Any, field: str
) -> None:
    if isinstance(body, bytes):
        response = quiet.post_raw(body)
    else:
        body = {k: v.replace("{graph}", emulator.graph) if isinstance(v, str) else v for k, v in body.items()}
        response = quiet.start(body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and problem["field"] == field
    assert any(e["field"] == field for e in problem["errors"])
    assert quiet.entities() == []
    assert quiet.queued() == 0
    assert emulator.requests(item=ITEM) == []


def test_bad_idempotency_key_is_refused_before_anything(quiet: Bridge, emulator: Emulator) -> None:
    response = quiet.start(GOOD, **{"Idempotency-Key": "x" * 300})
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key"
    assert quiet.entities() == [] and quiet.queued() == 0
    assert emulator.requests(item=ITEM) == []


def test_graph_rejection_at_start_stores_nothing(quiet: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, startError={"status": 403, "error": {"code": "accessDenied", "message": "No"}})
    response = quiet.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession"}, **{"Idempotency-Key": f"k-{item}"}
    )
    assert response.status_code == 403 and response.json()["code"] == "accessDenied"
    assert quiet.entities() == [] and quiet.queued() == 0  # the idempotency claim was released too


def test_graph_busy_at_start_is_503_with_retry_after(quiet: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(
        item,
        startError={
            "status": 429,
            "headers": {"Retry-After": "7.5"},
            "error": {"code": "tooManyRequests", "message": "busy"},
        },
    )
    response = quiet.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
    assert response.status_code == 503 and response.headers["retry-after"] == "8"
    # Nothing of the operation is stored; the workbook's lane remembers Graph's throttle for its siblings.
    lanes = [e for e in quiet.entities() if e["PartitionKey"].startswith("lane-")]
    assert [e for e in quiet.entities() if e not in lanes] == [] and quiet.queued() == 0
    assert len(lanes) == 1 and json.loads(lanes[0]["Holders"]) == [] and json.loads(lanes[0]["Waiting"]) == []
    assert lanes[0]["ThrottleUntil"] >= time.time() + 5
    quiet.table.delete_entity(lanes[0]["PartitionKey"], lanes[0]["RowKey"])  # the next tests expect an empty table


@pytest.mark.parametrize(
    "top",
    ["\u00b2", "\u0663", "9" * 5000, "0", "101", "-1", " 7"],
    ids=["superscript two", "arabic-indic three", "5000 digits", "0", "101", "-1", "space 7"],
)
def test_a_bad_top_is_a_problem_naming_top(quiet: Bridge, top: str) -> None:
    """`str.isdigit` passed "²" (which int() refuses: a 500) and "٣" (which int() reads as 3)."""
    response = quiet.client.get(f"{quiet.api}/operations", params={"top": top})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "top"


def test_a_hostile_continuation_token_is_a_problem(quiet: Bridge) -> None:
    token = base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode().rstrip("=")  # 5.3k chars of URL
    response = quiet.client.get(f"{quiet.api}/operations", params={"continuationToken": token})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "continuationToken"


def test_a_body_over_1_mib_is_413_and_nothing_is_stored(quiet: Bridge, emulator: Emulator) -> None:
    response = quiet.post_raw(b'{"workbook": "' + b"x" * (1024 * 1024) + b'"}')
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "body"
    assert quiet.entities() == [] and quiet.queued() == 0
