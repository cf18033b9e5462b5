"""Redelivery is bounded (issue 9): one chain of attempts per operation, one POST per attempt.

The hostile tester's numbers: 1,501 redeliver calls sent 1,037 POSTs for one operation; 50 concurrent calls
sent 9. Storage queues deliver at least once, so copies of one delivery message are normal, not an attack
(Azure Storage docs, "Azure Queue Storage trigger for Azure Functions", poison messages: a message is retried
when its function fails and is visible again after its visibility timeout).
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, wait_for

SECRET = "whsec_" + base64.b64encode(b"a-signing-key-for-redelivery-tests").decode()


@pytest.fixture(scope="module")
def redelivery(make_bridge: BridgeFactory) -> Bridge:
    return make_bridge("redelivery", WEBHOOK_SECRET=SECRET)


def finished_with_hook(bridge: Bridge, emulator: Emulator, hook: str) -> dict[str, Any]:
    item = new_item()
    emulator.scenario(item, mode="sync")
    response = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook})
    assert response.status_code in (200, 201), response.text  # 201: a webhook subscription was registered
    return response.json()  # type: ignore[no-any-return]


def webhook_state(bridge: Bridge, operation_id: str, state: str, timeout: float = 40) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        record = bridge.status(operation_id).json()
        return record if record["webhook"]["state"] == state else None

    return wait_for(reached, timeout, f"webhook state {state}", interval=0.2)  # type: ignore[no-any-return]


def redeliver(bridge: Bridge, operation_id: str) -> httpx.Response:
    return bridge.client.post(f"{bridge.api}/operations/{operation_id}/webhook/redeliver")


def test_fifty_concurrent_redeliver_calls_send_at_most_one_more_post(
    redelivery: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    hook = receiver.new_url(200, 200, headers={"x-test-hang-seconds": "1"})  # slow enough to still be pending
    record = finished_with_hook(redelivery, emulator, hook)
    webhook_state(redelivery, record["id"], "delivered")
    assert len(receiver.for_path(hook)) == 1

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: redeliver(redelivery, record["id"]), range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(202) == 1, statuses
    refused = [a for a in answers if a.status_code == 409]
    assert len(refused) == 49
    for answer in refused:
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "redeliveryInProgress"
        assert int(answer.headers["retry-after"]) >= 1

    done = webhook_state(redelivery, record["id"], "delivered")
    assert done["webhook"]["attempts"] == 2
    assert len(receiver.for_path(hook)) == 2  # the original and exactly one redelivery

    # Once that chain has ended, a new redelivery is allowed again (one at a time, not never).
    assert redeliver(redelivery, record["id"]).status_code == 202
    assert webhook_state(redelivery, record["id"], "delivered")["webhook"]["attempts"] == 3
    assert len(receiver.wait(hook, count=3)) == 3


def test_a_redeliver_call_while_the_first_webhook_is_still_retrying_is_refused(
    redelivery: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    hook = receiver.new_url(503, 503, 200)  # retried with backoff (1 s, 2 s): pending for a few seconds
    record = finished_with_hook(redelivery, emulator, hook)
    receiver.wait(hook, count=1)
    answer = redeliver(redelivery, record["id"])
    assert answer.status_code == 409 and answer.json()["code"] == "redeliveryInProgress", answer.text
    webhook_state(redelivery, record["id"], "delivered")
    assert len(receiver.for_path(hook)) == 3  # the retries only: no second chain


def delivery_queue(bridge: Bridge) -> QueueClient:
    return QueueClient.from_connection_string(
        bridge.storage.connection_string, bridge.env["WEBHOOK_QUEUE"], message_encode_policy=TextBase64EncodePolicy()
    )


def test_copies_of_one_delivery_message_send_one_post(
    redelivery: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    """Copies of attempt 1's message arrive while attempt 1 is in flight (the receiver is slow): one POST."""
    hook = receiver.new_url(200, headers={"x-test-hang-seconds": "3"})
    record = finished_with_hook(redelivery, emulator, hook)
    receiver.wait(hook, count=1)  # attempt 1 is in flight now, for 3 s
    event_id = redelivery.entity(record["id"])["EventId"]
    copy: dict[str, Any] = {
        "v": 1,
        "kind": "webhook",
        "id": record["id"],
        "event": event_id,
        "attempt": 1,
        "since": time.time(),
    }
    with delivery_queue(redelivery) as queue:
        for _ in range(5):
            queue.send_message(json.dumps(copy))
    webhook_state(redelivery, record["id"], "delivered")
    # Each copy either found the attempt claimed (parked until the claim's lease ends, 25 s) or came after the
    # attempt was recorded (stale). Wait until every copy has been seen and dropped: none may POST.
    log = redelivery.service.log_path

    def settled() -> bool | None:
        dropped = log.read_text(errors="replace").count(f"webhook attempt 1 for {record['id']} not sent")
        return dropped >= 5 or len(receiver.for_path(hook)) > 1 or None  # a second POST: no need to wait

    wait_for(settled, 60, "every copy of the delivery message to be dropped", interval=0.5)
    assert len(receiver.for_path(hook)) == 1
    assert redelivery.status(record["id"]).json()["webhook"]["attempts"] == 1


def test_the_claim_is_cleared_when_the_attempt_is_recorded(
    redelivery: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    """The claim is cleared when an attempt is recorded: a later redelivery is not blocked by it."""
    hook = receiver.new_url()
    record = finished_with_hook(redelivery, emulator, hook)
    webhook_state(redelivery, record["id"], "delivered")
    assert redelivery.entity(record["id"]).get("WebhookClaimedAttempt") in (None, "")
    assert redeliver(redelivery, record["id"]).status_code == 202
    webhook_state(redelivery, record["id"], "delivered")
    assert len(receiver.wait(hook, count=2)) == 2
