"""The damaged-record test (issue 18, item 5), end to end (devhost + Azurite + the Graph emulator): one record of an
owner is damaged in the table while it holds its workbook's lane and polls; the rest of the owner's operations
keep working (the one waiting behind it in the lane is started, the others finish and send their webhooks), the
damaged one answers a problem naming it, the owner's list answers the rest and flags it, its poll message is
dropped (nothing in the poison queue), and the hourly purge completes: it retires the damaged record and still
deletes what expired.

Before: the damaged record's GET and the owner's whole list answered 500, its poll message went to poison while
it kept the lane (the request behind it waited for the lease), and the purge died on it (JSONDecodeError), so
nothing expired was deleted any more.
"""

from __future__ import annotations

import json
import time

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueClient

from shared.operations.record import iso

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item, wait_for

DAY = 86_400.0
SESSION = "damaged-session"  # createTableRow runs asynchronously inside a session (the emulator, like Graph)


def _row(bridge: Bridge, item: str, n: int, hook: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "workbook": f"/me/drive/items/{item}",
        "action": "createTableRow",
        "sessionId": SESSION,
        "parameters": {"table": "T", "values": [[n]]},
    }
    if hook:
        body["callbackUrl"] = hook
    response = bridge.start(body)
    assert response.status_code in (201, 202), response.text
    return response.json()  # type: ignore[no-any-return]


def _merge(bridge: Bridge, operation_id: str, **properties: object) -> None:
    """A manual edit of the record (as an operator or another app version would make it)."""
    with bridge.table as table:
        table.update_entity({"PartitionKey": operation_id, "RowKey": "operation", **properties}, mode=UpdateMode.MERGE)


def _poison(bridge: Bridge) -> int:
    queue = QueueClient.from_connection_string(bridge.storage.connection_string, bridge.env["POLL_QUEUE"] + "-poison")
    with queue:
        try:
            return int(queue.get_queue_properties().approximate_message_count)
        except ResourceNotFoundError:
            return 0


def test_one_damaged_record_the_rest_of_the_owners_operations_keep_working_and_the_purge_completes(
    make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    bridge = make_bridge(
        "damaged", WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS="600", POLL_MAX_DELAY_SECONDS="1", RETENTION_DAYS="30"
    )
    busy, other = new_item(), new_item()
    emulator.scenario(busy, runningPolls=10_000)  # the first one's Graph operation never ends by itself
    emulator.scenario(other, runningPolls=1)
    bad = _row(bridge, busy, 0)
    waiter = _row(bridge, busy, 1)  # behind it in the workbook's lane
    assert bad["status"] == "notStarted" and waiter["status"] == "waiting"
    hooks = [receiver.new_url() for _ in range(2)]
    others = [_row(bridge, other, n, hook) for n, hook in enumerate(hooks)]
    wait_for(lambda: emulator.requests(item=busy, kind="operation"), 30, "the first one polled")

    _merge(bridge, str(bad["id"]), HistoryJson="{damaged")  # one JSON property of one active record
    emulator.scenario(busy, runningPolls=1)  # Graph operations started from now on end (the first one's never)

    # Its own GET: a problem naming it; the owner's list: the rest, and it flagged.
    answer = bridge.status(str(bad["id"]))
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert (problem["code"], problem["operationId"], problem["property"]) == ("recordDamaged", bad["id"], "HistoryJson")
    page = bridge.client.get(f"{bridge.api}/operations?top=100")
    assert page.status_code == 200, page.text
    assert page.json()["damaged"] == [{"id": bad["id"], "code": "recordDamaged", "property": "HistoryJson"}]
    assert {op["id"] for op in page.json()["value"]} == {waiter["id"], *(o["id"] for o in others)}

    # The rest keep working: the waiter gets the lane (long before the 600 s lease), all finish, webhooks arrive.
    for record in (waiter, *others):
        assert bridge.wait_done(str(record["id"]), timeout=90)["status"] == "succeeded"
    for hook in hooks:
        receiver.wait(hook, timeout=60)
    assert len(emulator.requests(item=busy, kind="start")) == 2
    polls_then = len(emulator.requests(item=busy, kind="operation"))
    assert _poison(bridge) == 0  # its poll message was dropped, not poisoned
    assert "its record is damaged; its chain ends" in bridge.service.log_path.read_text(errors="replace")

    # The purge completes: the damaged record, now stranded, is retired; an expired one is still deleted.
    now = time.time()
    _merge(bridge, str(bad["id"]), CreatedAt=iso(now - 3 * DAY), UpdatedAt=iso(now - 2 * DAY))
    expired = str(others[0]["id"])
    _merge(bridge, expired, CompletedAt=iso(now - 31 * DAY), ExpiresAt=iso(now - DAY))
    purged = httpx.post(f"http://127.0.0.1:{bridge.port}/admin/functions/purge_expired", json={"input": ""})
    assert purged.status_code == 202, purged.text
    wait_for(lambda: bridge.status(expired).status_code == 404, 30, "the expired record deleted by the purge")
    retired = wait_for(lambda: (e := bridge.entity(str(bad["id"])))["Status"] == "failed" and e, 30, "retired")
    assert json.loads(retired["ErrorJson"])["code"] == "recordDamaged" and retired["ExpiresAt"] > iso(now)
    assert bridge.status(str(others[1]["id"])).json()["status"] == "succeeded"  # what has not expired is kept
    assert len(emulator.requests(item=busy, kind="operation")) == polls_then  # nothing polls it any more
