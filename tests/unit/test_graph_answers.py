"""Classifying Graph's answers: shared.graph.answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from shared.graph.answers import (
    MAX_ERROR_DEPTH,
    Kind,
    classify_operation,
    classify_result,
    graph_error,
    infer_action,
    innermost_code,
    parse_retry_after,
    result_from,
    sanitize_error,
)

OP = "https://graph.microsoft.com/v1.0/me/drive/items/01ABC/workbook/operations/op1"


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2.128", 2.128),
        ("0", 0.0),
        ("-1", 0.0),
        ("  5 ", 5.0),
        ("120", 120.0),
        ("abc", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date_relative_to_now():
    when = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    header = format_datetime(when, usegmt=True)
    assert header == "Wed, 01 May 2024 12:00:30 GMT"
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


def test_parse_retry_after_http_date_in_the_past_is_zero():
    now = datetime(2024, 5, 1, 13, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 0.0


def test_parse_retry_after_http_date_without_now_is_unknown():
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT") is None


# --- classify_operation: 200 bodies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("running", Kind.RUNNING),
        ("Running", Kind.RUNNING),
        ("RUNNING", Kind.RUNNING),
        (" running ", Kind.RUNNING),
        ("notStarted", Kind.NOT_STARTED),
        ("NotStarted", Kind.NOT_STARTED),
        ("notstarted", Kind.NOT_STARTED),
        ("succeeded", Kind.SUCCEEDED),
        ("Succeeded", Kind.SUCCEEDED),
        ("Completed", Kind.SUCCEEDED),
        ("completed", Kind.SUCCEEDED),
        ("failed", Kind.FAILED),
        ("FAILED", Kind.FAILED),
        ("cancelled", Kind.TRANSIENT),
        ("", Kind.TRANSIENT),
    ],
)
def test_classify_operation_status_case_insensitive(status, kind):
    answer = classify_operation(200, {}, body({"id": "op1", "status": status}))
    assert answer.kind is kind
    assert answer.status_code == 200


def test_classify_operation_unknown_status_names_it():
    answer = classify_operation(200, {}, body({"status": "paused"}))
    assert answer.kind is Kind.TRANSIENT
    assert "paused" in answer.reason


@pytest.mark.parametrize(("status", "kind"), [("running", Kind.RUNNING), ("notStarted", Kind.NOT_STARTED)])
def test_classify_operation_in_progress_carries_retry_after(status, kind):
    answer = classify_operation(200, {"Retry-After": "2.128"}, body({"status": status}))
    assert answer.kind is kind
    assert answer.retry_after == pytest.approx(2.128)


def test_classify_operation_resource_location_on_beta_kept_verbatim():
    location = (
        "https://graph.microsoft.com/beta/drives/b!x/items/01ABC/workbook/"
        "sessionInfoResource(key='eyJhIjoxfQ==')?sessionId=cluster%3DPS2%26session%3D15.SN3"
    )
    answer = classify_operation(200, {}, body({"status": "succeeded", "resourceLocation": location}))
    assert answer.kind is Kind.SUCCEEDED
    assert answer.resource_location == location


@pytest.mark.parametrize("location", [None, 42, ["x"]])
def test_classify_operation_succeeded_without_string_location(location):
    payload: dict[str, object] = {"status": "succeeded"}
    if location is not None:
        payload["resourceLocation"] = location
    answer = classify_operation(200, {}, body(payload))
    assert answer.kind is Kind.SUCCEEDED
    assert answer.resource_location is None


def test_classify_operation_failed_keeps_three_level_chain():
    error = {
        "code": "InvalidArgument",
        "message": "The argument is invalid or missing or has an incorrect format.",
        "innerError": {
            "code": "invalidArgument",
            "message": "inner",
            "innerError": {"code": "tableRowIndexOutOfRange", "message": "innermost", "date": "2024-01-01"},
        },
    }
    answer = classify_operation(200, {}, body({"status": "failed", "error": error}))
    assert answer.kind is Kind.FAILED
    assert answer.error == error
    assert innermost_code(answer.error) == "tableRowIndexOutOfRange"


def test_classify_operation_failed_normalises_lowercase_innererror():
    error = {"code": "a", "message": "A", "innererror": {"code": "b", "message": "B", "innererror": {"code": "c"}}}
    answer = classify_operation(200, {}, body({"status": "failed", "error": error}))
    assert (answer.error["code"], answer.error["message"]) == ("a", "A")
    assert (answer.error["innerError"]["code"], answer.error["innerError"]["message"]) == ("b", "B")
    assert answer.error["innerError"]["innerError"]["code"] == "c"
    assert "innererror" not in json.dumps(answer.error)


@pytest.mark.parametrize("error", [None, "boom", ["x"]])
def test_classify_operation_failed_without_error_object(error):
    payload: dict[str, object] = {"status": "failed"}
    if error is not None:
        payload["error"] = error
    answer = classify_operation(200, {}, body(payload))
    assert answer.kind is Kind.FAILED
    assert answer.error["code"] == "operationFailed"


SEED_MALFORMED = (
    b'{"id":"op1","status":"failed","error":{"code": ""internalServerErrorUncategorized",'
    b'"message":"An internal server error occurred"}}'
)


@pytest.mark.parametrize(
    "raw",
    [
        SEED_MALFORMED,
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"running"',
        b"null",
        b"42",
        b'{"id":"op1"}',
        b'{"status": 1}',
        b'{"status": null}',
    ],
)
def test_classify_operation_unparseable_200_is_transient(raw):
    answer = classify_operation(200, {"retry-after": "7"}, raw)
    assert answer.kind is Kind.TRANSIENT
    assert answer.retry_after == 7.0
    assert answer.reason


def test_classify_operation_202_is_running():
    answer = classify_operation(202, {"RETRY-AFTER": "3"}, b"")
    assert answer.kind is Kind.RUNNING
    assert answer.retry_after == 3.0


# --- classify_operation: error statuses -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, Kind.UNAUTHORIZED),
        (404, Kind.NOT_FOUND),
        (403, Kind.REJECTED),
        (400, Kind.REJECTED),
        (409, Kind.REJECTED),
    ],
)
def test_classify_operation_client_errors(status, kind):
    graph = {"code": "someCode", "message": "some message"}
    answer = classify_operation(status, {}, body({"error": graph}))
    assert answer.kind is kind
    assert answer.status_code == status
    assert answer.error == graph


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 507, 599])
def test_classify_operation_transient_statuses(status):
    answer = classify_operation(status, {"Retry-After": "2.5"}, body({"error": {"code": "x", "message": "y"}}))
    assert answer.kind is Kind.TRANSIENT
    assert answer.retry_after == 2.5
    assert str(status) in answer.reason
    assert answer.error is None


def test_classify_operation_transient_without_retry_after():
    assert classify_operation(503, {}, b"").retry_after is None


# --- graph_error / sanitize_error / innermost_code -------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"<html>Forbidden</html>", 403, "http403"),
        (b"", 404, "http404"),
        (b'{"error": "text"}', 400, "http400"),
        (b'{"message": "no error key"}', 401, "http401"),
        (b"garbage", None, "unknown"),
    ],
)
def test_graph_error_stand_in(raw, status, code):
    error = graph_error(raw, status)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def test_graph_error_takes_the_error_object():
    assert graph_error(body({"error": {"code": "itemNotFound", "message": "m"}}), 404) == {
        "code": "itemNotFound",
        "message": "m",
    }


def test_sanitize_error_drops_non_scalar_junk():
    error = {
        "code": "c",
        "message": "m",
        "details": [{"code": "d"}],
        "target": {"nested": True},
        "date": "2024-01-01T00:00:00",
        "retryable": False,
        "count": 3,
        "ratio": 0.5,
        "nothing": None,
    }
    assert sanitize_error(error) == {
        "code": "c",
        "message": "m",
        "date": "2024-01-01T00:00:00",
        "retryable": False,
        "count": 3,
        "ratio": 0.5,
        "nothing": None,
    }


def test_sanitize_error_fills_code_and_message():
    assert sanitize_error({}) == {"code": "unknown", "message": ""}


def test_sanitize_error_truncates_long_strings():
    out = sanitize_error({"code": "c", "message": "x" * 5000})
    assert len(out["message"]) == 2000


def test_sanitize_error_bounds_depth():
    deep: dict[str, object] = {"code": "level-100", "message": ""}
    for level in range(99, -1, -1):
        deep = {"code": f"level-{level}", "message": "", "innerError": deep}
    out = sanitize_error(deep)
    depth = 0
    node = out
    while "innerError" in node:
        node = node["innerError"]
        depth += 1
    assert depth == MAX_ERROR_DEPTH
    assert node["code"] == f"level-{MAX_ERROR_DEPTH}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": "a"}, "a"),
        ({"code": "a", "innerError": {"code": "b"}}, "b"),
        ({"code": "a", "innerError": {"code": "b", "innerError": {"code": "c"}}}, "c"),
        ({"code": "a", "innerError": {"code": "b", "innerError": {"code": ""}}}, "b"),
        ({"code": "a", "innerError": {"message": "no code", "innerError": {"code": "c"}}}, "c"),
        ({}, "unknown"),
        ({"code": ""}, "unknown"),
    ],
)
def test_innermost_code(error, code):
    assert innermost_code(error) == code


# --- classify_result --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "raw", "kind"),
    [
        (200, b'{"id": "s"}', Kind.SUCCEEDED),
        (201, b'{"index": 0}', Kind.SUCCEEDED),
        (200, b"[]", Kind.TRANSIENT),
        (200, b"oops", Kind.TRANSIENT),
        (401, b"", Kind.UNAUTHORIZED),
        (404, b"", Kind.NOT_FOUND),
        (403, b"", Kind.REJECTED),
        (429, b"", Kind.TRANSIENT),
        (500, b"", Kind.TRANSIENT),
    ],
)
def test_classify_result(status, raw, kind):
    assert classify_result(status, {}, raw).kind is kind


def test_classify_result_transient_keeps_retry_after():
    assert classify_result(429, {"Retry-After": "4"}, b"").retry_after == 4.0


# --- result_from / infer_action ---------------------------------------------------------------


SESSION_BODY = body(
    {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#x",
        "id": "cluster=PS2&session=1",
        "persistChanges": True,
    }
)
ROW_BODY = body({"@odata.context": "c", "@odata.id": "i", "index": 4, "values": [["a", 1, None]]})


@pytest.mark.parametrize(
    ("action", "raw", "expected"),
    [
        ("createSession", SESSION_BODY, {"id": "cluster=PS2&session=1", "persistChanges": True}),
        ("createTableRow", ROW_BODY, {"index": 4, "values": [["a", 1, None]]}),
        ("deleteTableRow", ROW_BODY, None),
        ("deleteTableRow", b"", None),
        (None, ROW_BODY, {"index": 4, "values": [["a", 1, None]]}),
        ("somethingElse", body({"@odata.type": "t", "a": 1, "b": {"c": 2}}), {"a": 1, "b": {"c": 2}}),
        ("createSession", b"not json", None),
        ("createTableRow", b"[1, 2]", None),
    ],
)
def test_result_from(action, raw, expected):
    assert result_from(action, raw) == expected


@pytest.mark.parametrize(
    ("location", "action"),
    [
        ("https://graph.microsoft.com/v1.0/me/drive/items/x/workbook/sessionInfoResource(key='a')", "createSession"),
        ("https://graph.microsoft.com/beta/me/drive/items/x/workbook/SESSIONINFORESOURCE(key='a')", "createSession"),
        (
            "https://graph.microsoft.com/v1.0/drives/d/items/x/workbook/tableRowOperationResult(key='k')?sessionId=s",
            "createTableRow",
        ),
        ("https://graph.microsoft.com/v1.0/drives/d/items/x/workbook/somethingElse(key='k')", None),
        ("", None),
        (None, None),
    ],
)
def test_infer_action(location, action):
    assert infer_action(location) == action
