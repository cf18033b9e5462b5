"""The lane per workbook, end to end (devhost + Azurite + the Graph emulator): one Excel request at a time per
workbook, in arrival order; a dead holder frees the lane after its lease, a canceled one at once; a 429 on one
chain makes its siblings on the same workbook wait out the same Retry-After.

Graph's guidance followed here (docs: graph-excel-async-facts.md, "Throttling and errors"): "only send the next
request after receiving a successful response to the current request". Ordering is asserted on the emulator's
recorded request times (its clock), never on sleeps.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from shared.lanes.store import LANE_ROW_KEY, lane_key

from .harness import Bridge, BridgeFactory, Emulator, new_item, restart, wait_for

SESSION = "lane-session"  # createTableRow is asynchronous only inside a session (emulator, like Graph)


def _row(bridge: Bridge, item: str, n: int) -> dict[str, Any]:
    response = bridge.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "sessionId": SESSION,
            "parameters": {"table": "T", "values": [[n]]},
        }
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _starts(emulator: Emulator, item: str) -> list[dict[str, Any]]:
    return emulator.requests(item=item, kind="start")


def _polls_of(emulator: Emulator, item: str, graph_op: str | None) -> list[dict[str, Any]]:
    return [r for r in emulator.requests(item=item, kind="operation") if r["operationId"] == graph_op]


def _lane(bridge: Bridge, item: str) -> dict[str, Any]:
    entity = bridge.table.get_entity(lane_key(f"/me/drive/items/{item}", "default"), LANE_ROW_KEY)
    return {"holders": json.loads(entity["Holders"]), "waiting": json.loads(entity["Waiting"])}


def test_lane_order_is_arrival_order(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bridge = make_bridge("lane-order", WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS="60", POLL_MAX_DELAY_SECONDS="1")
    item = new_item()
    emulator.scenario(item, runningPolls=2)
    records = [_row(bridge, item, n) for n in range(5)]
    assert records[0]["status"] == "notStarted"
    assert [r["status"] for r in records[1:]] == ["waiting"] * 4
    assert [r["lane"]["position"] for r in records[1:]] == [1, 2, 3, 4]
    seen = bridge.status(records[4]["id"]).json()
    assert seen["status"] == "waiting" and 1 <= seen["lane"]["position"] <= 4

    done = [bridge.wait_done(r["id"], timeout=90) for r in records]
    assert [d["status"] for d in done] == ["succeeded"] * 5
    assert emulator.rows(item, "T") == [[n] for n in range(5)]  # each row once, in arrival order
    starts = _starts(emulator, item)
    assert len(starts) == 5
    for current, following in itertools.pairwise(starts):
        polls = _polls_of(emulator, item, current["operationId"])
        assert polls, current
        # the next Excel request went out only after the current one was seen finished: never two in flight
        assert following["time"] >= polls[-1]["time"], (current, following)


def test_a_killed_holder_frees_the_lane_after_its_lease(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    lease = 6
    bridge = make_bridge(
        "lane-kill", WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS=str(lease), POLL_MAX_DELAY_SECONDS="1"
    )
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)  # the holder's Graph operation never ends by itself
    holder = _row(bridge, item, 0)
    waiter = _row(bridge, item, 1)
    assert waiter["status"] == "waiting"
    wait_for(
        lambda: len(_polls_of(emulator, item, _starts(emulator, item)[0]["operationId"])) >= 1, 30, "the holder polling"
    )
    bridge.service.kill()
    # Its poll chain is lost as well (a message gone for good): the record's generation moves on, so every message
    # of that chain is stale; nothing will renew the holder's lease any more.
    entity = bridge.table.get_entity(holder["id"], "operation")
    bridge.table.update_entity(
        {"PartitionKey": holder["id"], "RowKey": "operation", "Generation": int(entity["Generation"]) + 100}
    )
    restart(bridge)
    lease_until = _lane(bridge, item)["holders"][0][2]
    assert _lane(bridge, item)["holders"][0][0] == holder["id"]

    wait_for(lambda: len(_starts(emulator, item)) >= 2, lease + 60, "the waiter to be started")
    second = _starts(emulator, item)[1]
    assert second["time"] >= lease_until  # not before the dead holder's lease ran out
    assert bridge.status(waiter["id"]).json()["status"] in ("notStarted", "running")
    for op in (holder, waiter):
        bridge.client.delete(f"{bridge.api}/operations/{op['id']}")


def test_cancel_frees_the_lane_at_once(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bridge = make_bridge("lane-cancel", WORKBOOK_CONCURRENCY="1", LANE_LEASE_SECONDS="600", POLL_MAX_DELAY_SECONDS="1")
    item = new_item()
    emulator.scenario(item, runningPolls=10_000)
    holder = _row(bridge, item, 0)
    waiter = _row(bridge, item, 1)
    behind = _row(bridge, item, 2)
    assert [waiter["lane"]["position"], behind["lane"]["position"]] == [1, 2]
    # Canceling a waiter takes it out of the line: the one behind moves up.
    assert bridge.client.delete(f"{bridge.api}/operations/{waiter['id']}").status_code == 200
    assert bridge.status(behind["id"]).json()["lane"]["position"] == 1
    assert len(_starts(emulator, item)) == 1

    canceled = bridge.client.delete(f"{bridge.api}/operations/{holder['id']}")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    # The lease is 600 s: the next start must come from the release, not from the lease running out.
    wait_for(lambda: len(_starts(emulator, item)) >= 2, 30, "the next waiter to be started after the cancel")
    assert len(_starts(emulator, item)) == 2  # the canceled waiter was skipped, never sent
    assert bridge.status(behind["id"]).json()["status"] in ("notStarted", "running")
    bridge.client.delete(f"{bridge.api}/operations/{behind['id']}")


def _graph_operation(emulator: Emulator, item: str, token: str) -> str:
    started = emulator.client.post(
        f"{emulator.graph}/drives/d1/items/{item}/workbook/createSession",
        json={"persistChanges": True},
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
    )
    assert started.status_code == 202, started.text
    return started.headers["location"]


def test_429_on_one_chain_slows_its_siblings(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    from .test_lifecycle import _graph_token

    bridge = make_bridge("lane-throttle", WORKBOOK_CONCURRENCY="1", POLL_MAX_DELAY_SECONDS="1")
    item, retry_after = new_item(), 5
    emulator.scenario(item, runningPolls=10_000)
    token = _graph_token(emulator)
    locations = [_graph_operation(emulator, item, token) for _ in range(2)]
    tracked = [bridge.start({"operationUrl": location}).json() for location in locations]
    assert all(t["status"] == "notStarted" for t in tracked)
    graph_ops = [location.split("/operations/", 1)[1].split("?", 1)[0] for location in locations]
    wait_for(lambda: all(len(_polls_of(emulator, item, g)) >= 2 for g in graph_ops), 30, "both chains polling")
    # Graph throttles the workbook: the next poll of either operation gets 429 with Retry-After.
    emulator.scenario(
        item, runningPolls=10_000, operationFaults=[{"status": 429, "headers": {"Retry-After": str(retry_after)}}]
    )

    def throttled() -> dict[str, Any] | None:
        return next((r for r in emulator.requests(item=item, kind="operation") if r["status"] == 429), None)

    hit = wait_for(throttled, 30, "a 429")
    sibling = next(g for g in graph_ops if g != hit["operationId"])

    end = hit["time"] + retry_after - 0.05

    def sibling_after_the_throttle() -> bool:
        return any(r["time"] >= end for r in _polls_of(emulator, item, sibling))

    wait_for(sibling_after_the_throttle, 30, "the sibling polling again after the throttle")
    early = [r for r in _polls_of(emulator, item, sibling) if hit["time"] < r["time"] < end]
    # Its calls to Graph waited out the throttle another chain got (recorded times, the emulator's clock). At most
    # one poll may have been on its way already (it read the lane just before the 429 was noted); without the
    # shared throttle it would have polled every second (POLL_MAX_DELAY_SECONDS=1) throughout.
    assert len(early) <= 1, (hit, early)
    for t in tracked:
        bridge.client.delete(f"{bridge.api}/operations/{t['id']}")
