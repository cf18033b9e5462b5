"""The expression evaluator against the Workflow Definition Language docs' own examples and rules."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.logicapps.expressions import (
    ExpressionError,
    UnsupportedExpression,
    evaluate_condition,
    evaluate_value,
)

EVENT = {"specversion": "1.0", "type": "workbook.operation.succeeded", "data": {"result": {"id": "s-1"}}}


class FakeContext:
    def __init__(self) -> None:
        self.params: dict[str, Any] = {
            "myBirthMonth": "January",
            "myAge": 42,
            "firstName": "Sophia",
            "lastName": "Owen",
            "flag": True,
            "customer": {"name": "Contoso"},
        }
        self.settings = {"BRIDGE_URL": "https://bridge.example/api"}
        self.bodies: dict[str, Any] = {
            "Http": {"result": {"id": "s-1"}, "list": [10, 20], "nothing": None},
            "Webhook": {
                "$content-type": "application/cloudevents+json",
                "$content": base64.b64encode(json.dumps(EVENT).encode()).decode(),
            },
        }

    def parameter(self, name: str) -> Any:
        if name not in self.params:
            raise ExpressionError(f"no parameter {name}")
        return self.params[name]

    def appsetting(self, name: str) -> Any:
        return self.settings[name]

    def workflow(self) -> dict[str, Any]:
        return {"name": "wf", "run": {"name": "08584000000000000000000000001CU01"}}

    def trigger(self) -> dict[str, Any]:
        return {"outputs": {"headers": {"x": "1"}, "body": {"table": "Table1", "values": [[1, "two"]]}}}

    def action(self, name: str) -> dict[str, Any]:
        return {"name": name, "status": "Succeeded", "outputs": self.outputs(name)}

    def outputs(self, name: str) -> Any:
        return {"statusCode": 200, "headers": {}, "body": self.bodies[name]}

    def result(self, name: str) -> list[dict[str, Any]]:
        return []

    def list_callback_url(self) -> str:
        return "http://127.0.0.1:1/workflows/w/runs/r/actions/a/run?sig=s"


TABLE: list[tuple[Any, Any]] = [
    # logic-apps-workflow-definition-language.md, "Expressions" table
    ("Sophia Owen", "Sophia Owen"),
    ("array[1]", "array[1]"),
    ("@@", "@"),
    (" @", " @"),
    ("@parameters('myBirthMonth')", "January"),
    ("@{parameters('myBirthMonth')}", "January"),
    ("@parameters('myAge')", 42),
    ("@{parameters('myAge')}", "42"),
    ("My age is @{parameters('myAge')}", "My age is 42"),
    ("@concat('My age is ', string(parameters('myAge')))", "My age is 42"),
    ("My age is @@{parameters('myAge')}", "My age is @{parameters('myAge')}"),
    (
        "First name: @{parameters('firstName')} Last name: @{parameters('lastName')}",
        "First name: Sophia Last name: Owen",
    ),
    # operators: [] . ?
    ("@parameters('customer').name", "Contoso"),
    ("@parameters('customer')['name']", "Contoso"),
    ("@parameters('customer')?['missing']", None),
    ("@body('Http')?['nothing']?['deeper']", None),
    ("@body('Http')['list'][1]", 20),
    ("@body('Http')?['result']?['id']", "s-1"),
    ("@{body('Http')?['result']?['id']}-row", "s-1-row"),
    ("@triggerBody()?['values']", [[1, "two"]]),
    ("@triggerOutputs()['headers']['x']", "1"),
    ("@{workflow()?['run']?['name']}-session", "08584000000000000000000000001CU01-session"),
    ("@workflow().run.name", "08584000000000000000000000001CU01"),
    ("@appsetting('BRIDGE_URL')", "https://bridge.example/api"),
    ("@{appsetting('BRIDGE_URL')}/operations", "https://bridge.example/api/operations"),
    ("@actions('Http')['status']", "Succeeded"),
    ("@outputs('Http')['statusCode']", 200),
    ("@{listCallbackUrl()}", "http://127.0.0.1:1/workflows/w/runs/r/actions/a/run?sig=s"),
    # functions
    ("@equals(1, 1)", True),
    ("@equals('1', 1)", False),
    ("@equals(true, 1)", False),
    ("@and(true, equals(2, 2))", True),
    ("@or(false, false)", False),
    ("@not(parameters('flag'))", False),
    ("@if(equals(1, 2), 'yes', 'no')", "no"),
    ("@coalesce(null, body('Http')?['nothing'], 'fallback')", "fallback"),
    ("@empty('')", True),
    ("@empty(body('Http')?['list'])", False),
    ("@json('{\"a\": [1, 2]}')", {"a": [1, 2]}),
    ("@base64ToString('aGVsbG8=')", "hello"),
    ("@base64('hello')", "aGVsbG8="),
    ("@string(parameters('customer'))", '{"name":"Contoso"}'),
    ("@{parameters('flag')}", "True"),
    ("@concat('it''s ', 'ok')", "it's ok"),
    ("@length(createArray(1, 2, 3))", 3),
    ("@BASE64TOSTRING('aGVsbG8=')", "hello"),  # function names are case-insensitive
    # a $content body (logic-apps-content-type.md): not JSON to property access, JSON after decoding
    ("@body('Webhook')?['type']", None),
    ("@json(base64ToString(body('Webhook')?['$content']))?['type']", "workbook.operation.succeeded"),
    ("@json(string(body('Webhook')))['data']['result']['id']", "s-1"),
]


@pytest.mark.parametrize(("value", "expected"), TABLE)
def test_expression_table(value: Any, expected: Any) -> None:
    assert evaluate_value(value, FakeContext()) == expected


def test_objects_and_arrays_are_evaluated_throughout() -> None:
    value = {"a": ["@parameters('myAge')", {"b": "x@{parameters('myAge')}"}], "n": 3, "t": True}
    assert evaluate_value(value, FakeContext()) == {"a": [42, {"b": "x42"}], "n": 3, "t": True}


@pytest.mark.parametrize(
    "value",
    [
        "@body('Http')['nothing']['deeper']",  # non-? access on null: a runtime error in Logic Apps
        "@parameters('customer')['missing']",  # a missing property without ?
        "@body('Http')['list'][5]",
        "@json('not json')",
        "@parameters('nope')",
        "@not('text')",
        "@concat('unterminated)",
    ],
)
def test_runtime_errors(value: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate_value(value, FakeContext())


def test_unknown_functions_raise_a_clear_error() -> None:
    with pytest.raises(UnsupportedExpression, match="xpath"):
        evaluate_value("@xpath(xml(triggerBody()), '/a')", FakeContext())


def test_if_condition_objects() -> None:
    ctx = FakeContext()
    # the sample's shape: {"and": [{"equals": [expr, literal]}]}
    condition = {"and": [{"equals": ["@body('Http')?['result']?['id']", "s-1"]}]}
    assert evaluate_condition(condition, ctx) is True
    assert (
        evaluate_condition({"and": [{"equals": ["@body('Webhook')?['type']", "workbook.operation.succeeded"]}]}, ctx)
        is False
    )
    assert evaluate_condition({"or": [{"greater": ["@parameters('myAge')", 50]}, {"not": {"equals": [1, 2]}}]}, ctx)
    assert evaluate_condition("@equals(parameters('myAge'), 42)", ctx) is True
    with pytest.raises(ExpressionError):
        evaluate_condition("@parameters('myAge')", ctx)  # not a boolean
