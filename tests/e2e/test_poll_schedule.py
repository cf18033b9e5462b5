"""The poll schedule through devhost + Azurite + the Graph emulator: Retry-After names the poll the poller
actually makes, the learned schedule survives a restart of the function app, and expectedDurationSeconds moves
the first poll.

Tolerance for "the poll happened at its planned time": a planned poll at offset t (from the record's createdAt)
is made at t .. t + LATE seconds. The poller's visibility delay is whole seconds rounded up (up to 1 s later than
the plan), and the queue listener polls an idle queue with a backoff up to host.json's maxPollingInterval (2 s:
the Functions host does the same, azure-functions-facts.md "queue polling"); a few hundred milliseconds go to the
step itself on this shared machine. LATE = 1 + 2 + 1 s. Never earlier than the plan (less 50 ms of clock skew
between the processes' clocks and the millisecond createdAt)."""

from __future__ import annotations

import time
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.operations.record import parse_iso
from shared.schedule.clock import plan_for, whole_seconds
from shared.schedule.history import DurationHistory, decode, history_keys, operation_tag, slot_of
from shared.schedule.learned import learned_plan
from shared.schedule.plans import Plan, Schedule
from shared.schedule.timing import Timing

from .harness import Bridge, BridgeFactory, Emulator, new_item, restart, wait_for

LATE = 4.0
EARLY = 0.05
CAP = "240"  # POLL_MAX_DELAY_SECONDS as in production: the schedule's own gaps, not the suite's 2 s cap
TIMING = Timing(1.0, 240.0, 3600.0, 8)  # the settings these bridges run with (POLL_INITIAL_DELAY 1, timeout 3600)


def _start(bridge: Bridge, item: str, **extra: Any) -> tuple[dict[str, Any], int]:
    response = bridge.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createSession",
            "parameters": {"persistChanges": True},
            **extra,
        }
    )
    assert response.status_code == 202, response.text
    return response.json(), int(response.headers["retry-after"])


def _poll_offsets(bridge: Bridge, emulator: Emulator, item: str, record: dict[str, Any]) -> list[float]:
    """When the poller GET this operation's status at Graph, in seconds from the record's createdAt."""
    graph_id = str(bridge.entity(record["id"])["OperationUrl"]).split("?")[0].rsplit("/", 1)[-1]
    created = parse_iso(record["createdAt"])
    return [r["time"] - created for r in emulator.requests(item=item, kind="operation") if r["operationId"] == graph_id]


def _plan(bridge: Bridge, operation_id: str) -> Plan:
    return Plan.decode(bridge.entity(operation_id).get("PollPlan"))


def _assert_on_schedule(offsets: list[float], schedule: Schedule) -> None:
    """Every poll is the schedule's next planned one after the poll before it (the first: after creation), made
    at its time within the tolerance. (A late poll skips planned offsets it is already past: the next one is the
    first planned offset after it. The step reads its clock just before its GET reaches the emulator, so allow that
    step 0.5 s of its own.)"""
    previous = 0.0
    for made in offsets:
        low, high = schedule.next_offset(max(previous - 0.5, 0.0)), schedule.next_offset(previous)
        assert low - EARLY <= made <= high + LATE, (made, previous, low, high, offsets)
        previous = made


def test_retry_after_is_the_time_to_the_poll_the_poller_makes(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bridge = make_bridge("schedcold", POLL_MAX_DELAY_SECONDS=CAP)
    item = new_item()
    emulator.scenario(item, runningSeconds=13)
    record, first_retry_after = _start(bridge, item)
    created = parse_iso(record["createdAt"])
    schedule = Schedule(_plan(bridge, record["id"]), TIMING)
    assert schedule.plan.cold and first_retry_after == 2  # cold: the first poll 2 s after creation
    promises: list[tuple[float, float]] = []  # (when a status read asked, when it said the next poll would be)

    def finished() -> bool:  # a client following Retry-After loosely: reads every half second
        asked = time.time()
        response = bridge.status(record["id"])
        if response.status_code == 202:
            promises.append((asked - created, asked - created + int(response.headers["retry-after"])))
        return response.status_code == 200

    wait_for(finished, 60, "the operation to finish", interval=0.5)
    offsets = _poll_offsets(bridge, emulator, item, record)
    _assert_on_schedule(offsets, schedule)
    assert 13 <= offsets[-1] <= 14 + LATE  # seen finished at the first planned poll after 13 s
    # Each Retry-After read before the last poll's planned time pointed at a poll that was made (within the
    # tolerance). A read after that time, while the late last poll had not yet written the terminal state, names
    # the planned poll after it, which the finish made unnecessary: that promise is void.
    last_planned = float(next(o for o in schedule.offsets() if o >= offsets[-1] - LATE))
    checked = [promise for asked, promise in promises if asked < last_planned]
    assert len(checked) >= 10  # a read every 0.5 s for ~14 s
    for promise in checked:
        made = [o for o in offsets if promise - 1 - EARLY <= o <= promise + LATE]
        assert made, (promise, offsets)


def _learned_history(bridge: Bridge, owner: str, item: str) -> list[DurationHistory]:
    """The workbook's own sample and the owner + action pool, as stored."""
    found = []
    with TableClient.from_connection_string(
        bridge.storage.connection_string, bridge.env["DURATION_HISTORY_TABLE"]
    ) as table:
        for key in history_keys(owner, "createSession", f"/me/drive/items/{item}"):
            try:
                found.append(decode(dict(table.get_entity(*key))))
            except ResourceNotFoundError:
                found.append(DurationHistory())
    return found


def test_history_survives_a_restart(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bridge = make_bridge("schedlearn", POLL_MAX_DELAY_SECONDS=CAP)
    item = new_item()
    emulator.scenario(item, runningSeconds=10)
    first = [_start(bridge, item)[0]["id"] for _ in range(3)]
    for operation_id in first:
        assert bridge.wait_done(operation_id, timeout=60)["status"] == "succeeded"
    slots = {slot_of(operation_tag(operation_id)) for operation_id in first}  # two of three may share a slot
    own, pool = wait_for(
        lambda: (h := _learned_history(bridge, "default", item)) and all(x.size == len(slots) for x in h) and h,
        10,
        "the three runs in the history",
    )
    durations = own.durations()
    assert all(9 <= d <= 13 for d in durations), durations  # the middle of the last poll gap around 10 s

    bridge.service.stop()
    restart(bridge)  # a new process: nothing but storage remembers the runs

    record, retry_after = _start(bridge, item)
    plan = _plan(bridge, record["id"])
    # the bridge's own decision, from the history it stored
    assert plan == plan_for(own, pool, TIMING) and not plan.cold
    schedule = Schedule(plan, TIMING)
    first_poll = schedule.next_offset(0)
    assert first_poll > 4  # not the cold schedule's 2 s
    assert abs(retry_after - first_poll) <= 1  # Retry-After at creation names the learned first poll
    assert bridge.wait_done(record["id"], timeout=60)["status"] == "succeeded"
    offsets = _poll_offsets(bridge, emulator, item, record)
    assert first_poll - EARLY <= offsets[0] <= first_poll + LATE, (offsets, first_poll)
    _assert_on_schedule(offsets, schedule)


def test_the_hint_moves_the_first_poll_and_a_bad_one_is_refused(make_bridge: BridgeFactory, emulator: Emulator) -> None:
    bridge = make_bridge("schedhint", POLL_MAX_DELAY_SECONDS=CAP)
    item = new_item()
    emulator.scenario(item, runningSeconds=15)
    record, retry_after = _start(bridge, item, expectedDurationSeconds=15)
    plan = _plan(bridge, record["id"])
    assert plan == learned_plan(None, TIMING, hint=15.0) and not plan.cold
    first_poll = Schedule(plan, TIMING).next_offset(0)
    assert first_poll > 2 and abs(retry_after - whole_seconds(first_poll)) <= 1  # later than the cold 2 s
    assert bridge.wait_done(record["id"], timeout=60)["status"] == "succeeded"
    offsets = _poll_offsets(bridge, emulator, item, record)
    assert first_poll - EARLY <= offsets[0] <= first_poll + LATE, (offsets, first_poll)

    for bad in (0, -1, "15", 1e9):
        response = bridge.start(
            {"workbook": f"/me/drive/items/{item}", "action": "createSession", "expectedDurationSeconds": bad}
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["expectedDurationSeconds"], response.text
