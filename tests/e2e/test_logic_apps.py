"""The Logic Apps samples, run by the Logic Apps model (tests/logicapps) against devhost with function keys
enforced, as a Logic App would run them.

What the model follows (its modules cite the documentation line by line): the HTTP action's asynchronous
pattern follows `Location` re-sending only the action's `authentication`, dropping custom headers such as
`x-functions-key` (Azure/logicapps#611); it waits `Retry-After`, stops at the first non-202 and fails on a
final 4xx/5xx; the HTTP Webhook action subscribes, waits for the callback (body parsed by content type,
logic-apps-content-type.md) and unsubscribes after it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import from_http
from standardwebhooks import Webhook

from devhost.keys import write_keys_file
from devhost.services import DEV_WEBHOOK_SECRET
from tests.logicapps import LogicAppsEngine, RunResult

from .harness import Bridge, BridgeFactory, Emulator, new_item

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "docs" / "logic-apps"
FUNCTION_KEY = "test-function-key-0123456789abcdef"
MASTER_KEY = "test-master-key-fedcba9876543210"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "host-keys.json"
    write_keys_file(path, master=MASTER_KEY, host_keys={"default": FUNCTION_KEY})
    return path


@pytest.fixture(scope="module")
def keyed(make_bridge: BridgeFactory, keys_file: Path) -> Bridge:
    """A bridge whose host enforces function keys, as Azure does."""
    return make_bridge("keyed", DEVHOST_KEYS_FILE=str(keys_file))


@pytest.fixture(scope="module")
def engine() -> Iterator[LogicAppsEngine]:
    yield LogicAppsEngine(default_poll_interval=1.0, retry_scale=0.01)


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())  # type: ignore[no-any-return]


def parameters(bridge: Bridge, workbook: str) -> dict[str, Any]:
    return {"bridgeApiUrl": bridge.api, "bridgeFunctionKey": FUNCTION_KEY, "workbook": workbook}


def polls(result: RunResult, action: str) -> list[Any]:
    """The follow-up GETs the engine sent for an HTTP action (everything after the first request)."""
    return [r for r in result.actions[action].requests if r.method == "GET"]


def key_in_uri(workflow: dict[str, Any]) -> dict[str, Any]:
    """The same workflow with the key in each HTTP action's uri (`?code=`) instead of the header."""
    changed = copy.deepcopy(workflow)
    for action in changed["definition"]["actions"]["Excel_work"]["actions"].values():
        del action["inputs"]["headers"]["x-functions-key"]
        action["inputs"]["uri"] += "?code=@{parameters('bridgeFunctionKey')}"
    return changed


def rows_scenario(emulator: Emulator) -> str:
    item = new_item()
    emulator.scenario(item, notStartedPolls=1, runningPolls=1)
    return item


@pytest.mark.parametrize("where", ["header", "uri"])
def test_async_polling_sample_succeeds_with_the_key_in_the_header_or_the_uri(
    keyed: Bridge, emulator: Emulator, engine: LogicAppsEngine, where: str
) -> None:
    item = rows_scenario(emulator)
    workflow = sample("async-polling.workflow.json")
    if where == "uri":
        workflow = key_in_uri(workflow)
    result = engine.run(
        workflow,
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"table": "Table1", "values": [[1, "two", True]]},
        timeout=120,
    )
    assert result.status == "Succeeded", result
    assert result.response == (200, {"index": 0, "values": [[1, "two", True]]})
    assert emulator.rows(item, "Table1") == [[1, "two", True]]
    for action in ("Create_workbook_session", "Add_table_row"):
        follow_ups = polls(result, action)
        assert follow_ups, f"{action} was answered at once; the test needs the asynchronous pattern"
        assert all("x-functions-key" not in {k.lower() for k in r.headers} for r in follow_ups)
        assert all("code=" not in r.url for r in follow_ups)  # the key never travels in Location
        assert [r.status for r in follow_ups][-1] == 200 and set(r.status for r in follow_ups[:-1]) <= {202}


def test_a_bridge_without_status_link_keys_signs_its_location_and_the_polls_reach_the_end(
    make_bridge: BridgeFactory, keys_file: Path, emulator: Emulator, engine: LogicAppsEngine
) -> None:
    # Issue 17: without STATUS_LINK_KEYS (a portal deployment, an empty Bicep parameter, a copied settings list) the
    # Location was the keyed route, which Logic Apps cannot poll once keys are enforced: its follow-ups got 401 and
    # the sample's failure branch ran, while health said healthy. The bridge now keeps a generated key in its
    # storage account (shared/runtime/link_key.py) and signs the Location with it.
    unset = make_bridge("unsetkeys", DEVHOST_KEYS_FILE=str(keys_file), STATUS_LINK_KEYS="")
    item = rows_scenario(emulator)
    result = engine.run(
        sample("async-polling.workflow.json"),
        parameters=parameters(unset, f"/me/drive/items/{item}"),
        trigger_body={"table": "Table1", "values": [[1]]},
        timeout=120,
    )
    assert result.status == "Succeeded", result
    assert result.response == (200, {"index": 0, "values": [[1]]})
    for action in ("Create_workbook_session", "Add_table_row"):
        follow_ups = polls(result, action)
        assert follow_ups, f"{action} was answered at once; the test needs the asynchronous pattern"
        assert all("/api/status/" in r.url and "sig=" in r.url for r in follow_ups)  # the signed Location
        assert all("x-functions-key" not in {k.lower() for k in r.headers} for r in follow_ups)
        assert [r.status for r in follow_ups][-1] == 200
    assert unset.client.get(f"{unset.api}/health").status_code == 200
    assert "STATUS_LINK_KEYS is not set: status URLs are signed with the key kept in the storage account" in (
        unset.service.output()
    )


@pytest.mark.parametrize("reading", ["accept", "poll"])
def test_webhook_sample_reads_the_outcome_and_the_result_from_the_callback(
    keyed: Bridge, emulator: Emulator, reading: str
) -> None:
    # Whether the webhook action treats a 202 subscribe answer as an asynchronous operation is not
    # documented; the bridge answers 201, which is right under both readings.
    engine = LogicAppsEngine(default_poll_interval=1.0, retry_scale=0.01, on_subscribe_202=reading)
    item = rows_scenario(emulator)
    result = engine.run(
        sample("http-webhook.workflow.json"),
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"sessionId": "session-1", "table": "Table1", "values": [[7, "x"]]},
        timeout=120,
    )
    assert result.status == "Succeeded", result
    webhook = result.actions["Add_row_and_wait_for_the_callback"]
    assert webhook.subscribe_status == 201
    assert webhook.outputs["body"]["status"] == "succeeded"  # parsed as JSON, not {"$content-type", ...}
    assert result.response == (200, {"index": 0, "values": [[7, "x"]]})
    unsubscribe = [r for r in webhook.requests if r.method == "DELETE"]
    assert len(unsubscribe) == 1 and unsubscribe[0].status == 200  # called after the callback

    # The very delivery the Logic App received verifies with Standard Webhooks over its exact bytes and reads
    # as a CloudEvent (binary content mode: attributes in ce-* headers, the record as the data).
    [callback] = webhook.callbacks
    headers = {k.lower(): v for k, v in callback["headers"].items()}
    assert headers["content-type"].startswith("application/json")
    Webhook(DEV_WEBHOOK_SECRET).verify(callback["raw"], headers)
    event = from_http(headers, callback["raw"])
    assert event["type"] == "workbook.operation.succeeded" and event["specversion"] == "1.0"
    assert event.data["result"] == {"index": 0, "values": [[7, "x"]]}


def test_webhook_sample_takes_its_failure_branch_when_the_subscription_is_refused(
    keyed: Bridge, emulator: Emulator, engine: LogicAppsEngine
) -> None:
    item = rows_scenario(emulator)
    params = {**parameters(keyed, f"/me/drive/items/{item}"), "bridgeFunctionKey": "wrong-key"}
    result = engine.run(
        sample("http-webhook.workflow.json"),
        parameters=params,
        trigger_body={"sessionId": "s", "table": "Table1", "values": [[1]]},
        timeout=60,
    )
    assert result.actions["Add_row_and_wait_for_the_callback"].status == "Failed"
    assert result.response is not None and result.response[0] == 504
    assert emulator.requests(item=item) == []


def test_standard_workflow_with_app_settings(keyed: Bridge, emulator: Emulator) -> None:
    item = rows_scenario(emulator)
    engine = LogicAppsEngine(
        default_poll_interval=1.0,
        retry_scale=0.01,
        app_settings={
            "BRIDGE_API_URL": keyed.api,
            "BRIDGE_FUNCTION_KEY": FUNCTION_KEY,
            "BRIDGE_WORKBOOK": f"/me/drive/items/{item}",
        },
    )
    workflow = json.loads((SAMPLES / "standard" / "excel-rows" / "workflow.json").read_text())
    result = engine.run(workflow, parameters={}, trigger_body={"table": "Table1", "values": [[3]]}, timeout=120)
    assert result.status == "Succeeded", result
    assert result.response == (200, {"index": 0, "values": [[3]]})


def _operation_of(bridge: Bridge, result: RunResult) -> dict[str, Any]:
    """The operation a run started: the sample sets clientReference to the run's name."""
    listing = bridge.client.get(
        f"{bridge.api}/operations", params={"top": "100"}, headers={"x-functions-key": FUNCTION_KEY}
    ).json()["value"]
    [record] = [r for r in listing if r["clientReference"] == result.run_name]
    return record  # type: ignore[no-any-return]


def test_canceling_the_run_unsubscribes_and_the_operation_stops(
    keyed: Bridge, emulator: Emulator, engine: LogicAppsEngine
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)  # Excel never finishes by itself
    handle = engine.start(
        sample("http-webhook.workflow.json"),
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"sessionId": "s", "table": "Table1", "values": [[1]]},
    )
    handle.callback_url("Add_row_and_wait_for_the_callback", timeout=30)
    handle.cancel()  # connectors-native-webhook.md: unsubscribe when the run is canceled while waiting
    result = handle.wait(60)
    webhook = result.actions["Add_row_and_wait_for_the_callback"]
    assert [r.status for r in webhook.requests if r.method == "DELETE"] == [200]
    assert _operation_of(keyed, result)["status"] == "canceled"


def test_a_webhook_that_times_out_unsubscribes_and_takes_the_failure_branch(
    keyed: Bridge, emulator: Emulator, engine: LogicAppsEngine
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    workflow = sample("http-webhook.workflow.json")
    workflow["definition"]["actions"]["Add_row_and_wait_for_the_callback"]["limit"]["timeout"] = "PT4S"
    result = engine.run(
        workflow,
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"sessionId": "s", "table": "Table1", "values": [[1]]},
        timeout=60,
    )
    webhook = result.actions["Add_row_and_wait_for_the_callback"]
    assert webhook.status == "TimedOut"
    assert [r.status for r in webhook.requests if r.method == "DELETE"] == [200]  # "before it times out"
    assert result.response is not None and result.response[0] == 504
    assert _operation_of(keyed, result)["status"] == "canceled"


def _text(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))


def _messages(bridge: Bridge, queue_name: str) -> list[str]:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    with QueueClient.from_connection_string(
        bridge.storage.connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
    ) as queue:
        return [m.content for m in queue.peek_messages(max_messages=32)]


def test_no_function_key_in_logs_tables_queue_messages_or_webhooks(
    make_bridge: BridgeFactory, keyed: Bridge, keys_file: Path, emulator: Emulator, engine: LogicAppsEngine
) -> None:
    # Full lifecycles with the key in the uri (?code=, the form most likely to leak through a URL) and in a header
    item = rows_scenario(emulator)
    polling = engine.run(
        key_in_uri(sample("async-polling.workflow.json")),
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"table": "Table1", "values": [[1]]},
        timeout=120,
    )
    assert polling.status == "Succeeded", polling
    item = rows_scenario(emulator)
    hooked = engine.run(
        sample("http-webhook.workflow.json"),
        parameters=parameters(keyed, f"/me/drive/items/{item}"),
        trigger_body={"sessionId": "s-1", "table": "Table1", "values": [[2]]},
        timeout=120,
    )
    assert hooked.status == "Succeeded", hooked
    callbacks = hooked.actions["Add_row_and_wait_for_the_callback"].callbacks
    assert callbacks

    # A twin whose queue functions are disabled keeps its messages for us to read (the host's
    # AzureWebJobs.<name>.Disabled setting): a poll message and a webhook delivery message, both started with ?code=.
    twin = make_bridge(
        "keyedtwin",
        DEVHOST_KEYS_FILE=str(keys_file),
        **{"AzureWebJobs.poll_operation.Disabled": "true", "AzureWebJobs.deliver_webhook.Disabled": "true"},
    )
    slow, quick = new_item(), new_item()
    emulator.scenario(slow, runningPolls=5)
    emulator.scenario(quick, mode="sync")
    answers = [
        twin.client.post(f"{twin.api}/operations?code={FUNCTION_KEY}", json=body)
        for body in (
            {"workbook": f"/me/drive/items/{slow}", "action": "createSession"},
            {
                "workbook": f"/me/drive/items/{quick}",
                "action": "createSession",
                "callbackUrl": f"http://127.0.0.1:1024/hook?code={FUNCTION_KEY}-is-not-ours",
            },
        )
    ]
    assert [a.status_code for a in answers] == [202, 201], [a.text for a in answers]
    messages = _messages(twin, twin.env["POLL_QUEUE"]) + _messages(twin, twin.env["WEBHOOK_QUEUE"])
    assert len(messages) >= 2

    places = {
        "devhost logs": keyed.service.log_path.read_text(errors="replace")
        + twin.service.log_path.read_text(errors="replace"),
        "table entities": _text(keyed.entities() + twin.entities()),
        "queue messages": _text(messages),
        "webhook bodies and headers": _text(callbacks),
        "answers to the caller": _text([{**dict(a.headers), "body": a.text} for a in answers]),
    }
    for place, text in places.items():
        for secret in (FUNCTION_KEY, MASTER_KEY):
            assert secret not in text, f"a function key was found in {place}"
    assert "code=REDACTED" in places["devhost logs"]  # the scan did see the requests that carried it


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_the_bicep_samples_workflow_ends_where_a_logic_app_would(
    keyed: Bridge, emulator: Emulator, engine: LogicAppsEngine, outcome: str
) -> None:
    # infra/sample-logic-app.workflow.json is what infra/sample-logic-app.bicep deploys (loadJsonContent)
    definition = json.loads((ROOT / "infra" / "sample-logic-app.workflow.json").read_text())
    item = new_item()
    emulator.scenario(item, runningPolls=1, outcome=outcome)
    result = engine.run(
        definition,
        parameters={"bridgeUrl": keyed.api, "bridgeKey": FUNCTION_KEY},
        trigger_body={
            "workbook": f"/me/drive/items/{item}",
            "action": "createSession",
            "parameters": {"persistChanges": True},
        },
        timeout=120,
    )
    run = result.actions["Run_Excel_operation"]
    assert run.status == "Succeeded"
    assert run.outputs["body"]["status"] == outcome
    follow_ups = polls(result, "Run_Excel_operation")
    assert follow_ups and all(r.header("x-functions-key") is None for r in follow_ups)
    assert [r.status for r in follow_ups][-1] == 200
    assert result.status == ("Succeeded" if outcome == "succeeded" else "Failed")
