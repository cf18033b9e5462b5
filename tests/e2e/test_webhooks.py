"""Webhook delivery an integrator can rely on: retries, one webhook-id, 410, redirects, redelivery."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import pytest

from devhost.services import free_port

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, restart, start_receiver, wait_for

NEW_SECRET = "whsec_" + base64.b64encode(b"the-new-signing-key-for-webhooks").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-old-signing-key-for-webhooks").decode()


@pytest.fixture(scope="module")
def hooks(make_bridge: BridgeFactory) -> Bridge:
    """A bridge signing with two secrets (rotation in progress), retrying quickly."""
    return make_bridge("hooks", WEBHOOK_SECRET=f"{NEW_SECRET} {OLD_SECRET}")


def finished_with_hook(bridge: Bridge, emulator: Emulator, hook: str, **extra: Any) -> dict[str, Any]:
    item = new_item()
    emulator.scenario(item, mode="sync")
    response = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook, **extra}
    )
    assert response.status_code == 201, response.text  # a callbackUrl registers a subscription
    return response.json()  # type: ignore[no-any-return]


def webhook_state(bridge: Bridge, operation_id: str, state: str, timeout: float = 40) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        record = bridge.status(operation_id).json()
        return record if record["webhook"]["state"] == state else None

    return wait_for(reached, timeout, f"webhook state {state}", interval=0.2)  # type: ignore[no-any-return]


def test_retries_keep_one_webhook_id_and_both_secrets_verify(
    hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    hook = receiver.new_url(503, 500, 200)
    record = finished_with_hook(hooks, emulator, hook)
    done = webhook_state(hooks, record["id"], "delivered")
    deliveries = receiver.wait(hook, count=3)
    assert len(deliveries) == 3 and done["webhook"]["attempts"] == 3
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1  # the same event every time
    for delivery in deliveries:
        assert len(delivery.headers["webhook-signature"].split()) == 2
        for secret in (NEW_SECRET, OLD_SECRET):  # each secret alone verifies
            assert delivery.verified(secret)["subject"] == record["id"]
    assert done["webhook"]["lastStatusCode"] == 200 and done["webhook"]["deadLetteredAt"] is None


def test_receiver_down_for_a_while_then_up(hooks: Bridge, emulator: Emulator) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    hook = f"http://127.0.0.1:{port}/hook/late"
    record = finished_with_hook(hooks, emulator, hook)
    wait_for(lambda: hooks.status(record["id"]).json()["webhook"]["attempts"] >= 2, 30, "two failed attempts")
    pending = hooks.status(record["id"]).json()["webhook"]
    assert pending["state"] == "pending" and "connection failed" in pending["lastError"]
    assert pending["nextAttemptAt"]
    late = start_receiver(port)
    try:
        [delivery] = late.wait(hook)
        done = webhook_state(hooks, record["id"], "delivered")
    finally:
        late.close()
    assert done["webhook"]["attempts"] >= 3
    assert delivery.verified(NEW_SECRET)["type"] == "workbook.operation.succeeded"


def test_binary_delivery_verifies_and_parses(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    """The default: CloudEvents binary content mode, which Logic Apps reads as JSON (logic-apps-content-type.md:
    application/json is parsed; other types arrive as {"$content-type", "$content"})."""
    hook = receiver.new_url()
    record = finished_with_hook(hooks, emulator, hook)
    assert record["webhook"]["format"] == "binary"
    [delivery] = receiver.wait(hook)
    assert delivery.headers["content-type"].split(";")[0] == "application/json"
    assert delivery.headers["ce-specversion"] == "1.0" and delivery.headers["ce-subject"] == record["id"]
    event = delivery.verified(NEW_SECRET)
    assert event["id"] == delivery.headers["webhook-id"] and event["type"] == "workbook.operation.succeeded"
    body = json.loads(delivery.body)  # what body('X') is in a workflow
    assert body["id"] == record["id"] and body["status"] == "succeeded" and body["result"] == record["result"]
    assert event["data"] == body and "webhook" not in body


def test_structured_delivery_on_request(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url()
    record = finished_with_hook(hooks, emulator, hook, callbackFormat="structured")
    assert record["webhook"]["format"] == "structured"
    [delivery] = receiver.wait(hook)
    assert delivery.headers["content-type"].split(";")[0] == "application/cloudevents+json"
    assert not [name for name in delivery.headers if name.startswith("ce-")]
    event = delivery.verified(NEW_SECRET)
    assert json.loads(delivery.body)["data"] == event["data"] and event["data"]["result"] == record["result"]


def test_callback_format_without_callback_is_a_problem(hooks: Bridge, emulator: Emulator) -> None:
    item = new_item()
    response = hooks.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackFormat": "binary"}
    )
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "callbackFormat" and emulator.requests(item=item) == []


def test_410_stops_deliveries_at_once(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url(410)
    record = finished_with_hook(hooks, emulator, hook)
    failed = webhook_state(hooks, record["id"], "failed")
    assert failed["webhook"]["attempts"] == 1 and "410" in failed["webhook"]["lastError"]
    assert failed["webhook"]["deadLetteredAt"] and failed["webhook"]["nextAttemptAt"] is None
    assert len(receiver.for_path(hook)) == 1
    assert failed["status"] == "succeeded" and failed["result"] == record["result"]  # the result is untouched


def test_redirects_are_failures_never_followed(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url(307)
    record = finished_with_hook(hooks, emulator, hook)
    failed = webhook_state(hooks, record["id"], "failed")
    assert failed["webhook"]["attempts"] == 3 and failed["webhook"]["lastStatusCode"] == 307
    assert len(receiver.for_path(hook)) == 3
    assert receiver.for_path(f"{receiver.url}/redirected") == []


def test_retry_after_is_honoured(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url(503, 200, headers={"Retry-After": "3"})
    record = finished_with_hook(hooks, emulator, hook)
    first, second = receiver.wait(hook, count=2)
    assert second.received_at - first.received_at >= 3
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert webhook_state(hooks, record["id"], "delivered")["webhook"]["attempts"] == 2


def test_redeliver_sends_the_same_event_again(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url()
    record = finished_with_hook(hooks, emulator, hook)
    [first] = receiver.wait(hook)
    webhook_state(hooks, record["id"], "delivered")
    response = hooks.client.post(f"{hooks.api}/operations/{record['id']}/webhook/redeliver")
    assert response.status_code == 202 and response.json()["webhook"]["state"] == "pending"
    _, again = receiver.wait(hook, count=2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"] and again.body == first.body
    assert webhook_state(hooks, record["id"], "delivered")["webhook"]["attempts"] == 2

    item = new_item()
    emulator.scenario(item, mode="sync")
    plain = hooks.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    refused = hooks.client.post(f"{hooks.api}/operations/{plain['id']}/webhook/redeliver")
    assert refused.status_code == 409 and refused.json()["code"] == "noWebhook"
    assert hooks.client.post(f"{hooks.api}/operations/0000000000000abcdef0123/webhook/redeliver").status_code == 404


def test_a_dead_lettered_event_can_be_replayed(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url(410, 200)
    record = finished_with_hook(hooks, emulator, hook)
    dead = webhook_state(hooks, record["id"], "failed")
    assert dead["webhook"]["deadLetteredAt"]
    assert hooks.client.post(f"{hooks.api}/operations/{record['id']}/webhook/redeliver").status_code == 202
    replayed = webhook_state(hooks, record["id"], "delivered")
    assert replayed["webhook"]["deadLetteredAt"] is None and replayed["webhook"]["attempts"] == 2
    first, second = receiver.wait(hook, count=2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_crash_between_storing_the_result_and_sending_the_webhook(
    make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    # The delivery function is disabled (as the host's AzureWebJobs.<name>.Disabled setting does), so the
    # result is stored and the delivery queued but never sent; then the app dies and comes back.
    bridge = make_bridge("crashhook", **{"AzureWebJobs.deliver_webhook.Disabled": "true"})
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    hook = receiver.new_url()
    record = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook}
    ).json()
    stored = bridge.wait_done(record["id"])
    assert stored["status"] == "succeeded" and stored["webhook"]["state"] == "pending"
    assert stored["webhook"]["attempts"] == 0 and receiver.for_path(hook) == []
    # The terminal write comes before the attempt's message is queued: kill only once it is in the queue, so the
    # crash falls where this test means it to (a kill before it is the poll message's case, redelivered later).
    wait_for(
        lambda: any(m.get("kind") == "webhook" and m.get("id") == record["id"] for m in bridge.webhook_messages()),
        30,
        "the webhook attempt's message to be queued",
    )
    bridge.service.kill()
    del bridge.env["AzureWebJobs.deliver_webhook.Disabled"]
    restart(bridge)
    [delivery] = receiver.wait(hook)
    assert delivery.event["data"]["result"] == stored["result"]
    assert webhook_state(bridge, record["id"], "delivered")["webhook"]["attempts"] == 1


def test_fail_on_error_turns_failures_into_problems(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=0, outcome="failed")
    failing = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "failOnError": True}
    ).json()
    assert failing["failOnError"] is True

    def answered() -> Any:
        response = bridge.status(failing["id"])
        return response if response.status_code != 202 else None

    response = wait_for(answered, 30, "a final answer")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "GenericFileOpenError" and problem["operation"]["status"] == "failed"

    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    waiting = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "failOnError": True}
    ).json()
    assert bridge.client.delete(f"{bridge.api}/operations/{waiting['id']}").status_code == 200
    canceled = bridge.status(waiting["id"])
    assert canceled.status_code == 409 and canceled.json()["code"] == "canceled"

    item = new_item()
    emulator.scenario(item, runningPolls=0, outcome="failed")
    default = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    assert bridge.wait_done(default["id"])["status"] == "failed"  # 200 with the record by default


@pytest.fixture(scope="module")
def strict(make_bridge: BridgeFactory) -> Bridge:
    """A bridge with the production outbound rules (no private networks)."""
    return make_bridge("strict", WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")


SSRF_TARGETS = [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.0.0.8/hook", "private"),
    ("https://172.16.5.4/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://169.254.169.254/metadata", "link-local"),
    ("https://100.64.1.1/hook", "carrier-grade NAT"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://example.com/hook", "https"),
    ("https://user:pw@example.com/hook", "user information"),
    ("https://example.com:25/hook", "port 25"),
    (f"https://{socket.gethostname()}/hook", "resolve"),  # a name that resolves to this machine (or nothing)
]


@pytest.mark.parametrize(("url", "reason"), SSRF_TARGETS, ids=[u for u, _ in SSRF_TARGETS])
def test_ssrf_targets_are_refused_at_creation(strict: Bridge, emulator: Emulator, url: str, reason: str) -> None:
    item = new_item()
    response = strict.start({"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": url})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == "callbackUrl" and reason in problem["errors"][0]["message"]
    assert strict.entities() == [] and emulator.requests(item=item) == []


def test_logic_apps_webhook_action_subscribe_and_unsubscribe(
    bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    """What Logic Apps' HTTP Webhook action does: subscribe with listCallbackUrl() and an Idempotency-Key it
    can rebuild, wait for the callback; unsubscribe (DELETE by key) when the run is canceled."""
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    callback = receiver.new_url(200) + "?api-version=2016-10-01&sp=%2Ftriggers%2Frun&sig=s3cr3t"
    key = f"run-{item}-wait"
    subscribed = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": callback},
        **{"Idempotency-Key": key},
    )
    assert subscribed.status_code == 201  # never a 202 that the webhook action could read as "poll me"
    [event] = receiver.wait(callback)
    assert event.event["type"] == "workbook.operation.succeeded"
    assert event.path.endswith("sig=s3cr3t")  # the callback URL is used exactly as given
    after = bridge.client.delete(f"{bridge.api}/operations/by-key/{key}")  # unsubscribe after the callback
    assert after.status_code == 200 and after.json()["status"] == "succeeded"

    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    callback = receiver.new_url(200)
    key = f"run-{item}-wait"
    waiting = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": callback},
        **{"Idempotency-Key": key},
    ).json()
    canceled = bridge.client.delete(f"{bridge.api}/operations/by-key/{key}")
    assert canceled.status_code == 200 and canceled.json()["id"] == waiting["id"]
    assert canceled.json()["status"] == "canceled" and canceled.json()["webhook"]["state"] == "none"
    assert bridge.client.delete(f"{bridge.api}/operations/by-key/never-used").status_code == 404


def test_each_attempt_has_a_timeout(hooks: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url(200, headers={"x-test-hang-seconds": "25"})  # answers far too late
    record = finished_with_hook(hooks, emulator, hook)
    receiver.wait(hook)
    timed_out = wait_for(
        lambda: (w := hooks.status(record["id"]).json()["webhook"])["attempts"] >= 1 and w,
        40,
        "the first attempt to time out",
    )
    assert timed_out["state"] == "pending" and "no answer within 15 s" in timed_out["lastError"]
    assert timed_out["lastStatusCode"] is None and timed_out["nextAttemptAt"]
