"""Emulator realism: drawn operation durations and per-workbook contention.

Follows the Graph facts (shared reference graph-excel-async-facts.md): "One workbook should get one request
at a time" (Throttling and errors), 429 with a possibly fractional Retry-After, 409 conflict (accessConflict),
and the operation resource that reports running until the work is done.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from devhost.emulator.scenarios import ScenarioError, parse_scenario
from tests.emulator.emulator_harness import ITEM, ITEM_PATH, Harness

ASYNC = {"Prefer": "respond-async"}
ROWS = f"/v1.0{ITEM_PATH}/workbook/tables/T1/rows"


async def wait_until(check: Any, timeout: float = 10.0) -> Any:
    """Poll `check()` until it returns something truthy, with a deadline (the emulator's clock runs on its own
    thread: this loop only sleeps between looks)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def add_row(h: Harness, values: list[Any], **extra: str) -> Any:
    headers = await h.auth(**{"Workbook-Session-Id": "s1", **ASYNC, **extra})
    return await h.client.post(ROWS, json={"values": [values]}, headers=headers)


async def create_sessions(h: Harness, item: str, count: int) -> list[float]:
    headers = await h.auth(**ASYNC)
    for _ in range(count):
        resp = await h.client.post(f"/v1.0/me/drive/items/{item}/workbook/createSession", json={}, headers=headers)
        assert resp.status == 202
    return [op["durationSeconds"] for op in h.admin.operations(item)]


@pytest.mark.parametrize(
    "duration, low, high",
    [
        ({"distribution": "fixed", "seconds": 3.5}, 3.5, 3.5),
        ({"distribution": "logUniform", "min": 1, "max": 600, "seed": 7}, 1.0, 600.0),
        ({"distribution": "lognormal", "median": 20, "sigma": 0.3, "seed": 7}, 0.0, math.inf),
    ],
)
def test_each_operation_draws_its_duration_within_the_support(run_emu, duration, low, high):
    async def body(h: Harness) -> None:
        h.admin.scenario("ITEMD", {"duration": duration})
        drawn = await create_sessions(h, "ITEMD", 40)
        assert len(drawn) == 40 and all(low <= d <= high for d in drawn), drawn
        if duration["distribution"] != "fixed":
            assert len(set(drawn)) == 40  # one draw per operation, not one per scenario
        if duration["distribution"] == "lognormal":  # median 20: about half above, half below
            assert 10 <= sum(d > 20 for d in drawn) <= 30
        [op, *_] = h.admin.operations("ITEMD")
        assert op["completesAt"] == pytest.approx(op["createdAt"] + op["durationSeconds"])

    run_emu(body)


def test_seeded_runs_draw_the_same_durations_and_unseeded_ones_differ(run_emu):
    seeded = {"duration": {"distribution": "logUniform", "min": 0.1, "max": 60, "seed": 42}}
    unseeded = {"duration": {"distribution": "logUniform", "min": 0.1, "max": 60}}
    runs: list[list[float]] = []

    async def body(h: Harness) -> None:
        h.admin.scenario("A", seeded)
        h.admin.scenario("B", unseeded)
        runs.append(await create_sessions(h, "A", 10))
        runs.append(await create_sessions(h, "B", 10))

    run_emu(body)
    run_emu(body)
    assert runs[0] == runs[2]
    assert runs[1] != runs[3]


def test_action_duration_overrides_the_item_duration(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(
            ITEM,
            {
                "duration": {"distribution": "fixed", "seconds": 50},
                "actionDurations": {"createTableRow": {"distribution": "fixed", "seconds": 0.2}},
            },
        )
        assert (await add_row(h, [1])).status == 202
        await create_sessions(h, ITEM, 1)
        assert sorted(op["durationSeconds"] for op in h.admin.operations(ITEM)) == [0.2, 50.0]

    run_emu(body)


def test_running_until_created_plus_duration_then_the_row_is_written_polled_or_not(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"duration": {"distribution": "fixed", "seconds": 0.6}})
        headers = await h.auth()
        location = (await add_row(h, [1, "one"])).headers["Location"]
        status, first, _ = await h.get_url(location, headers)
        assert status == 200 and first["status"] == "running"
        assert h.admin.rows(ITEM, "T1") == []
        # nobody polls: the row still lands once the duration has passed (Excel works whether asked or not)
        assert await wait_until(lambda: h.admin.rows(ITEM, "T1")) == [[1, "one"]]
        [op] = h.admin.operations(ITEM)
        assert op["phase"] == "succeeded" and op["completedAt"] == pytest.approx(op["completesAt"])
        assert op["firstTerminalPollAt"] is None
        _, done, _ = await h.get_url(location, headers)
        assert done["status"] == "succeeded"
        [op] = h.admin.operations(ITEM)
        assert op["firstTerminalPollAt"] >= op["completedAt"]
        polls = h.admin.requests(kind="operation")
        assert [p["phase"] for p in polls] == ["running", "succeeded"]
        assert polls[1]["time"] == pytest.approx(op["firstTerminalPollAt"], abs=0.05)

    run_emu(body)


def test_throttle_mode_answers_a_second_write_429_with_retry_after_until_the_first_finishes(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(
            ITEM,
            {
                "duration": {"distribution": "fixed", "seconds": 0.8},
                "contention": "throttle",
                "contentionRetryAfterSeconds": 2.128,
            },
        )
        headers = await h.auth()
        location = (await add_row(h, [1])).headers["Location"]
        second = await add_row(h, [2])
        assert second.status == 429
        assert second.headers["Retry-After"] == "2.128"
        error = (await second.json())["error"]
        assert error["code"] == "tooManyRequests" and set(error["innerError"]) >= {"date", "request-id"}
        for _ in range(3):  # polls are reads: never contention
            status, _, _ = await h.get_url(location, headers)
            assert status == 200
        assert h.admin.stats()["contention"] == {"throttled": 1, "conflicts": 0, "merge": 0}
        await wait_until(lambda: h.admin.rows(ITEM, "T1"))
        assert (await add_row(h, [3])).status == 202  # the first finished: accepted
        await wait_until(lambda: _rows_are(h, [[1], [3]]))
        figures = h.admin.stats()
        assert figures["contention"]["throttled"] == 1
        assert figures["requests"]["operation"] == 3

    run_emu(body)


def _rows_are(h: Harness, want: list[list[Any]]) -> bool:
    return h.admin.rows(ITEM, "T1") == want


def test_conflict_mode_answers_409_access_conflict_and_writes_nothing(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"duration": {"distribution": "fixed", "seconds": 0.5}, "contention": "conflict"})
        assert (await add_row(h, [1])).status == 202
        second = await add_row(h, [2])
        assert second.status == 409
        error = (await second.json())["error"]
        assert error["code"] == "conflict" and error["innerError"]["code"] == "accessConflict"
        headers = await h.auth(**ASYNC)
        session = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers=headers)
        assert session.status == 409  # createSession is a write on the workbook too
        await wait_until(lambda: h.admin.rows(ITEM, "T1"))
        assert h.admin.rows(ITEM, "T1") == [[1]]
        assert h.admin.stats()["contention"]["conflicts"] == 2

    run_emu(body)


def test_merge_mode_accepts_the_write_and_fails_its_operation(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"duration": {"distribution": "fixed", "seconds": 0.4}, "contention": "merge"})
        headers = await h.auth()
        assert (await add_row(h, [1])).status == 202
        second = await add_row(h, [2])
        assert second.status == 202
        headers_async = await h.auth(**{"Workbook-Session-Id": "s1", **ASYNC})
        bad = await h.client.post(ROWS, json={"values": "nope"}, headers=headers_async)
        assert bad.status == 400  # refused as bad input: no operation, no merge counted
        await wait_until(lambda: _all_terminal(h))
        _, answer, _ = await h.get_url(second.headers["Location"], headers)
        assert answer["status"] == "failed" and answer["error"]["innerError"]["code"] == "accessConflict"
        assert h.admin.rows(ITEM, "T1") == [[1]]
        assert h.admin.stats()["contention"] == {"throttled": 0, "conflicts": 1, "merge": 1}

    run_emu(body)


def _all_terminal(h: Harness) -> bool:
    return all(op["phase"] in ("succeeded", "failed") for op in h.admin.operations(ITEM))


def test_contention_off_by_default_accepts_concurrent_writes(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"duration": {"distribution": "fixed", "seconds": 0.3}})
        assert [(await add_row(h, [n])).status for n in range(3)] == [202, 202, 202]
        await wait_until(lambda: _rows_are(h, [[0], [1], [2]]))
        assert h.admin.stats()["contention"]["throttled"] == 0

    run_emu(body)


def test_contention_with_poll_count_operations_lasts_until_the_terminal_poll(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"runningPolls": 1, "contention": "throttle"})
        headers = await h.auth()
        location = (await add_row(h, [1])).headers["Location"]
        assert (await add_row(h, [2])).status == 429
        assert [p["status"] for p in await h.poll_statuses(location, headers, 2)] == ["running", "succeeded"]
        assert (await add_row(h, [3])).status == 202

    run_emu(body)


@pytest.mark.parametrize(
    "scenario, field",
    [
        ({"duration": {"distribution": "uniform", "min": 1, "max": 2}}, "duration.distribution"),
        ({"duration": {"distribution": "logUniform", "min": 0, "max": 2}}, "duration.min"),
        ({"duration": {"distribution": "logUniform", "min": 3, "max": 2}}, "duration.max"),
        ({"duration": {"distribution": "lognormal", "median": 3}}, "duration.sigma"),
        ({"duration": {"distribution": "fixed", "seconds": 1, "sigma": 1}}, "duration"),
        ({"duration": {"distribution": "fixed", "seconds": 1, "seed": "x"}}, "duration.seed"),
        ({"duration": 5}, "duration"),
        ({"actionDurations": {"poll": {"distribution": "fixed", "seconds": 1}}}, "actionDurations.poll"),
        (
            {"actionDurations": {"createSession": {"distribution": "fixed", "seconds": -1}}},
            "actionDurations.createSession.seconds",
        ),
        ({"runningSeconds": 1, "duration": {"distribution": "fixed", "seconds": 1}}, "runningSeconds"),
        ({"contention": "sometimes"}, "contention"),
        ({"contentionRetryAfterSeconds": -1}, "contentionRetryAfterSeconds"),
        ({"contentionRetryAfterSeconds": True}, "contentionRetryAfterSeconds"),
    ],
)
def test_bad_realism_fields_are_refused_naming_the_field(scenario, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        parse_scenario(scenario)


def test_admin_put_scenario_refuses_a_bad_duration_with_400(run_emu):
    async def body(h: Harness) -> None:
        resp = await h.client.put(f"/_emulator/scenarios/{ITEM}", json={"duration": {"distribution": "nope"}})
        assert resp.status == 400
        assert "duration.distribution" in (await resp.json())["error"]["message"]

    run_emu(body)
