"""GET /api/openapi.json describes exactly the HTTP functions function_app.py registers."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.api import openapi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def http_functions() -> dict[tuple[str, str], Any]:
    """(route, METHOD) -> Function, from a private copy of function_app.py.

    get_functions() may be called only once per FunctionApp object, so the module is loaded under its own name
    (a fresh FunctionApp) instead of importing `function_app`, which devhost may also load in this process.
    """
    spec = importlib.util.spec_from_file_location("function_app_openapi_check", ROOT / "function_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: dict[tuple[str, str], Any] = {}
    for function in module.app.get_functions():  # once
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        if trigger["type"] != "httpTrigger":
            continue
        for method in trigger.get("methods") or []:
            found[(str(trigger["route"]).strip("/"), str(method).upper())] = function
    return found


def route_prefix() -> str:
    host = json.loads((ROOT / "host.json").read_text())
    return str(host.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip("/")


def test_every_http_function_is_documented_and_nothing_else(http_functions: dict[tuple[str, str], Any]) -> None:
    assert set(http_functions) == openapi.routes()


def test_spec_paths_use_the_route_prefix() -> None:
    spec = openapi.build_spec(f"https://bridge.example/{route_prefix()}")
    assert spec["servers"] == [{"url": "https://bridge.example/api"}]
    served = {(f"/{route_prefix()}{path}", method.upper()) for path, item in spec["paths"].items() for method in item}
    assert ("/api/operations/{id}", "GET") in served
    assert len(served) == len(openapi.routes())


def test_path_parameters_match_route_templates() -> None:
    for path, item in openapi.build_spec()["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, declared)


def test_anonymous_routes_are_documented_as_anonymous(http_functions: dict[tuple[str, str], Any]) -> None:
    spec = openapi.build_spec()
    for (route, method), function in http_functions.items():
        trigger = next(json.loads(b) for b in function.get_raw_bindings() if "httpTrigger" in b)
        anonymous = str(trigger.get("authLevel", "")).upper() == "ANONYMOUS"
        documented = spec["paths"][f"/{route}"][method.lower()].get("security", None) == []
        assert anonymous == documented, (route, method)


def test_every_reference_resolves_and_operation_ids_are_unique() -> None:
    spec = openapi.build_spec()
    text = json.dumps(spec)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text)):
        assert ref in spec["components"]["schemas"], ref
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert spec["openapi"].startswith("3.")
    for item in spec["paths"].values():
        for operation in item.values():
            assert operation["responses"], operation["operationId"]


def test_the_endpoint_serves_the_document(http_functions: dict[tuple[str, str], Any]) -> None:
    handler = http_functions[("openapi.json", "GET")].get_user_function()
    req = func.HttpRequest("GET", "https://bridge.example/api/openapi.json", headers={}, body=b"")
    resp = asyncio.run(handler(req))
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    doc = json.loads(resp.get_body())
    assert doc["servers"] == [{"url": "https://bridge.example/api"}]
    assert set(doc["paths"]) == {f"/{route}" for route, _ in openapi.routes()}


def test_connector_definition_covers_the_api() -> None:
    """connector/apiDefinition.swagger.json (OpenAPI 2.0) only uses routes the bridge serves."""
    swagger = json.loads((ROOT / "connector" / "apiDefinition.swagger.json").read_text())
    assert swagger["swagger"] == "2.0"
    assert swagger["basePath"] == f"/{route_prefix()}"
    served = openapi.routes()
    for path, item in swagger["paths"].items():
        for method in item:
            if method.startswith("x-ms-"):
                continue
            assert (path.strip("/"), method.upper()) in served, (path, method)
    start = swagger["paths"]["/operations"]["post"]
    status = swagger["paths"]["/operations/{id}"]["get"]
    assert "Location" in start["responses"]["202"]["headers"]
    assert "Retry-After" in status["responses"]["202"]["headers"]
    triggers = [
        (path, op)
        for path, item in swagger["paths"].items()
        for k, op in item.items()
        if isinstance(op, dict) and op.get("x-ms-trigger")
    ]
    assert len(triggers) == 1 and triggers[0][1]["x-ms-trigger"] == "single"
    path, trigger = triggers[0]
    body = next(p for p in trigger["parameters"] if p["in"] == "body")
    schema = swagger["definitions"][body["schema"]["$ref"].split("/")[-1]]
    assert schema["properties"]["callbackUrl"]["x-ms-notification-url"] is True
    assert schema["properties"]["callbackUrl"]["x-ms-visibility"] == "internal"
    # Registration must have no side effect but the subscription (the platform re-registers on every save:
    # connectors-native-webhook.md), answer 201 + Location, and that Location must be DELETE-able
    # (create-triggers-custom-connectors). So: the subscriptions route, never the operations one.
    assert path == "/subscriptions" and ("subscriptions", "POST") in served
    assert "Location" in trigger["responses"]["201"]["headers"]
    assert "delete" in swagger["paths"]["/subscriptions/{id}"]
    notification = swagger["paths"][path]["x-ms-notification-content"]["schema"]["$ref"]
    assert notification == "#/definitions/Operation"  # binary mode: the body is the record
    assert not [p for p in swagger["paths"] if p != "/" and p.endswith("/")]  # no trailing-slash paths
    text = json.dumps(swagger)
    for ref in set(re.findall(r'"\$ref": "#/definitions/(\w+)"', text)):
        assert ref in swagger["definitions"], ref


def test_every_error_answer_is_documented_as_problem_json() -> None:
    """Issue 9: the schemathesis run checks content types against these; errors are problem+json."""
    for path, item in openapi.build_spec()["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    assert list(answer["content"]) == ["application/problem+json"], (path, method, status)
            assert "500" in operation["responses"] or path in ("/health", "/openapi.json"), (path, method)


def test_the_statuses_issue_9_found_undocumented_are_documented() -> None:
    paths = openapi.build_spec()["paths"]
    start = paths["/operations"]["post"]["responses"]
    assert {"400", "415", "429", "503"} <= set(start)
    assert "Retry-After" in start["429"]["headers"] and "Retry-After" in start["503"]["headers"]
    redeliver = paths["/operations/{id}/webhook/redeliver"]["post"]["responses"]
    assert "redeliveryInProgress" in redeliver["409"]["description"] and "Retry-After" in redeliver["409"]["headers"]
    assert "400" in paths["/operations/by-key/{key}"]["delete"]["responses"]


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("workbook", "/me/drive/items/01ABC", True),
        ("workbook", "/drives/b!x/items/01ABC", True),
        ("workbook", "/me/drive/root:/a.xlsx:", False),
        ("workbook", "/me/drive/items/a b", False),
        ("sessionId", "abc", True),
        ("sessionId", "a b", False),
    ],
)
def test_documented_patterns_agree_with_the_validator(name: str, value: str, valid: bool) -> None:
    from shared.api.problems import Problem
    from shared.operations.requests import parse_operation_request

    pattern = openapi.schemas()["StartCreateSession"]["properties"][name]["pattern"]
    assert bool(re.search(pattern, value)) is valid
    body = {"workbook": "/me/drive/items/01ABC", "action": "createSession", name: value}
    try:
        parse_operation_request(
            body, graph_origin="https://graph.microsoft.com", allow_private_callbacks=False, webhooks_configured=False
        )
        accepted = True
    except Problem:
        accepted = False
    assert accepted is valid
