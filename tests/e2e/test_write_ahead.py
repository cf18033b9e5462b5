"""Issue 9, items 1 and 2: nothing that reached Graph is repeated or forgotten because a later step failed.

1. A createTableRow whose result is too big for a Table property (Graph answers synchronously): a retry
   with the same Idempotency-Key must not add the row again, and the result must be readable.
2. Two consecutive failed deliveries of one poll message must not strand the operation: it still
   finishes with Graph's real outcome (and one webhook event).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from devhost.services import AZURITE_KEY, DEV_WEBHOOK_SECRET, AzuritePorts

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, wait_for
from .storage_faults import FaultProxy, start_fault_proxy

# Table Storage: a string property holds at most 64 KiB (32 K UTF-16 characters)
# (learn.microsoft.com, "Understanding the Table service data model", Property types).
TABLE_STRING_LIMIT = 32 * 1024


def _values_near_limit() -> list[list[str]]:
    """One row whose values' JSON is 32,760 characters: under the bridge's request limit (32 KiB of JSON,
    shared/graph/actions/params.py MAX_VALUES_BYTES), while the stored result ({"index": 0, "values": ...}) is over
    the Table property limit."""
    cells = ["x" * 8000] * 3
    overhead = len(json.dumps([[*cells, ""]]))
    values = [[*cells, "y" * (32_760 - overhead)]]
    assert len(json.dumps(values)) == 32_760
    return values


@pytest.fixture(scope="module")
def faults(azurite: AzuritePorts) -> Iterator[FaultProxy]:
    proxy = start_fault_proxy(azurite.table)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def faulty(make_bridge: BridgeFactory, azurite: AzuritePorts, faults: FaultProxy) -> Bridge:
    """A bridge whose Table requests go through the fault proxy (queues and blobs go straight to Azurite)."""
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{azurite.blob}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{azurite.queue}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{faults.port}/devstoreaccount1;"
    )
    return make_bridge("walfaults", AzureWebJobsStorage=connection, POLL_INITIAL_DELAY_SECONDS="1")


@pytest.fixture(scope="module")
def wal(make_bridge: BridgeFactory) -> Bridge:
    return make_bridge("wal")


def _start_until_answered(bridge: Bridge, body: dict[str, object], key: str, attempts: int = 4) -> httpx.Response:
    """What a client with a retry policy does (Logic Apps' default retries 408, 429 and 5xx:
    error-exception-handling.md): send again with the same Idempotency-Key until it is not a 5xx/429."""
    response = bridge.start(body, **{"Idempotency-Key": key})
    for _ in range(attempts - 1):
        if response.status_code < 500 and response.status_code != 429:
            break
        response = bridge.start(body, **{"Idempotency-Key": key})
    return response


def test_big_synchronous_row_is_written_once_and_readable(wal: Bridge, emulator: Emulator) -> None:
    item = new_item()
    values = _values_near_limit()
    body = {
        "workbook": f"/me/drive/items/{item}",
        "action": "createTableRow",
        "parameters": {"table": "Table 1", "values": values},
    }  # no session: Graph answers synchronously
    response = _start_until_answered(wal, body, f"big-row-{item}")
    assert len(emulator.rows(item, "Table 1")) == 1, "the retries wrote the row again"
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "succeeded"
    assert record["result"] == {"index": 0, "values": values}
    again = wal.start(body, **{"Idempotency-Key": f"big-row-{item}"})
    assert again.status_code == 200 and again.json()["id"] == record["id"]
    assert emulator.rows(item, "Table 1") == values  # exactly one row (the one row of `values`)
    assert len(emulator.requests(item=item, kind="start")) == 1  # the Excel write was sent once
    read = wal.status(record["id"])
    assert read.status_code == 200 and read.json()["result"] == {"index": 0, "values": values}


def test_two_failed_deliveries_of_a_poll_do_not_strand_the_operation(
    faulty: Bridge, faults: FaultProxy, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    hook = receiver.new_url()
    response = faulty.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "sessionId": "session-1",
            "callbackUrl": hook,
            "parameters": {"table": "T", "values": [[1, 2]]},
        }
    )
    assert response.status_code == 201, response.text
    operation_id = response.json()["id"]
    # The terminal write of this operation fails on the first two deliveries of the message that sees
    # Graph's success; the third delivery (the last but two allowed by maxDequeueCount 5) must finish it.
    rule = faults.fail("PATCH", f"PartitionKey='{operation_id}'", r'"Status":\s*"succeeded"', 2)
    done = faulty.wait_done(operation_id, timeout=90)
    assert rule.hits == 2
    assert done["status"] == "succeeded", done
    assert done["result"] == {"index": 0, "values": [[1, 2]]}
    assert emulator.rows(item, "T") == [[1, 2]]
    [delivery] = receiver.wait(hook)
    assert delivery.verified(DEV_WEBHOOK_SECRET)["type"] == "workbook.operation.succeeded"
    wait_for(lambda: faulty.status(operation_id).json()["webhook"]["state"] == "delivered", 30, "delivered")
    assert len(receiver.for_path(hook)) == 1


def test_a_big_result_polled_in_a_session_is_served_inline_and_in_the_webhook(
    wal: Bridge, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    """The issue's second reproduction as first seen: an oversized result inside a session made every terminal
    write fail. Now the result goes to Blob Storage and GET and the webhook carry it as if inline."""
    item = new_item()
    values = _values_near_limit()
    hook = receiver.new_url()
    response = wal.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "sessionId": "s-1",
            "callbackUrl": hook,
            "parameters": {"table": "Big", "values": values},
        }
    )
    assert response.status_code == 201, response.text
    done = wal.wait_done(response.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"index": 0, "values": values}
    [delivery] = receiver.wait(hook)
    assert delivery.verified(DEV_WEBHOOK_SECRET)["data"]["result"] == {"index": 0, "values": values}
    entity = wal.table.get_entity(done["id"], "operation")
    assert entity["ResultJson"] == "" and entity["ResultBlob"].startswith(done["id"] + "/")


def test_a_poisoned_chain_ends_the_operation_failed_visibly(
    faulty: Bridge, faults: FaultProxy, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    hook = receiver.new_url()
    response = faulty.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "sessionId": "session-2",
            "callbackUrl": hook,
            "parameters": {"table": "T", "values": [[3]]},
        }
    )
    assert response.status_code == 201, response.text
    operation_id = response.json()["id"]
    # Every delivery (maxDequeueCount 5, host.json) fails to write the success: the last one ends it failed.
    rule = faults.fail("PATCH", f"PartitionKey='{operation_id}'", r'"Status":\s*"succeeded"', 5)
    done = faulty.wait_done(operation_id, timeout=120)
    assert rule.hits == 5
    assert done["status"] == "failed" and done["error"]["code"] == "pollStepFailed", done
    [delivery] = receiver.wait(hook)
    assert delivery.verified(DEV_WEBHOOK_SECRET)["type"] == "workbook.operation.failed"


def test_a_keyed_retry_finishes_a_start_whose_follow_up_failed(
    faulty: Bridge, faults: FaultProxy, emulator: Emulator
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    body = {
        "workbook": f"/me/drive/items/{item}",
        "action": "createTableRow",
        "sessionId": "session-3",
        "parameters": {"table": "T", "values": [[4]]},
    }
    # Graph's answer is stored; the write that marks the follow-up as queued fails once.
    rule = faults.fail("PATCH", "PartitionKey=", r'"StartPhase":\s*""', 1)
    first = faulty.start(body, **{"Idempotency-Key": f"follow-up-{item}"})
    assert rule.hits == 1
    assert first.status_code == 503, first.text
    problem = first.json()
    assert problem["reachedGraph"] is True and "same Idempotency-Key" in problem["detail"]
    again = faulty.start(body, **{"Idempotency-Key": f"follow-up-{item}"})
    assert again.status_code == 202, again.text
    assert again.json()["id"] == problem["operationId"]
    done = faulty.wait_done(problem["operationId"], timeout=60)
    assert done["status"] == "succeeded" and done["result"] == {"index": 0, "values": [[4]]}
    assert len(emulator.requests(item=item, kind="start")) == 1  # the Excel request was sent once
    assert emulator.rows(item, "T") == [[4]]
