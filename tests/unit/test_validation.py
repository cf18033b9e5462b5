"""Request validation for POST /api/operations: shared.operations.requests."""

from __future__ import annotations

from typing import Any

import pytest

from shared.api.problems import Problem
from shared.operations.requests import StartRequest, TrackRequest, parse_json_body, parse_operation_request

GRAPH = "https://graph.microsoft.com"
SITE = "/sites/contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE"
WORKBOOKS = [
    "/drives/b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7/items/01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K",
    "/me/drive/items/01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K",
    "/users/user@contoso.com/drive/items/01ABC",
    "/users/48d31887-5fad-4d73-a9f5-3c356e68a038/drive/items/01ABC",
    SITE + "/drive/items/01ABC",
    "/groups/02bd9fd6-8f93-4758-87c3-1fb73740a315/drive/items/01ABC",
]
ROWS = [["Alice", 30, True, None, 1.5]]


def parse(payload: Any, *, allow_private: bool = False, webhooks: bool = True) -> StartRequest | TrackRequest:
    return parse_operation_request(
        payload, graph_origin=GRAPH, allow_private_callbacks=allow_private, webhooks_configured=webhooks
    )


def start(action: str = "createTableRow", **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "createSession": {"persistChanges": True},
        "createTableRow": {"table": "Table1", "values": ROWS},
        "deleteTableRow": {"table": "Table1", "index": 0},
    }.get(action, {})
    body: dict[str, Any] = {"workbook": WORKBOOKS[1], "action": action, "parameters": params}
    body.update(extra)
    return body


def field_of(payload: Any, **kwargs: Any) -> str:
    with pytest.raises(Problem) as caught:
        parse(payload, **kwargs)
    problem = caught.value
    assert problem.status == 400
    assert problem.errors, "every 400 names a field"
    return problem.errors[0].field


# --- valid start bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("workbook", WORKBOOKS)
@pytest.mark.parametrize("action", ["createSession", "createTableRow", "deleteTableRow"])
def test_valid_start_for_every_action_and_workbook_form(workbook, action):
    payload = start(action, workbook=workbook)
    request = parse(payload)
    assert isinstance(request, StartRequest)
    assert request.workbook == workbook
    assert request.action == action
    assert request.session_id is None
    assert request.callback_url is None
    assert request.client_reference is None


def test_valid_create_session_defaults_persist_changes():
    request = parse({"workbook": WORKBOOKS[0], "action": "createSession"})
    assert isinstance(request, StartRequest)
    assert request.parameters == {"persistChanges": True}


@pytest.mark.parametrize("persist", [True, False])
def test_valid_create_session_persist_changes(persist):
    request = parse(start("createSession", parameters={"persistChanges": persist}))
    assert request.parameters == {"persistChanges": persist}


def test_valid_create_table_row_parameters():
    request = parse(start("createTableRow", parameters={"table": "Sales 2024", "values": ROWS, "index": 5}))
    assert request.parameters == {"table": "Sales 2024", "values": ROWS, "index": 5}


def test_valid_delete_table_row_parameters():
    request = parse(start("deleteTableRow", parameters={"table": "{00000000-0001-0000-0100-000000000000}", "index": 0}))
    assert request.parameters == {"table": "{00000000-0001-0000-0100-000000000000}", "index": 0}


def test_valid_start_with_all_optional_fields():
    request = parse(
        start(
            sessionId="cluster=PS2&session=15.SN3PEPF0000B4A1.A82.1.V24.24003m6d9BP9a4Q!=",
            callbackUrl="https://hooks.example.com/excel?sig=abc",
            clientReference="order-42",
        )
    )
    assert isinstance(request, StartRequest)
    assert request.session_id == "cluster=PS2&session=15.SN3PEPF0000B4A1.A82.1.V24.24003m6d9BP9a4Q!="
    assert request.callback_url == "https://hooks.example.com/excel?sig=abc"
    assert request.client_reference == "order-42"


# --- invalid start bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "createSession"}, "workbook"),
        ({}, "workbook"),
        ([], "body"),
        ("text", "body"),
        (None, "body"),
        (start(workbook="/drives/../items/x"), "workbook"),
        (start(workbook="/drives/d/items/.."), "workbook"),
        (start(workbook="/users/../drive/items/x"), "workbook"),
        (start(workbook="/drives/d/items/x?select=id"), "workbook"),
        (start(workbook="/me/drive/root:/a.xlsx:"), "workbook"),
        (start(workbook="/me/drive/items/x/../../y"), "workbook"),
        (start(workbook="me/drive/items/x"), "workbook"),
        (start(workbook="/me/drive/items/"), "workbook"),
        (start(workbook="/me/drive/items/a b"), "workbook"),
        (start(workbook="https://graph.microsoft.com/v1.0/me/drive/items/x"), "workbook"),
        (start(workbook="/sites/s/lists/l/items/x"), "workbook"),
        (start(workbook=42), "workbook"),
        (start(action="createChart"), "action"),
        ({"workbook": WORKBOOKS[1], "parameters": {}}, "action"),
        (start(extra="x"), "extra"),
        (start(operationId="x"), "operationId"),
        ({"workbook": WORKBOOKS[1], "action": "createTableRow"}, "parameters"),
        (start(parameters=[1]), "parameters"),
        (start(parameters="table=Table1"), "parameters"),
        (start("createSession", parameters=None), "parameters"),
        (start("createSession", parameters={"persistChanges": "true"}), "parameters.persistChanges"),
        (start("createSession", parameters={"persistChanges": 1}), "parameters.persistChanges"),
        (start("createSession", parameters={"persist": True}), "parameters.persist"),
        (start(parameters={"values": ROWS}), "parameters.table"),
        (start(parameters={"table": "", "values": ROWS}), "parameters.table"),
        (start(parameters={"table": "   ", "values": ROWS}), "parameters.table"),
        (start(parameters={"table": 7, "values": ROWS}), "parameters.table"),
        (start(parameters={"table": "t" * 256, "values": ROWS}), "parameters.table"),
        (start(parameters={"table": "T"}), "parameters.values"),
        (start(parameters={"table": "T", "values": "a,b"}), "parameters.values"),
        (start(parameters={"table": "T", "values": [1, 2]}), "parameters.values"),
        (start(parameters={"table": "T", "values": []}), "parameters.values"),
        (start(parameters={"table": "T", "values": [[]]}), "parameters.values"),
        (start(parameters={"table": "T", "values": [["a"], []]}), "parameters.values"),
        (start(parameters={"table": "T", "values": [[{"a": 1}]]}), "parameters.values"),
        (start(parameters={"table": "T", "values": [[[1]]]}), "parameters.values"),
        (start(parameters={"table": "T", "values": [["x" * 40000]]}), "parameters.values"),
        (start(parameters={"table": "T", "values": ROWS, "index": -1}), "parameters.index"),
        (start(parameters={"table": "T", "values": ROWS, "index": True}), "parameters.index"),
        (start(parameters={"table": "T", "values": ROWS, "index": 1.5}), "parameters.index"),
        (start(parameters={"table": "T", "values": ROWS, "index": 2.0}), "parameters.index"),
        (start(parameters={"table": "T", "values": ROWS, "index": "3"}), "parameters.index"),
        (start("deleteTableRow", parameters={"table": "T"}), "parameters.index"),
        (start("deleteTableRow", parameters={"table": "T", "index": -2}), "parameters.index"),
        (start("deleteTableRow", parameters={"table": "T", "index": False}), "parameters.index"),
        (start("deleteTableRow", parameters={"table": "T", "index": 0, "values": ROWS}), "parameters.values"),
        (start(sessionId="has spaces in it"), "sessionId"),
        (start(sessionId=""), "sessionId"),
        (start(sessionId="line\nbreak"), "sessionId"),
        (start(sessionId=12345), "sessionId"),
        (start(clientReference="r" * 257), "clientReference"),
        (start(clientReference=""), "clientReference"),
        (start(clientReference=5), "clientReference"),
    ],
)
def test_invalid_start_names_the_field(payload, field):
    assert field_of(payload) == field


def test_invalid_request_problem_shape():
    with pytest.raises(Problem) as caught:
        parse(start(parameters={"table": "T", "values": ROWS, "index": -1}))
    body = caught.value.body("/api/operations")
    assert body["status"] == 400
    assert body["code"] == "invalidRequest"
    assert body["field"] == "parameters.index"
    assert body["errors"][0]["field"] == "parameters.index"


def test_client_reference_at_the_limit_is_accepted():
    assert parse(start(clientReference="r" * 256)).client_reference == "r" * 256


def test_several_errors_are_all_reported():
    with pytest.raises(Problem) as caught:
        parse(start(sessionId="a b", clientReference="", parameters={"table": "T", "values": [], "index": -1}))
    fields = {e.field for e in caught.value.errors}
    assert {"sessionId", "clientReference", "parameters.values", "parameters.index"} <= fields


# --- callbackUrl ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/cb",
        "https://localhost/cb",
        "https://LOCALHOST:8443/cb",
        "https://api.localhost/cb",
        "https://127.0.0.1/cb",
        "https://10.0.0.1/cb",
        "https://192.168.1.20/cb",
        "https://172.16.0.5/cb",
        "https://169.254.169.254/metadata",
        "https://0.0.0.0/cb",
        "https://[::1]/cb",
        "https://[::ffff:127.0.0.1]/cb",
        "https://[::ffff:10.0.0.1]/cb",
        "https://[fd00::1]/cb",
    ],
)
def test_private_or_plain_http_callbacks_refused_by_default(url):
    assert field_of(start(callbackUrl=url)) == "callbackUrl"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/cb",
        "http://localhost:7071/api/cb",
        "https://127.0.0.1/cb",
        "http://10.0.0.1/cb",
        "https://[::ffff:127.0.0.1]/cb",
    ],
)
def test_private_callbacks_allowed_when_configured(url):
    request = parse(start(callbackUrl=url), allow_private=True)
    assert request.callback_url == url


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@hooks.example.com/cb",
        "https://user@hooks.example.com/cb",
        "ftp://hooks.example.com/cb",
        "hooks.example.com/cb",
        "https:///cb",
        "https://hooks.example.com/" + "a" * 2048,
        42,
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_malformed_callbacks_refused(url, allow_private):
    assert field_of(start(callbackUrl=url), allow_private=allow_private) == "callbackUrl"


@pytest.mark.parametrize("allow_private", [False, True])
def test_callback_refused_when_webhooks_not_configured(allow_private):
    payload = start(callbackUrl="https://hooks.example.com/cb")
    assert field_of(payload, allow_private=allow_private, webhooks=False) == "callbackUrl"


def test_no_callback_needs_no_webhooks():
    assert parse(start(), webhooks=False).callback_url is None


@pytest.mark.parametrize("url", ["https://127.1/cb", "https://2130706433/cb", "https://localhost./cb"])
def test_loopback_spellings_refused(url):
    assert field_of(start(callbackUrl=url)) == "callbackUrl"


# --- track bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "workbook"),
    [
        (f"{GRAPH}/v1.0/me/drive/items/01ABC/workbook/operations/op-1", "/me/drive/items/01ABC"),
        (f"{GRAPH}/beta/drives/b!x-Y/items/01ABC/workbook/operations/op-1", "/drives/b!x-Y/items/01ABC"),
        (
            f"{GRAPH}/beta/me/drive/items/01ABC/workbook/operations/op-1?sessionId=cluster%3DPS2%26session%3D1",
            "/me/drive/items/01ABC",
        ),
        (f"{GRAPH}/v1.0/users/u@contoso.com/drive/items/I/workbook/operations/o", "/users/u@contoso.com/drive/items/I"),
        (f"{GRAPH}/v1.0{SITE}/drive/items/I/workbook/operations/o", f"{SITE}/drive/items/I"),
        (f"{GRAPH}/v1.0/groups/g/drive/items/I/workbook/operations/o", "/groups/g/drive/items/I"),
        ("HTTPS://Graph.Microsoft.com:443/v1.0/me/drive/items/I/workbook/operations/o", "/me/drive/items/I"),
    ],
)
def test_valid_track(url, workbook):
    request = parse({"operationUrl": url})
    assert isinstance(request, TrackRequest)
    assert request.operation_url == url  # verbatim, query included
    assert request.workbook == workbook
    assert request.action is None


def test_valid_track_with_action_and_callback():
    url = f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o"
    request = parse(
        {
            "operationUrl": url,
            "action": "createSession",
            "callbackUrl": "https://h.example.com/",
            "clientReference": "r",
        }
    )
    assert isinstance(request, TrackRequest)
    assert (request.action, request.callback_url, request.client_reference) == (
        "createSession",
        "https://h.example.com/",
        "r",
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/v1.0/me/drive/items/I/workbook/operations/o",
        "http://graph.microsoft.com/v1.0/me/drive/items/I/workbook/operations/o",
        "https://graph.microsoft.com:8443/v1.0/me/drive/items/I/workbook/operations/o",
        "https://graph.microsoft.com.evil.example/v1.0/me/drive/items/I/workbook/operations/o",
        "https://graph.microsoft.us/v1.0/me/drive/items/I/workbook/operations/o",
    ],
)
def test_track_foreign_origin_is_untrusted(url):
    with pytest.raises(Problem) as caught:
        parse({"operationUrl": url})
    problem = caught.value
    assert problem.status == 400
    assert problem.code == "untrustedOperationOrigin"
    assert problem.errors[0].field == "operationUrl"


@pytest.mark.parametrize(
    "url",
    [
        f"{GRAPH}/v1.0/me/drive/items/I",
        f"{GRAPH}/v1.0/me/drive/items/I/workbook/tables",
        f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/",
        f"{GRAPH}/v2.0/me/drive/items/I/workbook/operations/o",
        f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o/extra",
        f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o#frag",
        "https://user@graph.microsoft.com/v1.0/me/drive/items/I/workbook/operations/o",
        "graph.microsoft.com/v1.0/me/drive/items/I/workbook/operations/o",
        "ftp://graph.microsoft.com/v1.0/me/drive/items/I/workbook/operations/o",
        f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/" + "o" * 2100,
        None,
        123,
    ],
)
def test_track_non_operation_url_refused(url):
    assert field_of({"operationUrl": url}) == "operationUrl"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {"operationUrl": f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o", "workbook": WORKBOOKS[1]},
            "workbook",
        ),
        ({"operationUrl": f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o", "action": "nope"}, "action"),
        ({"operationUrl": f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o", "parameters": {}}, "parameters"),
        (
            {"operationUrl": f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o", "callbackUrl": "http://x.io/"},
            "callbackUrl",
        ),
    ],
)
def test_invalid_track_names_the_field(payload, field):
    assert field_of(payload) == field


def test_track_invalid_port_is_not_the_graph_origin():
    with pytest.raises(Problem):
        parse({"operationUrl": "https://graph.microsoft.com:99999/v1.0/me/drive/items/I/workbook/operations/o"})


# --- parse_json_body --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \n", b"{", b"{'a': 1}", b"\xff\xfe\x00", b"nope"])
def test_parse_json_body_errors_name_body(raw):
    with pytest.raises(Problem) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400
    assert caught.value.errors[0].field == "body"


# Issue 9: what Python's json accepts or trips over, but strict JSON (RFC 8259) does not allow. Each was a 5xx
# (RecursionError, ValueError) or passed on as invalid JSON (NaN) to Graph, API callers and webhooks.
HOSTILE_BODIES = {
    "NaN": b'{"parameters": {"values": [[NaN]]}}',
    "Infinity": b'{"parameters": {"values": [[Infinity]]}}',
    "-Infinity": b'{"parameters": {"values": [[-Infinity]]}}',
    "overflowing float": b'{"parameters": {"values": [[1e999]]}}',
    "nested 5000 deep": b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nested 65 deep": b"[" * 65 + b"]" * 65,
    "integer of 4301 digits": b'{"a": ' + b"9" * 4301 + b"}",
    "integer of 65 digits": b'{"a": ' + b"9" * 65 + b"}",
    "float of 100 digits": b'{"a": 0.' + b"1" * 100 + b"}",
    "duplicate key": b'{"workbook": "/me/drive/items/A", "workbook": "/me/drive/items/B"}',
    "nested duplicate key": b'{"parameters": {"table": "T", "table": "U"}}',
    "UTF-16": '{"a": 1}'.encode("utf-16"),
}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("raw", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_parse_json_body_is_strict(raw):
    with pytest.raises(Problem) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400
    assert caught.value.errors[0].field == "body"


def test_a_body_over_1_mib_is_413_naming_body():
    with pytest.raises(Problem) as caught:
        parse_json_body(b'{"a": "' + b"x" * (1024 * 1024) + b'"}')
    assert caught.value.status == 413 and caught.value.errors[0].field == "body"
    assert parse_json_body(b'{"a": "' + b"x" * (1024 * 1024 - 10) + b'"}')["a"]  # the limit itself is fine


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"[" * 64 + b"]" * 64, nested(64)),  # the limit itself
        (b'{"a": "' + b"[" * 77 + b'"}', {"a": "[" * 77}),  # brackets inside strings do not nest
        (b'{"a": ' + b"9" * 64 + b"}", {"a": int("9" * 64)}),
        (b'{"a": -1.5e300}', {"a": -1.5e300}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 BOM, which RFC 8259 lets a parser ignore
    ],
)
def test_parse_json_body_accepts_strict_json_up_to_the_limits(raw, value):
    assert parse_json_body(raw) == value


@pytest.mark.parametrize(("raw", "value"), [(b'{"a": 1}', {"a": 1}), (b"[1]", [1]), (b' "x" ', "x")])
def test_parse_json_body_returns_json(raw, value):
    assert parse_json_body(raw) == value


@pytest.mark.parametrize("workbook", ["/drives/./items/x", "/me/drive/items/.", "/users/./drive/items/x"])
def test_single_dot_segment_workbook_refused(workbook):
    assert field_of(start(workbook=workbook)) == "workbook"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_content_types_are_accepted(content_type):
    assert parse_json_body(b'{"a": 1}', content_type) == {"a": 1}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "text/json",
    ],
)
def test_a_body_declared_as_something_else_is_415(content_type):
    # a JSON body sent as text/plain used to be accepted; it is refused now, naming the header
    with pytest.raises(Problem) as caught:
        parse_json_body(b'{"a": 1}', content_type)
    problem = caught.value
    assert problem.status == 415
    assert problem.body()["field"] == "Content-Type"
    assert problem.headers["Accept-Post"] == "application/json"


# --- callbackFormat ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_callback_format_is_taken_when_given(fmt):
    request = parse(start(callbackUrl="https://hooks.example.com/cb", callbackFormat=fmt))
    assert request.callback_format == fmt


def test_callback_format_defaults_to_binary_with_a_callback_and_none_without():
    assert parse(start(callbackUrl="https://hooks.example.com/cb")).callback_format == "binary"
    assert parse(start()).callback_format is None


@pytest.mark.parametrize("fmt", ["Binary", "json", "", 1, True, ["binary"]])
def test_callback_format_must_be_binary_or_structured(fmt):
    assert field_of(start(callbackUrl="https://hooks.example.com/cb", callbackFormat=fmt)) == "callbackFormat"


def test_callback_format_needs_a_callback_url():
    assert field_of(start(callbackFormat="structured")) == "callbackFormat"


def test_callback_format_on_a_tracked_operation():
    request = parse(
        {
            "operationUrl": f"{GRAPH}/v1.0/me/drive/items/I/workbook/operations/o",
            "callbackUrl": "https://h.example.com/",
            "callbackFormat": "structured",
        }
    )
    assert isinstance(request, TrackRequest) and request.callback_format == "structured"


def test_callback_format_null_is_refused_as_the_schema_says():
    # schemathesis found `"callbackFormat": null` accepted on POST /subscriptions (ST201)
    assert field_of(start(callbackUrl="https://hooks.example.com/cb", callbackFormat=None)) == "callbackFormat"
