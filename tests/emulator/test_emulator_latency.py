"""The latency model (per request + per cell) for synchronous answers and for the running time of asynchronous
operations, and the emulator's own cost on a 200,000 x 10 table with ~4 MiB appends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import ASYNC, add_rows, get, table_url, wait_until

COLUMNS = [f"c{n}" for n in range(10)]


def rows(start: int, count: int) -> list[list[object]]:
    return [
        [n, f"name-{n}", n * 1.5, n % 2 == 0, "x" * 12, n % 7, "abc", 12345678, "2024-01-01", None]
        for n in range(start, start + count)
    ]


def test_a_synchronous_answer_is_held_per_request_and_per_cell(run_emu):
    """Excel's time grows with the work (table-post-rows.md: "Adding one row at a time can affect performance ...
    batch the rows"; graph-realities.md, "Payload limits"): the model holds a synchronous write
    ``perRequestSeconds + perCellSeconds x cells`` and a read likewise for the cells it returns."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync", "latency": {"perRequestSeconds": 0.2, "perCellSeconds": 0.01}})
        started = time.monotonic()
        assert (await add_rows(h, "T", [[1, 2]] * 10))[0] == 201  # 20 cells: 0.2 + 0.2 s
        assert time.monotonic() - started >= 0.4
        started = time.monotonic()
        assert (await get(h, table_url("T", "/rows/count()")))[0] == 200  # no cells: the per-request part
        assert 0.2 <= time.monotonic() - started < 0.4

    run_emu(body)


def test_an_asynchronous_operation_runs_the_modelled_time_and_then_applies(run_emu):
    """The same model gives an asynchronous write its running time when the scenario draws no duration; the write
    lands at ``created + duration`` whether anyone polls or not (graph-get-workbookoperation.md: running until
    done)."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"latency": {"perRequestSeconds": 0.1, "perCellSeconds": 0.001}})
        status, _ = await add_rows(h, "T", [[1, 2], [3, 4], [5, 6]], **{"Workbook-Session-Id": "s1", **ASYNC})
        assert status == 202
        [op] = h.admin.operations(ITEM)
        assert op["durationSeconds"] == pytest.approx(0.1 + 6 * 0.001)
        assert await wait_until(lambda: h.admin.rows(ITEM, "T")) == [[1, 2], [3, 4], [5, 6]]
        [op] = h.admin.operations(ITEM)
        assert op["phase"] == "succeeded" and op["completedAt"] == pytest.approx(op["completesAt"])

    run_emu(body)


def test_a_drawn_duration_wins_over_the_latency_model(run_emu):
    """Scenario ``duration`` (drawn per operation) stays the running time when both are given."""

    async def body(h: Harness) -> None:
        h.admin.scenario(
            ITEM,
            {"latency": {"perRequestSeconds": 5}, "duration": {"distribution": "fixed", "seconds": 0.05}},
        )
        assert (await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": "s1", **ASYNC}))[0] == 202
        [op] = h.admin.operations(ITEM)
        assert op["durationSeconds"] == 0.05

    run_emu(body)


def test_the_emulator_costs_far_less_than_the_modelled_time_on_a_200k_row_table(run_emu):
    """The brief's speed check: a 200,000 x 10 table in memory and an append of 40,000 x 10 (~4 MiB) cost the
    emulator well under the modelled 0.1 s + 5 us x 400,000 cells = 2.1 s; with the model on the append takes the
    modelled time (an asyncio sleep) while other requests are answered meanwhile."""

    async def body(h: Harness) -> None:
        h.admin.declare_table(ITEM, "Big", COLUMNS, rows=rows(0, 200_000))
        h.admin.scenario(ITEM, {"strictTables": True, "mode": "sync"})
        chunk = json.dumps({"values": rows(200_000, 40_000)}).encode()
        assert 3.5 * 2**20 < len(chunk) < 4.5 * 2**20
        headers = await h.auth(**{"Content-Type": "application/json"})
        modelled = 0.1 + 5e-6 * 40_000 * 10

        started = time.monotonic()
        response = await h.client.post(table_url("Big", "/rows"), data=chunk, headers=headers)
        cost = time.monotonic() - started
        assert response.status == 201
        assert cost < modelled / 4, f"the emulator took {cost:.3f} s for a {modelled:.1f} s modelled append"

        h.admin.patch_scenario(ITEM, latency={"perRequestSeconds": 0.1, "perCellSeconds": 5e-6})
        started = time.monotonic()
        held = asyncio.ensure_future(h.client.post(table_url("Big", "/rows"), data=chunk, headers=headers))
        await wait_until(lambda: len(h.admin.requests(item=ITEM, kind="start")) == 2)  # the append is in
        probe_started = time.monotonic()
        h.admin.patch_scenario(ITEM, latency=None)  # the probe's own answer is not held
        assert (await get(h, table_url("Big", "/rows?$top=1")))[0] == 200
        assert time.monotonic() - probe_started < 1.0 and not held.done()  # answered while the append is held
        assert (await held).status == 201
        assert modelled <= time.monotonic() - started < modelled + 1.0
        assert h.admin.row_count(ITEM, "Big") == 280_000
        assert h.admin.rows(ITEM, "Big", offset=279_999) == rows(239_999, 1)

    run_emu(body)
