"""The three Graph requests the action table builds (shared/graph/actions/table.request_for)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.graph.actions.table import request_for as start_request
from shared.operations.requests import StartRequest, parse_operation_request

BASE = "https://graph.microsoft.com/v1.0"
WB = "/drives/b!abc/items/01XYZ"


def make(action: str, parameters: dict[str, Any], session_id: str | None = None) -> StartRequest:
    return StartRequest(WB, action, parameters, session_id, None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("persist", [True, False])
def test_create_session(persist):
    request = start_request(BASE, make("createSession", {"persistChanges": persist}))
    assert request.method == "POST"
    assert request.url == f"{BASE}{WB}/workbook/createSession"
    assert request.json == {"persistChanges": persist}
    assert request.headers == {"Prefer": "respond-async"}


@pytest.mark.parametrize(
    ("table", "encoded"),
    [
        ("Table1", "Table1"),
        ("Sales 2024", "Sales%202024"),
        ("a/b", "a%2Fb"),
        ("{00000000-0001-0000-0100-000000000000}", "%7B00000000-0001-0000-0100-000000000000%7D"),
        ("x?y#z&w", "x%3Fy%23z%26w"),
        ("Ümlaut", "%C3%9Cmlaut"),
        ("..", ".."),
    ],
)
def test_create_table_row_url_encodes_table(table, encoded):
    request = start_request(BASE, make("createTableRow", {"table": table, "values": [[1, "a"]], "index": None}))
    assert request.method == "POST"
    assert request.url == f"{BASE}{WB}/workbook/tables/{encoded}/rows"
    assert request.json == {"index": None, "values": [[1, "a"]]}
    assert request.headers["Prefer"] == "respond-async"
    assert "Workbook-Session-Id" not in request.headers


def test_create_table_row_with_index():
    request = start_request(BASE, make("createTableRow", {"table": "T", "values": [[None]], "index": 7}))
    assert request.json == {"index": 7, "values": [[None]]}


@pytest.mark.parametrize("index", [0, 1, 12345])
def test_delete_table_row_uses_item_at(index):
    request = start_request(BASE, make("deleteTableRow", {"table": "My Table", "index": index}))
    assert request.method == "DELETE"
    assert request.url == f"{BASE}{WB}/workbook/tables/My%20Table/rows/itemAt(index={index})"
    assert request.json is None
    assert request.headers == {"Prefer": "respond-async"}


@pytest.mark.parametrize(
    ("action", "parameters"),
    [
        ("createSession", {"persistChanges": True}),
        ("createTableRow", {"table": "T", "values": [[1]], "index": None}),
        ("deleteTableRow", {"table": "T", "index": 0}),
    ],
)
def test_session_id_header_only_when_given(action, parameters):
    with_session = start_request(BASE, make(action, parameters, session_id="cluster=PS2&session=1"))
    assert with_session.headers == {"Prefer": "respond-async", "Workbook-Session-Id": "cluster=PS2&session=1"}
    without = start_request(BASE, make(action, parameters, session_id=None))
    assert "Workbook-Session-Id" not in without.headers


def test_beta_base_url():
    request = start_request("https://graph.microsoft.com/beta", make("createSession", {"persistChanges": False}))
    assert request.url == f"https://graph.microsoft.com/beta{WB}/workbook/createSession"


def test_from_a_validated_body():
    parsed = parse_operation_request(
        {
            "workbook": "/me/drive/items/01A",
            "action": "deleteTableRow",
            "parameters": {"table": "T 1", "index": 2},
            "sessionId": "sess-1",
        },
        graph_origin="https://graph.microsoft.com",
        allow_private_callbacks=False,
        webhooks_configured=False,
    )
    assert isinstance(parsed, StartRequest)
    request = start_request(BASE, parsed)
    assert request.method == "DELETE"
    assert request.url == f"{BASE}/me/drive/items/01A/workbook/tables/T%201/rows/itemAt(index=2)"
    assert request.headers["Workbook-Session-Id"] == "sess-1"


def test_create_session_from_defaults():
    parsed = parse_operation_request(
        {"workbook": "/me/drive/items/01A", "action": "createSession"},
        graph_origin="https://graph.microsoft.com",
        allow_private_callbacks=False,
        webhooks_configured=False,
    )
    request = start_request(BASE, parsed)  # type: ignore[arg-type]
    assert request.json == {"persistChanges": True}
