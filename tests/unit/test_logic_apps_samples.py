"""The Logic Apps samples in docs/ send bodies the bridge accepts, to routes it has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.validation import StartRequest, parse_operation_request

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "logic-apps"
STAND_INS = {  # what the expressions evaluate to at run time
    "@{parameters('workbook')}": "/drives/b!drive/items/01ITEM",
    "@{listCallbackUrl()}": "https://prod-07.westeurope.logic.azure.com/workflows/abc/runs/1?sig=xyz",
    "@{triggerBody()?['table']}": "Table1",
    "@triggerBody()?['values']": [[1, "two"]],
    "@{triggerBody()?['sessionId']}": "session-1",
    "@{body('Create_workbook_session')?['result']?['id']}": "session-1",
    "@{workflow()?['run']?['name']}": "08585000000000000000000000000CU00",
}


def evaluate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: evaluate(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("@"):
        return STAND_INS[value]
    return value


def bridge_calls(definition: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for action in definition["actions"].values():
        if action["type"] == "Http":
            calls.append(action["inputs"])
        elif action["type"] == "HttpWebhook":
            calls.append(action["inputs"]["subscribe"])
    return calls


@pytest.mark.parametrize("sample", ["async-polling.workflow.json", "http-webhook.workflow.json"])
def test_sample_bodies_are_valid_requests(sample: str) -> None:
    definition = json.loads((SAMPLES / sample).read_text())["definition"]
    calls = bridge_calls(definition)
    assert calls
    for call in calls:
        assert call["method"] == "POST" and call["uri"].endswith("/operations")
        assert "Idempotency-Key" in call["headers"]
        parsed = parse_operation_request(evaluate(call["body"]), graph_origin="https://graph.microsoft.com",
                                         allow_private_callbacks=False, webhooks_configured=True)
        assert isinstance(parsed, StartRequest)


def test_the_webhook_sample_unsubscribes_with_the_key_it_subscribed_with() -> None:
    definition = json.loads((SAMPLES / "http-webhook.workflow.json").read_text())["definition"]
    [action] = [a for a in definition["actions"].values() if a["type"] == "HttpWebhook"]
    key = action["inputs"]["subscribe"]["headers"]["Idempotency-Key"]
    unsubscribe = action["inputs"]["unsubscribe"]
    assert unsubscribe["method"] == "DELETE" and unsubscribe["uri"].endswith(f"/operations/by-key/{key}")
    assert action["inputs"]["subscribe"]["body"]["callbackUrl"] == "@{listCallbackUrl()}"


def test_the_polling_sample_fails_on_error() -> None:
    definition = json.loads((SAMPLES / "async-polling.workflow.json").read_text())["definition"]
    assert all(call["body"].get("failOnError") is True for call in bridge_calls(definition))
