"""The whole lifecycle through devhost + Azurite + the Graph emulator, as a caller sees it."""

from __future__ import annotations

import json
import time
from typing import Any

from devhost.services import DEV_WEBHOOK_SECRET

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, wait_for

SEED_ERROR_CODES = ["internalServerError", "internalServerErrorUncategorized", "GenericFileOpenError"]


def error_codes(error: dict[str, Any]) -> list[str]:
    codes = []
    node: Any = error
    while isinstance(node, dict):
        codes.append(node["code"])
        node = node.get("innerError")
    return codes


def test_async_create_session_end_to_end(bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    item = new_item()
    emulator.scenario(item, notStartedPolls=1, runningPolls=2)
    hook = receiver.new_url()
    response = bridge.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createSession",
            "parameters": {"persistChanges": True},
            "callbackUrl": hook,
            "clientReference": "order-42",
        }
    )
    assert response.status_code == 201, response.text  # with a callbackUrl: a registered subscription
    record = response.json()
    assert response.headers["location"].startswith(f"{bridge.api}/status/{record['id']}?se=")
    assert int(response.headers["retry-after"]) >= 1
    assert record["status"] == "notStarted" and record["clientReference"] == "order-42"
    assert "callbackUrl" not in json.dumps(record) and hook not in json.dumps(record)

    done = bridge.wait_done(record["id"])
    assert done["status"] == "succeeded"
    assert set(done["result"]) == {"id", "persistChanges"} and done["result"]["persistChanges"] is True
    assert done["completedAt"] and done["pollCount"] == 4  # notStarted, running x2, succeeded
    assert done["links"]["self"] == response.headers["location"]

    entity = bridge.entity(record["id"])
    assert entity["Status"] == "succeeded"
    assert json.loads(entity["ResultJson"]) == done["result"]
    assert hook not in json.dumps(entity, default=str)  # the callback URL is sealed at rest

    [delivery] = receiver.wait(hook)
    event = delivery.verified(DEV_WEBHOOK_SECRET)  # binary content mode, the default
    assert delivery.headers["content-type"].startswith("application/json")
    assert json.loads(delivery.body)["result"] == done["result"]  # the body is the record alone
    assert event["specversion"] == "1.0" and event["type"] == "workbook.operation.succeeded"
    assert event["subject"] == record["id"] and delivery.headers["webhook-id"] == event["id"]
    assert event["data"]["result"] == done["result"]
    delivered = wait_for(
        lambda: bridge.status(record["id"]).json()["webhook"]["state"] == "delivered", 10, "webhook state recorded"
    )
    assert delivered

    polls = emulator.requests(item=item, kind="operation")
    assert len(polls) == 4 and all(p["auth"] == "valid" for p in polls)


def test_sync_create_session_answers_200(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    response = bridge.start(
        {
            "workbook": f"/drives/b!drive-1/items/{item}",
            "action": "createSession",
            "parameters": {"persistChanges": False},
        }
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "succeeded" and record["pollCount"] == 0
    assert record["result"]["persistChanges"] is False and record["result"]["id"]
    assert bridge.status(record["id"]).status_code == 200
    assert emulator.requests(item=item, kind="operation") == []


def test_create_and_delete_table_row(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    workbook = f"/users/someone@contoso.com/drive/items/{item}"
    created = bridge.start(
        {
            "workbook": workbook,
            "action": "createTableRow",
            "sessionId": "session-abc",
            "parameters": {"table": "Table 1", "values": [[1, "two", True]]},
        }
    )
    assert created.status_code == 202, created.text
    row = bridge.wait_done(created.json()["id"])
    assert row["status"] == "succeeded"
    assert row["result"] == {"index": 0, "values": [[1, "two", True]]}
    assert emulator.rows(item, "Table 1") == [[1, "two", True]]
    [start] = emulator.requests(item=item, kind="start")
    assert start["prefer"] == "respond-async" and start["workbookSessionId"] == "session-abc"

    deleted = bridge.start(
        {
            "workbook": workbook,
            "action": "deleteTableRow",
            "sessionId": "session-abc",
            "parameters": {"table": "Table 1", "index": 0},
        }
    )
    assert deleted.status_code == 202, deleted.text
    gone = bridge.wait_done(deleted.json()["id"])
    assert gone["status"] == "succeeded" and gone["result"] is None
    assert emulator.rows(item, "Table 1") == []


def test_failed_operation_keeps_the_whole_error_chain(
    bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1, outcome="failed")
    hook = receiver.new_url()
    response = bridge.start(
        {
            "workbook": f"/sites/contoso.sharepoint.com,1,2/drive/items/{item}",
            "action": "createSession",
            "callbackUrl": hook,
        }
    )
    done = bridge.wait_done(response.json()["id"])
    assert done["status"] == "failed"
    assert error_codes(done["error"]) == SEED_ERROR_CODES
    [delivery] = receiver.wait(hook)
    event = delivery.verified(DEV_WEBHOOK_SECRET)
    assert event["type"] == "workbook.operation.failed"
    assert error_codes(event["data"]["error"]) == SEED_ERROR_CODES


def _graph_token(emulator: Emulator) -> str:
    response = emulator.client.get(
        f"{emulator.url}/msi/token",
        params={"api-version": "2019-08-01", "resource": emulator.url},
        headers={"X-IDENTITY-HEADER": "devhost-identity-header"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_track_an_existing_operation_url(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1, locationVersion="beta", locationQuery="sessionId=opaque%3D%3D")
    started = emulator.client.post(
        f"{emulator.graph}/groups/g1/drive/items/{item}/workbook/createSession",
        json={"persistChanges": True},
        headers={"Authorization": f"Bearer {_graph_token(emulator)}", "Prefer": "respond-async"},
    )
    assert started.status_code == 202
    location = started.headers["location"]
    assert "/beta/" in location and location.endswith("?sessionId=opaque%3D%3D")

    response = bridge.start({"operationUrl": location, "clientReference": "tracked"})
    assert response.status_code == 202, response.text
    record = response.json()
    assert record["workbook"] == f"/groups/g1/drive/items/{item}"
    done = bridge.wait_done(record["id"])
    assert done["status"] == "succeeded"
    assert done["action"] is None and set(done["result"]) == {"id", "persistChanges"}
    polls = emulator.requests(item=item, kind="operation")
    assert polls and all(p["path"].startswith("/beta/") and "sessionId=opaque" in p["query"] for p in polls)


def test_beta_location_with_session_id_is_followed_verbatim(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(
        item,
        runningPolls=1,
        locationVersion="beta",
        locationQuery="sessionId=abc%2Fdef",
        resourceLocationVersion="beta",
        resourceLocationQuery="sessionId=abc%2Fdef",
    )
    response = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
    done = bridge.wait_done(response.json()["id"])
    assert done["status"] == "succeeded" and done["result"]["id"]
    for kind in ("operation", "result"):
        seen = emulator.requests(item=item, kind=kind)
        assert seen and all(r["path"].startswith("/beta/") and r["query"] == "sessionId=abc%2Fdef" for r in seen)


def test_cancel_stops_polling_and_callbacks_and_is_idempotent(
    bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    hook = receiver.new_url()
    record = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook}
    ).json()
    wait_for(lambda: emulator.requests(item=item, kind="operation"), 30, "a first poll")
    canceled = bridge.client.delete(f"{bridge.api}/operations/{record['id']}")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    polls_at_cancel = len(emulator.requests(item=item, kind="operation"))
    again = bridge.client.delete(f"{bridge.api}/operations/{record['id']}")
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    assert again.json()["completedAt"] == canceled.json()["completedAt"]

    # The chain's own pending message arrives, finds the operation canceled and is dropped.
    wait_for(
        lambda: f"operation {record['id']} is canceled; poll message dropped" in bridge.service.tail(400),
        30,
        "the old chain's message to be dropped",
    )
    assert len(emulator.requests(item=item, kind="operation")) <= polls_at_cancel + 1  # one may be in flight
    final = bridge.status(record["id"]).json()
    assert final["status"] == "canceled" and final["webhook"]["state"] == "none"
    assert receiver.for_path(hook) == []  # a cancel is an unsubscribe: no callback follows


def test_idempotency_key(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    body = {"workbook": f"/me/drive/items/{item}", "action": "createSession"}
    first = bridge.start(body, **{"Idempotency-Key": f"key-{item}"})
    second = bridge.start(body, **{"Idempotency-Key": f"key-{item}"})
    assert first.status_code in (200, 202) and second.status_code in (200, 202)
    assert first.json()["id"] == second.json()["id"]
    other = bridge.start({**body, "clientReference": "different"}, **{"Idempotency-Key": f"key-{item}"})
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["field"] == "Idempotency-Key"
    assert len(emulator.requests(item=item, kind="start")) == 1
    assert bridge.wait_done(first.json()["id"])["status"] == "succeeded"


def test_fractional_retry_after_is_respected(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(
        item,
        runningPolls=1,
        operationFaults=[
            {
                "status": 429,
                "headers": {"Retry-After": "2.128"},
                "error": {"code": "tooManyRequests", "message": "Slow down"},
            }
        ],
    )
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    assert bridge.wait_done(record["id"])["status"] == "succeeded"
    polls = emulator.requests(item=item, kind="operation")
    assert [p["status"] for p in polls][:2] == [429, 200]
    assert polls[1]["time"] - polls[0]["time"] >= 2.128


def test_malformed_and_transient_answers_are_retried(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    seed_body = (
        '{"id": "x", "status": "failed", "error": {"code": "internalServerError", '
        '"innerError": {"code": ""internalServerErrorUncategorized"}}}'
    )
    emulator.scenario(
        item,
        runningPolls=1,
        operationFaults=[
            {"status": 200, "rawBody": seed_body},
            {"status": 503},
            {"status": 500, "rawBody": "<html>oops"},
            {"status": 200, "rawBody": "[]"},
        ],
    )
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = bridge.wait_done(record["id"])
    assert done["status"] == "succeeded"
    assert done["pollCount"] == 6  # four bad answers, one running, one succeeded


def test_transient_failures_are_bounded(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bounded = make_bridge("bounded", POLL_MAX_TRANSIENT_FAILURES="2")
    item = new_item()
    emulator.scenario(item, operationFaults=[{"status": 503}] * 5)
    record = bounded.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = bounded.wait_done(record["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "graphUnavailable"
    assert len(emulator.requests(item=item, kind="operation")) == 3


def test_expired_and_revoked_tokens_are_replaced(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=2)
    tokens_before = len(emulator.requests(kind="token"))
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    wait_for(lambda: emulator.requests(item=item, kind="operation"), 30, "a first poll")
    emulator.revoke_tokens()
    done = bridge.wait_done(record["id"])
    assert done["status"] == "succeeded"
    polls = emulator.requests(item=item, kind="operation")
    assert any(p["auth"] == "revoked" and p["status"] == 401 for p in polls)
    assert polls[-1]["auth"] == "valid"
    assert len(emulator.requests(kind="token")) > tokens_before


def test_short_lived_tokens_are_renewed(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    emulator.config(tokenLifetimeSeconds=1.5)
    try:
        short = make_bridge("shorttokens")
        item = new_item()
        emulator.scenario(item, runningPolls=3)
        record = short.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
        done = short.wait_done(record["id"])
    finally:
        emulator.config(tokenLifetimeSeconds=3600)
    assert done["status"] == "succeeded"
    polls = emulator.requests(item=item, kind="operation")
    assert polls[-1]["auth"] == "valid"


def test_operation_times_out(make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver) -> None:
    quick = make_bridge("timeout", OPERATION_TIMEOUT_SECONDS="3")
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    hook = receiver.new_url()
    record = quick.start({"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook}).json()
    done = quick.wait_done(record["id"], timeout=30)
    assert done["status"] == "timedOut" and done["error"]["code"] == "operationTimedOut"
    [delivery] = receiver.wait(hook)
    assert delivery.event["type"] == "workbook.operation.timedOut"


def test_expired_operation_is_operation_not_found(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=10_000, operationTtlSeconds=2)
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = bridge.wait_done(record["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "operationNotFound"
    assert done["error"]["innerError"]["code"].lower() == "itemnotfound"


def test_foreign_location_gets_no_request_and_no_token(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    port = emulator.url.rsplit(":", 1)[1]
    emulator.scenario(item, locationOrigin=f"http://localhost:{port}")
    response = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "failed" and record["error"]["code"] == "untrustedOperationOrigin"
    assert emulator.requests(item=item, kind="operation") == []
    assert all(r["host"] != f"localhost:{port}" for r in emulator.requests())


def test_foreign_resource_location_gets_no_request_and_no_token(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    port = emulator.url.rsplit(":", 1)[1]
    emulator.scenario(item, runningPolls=1, resourceLocationOrigin=f"http://localhost:{port}")
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = bridge.wait_done(record["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "untrustedOrigin"
    assert emulator.requests(item=item, kind="result") == []
    assert all(r["host"] != f"localhost:{port}" for r in emulator.requests())


def test_tracking_a_foreign_operation_url_is_refused(bridge: Bridge) -> None:
    response = bridge.start({"operationUrl": "https://evil.example/v1.0/me/drive/items/x/workbook/operations/y"})
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "untrustedOperationOrigin" and problem["field"] == "operationUrl"


def test_graph_errors_at_start_come_back_as_problems(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(
        item,
        startError={
            "status": 404,
            "error": {
                "code": "itemNotFound",
                "message": "The resource could not be found.",
                "innerError": {"code": "resourceNotFoundDetail", "message": "No item"},
            },
        },
    )
    response = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "resourceNotFoundDetail"
    assert response.json()["graphError"]["code"] == "itemNotFound"


def test_status_list_and_health(bridge: Bridge, emulator: Emulator) -> None:
    assert bridge.client.get(f"{bridge.api}/health").json() == {
        "status": "healthy",
        "poison": {"main-polls-poison": 0, "main-hooks-poison": 0},
    }
    missing = bridge.status("0000000000000abcdef0123")
    assert missing.status_code == 404 and missing.json()["code"] == "operationNotFound"
    assert bridge.status("not-an-id").status_code == 404

    ids = []
    for _ in range(3):
        item = new_item()
        emulator.scenario(item, mode="sync")
        ids.append(bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()["id"])
    first = bridge.client.get(f"{bridge.api}/operations", params={"top": 2, "status": "succeeded"})
    assert first.status_code == 200
    page = first.json()
    assert [r["id"] for r in page["value"]] == ids[::-1][:2]  # newest first
    second = bridge.client.get(page["nextLink"]).json()
    assert second["value"][0]["id"] == ids[0]
    bad = bridge.client.get(f"{bridge.api}/operations", params={"status": "done"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_unreadable_queue_messages_are_dropped_not_retried(bridge: Bridge, emulator: Emulator) -> None:
    with bridge.queue as queue:
        from azure.storage.queue import TextBase64EncodePolicy

        queue._message_encode_policy = TextBase64EncodePolicy()  # type: ignore[attr-defined]
        queue.send_message("this is not json")
        queue.send_message(json.dumps({"v": 1, "id": "0000000000000aaaaaaaaaa", "gen": 0}))
    wait_for(
        lambda: (
            "dropping unreadable poll message" in bridge.service.tail(400)
            and "dropping poll message for unknown operation" in bridge.service.tail(400)
        ),
        30,
        "drops",
    )
    item = new_item()
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    assert bridge.wait_done(record["id"])["status"] == "succeeded"


def test_responses_never_leak_callback_urls(bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    hook = receiver.new_url() + "?sig=SECRET-SIGNATURE"
    record = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook}
    ).json()
    receiver.wait(hook)
    listing = bridge.client.get(f"{bridge.api}/operations", params={"top": 50}).text
    assert "SECRET-SIGNATURE" not in listing
    assert "SECRET-SIGNATURE" not in json.dumps(bridge.entity(record["id"]), default=str)
    assert "SECRET-SIGNATURE" not in bridge.service.tail(2000)


def test_pascal_case_statuses_and_completed(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, notStartedPolls=1, runningPolls=1, statusCase="pascal")
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}).json()
    done = bridge.wait_done(record["id"])
    assert done["status"] == "succeeded" and done["result"]["id"]
    assert done["pollCount"] == 3


def test_a_record_that_lost_its_queue_message_is_re_armed(bridge: Bridge, emulator: Emulator) -> None:
    """A crash between storing a record and queuing its first message leaves it with no poll chain; the
    next GET of it, once it is past its deadline plus grace, starts a new chain, which ends it."""
    from shared.operations.record import Operation, iso, new_operation_id, to_entity

    long_ago = time.time() - 3600 - 400  # older than OPERATION_TIMEOUT_SECONDS + grace
    op_id = new_operation_id(long_ago)
    orphan = Operation(
        id=op_id,
        status="running",
        action="createSession",
        workbook="/me/drive/items/01ORPHAN",
        operation_url=f"{emulator.graph}/me/drive/items/01ORPHAN/workbook/operations/x",
        created_at=iso(long_ago),
        updated_at=iso(long_ago),
        base_url=bridge.api,
    )
    assert bridge.client.get(f"{bridge.api}/health").status_code == 200  # the app has created its table
    with bridge.table as table:
        table.create_entity(to_entity(orphan))
    first = bridge.status(op_id)
    assert first.status_code == 202
    done = bridge.wait_done(op_id)
    assert done["status"] == "timedOut" and done["error"]["code"] == "operationTimedOut"
    assert bridge.entity(op_id)["Generation"] == 1  # a new chain was claimed
