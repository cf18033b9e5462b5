"""The HttpWebhook action: subscribe, callback server with sig, bodies by content type, unsubscribe."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.logicapps import LogicAppsEngine
from tests.logicapps.endpoint import Endpoint, Seen
from tests.support import wait_for

FAST: dict[str, Any] = {"default_poll_interval": 0.01, "retry_scale": 0.001}
EVENT = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "/bridge",
    "type": "workbook.operation.succeeded",
    "data": {"result": {"row": 3}},
}


def webhook_definition(endpoint: Endpoint, **extra: Any) -> dict[str, Any]:
    return {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {
            "Wait": {
                "type": "HttpWebhook",
                "runAfter": {},
                **extra,
                "inputs": {
                    "subscribe": {
                        "method": "POST",
                        "uri": endpoint.url("/operations"),
                        "headers": {"Idempotency-Key": "@{workflow()['run']['name']}-row"},
                        "body": {"callbackUrl": "@{listCallbackUrl()}"},
                    },
                    "unsubscribe": {
                        "method": "DELETE",
                        "uri": endpoint.url("/operations/by-key/@{workflow()['run']['name']}-row"),
                    },
                },
            },
            "Reply": {
                "type": "Response",
                "runAfter": {"Wait": ["Succeeded"]},
                "inputs": {
                    "statusCode": 200,
                    "body": {
                        "type": "@body('Wait')?['type']",
                        "decoded": "@json(base64ToString(body('Wait')?['$content']))?['type']",
                    },
                },
            },
        },
    }


def accepting(seen: Seen):
    return (202, {}, {"id": "op-1"}) if seen.method == "POST" else (204, {}, None)


def post(url: str, content: bytes, content_type: str) -> httpx.Response:
    return httpx.post(url, content=content, headers={"Content-Type": content_type}, timeout=10)


def test_subscribe_callback_unsubscribe_with_a_json_body(serve) -> None:
    endpoint = serve(accepting)
    told: list[tuple[str, str]] = []
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint), on_subscribed=lambda a, u: told.append((a, u)))
    url = handle.callback_url("Wait")
    assert told == [("Wait", url)]
    [subscribe] = endpoint.seen("POST")
    assert subscribe.json() == {"callbackUrl": url}
    assert subscribe.header("Idempotency-Key") == f"{handle.run_name}-row"
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.path.endswith(f"/runs/{handle.run_name}/actions/Wait/run")
    query = parse_qs(parts.query)
    assert set(query) == {"api-version", "sp", "sv", "sig"} and len(query["sig"][0]) >= 32
    assert not endpoint.seen("DELETE")  # no unsubscribe while waiting

    answer = post(url, json.dumps({"type": "plain.json", "n": 1}).encode(), "application/json")
    assert answer.status_code == 200
    result = handle.wait(10)
    wait = result.actions["Wait"]
    assert wait.status == "Succeeded" and wait.subscribe_status == 202
    assert wait.outputs["body"] == {"type": "plain.json", "n": 1}
    assert wait.outputs["headers"]["Content-Type"] == "application/json"
    # unsubscribe after the callback, evaluated from the definition
    [unsubscribe] = endpoint.seen("DELETE")
    assert unsubscribe.path == f"/operations/by-key/{handle.run_name}-row"
    assert wait.unsubscribe_status == 204
    assert unsubscribe.at > endpoint.seen("POST")[0].at
    # Reply decodes $content, which a parsed application/json body does not have: base64ToString(null) fails it.
    assert result.actions["Reply"].status == "Failed" and result.actions["Reply"].code == "InvalidTemplate"
    assert result.response is None and result.status == "Failed"


def test_a_cloudevents_json_body_is_kept_as_content_not_parsed(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    raw = json.dumps(EVENT).encode()
    assert post(handle.callback_url("Wait"), raw, "application/cloudevents+json").status_code == 200
    result = handle.wait(10)
    body = result.actions["Wait"].outputs["body"]
    # logic-apps-content-type.md, "Other content types": {"$content-type": ..., "$content": <base64>}
    assert body == {"$content-type": "application/cloudevents+json", "$content": base64.b64encode(raw).decode()}
    assert result.response == (200, {"type": None, "decoded": "workbook.operation.succeeded"})


def test_the_other_reading_parses_plus_json(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST, json_suffix_is_json=True).start(webhook_definition(endpoint))
    post(handle.callback_url("Wait"), json.dumps(EVENT).encode(), "application/cloudevents+json")
    result = handle.wait(10)
    assert result.actions["Wait"].outputs["body"] == EVENT
    # so a workflow written for the documented reading (decoding $content) fails under this one
    assert result.actions["Reply"].status == "Failed" and result.actions["Reply"].code == "InvalidTemplate"


def test_a_text_plain_body_is_a_string(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    post(handle.callback_url("Wait"), b"done", "text/plain; charset=utf-8")
    assert handle.wait(10).actions["Wait"].outputs["body"] == "done"


def test_a_wrong_or_missing_sig_is_refused_and_the_action_keeps_waiting(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    url = handle.callback_url("Wait")
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    assert post(url.replace(sig, "x" + sig[1:]), b"{}", "application/json").status_code == 401
    assert post(url.replace(f"&sig={sig}", ""), b"{}", "application/json").status_code == 401
    assert post(url.replace("&sv=1.0", ""), b"{}", "application/json").status_code == 401  # the SAS is incomplete
    no_version = url.replace(f"api-version={parse_qs(urlsplit(url).query)['api-version'][0]}&", "")
    assert post(no_version, b"{}", "application/json").status_code == 400
    assert post(url.replace("/actions/Wait/", "/actions/Other/"), b"{}", "application/json").status_code == 404
    assert not handle.done()
    assert post(url, b'{"ok": true}', "application/json").status_code == 200
    result = handle.wait(10)
    assert result.actions["Wait"].outputs["body"] == {"ok": True}
    # a second POST after the action completed is refused
    assert post(url, b'{"again": true}', "application/json").status_code == 409
    assert result.actions["Wait"].callbacks[0]["body"] == {"ok": True} and len(result.actions["Wait"].callbacks) == 1


def test_cancel_while_waiting_unsubscribes(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    url = handle.callback_url("Wait")
    handle.cancel()
    result = handle.wait(10)
    assert result.status == "Cancelled"
    assert result.actions["Wait"].status == "Cancelled"
    assert result.actions["Reply"].status == "Cancelled"
    assert len(endpoint.seen("DELETE")) == 1
    assert post(url, b"{}", "application/json").status_code != 200  # nothing is waiting any more


def test_unsubscribe_before_the_action_times_out(serve) -> None:
    endpoint = serve(accepting)
    started = time.monotonic()
    result = LogicAppsEngine(**FAST).run(webhook_definition(endpoint, limit={"timeout": "PT0.5S"}), timeout=10)
    wait = result.actions["Wait"]
    assert wait.status == "TimedOut" and wait.code == "ActionTimedOut"
    assert result.actions["Reply"].status == "Skipped" and result.status == "Failed"
    [unsubscribe] = endpoint.seen("DELETE")
    assert unsubscribe.at - started >= 0.5
    assert wait.end_time is not None and wait.requests[-1].purpose == "unsubscribe"


@pytest.mark.parametrize("status", [400, 409, 500])
def test_a_non_2xx_subscribe_answer_fails_the_action(serve, status: int) -> None:
    endpoint = serve(lambda seen: (status, {}, {"error": "no"}))
    result = LogicAppsEngine(**FAST).run(webhook_definition(endpoint), timeout=10)
    wait = result.actions["Wait"]
    assert wait.status == "Failed" and wait.subscribe_status == status
    assert wait.outputs["statusCode"] == status
    assert not endpoint.seen("DELETE")
    assert len(endpoint.seen("POST")) == (5 if status == 500 else 1)  # the default retry policy


@pytest.mark.parametrize("status", [200, 201])
def test_any_2xx_subscribe_answer_is_recorded(serve, status: int) -> None:
    endpoint = serve(lambda seen: (status, {}, {"id": "op"}) if seen.method == "POST" else (204, {}, None))
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    post(handle.callback_url("Wait"), b"{}", "application/json")
    assert handle.wait(10).actions["Wait"].subscribe_status == status


def test_a_202_with_location_under_both_readings(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/operations/op-1"), "Retry-After": "0"}, {"status": "running"}
        if seen.method == "GET":
            return 200, {}, {"status": "succeeded"}
        return 204, {}, None

    endpoint = serve(handler)
    accept = LogicAppsEngine(**FAST, on_subscribe_202="accept").start(webhook_definition(endpoint))
    post(accept.callback_url("Wait"), b"{}", "application/json")
    accepted = accept.wait(10)
    assert accepted.actions["Wait"].subscribe_status == 202 and not endpoint.seen("GET")

    poll = LogicAppsEngine(**FAST, on_subscribe_202="poll").start(webhook_definition(endpoint))
    post(poll.callback_url("Wait"), b"{}", "application/json")
    polled = poll.wait(10)
    assert polled.actions["Wait"].subscribe_status == 200
    assert [r.purpose for r in polled.actions["Wait"].requests] == ["subscribe", "poll", "unsubscribe"]


def test_the_callback_can_arrive_while_the_subscribe_request_is_still_open(serve) -> None:
    # A fast service may call back before it answers the subscribe request.
    def handler(seen: Seen):
        if seen.method == "POST":
            answer = httpx.post(seen.json()["callbackUrl"], json={"early": True}, timeout=10)
            return 202, {}, {"callback": answer.status_code}
        return 204, {}, None

    endpoint = serve(handler)
    result = LogicAppsEngine(**FAST).run(webhook_definition(endpoint), timeout=10)
    assert result.actions["Wait"].outputs["body"] == {"early": True}
    wait_for(lambda: endpoint.seen("DELETE"), 5, "the unsubscribe")


def test_a_callback_declared_json_that_does_not_parse_is_refused(serve) -> None:
    endpoint = serve(accepting)
    handle = LogicAppsEngine(**FAST).start(webhook_definition(endpoint))
    url = handle.callback_url("Wait")
    assert post(url, b"{not json", "application/json").status_code == 400  # a guess: refused, still waiting
    assert post(url, b"[1]", "application/json").status_code == 200
    assert handle.wait(10).actions["Wait"].outputs["body"] == [1]
