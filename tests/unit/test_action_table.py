"""The action table (shared/graph/actions/): one entry is all the app needs to know of an action (issue 16).

The throwaway action below (a range update) exists only in this test: it is added to the table and nothing
else, then driven through start -> poll -> result over the in-process fakes, and it shows up in validation, the
Graph request, the result, a tracked operation's inferred action, subscriptions and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from shared.api import openapi
from shared.api.problems import Problem
from shared.graph.actions import table
from shared.graph.actions.params import Name, Rows
from shared.graph.actions.spec import Action, Call
from shared.operations import start as operations
from shared.operations.requests import parse_json_body, parse_operation_request
from shared.subscriptions.rules import parse_subscription_request
from tests.unit.fakes import GRAPH, FakeClock, accepted, drain, fake_runtime, reply, running, succeeded

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://bridge.example.test/api"
WORKBOOK = "/me/drive/items/01ITEM"
RANGE_URL = f"{GRAPH}{WORKBOOK}/workbook/worksheets/Sheet%201/range(address='A1%3AB1')"
LOC = f"{GRAPH}{WORKBOOK}/workbook/operations/op-range"
RESULT = f"{GRAPH}{WORKBOOK}/workbook/rangeOperationResult(key='k1')"

UPDATE_RANGE = Action(
    name="updateRange",
    summary="Write values into a range of a worksheet",
    params=(Name("sheet", "the worksheet's name"), Name("address", "the range, A1:B2"), Rows("values", "the cells")),
    call=lambda p: Call(
        "PATCH",
        f"/worksheets/{quote(p['sheet'], safe='')}/range(address='{quote(p['address'], safe='')}')",
        {"values": p["values"]},
    ),
    result=lambda body: {"address": body.get("address"), "values": body.get("values")},
    result_marker="/rangeoperationresult(",
)


@pytest.fixture
def with_range_update(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(table.TABLE, UPDATE_RANGE.name, UPDATE_RANGE)  # the one change: a table entry


def body(**changes: Any) -> bytes:
    payload = {
        "workbook": WORKBOOK,
        "action": "updateRange",
        "parameters": {"sheet": "Sheet 1", "address": "A1:B1", "values": [[1, "two"]]},
        "sessionId": "session-1",
    }
    return json.dumps({**payload, **changes}).encode()


def test_a_new_action_runs_from_start_to_result_with_only_a_table_entry(
    clock: FakeClock, with_range_update: None
) -> None:
    rt, f = fake_runtime()
    f.graph.script("PATCH", RANGE_URL, accepted(LOC))
    f.graph.script("GET", LOC, running(), succeeded(RESULT))
    graph_range = {"@odata.context": "x", "address": "Sheet 1!A1:B1", "values": [[1, "two"]], "rowCount": 1}
    f.graph.script("GET", RESULT, reply(200, graph_range))
    answer = asyncio.run(operations.start(rt, body(), None, BASE))
    assert answer.operation.action == "updateRange"
    asyncio.run(drain(rt, clock, f))
    op = asyncio.run(rt.store.get(answer.operation.id))
    assert op.status == "succeeded"
    assert op.result == {"address": "Sheet 1!A1:B1", "values": [[1, "two"]]}  # the entry's result shape
    (sent,) = f.graph.to(RANGE_URL)
    assert sent.method == "PATCH" and sent.json == {"values": [[1, "two"]]}
    assert sent.headers["Prefer"] == "respond-async" and sent.headers["Workbook-Session-Id"] == "session-1"


def test_a_new_actions_parameters_are_validated_by_its_entry(with_range_update: None) -> None:
    payload = json.loads(body(parameters={"sheet": "S", "values": [[1]], "colour": "red"}))
    with pytest.raises(Problem) as caught:
        parse_operation_request(
            payload, graph_origin="https://graph.example.test", allow_private_callbacks=False, webhooks_configured=True
        )
    assert [e.field for e in caught.value.errors] == ["parameters.colour", "parameters.address"]


def test_a_new_action_is_inferred_from_its_result_url_and_offered_to_subscriptions(with_range_update: None) -> None:
    assert table.infer(RESULT) == "updateRange"
    parsed = parse_subscription_request(
        {"callbackUrl": "https://hooks.example.com/cb", "actions": ["updateRange"]},
        allow_private_callbacks=False,
        webhooks_configured=True,
    )
    assert parsed.actions == ("updateRange",)


def test_a_new_action_is_in_the_openapi_document(with_range_update: None) -> None:
    schemas = openapi.build_spec()["components"]["schemas"]
    assert schemas["StartUpdateRange"]["required"] == ["workbook", "action", "parameters"]
    assert schemas["UpdateRangeParameters"]["required"] == ["sheet", "address", "values"]
    assert schemas["UpdateRangeParameters"]["additionalProperties"] is False
    assert {"$ref": "#/components/schemas/StartUpdateRange"} in schemas["StartRequest"]["oneOf"]
    assert "updateRange" in schemas["Operation"]["properties"]["action"]["enum"]
    assert "updateRange" in schemas["SubscriptionRequest"]["properties"]["actions"]["items"]["enum"]


def test_an_action_may_take_a_larger_body_than_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """appendRows (issue 20) will take far more than 1 MiB; every other action keeps its own limit."""
    mib = 1024 * 1024
    bulk = Action(
        "bulk",
        "many rows",
        (Rows("values", "rows", max_bytes=3 * mib),),
        lambda p: Call("POST", ""),
        max_body_bytes=4 * mib,
    )
    monkeypatch.setitem(table.TABLE, "bulk", bulk)
    assert table.body_limit() == 4 * mib
    cells = [["x" * 1000] for _ in range(1500)]  # about 1.5 MiB as JSON

    def status(action: str) -> int:
        data = json.dumps({"workbook": WORKBOOK, "action": action, "parameters": {"table": "T", "values": cells}})
        raw = data.encode() if action != "bulk" else data.replace('"table": "T", ', "").encode()
        try:
            parse_operation_request(
                parse_json_body(raw),
                graph_origin="https://graph.example.test",
                allow_private_callbacks=False,
                webhooks_configured=True,
                body_bytes=len(raw),
            )
        except Problem as problem:
            return problem.status
        return 200

    assert status("bulk") == 200
    assert status("createTableRow") == 413


def test_the_connector_offers_the_tables_actions() -> None:
    """The Power Platform connector (Swagger 2.0, written by hand) lists the actions where a caller picks one: a
    new action fails here until the connector offers it too."""
    swagger = json.loads((ROOT / "connector" / "apiDefinition.swagger.json").read_text())
    definitions = swagger["definitions"]
    assert definitions["StartRequest"]["properties"]["action"]["enum"] == list(table.names())
    assert definitions["SubscriptionRequest"]["properties"]["actions"]["items"]["enum"] == list(table.names())
