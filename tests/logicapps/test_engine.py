"""The run engine: runAfter, branch statuses, Response, If, Scope, parameters, Standard workflow.json."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.logicapps import LogicAppsEngine, UnsupportedDefinition, UnsupportedExpression
from tests.logicapps.endpoint import Seen

FAST: dict[str, Any] = {"default_poll_interval": 0.01, "retry_scale": 0.001}
TRIGGER = {"manual": {"type": "Request", "kind": "Http"}}


def http(uri: str, run_after: dict[str, list[str]] | None = None, **inputs: Any) -> dict[str, Any]:
    return {
        "type": "Http",
        "runAfter": run_after or {},
        "inputs": {"method": "POST", "uri": uri, "retryPolicy": {"type": "none"}, **inputs},
    }


def routes(table: dict[str, int]):
    def handler(seen: Seen):
        status = table[seen.path]
        return status, {}, {"path": seen.path, "status": status}

    return handler


def test_several_predecessors_must_all_match(serve) -> None:
    """The documented shape: a 2nd action fails after the 1st succeeded; a handler that runs after
    first: [Failed, TimedOut] and second: [Failed, ...] is Skipped, because every predecessor must match."""
    endpoint = serve(routes({"/first": 200, "/second": 422}))
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "First": http(endpoint.url("/first")),
            "Second": http(endpoint.url("/second"), {"First": ["Succeeded"]}),
            "Handle_both": {
                "type": "Response",
                "runAfter": {"First": ["Failed", "TimedOut"], "Second": ["Failed", "TimedOut", "Skipped"]},
                "inputs": {"statusCode": 502, "body": "@body('Second')"},
            },
            "Handle_second": {
                "type": "Response",
                "runAfter": {"First": ["Succeeded"], "Second": ["Failed"]},
                "inputs": {"statusCode": 502, "body": "@body('Second')?['path']"},
            },
        },
    }
    result = LogicAppsEngine(**FAST).run(definition)
    assert result.statuses() == {
        "First": "Succeeded",
        "Second": "Failed",
        "Handle_both": "Skipped",
        "Handle_second": "Succeeded",
    }
    assert result.response == (502, "/second")
    # The branch First -> Second -> Handle_both ends Skipped, so its status is Second's (Failed): the run fails
    # although a handler ran (error-exception-handling.md, branch evaluation).
    assert result.status == "Failed"


def test_a_handled_failure_makes_the_run_succeed(serve) -> None:
    endpoint = serve(routes({"/first": 500}))
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "First": http(endpoint.url("/first")),
            "Handle": {"type": "Compose", "runAfter": {"First": ["Failed"]}, "inputs": "@actions('First')['status']"},
        },
    }
    result = LogicAppsEngine(**FAST).run(definition)
    assert result.statuses() == {"First": "Failed", "Handle": "Succeeded"}
    assert result.actions["Handle"].outputs == "Failed"
    assert result.status == "Succeeded"


def test_skipping_propagates(serve) -> None:
    endpoint = serve(routes({"/a": 400, "/b": 200, "/c": 200}))
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "A": http(endpoint.url("/a")),
            "B": http(endpoint.url("/b"), {"A": ["Succeeded"]}),
            "C": http(endpoint.url("/c"), {"B": ["Succeeded"]}),
            "D": {"type": "Compose", "runAfter": {"C": ["Skipped"]}, "inputs": "@body('C')"},
        },
    }
    result = LogicAppsEngine(**FAST).run(definition)
    assert result.statuses() == {"A": "Failed", "B": "Skipped", "C": "Skipped", "D": "Succeeded"}
    assert result.actions["D"].outputs is None  # a Skipped action has no body
    assert [r.path for r in endpoint.requests] == ["/a"]
    assert result.status == "Succeeded"  # D ran and succeeded: its branch succeeded


def test_an_expression_error_fails_the_action_and_skips_its_successors() -> None:
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "Bad": {"type": "Compose", "runAfter": {}, "inputs": "@triggerBody()['missing']['deeper']"},
            "After": {"type": "Compose", "runAfter": {"Bad": ["Succeeded"]}, "inputs": "x"},
        },
    }
    result = LogicAppsEngine().run(definition, trigger_body={"other": 1})
    assert result.statuses() == {"Bad": "Failed", "After": "Skipped"}
    assert result.actions["Bad"].code == "InvalidTemplate" and result.status == "Failed"


def test_unknown_functions_and_action_types_stop_the_test() -> None:
    with pytest.raises(UnsupportedExpression):
        LogicAppsEngine().run(
            {
                "triggers": TRIGGER,
                "actions": {"C": {"type": "Compose", "runAfter": {}, "inputs": "@xpath(triggerBody(), '/a')"}},
            }
        )
    with pytest.raises(UnsupportedDefinition, match="Foreach"):
        LogicAppsEngine().run({"triggers": TRIGGER, "actions": {"L": {"type": "Foreach", "actions": {}}}})
    with pytest.raises(UnsupportedDefinition, match="same container"):
        LogicAppsEngine().run(
            {
                "triggers": TRIGGER,
                "actions": {"C": {"type": "Compose", "runAfter": {"Nope": ["Succeeded"]}, "inputs": 1}},
            }
        )


def test_if_runs_one_branch_and_skips_the_other() -> None:
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "Check": {
                "type": "If",
                "runAfter": {},
                "expression": {"and": [{"equals": ["@triggerBody()?['kind']", "row"]}]},
                "actions": {"Yes": {"type": "Response", "runAfter": {}, "inputs": {"body": "yes"}}},
                "else": {
                    "actions": {"No": {"type": "Response", "runAfter": {}, "inputs": {"statusCode": 400, "body": "no"}}}
                },
            },
        },
    }
    engine = LogicAppsEngine()
    yes = engine.run(definition, trigger_body={"kind": "row"})
    assert yes.statuses() == {"Check": "Succeeded", "Yes": "Succeeded", "No": "Skipped"}
    assert yes.response == (200, "yes")  # "The default code is "200 OK""
    no = engine.run(definition, trigger_body={"kind": "session"})
    assert no.statuses() == {"Check": "Succeeded", "Yes": "Skipped", "No": "Succeeded"}
    assert no.response == (400, "no")


def test_a_scope_fails_when_its_inner_branch_fails_and_result_lists_its_actions(serve) -> None:
    endpoint = serve(routes({"/ok": 200, "/bad": 503}))
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "Try": {
                "type": "Scope",
                "runAfter": {},
                "actions": {
                    "Ok": http(endpoint.url("/ok")),
                    "Bad": http(endpoint.url("/bad"), {"Ok": ["Succeeded"]}),
                    "Never": {"type": "Compose", "runAfter": {"Bad": ["Succeeded"]}, "inputs": 1},
                },
            },
            "Catch": {
                "type": "Response",
                "runAfter": {"Try": ["Failed", "TimedOut"]},
                "inputs": {
                    "statusCode": 502,
                    "body": {"statuses": "@string(result('Try'))", "failedCode": "@body('Bad')?['status']"},
                },
            },
        },
    }
    result = LogicAppsEngine(**FAST).run(definition)
    assert result.statuses() == {
        "Try": "Failed",
        "Ok": "Succeeded",
        "Bad": "Failed",
        "Never": "Skipped",
        "Catch": "Succeeded",
    }
    assert result.response is not None and result.response[0] == 502
    assert result.response[1]["failedCode"] == 503  # inner actions can be referenced from outside
    assert '"name":"Bad","status":"Failed"' in result.response[1]["statuses"]
    assert result.status == "Succeeded"


def test_a_scope_that_handles_its_failure_inside(serve) -> None:
    endpoint = serve(routes({"/bad": 404}))
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "Try": {
                "type": "Scope",
                "runAfter": {},
                "actions": {
                    "Bad": http(endpoint.url("/bad")),
                    "Handled": {"type": "Compose", "runAfter": {"Bad": ["Failed"]}, "inputs": "handled"},
                },
            }
        },
    }
    assert LogicAppsEngine(**FAST).run(definition).actions["Try"].status == "Succeeded"
    strict = LogicAppsEngine(**FAST, scope_fails_on_any_failure=True).run(definition)
    assert strict.actions["Try"].status == "Failed"


def test_a_second_response_fails() -> None:
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "One": {"type": "Response", "runAfter": {}, "inputs": {"statusCode": 200, "body": 1}},
            "Two": {"type": "Response", "runAfter": {"One": ["Succeeded"]}, "inputs": {"statusCode": 201, "body": 2}},
        },
    }
    result = LogicAppsEngine().run(definition)
    assert result.response == (200, 1)
    assert result.actions["Two"].status == "Failed" and result.status == "Failed"


def test_parameters_defaults_overrides_and_run_names(serve) -> None:
    endpoint = serve(lambda seen: (200, {}, {"ok": True}))
    definition = {
        "triggers": TRIGGER,
        "parameters": {
            "bridgeApiUrl": {"type": "String", "defaultValue": "http://127.0.0.1:9"},
            "key": {"type": "SecureString", "defaultValue": "default-key"},
        },
        "actions": {
            "Call": {
                "type": "Http",
                "runAfter": {},
                "inputs": {
                    "method": "POST",
                    "uri": "@{parameters('bridgeApiUrl')}/operations",
                    "headers": {
                        "x-functions-key": "@parameters('key')",
                        "Idempotency-Key": "@{workflow()?['run']?['name']}-session",
                    },
                },
            }
        },
    }
    engine = LogicAppsEngine(**FAST)
    first = engine.run(definition, parameters={"bridgeApiUrl": endpoint.base})
    second = engine.run(definition, parameters={"bridgeApiUrl": endpoint.base})
    one, two = endpoint.requests
    assert one.path == "/operations" and one.header("x-functions-key") == "default-key"
    assert re.fullmatch(r"0858\d{25}CU\d{2}", first.run_name)
    assert first.run_name != second.run_name
    assert one.header("Idempotency-Key") == f"{first.run_name}-session"
    assert two.header("Idempotency-Key") == f"{second.run_name}-session"
    with pytest.raises(UnsupportedDefinition, match="not declared"):
        engine.run(definition, parameters={"bridgeApiUrI": endpoint.base})  # a typo is caught


def test_a_standard_workflow_json_with_appsetting(serve) -> None:
    endpoint = serve(lambda seen: (200, {}, {"ok": True}))
    workflow = {
        "kind": "Stateful",
        "definition": {
            "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/"
            "workflowdefinition.json#",
            "contentVersion": "1.0.0.0",
            "triggers": TRIGGER,
            "parameters": {},
            "actions": {
                "Call": {
                    "type": "Http",
                    "runAfter": {},
                    "inputs": {
                        "method": "POST",
                        "uri": "@{appsetting('BRIDGE_API_URL')}/operations",
                        "headers": {"x-functions-key": "@parameters('bridgeFunctionKey')"},
                    },
                }
            },
        },
    }
    engine = LogicAppsEngine(**FAST, app_settings={"BRIDGE_API_URL": endpoint.base, "BRIDGE_KEY": "k-1"})
    # parameters.json values in Standard may reference app settings
    result = engine.run(workflow, parameters={"bridgeFunctionKey": "@appsetting('BRIDGE_KEY')"})
    assert result.status == "Succeeded"
    assert endpoint.requests[0].path == "/operations" and endpoint.requests[0].header("x-functions-key") == "k-1"
    missing = LogicAppsEngine(**FAST).run(workflow, parameters={"bridgeFunctionKey": "x"})
    assert missing.actions["Call"].status == "Failed" and "BRIDGE_API_URL" in str(missing.actions["Call"].error)


def test_standard_callback_urls_are_on_the_runtime_webhook_path(serve) -> None:
    endpoint = serve(lambda seen: (202, {}, None) if seen.method == "POST" else (200, {}, None))
    workflow = {
        "kind": "Stateful",
        "definition": {
            "triggers": TRIGGER,
            "actions": {
                "Wait": {
                    "type": "HttpWebhook",
                    "runAfter": {},
                    "inputs": {
                        "subscribe": {
                            "method": "POST",
                            "uri": endpoint.url("/s"),
                            "body": {"callbackUrl": "@{listCallbackUrl()}"},
                        }
                    },
                }
            },
        },
    }
    engine = LogicAppsEngine(**FAST, workflow_name="rows")
    handle = engine.start(workflow)
    url = handle.callback_url("Wait")
    assert f"/runtime/webhooks/workflow/api/management/workflows/rows/runs/{handle.run_name}/actions/Wait/run" in url
    handle.cancel()
    assert handle.wait(10).status == "Cancelled"


@pytest.mark.parametrize("run_status", ["Failed", "Succeeded", "Cancelled"])
def test_terminate_sets_the_run_status_and_skips_the_rest(run_status: str) -> None:
    definition = {
        "triggers": TRIGGER,
        "actions": {
            "Work": {
                "type": "Scope",
                "runAfter": {},
                "actions": {
                    "Stop": {
                        "type": "Terminate",
                        "runAfter": {},
                        "inputs": {
                            "runStatus": run_status,
                            "runError": {"code": "Bad", "message": "@triggerBody()?['why']"},
                        },
                    },
                    "Inner_after": {"type": "Compose", "runAfter": {"Stop": ["Succeeded"]}, "inputs": 1},
                },
            },
            "After": {"type": "Compose", "runAfter": {"Work": ["Succeeded", "Failed"]}, "inputs": 2},
        },
    }
    result = LogicAppsEngine().run(definition, trigger_body={"why": "no rows"})
    assert result.status == run_status
    assert result.statuses() == {"Work": "Cancelled", "Stop": "Succeeded", "Inner_after": "Skipped", "After": "Skipped"}
    assert (result.error is not None and "no rows" in result.error) == (run_status == "Failed")
