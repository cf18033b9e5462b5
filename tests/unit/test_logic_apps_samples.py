"""Static rules for the Logic Apps samples (docs/logic-apps, the Standard variant, and the Bicep sample's
workflow). How they behave is shown end to end in tests/e2e/test_logic_apps.py through the Logic Apps model.

Each rule is a documented Logic Apps behaviour:
- only `Authorization` headers are hidden from run history unless `runtimeConfiguration.secureData` is set
  (logic-apps-securing-a-logic-app.md), so an action whose inputs carry a key must set it;
- a `securestring` parameter with a default value is stored in plain text (create-parameters-workflows.md);
- `limit.timeout` bounds the whole asynchronous wait (error-exception-handling.md), so it must outlast the
  bridge's own OPERATION_TIMEOUT_SECONDS plus its longest poll gap, or Logic Apps gives up first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.operations.requests import StartRequest, parse_operation_request

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted([*(ROOT / "docs" / "logic-apps").rglob("*.json"), *(ROOT / "infra").rglob("*.workflow.json")])
DEFAULT_OPERATION_TIMEOUT = 3600
LONGEST_POLL_GAP = 240
STAND_INS = {  # what the expressions evaluate to at run time
    "@{parameters('workbook')}": "/drives/b!drive/items/01ITEM",
    "@{appsetting('BRIDGE_WORKBOOK')}": "/drives/b!drive/items/01ITEM",
    "@{listCallbackUrl()}": "https://prod-07.westeurope.logic.azure.com/workflows/abc/runs/1?sig=xyz",
    "@{triggerBody()?['table']}": "Table1",
    "@triggerBody()?['values']": [[1, "two"]],
    "@{triggerBody()?['sessionId']}": "session-1",
    "@{body('Create_workbook_session')?['result']?['id']}": "session-1",
    "@{workflow()?['run']?['name']}": "08585000000000000000000000000CU00",
}


def definition_of(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    return document.get("definition", document)  # type: ignore[no-any-return]


def all_actions(actions: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, action in actions.items():
        yield name, action
        yield from all_actions(action.get("actions", {}))
        yield from all_actions(action.get("else", {}).get("actions", {}))


def calls(action: dict[str, Any]) -> list[dict[str, Any]]:
    if action["type"] == "Http":
        return [action["inputs"]]
    if action["type"] == "HttpWebhook":
        return [action["inputs"]["subscribe"], action["inputs"]["unsubscribe"]]
    return []


def iso_seconds(duration: str) -> int:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", duration)
    assert match, duration
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def evaluate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: evaluate(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("@"):
        return STAND_INS[value]
    return value


def test_the_samples_are_found() -> None:
    names = {p.name for p in SAMPLES}
    assert {"async-polling.workflow.json", "http-webhook.workflow.json", "workflow.json"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_key_carrying_inputs_are_secure_and_timeouts_outlast_the_bridge(sample: Path) -> None:
    definition = definition_of(sample)
    bridge_actions = [(n, a) for n, a in all_actions(definition["actions"]) if calls(a)]
    assert bridge_actions
    for name, action in bridge_actions:
        text = json.dumps(action["inputs"])
        if "Key')" in text or "KEY')" in text:
            assert "inputs" in action["runtimeConfiguration"]["secureData"]["properties"], name
        assert iso_seconds(action["limit"]["timeout"]) > DEFAULT_OPERATION_TIMEOUT + LONGEST_POLL_GAP, name


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_secure_parameters_have_no_default_value(sample: Path) -> None:
    for name, parameter in definition_of(sample).get("parameters", {}).items():
        if parameter["type"].lower() in ("securestring", "secureobject"):
            assert "defaultValue" not in parameter, name


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sample_bodies_are_valid_requests_with_an_idempotency_key(sample: Path) -> None:
    for _, action in all_actions(definition_of(sample)["actions"]):
        for call in calls(action):
            if call["method"] != "POST":
                continue
            assert call["uri"].endswith("/operations")
            assert "Idempotency-Key" in call["headers"]
            if call["body"] == "@triggerBody()":  # the Bicep sample passes its caller's request through
                continue
            body = evaluate(call["body"])
            parsed = parse_operation_request(
                body,
                graph_origin="https://graph.microsoft.com",
                allow_private_callbacks=False,
                webhooks_configured=True,
            )
            assert isinstance(parsed, StartRequest)
