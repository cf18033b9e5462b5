"""Owner-scoped subscriptions: what the custom connector's webhook trigger registers.

Power Platform registers a webhook trigger on every save, enable or parameter change of a flow
(connectors-native-webhook.md) and unregisters it by DELETEing the Location the registration answered with
`201 Created` (learn.microsoft.com create-triggers-custom-connectors). The tests below register the way the
platform does (POST /subscriptions with the flow's callback URL in `callbackUrl`) and check that doing so
starts nothing in Graph and that a finished operation fires each registration that is still active once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.services import DEV_WEBHOOK_SECRET
from shared.storage.messages import FanoutTask, SubscriptionAttempt, encode_fanout, encode_subscription_attempt

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, restart, wait_for


@pytest.fixture(scope="module")
def subs(make_bridge: BridgeFactory) -> Bridge:
    return make_bridge("subs")


def register(bridge: Bridge, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = bridge.client.post(f"{bridge.api}/subscriptions", json=body, headers=headers or {})
    assert response.status_code == 201, response.text  # the platform requires 201 + Location
    subscription = response.json()
    assert response.headers["location"] == f"{bridge.api}/subscriptions/{subscription['id']}"
    assert "callbackUrl" not in subscription and body["callbackUrl"] not in response.text
    return subscription  # type: ignore[no-any-return]


def rows(bridge: Bridge, operation_id: str) -> dict[str, dict[str, Any]]:
    """The entities in an operation's partition by RowKey: the record, its fan-out marker, its deliveries."""
    with bridge.table as table:
        return {e["RowKey"]: dict(e) for e in table.query_entities(f"PartitionKey eq '{operation_id}'")}


def fanned_out(bridge: Bridge, operation_id: str, delivered: int) -> dict[str, dict[str, Any]]:
    """Wait until the fan-out ran and `delivered` subscription deliveries are recorded as delivered."""

    def done() -> dict[str, dict[str, Any]] | None:
        found = rows(bridge, operation_id)
        finished = [r for k, r in found.items() if k.startswith("subdelivery-") and r["State"] == "delivered"]
        return found if "fanout" in found and len(finished) >= delivered else None

    return wait_for(done, 40, f"fan-out of {operation_id}", interval=0.2)  # type: ignore[no-any-return]


def webhook_queue_empty(bridge: Bridge) -> None:
    """Every message on the webhook queue handled (invisible, delayed ones count until they are deleted)."""

    def empty() -> bool:
        with QueueClient.from_connection_string(bridge.storage.connection_string, bridge.env["WEBHOOK_QUEUE"]) as q:
            return int(q.get_queue_properties().approximate_message_count) == 0

    wait_for(empty, 40, "the webhook queue to drain", interval=0.2)


def test_three_registrations_start_nothing_and_a_finished_operation_fires_each_active_one_once(
    subs: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    starts_before = len(emulator.requests(kind="start"))
    hooks = [receiver.new_url() for _ in range(3)]
    registered = [register(subs, {"callbackUrl": hook}) for hook in hooks]  # save, enable, re-save
    only_failed = receiver.new_url()
    register(subs, {"callbackUrl": only_failed, "statuses": ["failed"]})
    other_action = receiver.new_url()
    register(subs, {"callbackUrl": other_action, "actions": ["deleteTableRow"]})
    # other tests' chains may still be polling the shared emulator: count Excel requests (starts) only
    assert len(emulator.requests(kind="start")) == starts_before  # registration starts no Excel request
    assert not [e for e in subs.entities() if e["RowKey"] == "operation"]  # nor any operation
    assert {s["id"] for s in subs.client.get(f"{subs.api}/subscriptions").json()["value"]} >= {
        s["id"] for s in registered
    }

    gone = subs.client.delete(f"{subs.api}/subscriptions/{registered[1]['id']}")  # the platform unregisters
    assert gone.status_code == 204
    assert subs.client.delete(f"{subs.api}/subscriptions/{registered[1]['id']}").status_code == 204  # again
    assert subs.client.get(f"{subs.api}/subscriptions/{registered[1]['id']}").status_code == 404

    item = new_item()
    emulator.scenario(item, runningPolls=1)
    record = subs.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = subs.wait_done(record["id"])
    partition = fanned_out(subs, record["id"], delivered=2)

    active = [hooks[0], hooks[2]]
    events = [receiver.wait(hook)[0] for hook in active]
    webhook_queue_empty(subs)  # every attempt and safety-net message has run
    assert [len(receiver.for_path(hook)) for hook in active] == [1, 1]
    for silent in (hooks[1], only_failed, other_action):  # deleted, or a filter that does not match
        assert receiver.for_path(silent) == []
    assert sorted(k for k in partition if k.startswith("subdelivery-")) == sorted(
        f"subdelivery-{registered[i]['id']}" for i in (0, 2)
    )
    for delivery in events:
        event = delivery.verified(DEV_WEBHOOK_SECRET)  # standardwebhooks over the exact bytes, then cloudevents
        assert event["type"] == "workbook.operation.succeeded" and event["subject"] == record["id"]
        assert delivery.headers["content-type"].split(";")[0] == "application/json"  # binary: the record
        assert json.loads(delivery.body) == event["data"] and event["data"]["result"] == done["result"]
        assert event["id"] == delivery.headers["webhook-id"]
    assert len({d.headers["webhook-id"] for d in events}) == 2  # one id per (event, subscription)


def test_duplicated_messages_send_no_second_event(subs: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    hook = receiver.new_url()
    subscription = register(subs, {"callbackUrl": hook, "actions": ["createTableRow"]})
    item = new_item()
    emulator.scenario(item, mode="sync")  # the synchronous-success path
    record = subs.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "parameters": {"table": "T", "values": [[1]]},
        }
    ).json()
    assert record["status"] == "succeeded"
    fanned_out(subs, record["id"], delivered=1)
    [first] = receiver.wait(hook)
    event_id = rows(subs, record["id"])["operation"]["EventId"]
    # What the queue may do (at-least-once): hand the fan-out and the first attempt out again, twice each.
    with QueueClient.from_connection_string(
        subs.storage.connection_string, subs.env["WEBHOOK_QUEUE"], message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        for _ in range(2):
            queue.send_message(encode_fanout(FanoutTask(record["id"], event_id)))
            queue.send_message(
                encode_subscription_attempt(SubscriptionAttempt(record["id"], subscription["id"], event_id, 1))
            )
    webhook_queue_empty(subs)
    assert receiver.for_path(hook) == [first]
    assert rows(subs, record["id"])[f"subdelivery-{subscription['id']}"]["Attempts"] == 1


def test_retries_keep_the_webhook_id_and_a_caller_cancel_fires_only_canceled_subscriptions(
    subs: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    flaky = receiver.new_url(503, 200)
    on_cancel = receiver.new_url()
    on_finish = receiver.new_url()
    register(subs, {"callbackUrl": flaky, "statuses": ["canceled"], "callbackFormat": "structured"})
    register(subs, {"callbackUrl": on_cancel, "statuses": ["canceled"]})
    register(subs, {"callbackUrl": on_finish})
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    record = subs.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    assert subs.client.delete(f"{subs.api}/operations/{record['id']}").json()["status"] == "canceled"
    first, second = receiver.wait(flaky, count=2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    assert second.headers["content-type"].startswith("application/cloudevents+json")
    assert second.verified(DEV_WEBHOOK_SECRET)["type"] == "workbook.operation.canceled"
    [canceled] = receiver.wait(on_cancel)
    assert canceled.verified(DEV_WEBHOOK_SECRET)["data"]["id"] == record["id"]
    fanned_out(subs, record["id"], delivered=2)
    webhook_queue_empty(subs)
    assert receiver.for_path(on_finish) == []  # a caller's cancel is no event unless asked for


def test_a_subscription_deleted_before_delivery_gets_nothing(
    make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    # The webhook queue's function is off (as AzureWebJobs.<name>.Disabled does), so the fan-out waits on the
    # queue while one registration is removed; then the app comes back with it on.
    bridge = make_bridge("subsdeleted", **{"AzureWebJobs.deliver_webhook.Disabled": "true"})
    kept, dropped = receiver.new_url(), receiver.new_url()
    register(bridge, {"callbackUrl": kept})
    doomed = register(bridge, {"callbackUrl": dropped})
    item = new_item()
    emulator.scenario(item, mode="sync")
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    assert bridge.client.delete(f"{bridge.api}/subscriptions/{doomed['id']}").status_code == 204
    bridge.service.kill()
    del bridge.env["AzureWebJobs.deliver_webhook.Disabled"]
    restart(bridge)
    fanned_out(bridge, record["id"], delivered=1)
    receiver.wait(kept)
    webhook_queue_empty(bridge)
    assert receiver.for_path(dropped) == [] and len(receiver.for_path(kept)) == 1


def test_bad_registrations_are_problems_naming_the_field(subs: Bridge, emulator: Emulator) -> None:
    starts_before = len(emulator.requests(kind="start"))
    cases = [
        ({}, "callbackUrl"),
        ({"callbackUrl": "ftp://example.com/x"}, "callbackUrl"),
        ({"callbackUrl": "https://example.com/x", "statuses": ["running"]}, "statuses"),
        ({"callbackUrl": "https://example.com/x", "actions": "createSession"}, "actions"),
        ({"callbackUrl": "https://example.com/x", "callbackFormat": "xml"}, "callbackFormat"),
        ({"callbackUrl": "https://example.com/x", "workbook": "/me/drive/items/1"}, "workbook"),
    ]
    for body, field in cases:
        response = subs.client.post(f"{subs.api}/subscriptions", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == field
    assert subs.client.get(f"{subs.api}/subscriptions/not-an-id").status_code == 404
    assert len(emulator.requests(kind="start")) == starts_before


TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://excel-bridge"


def test_subscriptions_are_owner_scoped(
    make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    guarded = make_bridge(  # behind Easy Auth trusting the emulator's Entra
        "subowners",
        DEVHOST_AUTH_ISSUER=emulator.issuer(TENANT),
        DEVHOST_AUTH_AUDIENCES=AUDIENCE,
        DEVHOST_AUTH_ALLOWED_TENANTS=TENANT,
    )
    ada, bob = (
        {
            "Authorization": "Bearer "
            + emulator.sign_in(f"{oid}.subs@contoso.example", tenant=TENANT, audience=AUDIENCE, oid=oid, roles=[])
        }
        for oid in ("ada", "bob")
    )
    ada_hook, bob_hook = receiver.new_url(), receiver.new_url()
    mine = register(guarded, {"callbackUrl": ada_hook}, ada)
    register(guarded, {"callbackUrl": bob_hook}, bob)
    assert mine["owner"] == f"{TENANT}/ada"
    url = f"{guarded.api}/subscriptions/{mine['id']}"
    assert guarded.client.get(url, headers=ada).status_code == 200
    assert guarded.client.get(url, headers=bob).status_code == 404  # another owner's does not exist
    assert guarded.client.delete(url, headers=bob).status_code == 404
    assert [s["id"] for s in guarded.client.get(f"{guarded.api}/subscriptions", headers=bob).json()["value"]] != [
        mine["id"]
    ]

    item = new_item()
    emulator.scenario(item, mode="sync")
    record = guarded.client.post(
        f"{guarded.api}/operations",
        headers=ada,
        json={"workbook": f"/me/drive/items/{item}", "action": "createSession"},
    ).json()
    fanned_out(guarded, record["id"], delivered=1)
    receiver.wait(ada_hook)
    webhook_queue_empty(guarded)
    assert receiver.for_path(bob_hook) == []  # bob's subscription hears nothing of ada's operations
    assert guarded.client.get(url, headers=ada).status_code == 200


def test_unsubscribing_between_retries_stops_the_deliveries(
    subs: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    hook = receiver.new_url(503)  # keeps failing: every attempt would be retried
    subscription = register(subs, {"callbackUrl": hook})
    item = new_item()
    emulator.scenario(item, mode="sync")
    record = subs.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    receiver.wait(hook)
    assert subs.client.delete(f"{subs.api}/subscriptions/{subscription['id']}").status_code == 204
    row = f"subdelivery-{subscription['id']}"
    stopped = wait_for(
        lambda: (r := rows(subs, record["id"]).get(row)) and r["State"] == "unsubscribed" and r,
        40,
        "the delivery to stop",
        interval=0.2,
    )
    webhook_queue_empty(subs)
    assert len(receiver.for_path(hook)) == stopped["Attempts"]  # nothing sent after the unsubscribe
