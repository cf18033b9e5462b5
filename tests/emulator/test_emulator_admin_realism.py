"""The admin API of the realism switches: strict parsing of every new scenario field, PATCH of single switches,
exact paged table reads, counters, the fault log and reset."""

from __future__ import annotations

import pytest

from devhost.emulator.scenarios import ScenarioError, parse_scenario
from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import add_rows, answer


@pytest.mark.parametrize(
    "scenario, field",
    [
        ({"strictTables": "yes"}, "strictTables"),
        ({"rowAddressing": "strict"}, "rowAddressing"),
        ({"writeFaults": {"fault": "applyThen504"}}, "writeFaults"),
        ({"writeFaults": [{"fault": "applyThen504", "count": -1}]}, "writeFaults[0].count"),
        ({"writeFaultRate": {"probability": 1.5}}, "writeFaultRate.probability"),
        ({"writeFaultRate": {"probability": 0.1, "faults": []}}, "writeFaultRate.faults"),
        ({"writeFaultRate": {"probability": 0.1, "actions": ["poll"]}}, "writeFaultRate.actions"),
        ({"writeFaultRate": {"probability": 0.1, "seed": 1.5}}, "writeFaultRate.seed"),
        ({"requestPayloadLimitBytes": 0}, "requestPayloadLimitBytes"),
        ({"responsePayloadLimitBytes": "5MB"}, "responsePayloadLimitBytes"),
        ({"maxRequestCells": True}, "maxRequestCells"),
        ({"latency": {"perRequestSeconds": -0.1}}, "latency.perRequestSeconds"),
        ({"latency": {"perCellSeconds": float("inf")}}, "latency.perCellSeconds"),
        ({"latency": {"perRow": 1}}, "latency"),
        ({"operationTtlAfterEndSeconds": -1}, "operationTtlAfterEndSeconds"),
    ],
)
def test_bad_realism_fields_are_refused_naming_the_field(scenario, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(scenario)


def test_every_switch_is_off_by_default_and_round_trips(run_emu):
    """GET of a scenario shows each switch with its default (off), and a scenario read back parses to itself."""

    async def body(h: Harness) -> None:
        scenario = h.admin.scenario(ITEM, {})["scenario"]
        assert {k: scenario[k] for k in scenario if k in _SWITCHES} == _SWITCHES
        full = {
            "strictTables": True,
            "rowAddressing": "graph",
            "writeFaults": [{"fault": "applyThenDrop", "action": "createTableRow", "count": 2}],
            "writeFaultRate": {"probability": 0.03, "seed": 7},
            "requestPayloadLimitBytes": 5_000_000,
            "responsePayloadLimitBytes": 5_000_000,
            "maxRequestCells": 1_000_000,
            "latency": {"perRequestSeconds": 0.1, "perCellSeconds": 5e-6},
            "sessionExpiry": {},
            "sessionLimit": 25,
            "operationTtlAfterEndSeconds": 60,
        }
        shown = h.admin.scenario(ITEM, full)["scenario"]
        assert parse_scenario({k: shown[k] for k in shown if k != "remaining"}).to_json() == {
            k: v for k, v in shown.items() if k != "remaining"
        }
        assert shown["sessionExpiry"] == {
            "persistentIdleSeconds": 300.0,
            "nonPersistentIdleSeconds": 420.0,
            "errorCode": "invalidSessionReCreatable",
        }

    run_emu(body)


_SWITCHES = {
    "strictTables": False,
    "rowAddressing": "lenient",
    "writeFaults": [],
    "writeFaultRate": None,
    "requestPayloadLimitBytes": None,
    "responsePayloadLimitBytes": None,
    "maxRequestCells": None,
    "latency": None,
    "sessionExpiry": None,
    "sessionLimit": None,
    "operationTtlAfterEndSeconds": None,
}


def test_patch_sets_one_switch_and_keeps_the_rest_and_the_queues(run_emu):
    """``PATCH /_emulator/scenarios/{item}`` changes the fields it gives; what is left of the fault queues stays."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync", "startFaults": [{"status": 503}, {"status": 503}]})
        h.admin.inject_write_fault(ITEM, "applyThen500", count=3)
        assert (await add_rows(h, "T", [[1]]))[0] == 503
        shown = h.admin.patch_scenario(ITEM, strictTables=False, maxRequestCells=1000)["scenario"]
        assert shown["mode"] == "sync" and shown["maxRequestCells"] == 1000
        assert shown["remaining"]["startFaults"] == 1 and shown["remaining"]["writeFaults"][0]["count"] == 3
        assert [(await add_rows(h, "T", [[n]]))[0] for n in range(5)] == [503, 500, 500, 500, 201]
        response = await h.client.request("PATCH", f"/_emulator/scenarios/{ITEM}", json={"latency": {"perRequest": 1}})
        status, error = await answer(response)
        assert status == 400 and "perRequest" in error["error"]["message"]
        assert h.admin.patch_scenario("NEW", strictTables=True)["scenario"]["strictTables"] is True

    run_emu(body)


def test_table_rows_read_exactly_paged_and_counted(run_emu):
    """``GET /_emulator/tables/{item}/{table}?offset=&limit=``: the rows exactly as stored and the whole count."""

    async def body(h: Harness) -> None:
        rows = [[n, str(n), n % 3 == 0, None] for n in range(50)]
        h.admin.declare_table(ITEM, "T", ["a", "b", "c", "d"], rows=rows)
        assert h.admin.rows(ITEM, "T") == rows
        assert h.admin.table(ITEM, "T", offset=45, limit=10) == {"rows": rows[45:], "count": 50, "offset": 45}
        assert h.admin.rows(ITEM, "T", limit=2) == rows[:2]
        assert h.admin.row_count(ITEM, "T") == 50
        assert h.admin.table(ITEM, "nope") == {"rows": [], "count": 0, "offset": 0}
        status, error = await answer(await h.client.get(f"/_emulator/tables/{ITEM}/T?offset=-1"))
        assert status == 400 and "offset" in error["error"]["message"]

    run_emu(body)


def test_counters_count_requests_bytes_cells_and_faults(run_emu):
    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync"})
        h.admin.inject_write_fault(ITEM, "applyThen504")
        await add_rows(h, "T", [[1, 2, 3]] * 4)
        await add_rows(h, "T", [[1, 2, 3]])
        response = await h.client.get(
            f"/v1.0/me/drive/items/{ITEM}/workbook/tables/T/rows?$top=2", headers=await h.auth()
        )
        assert response.status == 200
        counters = h.admin.counters(ITEM)
        assert counters["requests"] == 3
        assert (counters["rowsWritten"], counters["cellsWritten"]) == (5, 15)
        assert (counters["rowsRead"], counters["cellsRead"]) == (2, 6)
        assert counters["faults"] == {"applyThen504": 1} and counters["dropped"] == 0
        assert counters["bytesIn"] > 0 and counters["bytesOut"] > 0
        whole = h.admin.counters()
        assert whole["total"] == counters and list(whole["items"]) == [ITEM]
        assert [e["fault"] for e in h.admin.faults()] == ["applyThen504"]

    run_emu(body)


def test_reset_forgets_tables_sessions_counters_and_faults(run_emu):
    async def body(h: Harness) -> None:
        h.admin.declare_table(ITEM, "T", ["a"], rows=[[1]])
        h.admin.inject_write_fault(ITEM, "applyThen504")
        await add_rows(h, "T", [[2]])
        await h.client.post(f"/v1.0/me/drive/items/{ITEM}/workbook/createSession", json={}, headers=await h.auth())
        h.admin.reset()
        assert h.admin.tables(ITEM) == [] and h.admin.sessions() == [] and h.admin.faults() == []
        assert h.admin.counters() == {"total": h.admin.counters(ITEM), "items": {}}

    run_emu(body)
