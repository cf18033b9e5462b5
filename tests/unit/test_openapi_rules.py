"""The OpenAPI document states the API's real rules (issue 18 item 8, issue 17): a body the document calls valid
is one the validator accepts, and the reverse, for every rule a schema can say. What it cannot say (a callback
name that must resolve to a public address, WEBHOOK_SECRET being set, Graph's origin for operationUrl, lone
surrogates) is listed in docs/testing.md and left out here.

Bodies are checked against the served document's request schema with jsonschema_rs (Draft 4, the dialect
OpenAPI 3.0's Schema Object extends; its regular expressions follow ECMA-262 as JSON Schema's do), after
resolving `$ref`s and writing OpenAPI's `nullable` as Draft 4 types."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs
import pytest

from shared.api import openapi
from shared.api.problems import Problem
from shared.operations.requests import parse_operation_request
from shared.subscriptions.rules import parse_subscription_request

ORIGIN = "https://graph.microsoft.com"
TIMEOUT = 3600.0
WB = "/me/drive/items/01ITEM"
CALLBACK = "https://hooks.example.com/cb"
TRACK = f"{ORIGIN}/v1.0{WB}/workbook/operations/op1"


def _resolve(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(schemas[node["$ref"].rsplit("/", 1)[-1]], schemas)
        out = {k: _resolve(v, schemas) for k, v in node.items() if k not in ("nullable", "discriminator")}
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_resolve(v, schemas) for v in node]
    return node


def request_schema(path: str, timeout: float = TIMEOUT) -> Any:
    doc = openapi.build_spec("/api", operation_timeout=timeout, graph_origin=ORIGIN)
    schemas = doc["components"]["schemas"]
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft4Validator(_resolve(copy.deepcopy(body), schemas))


def accepted(payload: Any, timeout: float = TIMEOUT) -> bool:
    try:
        parse_operation_request(
            payload,
            graph_origin=ORIGIN,
            allow_private_callbacks=False,
            webhooks_configured=True,
            max_expected_duration=timeout,
        )
    except Problem:
        return False
    return True


def start(action: str, **extra: Any) -> dict[str, Any]:
    return {"workbook": WB, "action": action, **extra}


ROWS = {"table": "Table1", "values": [[1, "a", None, True]]}
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("createSession alone", start("createSession"), True),
    ("createSession, persistChanges", start("createSession", parameters={"persistChanges": False}), True),
    ("createSession, empty parameters", start("createSession", parameters={}), True),
    ("createSession, unknown parameter", start("createSession", parameters={"persistChanges": True, "x": 1}), False),
    ("createSession, persistChanges null", start("createSession", parameters={"persistChanges": None}), False),
    ("createTableRow", start("createTableRow", parameters=ROWS), True),
    ("createTableRow, index", start("createTableRow", parameters={**ROWS, "index": 3}), True),
    ("createTableRow, index null", start("createTableRow", parameters={**ROWS, "index": None}), True),
    ("createTableRow without parameters", start("createTableRow"), False),
    ("createTableRow without values", start("createTableRow", parameters={"table": "T"}), False),
    ("createTableRow, unknown parameter", start("createTableRow", parameters={**ROWS, "persistChanges": True}), False),
    ("createTableRow, empty row", start("createTableRow", parameters={"table": "T", "values": [[]]}), False),
    ("createTableRow, nested cell", start("createTableRow", parameters={"table": "T", "values": [[[1]]]}), False),
    ("createTableRow, blank table", start("createTableRow", parameters={**ROWS, "table": "   "}), False),
    ("createTableRow, table with LF", start("createTableRow", parameters={**ROWS, "table": "T\n"}), False),
    ("deleteTableRow", start("deleteTableRow", parameters={"table": "T", "index": 0}), True),
    ("deleteTableRow without index", start("deleteTableRow", parameters={"table": "T"}), False),
    ("deleteTableRow, index null", start("deleteTableRow", parameters={"table": "T", "index": None}), False),
    ("deleteTableRow, negative index", start("deleteTableRow", parameters={"table": "T", "index": -1}), False),
    ("deleteTableRow without parameters", start("deleteTableRow"), False),
    ("callbackFormat without callbackUrl", start("createSession", callbackFormat="binary"), False),
    (
        "callbackFormat with callbackUrl",
        start("createSession", callbackFormat="structured", callbackUrl=CALLBACK),
        True,
    ),
    ("expectedDurationSeconds at the timeout", start("createSession", expectedDurationSeconds=TIMEOUT), True),
    ("expectedDurationSeconds past the timeout", start("createSession", expectedDurationSeconds=TIMEOUT + 1), False),
    ("expectedDurationSeconds 0", start("createSession", expectedDurationSeconds=0), False),
    ("sessionId with LF", start("createSession", sessionId="abc\n"), False),
    ("workbook with LF", {"workbook": WB + "\n", "action": "createSession"}, False),
    ("clientReference with LF", start("createSession", clientReference="a\nb"), False),
    ("clientReference", start("createSession", clientReference="order 42 \N{GRINNING FACE}"), True),
    ("unknown action", start("updateRange"), False),
    ("track", {"operationUrl": TRACK}, True),
    ("track, action", {"operationUrl": TRACK, "action": "createTableRow"}, True),
    ("track, callbackFormat alone", {"operationUrl": TRACK, "callbackFormat": "binary"}, False),
    ("track with parameters", {"operationUrl": TRACK, "parameters": {}}, False),
    ("both workbook and operationUrl", {"operationUrl": TRACK, "workbook": WB, "action": "createSession"}, False),
    ("track, another origin", {"operationUrl": TRACK.replace("graph.microsoft.com", "graph.example.com")}, False),
    ("track, not an operation", {"operationUrl": f"{ORIGIN}/v1.0{WB}/workbook/tables"}, False),
    ("track, a fragment", {"operationUrl": TRACK + "#x"}, False),
    ("track, a query", {"operationUrl": TRACK + "?sessionId=a%3Db"}, True),
]


@pytest.mark.parametrize(("name", "payload", "valid"), CASES, ids=[c[0] for c in CASES])
def test_the_document_and_the_validator_agree(name: str, payload: dict[str, Any], valid: bool) -> None:
    assert accepted(payload) is valid, "the validator"
    assert request_schema("/operations").is_valid(payload) is valid, "the document"


def test_the_duration_bound_is_the_deployments_timeout() -> None:
    body = start("createSession", expectedDurationSeconds=7200)
    assert not request_schema("/operations", 3600).is_valid(body) and not accepted(body, 3600)
    assert request_schema("/operations", 86400).is_valid(body) and accepted(body, 86400)


def test_no_default_a_generated_client_sends_is_refused() -> None:
    """openapi-python-client sends a property's declared default whenever it is unset (issue 17): every default
    of a request body, sent alone on a minimal valid body, must be accepted."""
    doc = openapi.build_spec("/api", operation_timeout=TIMEOUT)
    schemas = doc["components"]["schemas"]
    seen = 0
    for name, schema in schemas.items():
        for prop, rule in _resolve(schema, schemas).get("properties", {}).items():
            if "default" not in rule or not name.startswith(("Start", "Track")):
                continue
            seen += 1
            base = {"operationUrl": TRACK} if name.startswith("Track") else _minimal(name, schemas)
            assert accepted({**base, prop: rule["default"]}), (name, prop)
    assert seen >= 1


def _minimal(name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    action = schemas[name]["properties"]["action"]["enum"][0]
    needs = {"createTableRow": ROWS, "deleteTableRow": {"table": "T", "index": 0}}
    return start(action, **({"parameters": needs[action]} if action in needs else {}))


SUBSCRIPTIONS: list[tuple[str, dict[str, Any], bool]] = [
    ("callbackUrl alone", {"callbackUrl": CALLBACK}, True),
    ("actions", {"callbackUrl": CALLBACK, "actions": ["createSession"]}, True),
    ("unknown action", {"callbackUrl": CALLBACK, "actions": ["updateRange"]}, False),
    ("callbackFormat", {"callbackUrl": CALLBACK, "callbackFormat": "structured"}, True),
    ("no callbackUrl", {"callbackFormat": "binary"}, False),
    ("unknown field", {"callbackUrl": CALLBACK, "x": 1}, False),
]


@pytest.mark.parametrize(("name", "payload", "valid"), SUBSCRIPTIONS, ids=[c[0] for c in SUBSCRIPTIONS])
def test_subscription_document_and_validator_agree(name: str, payload: dict[str, Any], valid: bool) -> None:
    try:
        parse_subscription_request(payload, allow_private_callbacks=False, webhooks_configured=True)
        ok = True
    except Problem:
        ok = False
    assert ok is valid
    assert request_schema("/subscriptions").is_valid(payload) is valid
