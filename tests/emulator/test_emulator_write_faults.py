"""Apply-then-fail faults on writes: the write lands, then the answer is a 504, a 500 or nothing at all; queued for
the next N writes to an item or drawn with a seeded probability. The classic fail-before-apply faults stay."""

from __future__ import annotations

import aiohttp
import pytest

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import ASYNC, WORKBOOK, add_rows, answer, chain_codes, table_url


def test_apply_then_504_lands_the_row_and_answers_the_gateway_timeout_chain(run_emu):
    """table-post-rows.md: "This request might occasionally result in a 504 HTTP error. The appropriate response to
    this error is to repeat the request." A gateway 504 can come after the workbook applied the write (issue 19):
    the row is in the table once, and the answer is microsoft-graph-explorer-v4 #3907's chain
    (``MaxRequestDurationExceeded`` / ``gatewayTimeoutUncategorized`` / ``MaxRequestDurationExceeded``)."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThen504")
        status, error = await add_rows(h, "T", [[1, "a"]])
        assert status == 504
        assert chain_codes(error["error"]) == [
            "MaxRequestDurationExceeded",
            "gatewayTimeoutUncategorized",
            "MaxRequestDurationExceeded",
        ]
        assert h.admin.rows(ITEM, "T") == [[1, "a"]]
        status, _ = await add_rows(h, "T", [[1, "a"]])  # the repeat the docs advise: now the row is there twice
        assert status == 201 and h.admin.rows(ITEM, "T") == [[1, "a"], [1, "a"]]
        [event] = h.admin.faults(ITEM)
        assert event["fault"] == "applyThen504" and event["action"] == "createTableRow"
        [first, _] = h.admin.requests(item=ITEM, kind="start")
        assert first["seq"] == event["seq"] and first["status"] == 504

    run_emu(body)


def test_apply_then_500_lands_the_row_and_answers_internal_server_error(run_emu):
    """workbook-error-codes.md: 500 ``internalServerError``, second level ``internalServerErrorUncategorized``. The
    write is applied all the same."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThen500", action="createTableRow")
        status, error = await add_rows(h, "T", [[7]])
        assert status == 500
        assert chain_codes(error["error"]) == ["internalServerError", "internalServerErrorUncategorized"]
        assert h.admin.rows(ITEM, "T") == [[7]]

    run_emu(body)


def test_apply_then_drop_lands_the_row_and_closes_the_connection_without_an_answer(run_emu):
    """The same outcome-unknown case for a dropped connection (graph-realities.md, "Writes whose outcome is
    unknown": "The same holds for a dropped connection ... after the request was sent"): the client gets no status
    line at all; the request log has no status for it and the counters count it dropped."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThenDrop")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await h.client.post(table_url("T", "/rows"), json={"values": [[1]]}, headers=await h.auth())
        assert h.admin.rows(ITEM, "T") == [[1]]
        [record] = h.admin.requests(item=ITEM, kind="start")
        assert record["status"] is None
        counters = h.admin.counters(ITEM)
        assert counters["dropped"] == 1 and counters["faults"] == {"applyThenDrop": 1}
        assert (await add_rows(h, "T", [[2]]))[0] == 201  # the next write answers again

    run_emu(body)


def test_an_asynchronous_write_that_applies_then_fails_hands_out_no_location(run_emu):
    """table-post-rows.md (Example 2) and workbook-createsession.md: a ``Prefer: respond-async`` write answers 202 +
    Location. When the gateway fails after the workbook took the write, the client gets the 504 instead, never
    the Location, and the row is there."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThen504")
        status, _ = await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": "s1", **ASYNC})
        assert status == 504
        assert h.admin.rows(ITEM, "T") == [[1]] and h.admin.operations(ITEM) == []

    run_emu(body)


def test_create_session_that_applies_then_fails_leaves_a_session_behind(run_emu):
    """workbook-createsession.md, "Error handling": "This request might occasionally receive a 504 HTTP error. The
    appropriate response to this error is to repeat the request." The session was made all the same."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThen504", action="createSession")
        assert (await add_rows(h, "T", [[1]]))[0] == 201  # a row write does not match the fault
        response = await h.client.post(
            f"{WORKBOOK}/createSession", json={"persistChanges": True}, headers=await h.auth()
        )
        assert response.status == 504
        [session] = h.admin.sessions(ITEM)
        assert session["persistChanges"] is True and session["state"] == "alive"

    run_emu(body)


def test_the_next_n_writes_fail_then_writes_answer_again(run_emu):
    """ "The next N writes to item X": each queued fault fires for its count, in order, on the item only."""

    async def body(h: Harness) -> None:
        h.admin.inject_write_fault(ITEM, "applyThen504", count=2)
        queue = h.admin.inject_write_fault(ITEM, "applyThen500")
        assert [(f["fault"], f["count"]) for f in queue] == [("applyThen504", 2), ("applyThen500", 1)]
        statuses = [(await add_rows(h, "T", [[n]]))[0] for n in range(4)]
        assert statuses == [504, 504, 500, 201]
        assert h.admin.rows(ITEM, "T") == [[0], [1], [2], [3]]
        other = await h.client.post(
            "/v1.0/me/drive/items/OTHER/workbook/tables/T/rows", json={"values": [[1]]}, headers=await h.auth()
        )
        assert other.status == 201
        assert h.admin.counters()["total"]["faults"] == {"applyThen500": 1, "applyThen504": 2}

    run_emu(body)


def test_a_seeded_rate_draws_the_same_faults_in_every_run(run_emu):
    """For benches: "a seeded probability (e.g. 3 % of writes)". The same seed and the same writes give the same
    faults; every write lands whatever its answer."""
    runs: list[list[int]] = []

    async def body(h: Harness) -> None:
        h.admin.scenario(
            ITEM,
            {
                "mode": "sync",
                "writeFaultRate": {"probability": 0.3, "seed": 11, "faults": ["applyThen504", "applyThen500"]},
            },
        )
        runs.append([(await add_rows(h, "T", [[n]]))[0] for n in range(40)])
        assert len(h.admin.rows(ITEM, "T")) == 40
        fired = h.admin.counters(ITEM)["faults"]
        assert sum(fired.values()) == sum(1 for s in runs[-1] if s != 201)

    run_emu(body)
    run_emu(body)
    assert runs[0] == runs[1]
    assert 3 <= sum(1 for s in runs[0] if s != 201) <= 24 and set(runs[0]) == {201, 500, 504}


def test_classic_start_faults_still_fail_before_anything_is_applied(run_emu):
    """The fail-before-apply faults (scenario ``startFaults``) stay as they were: the answer comes, nothing lands."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"startFaults": [{"status": 504}], "writeFaults": [{"fault": "applyThen504"}]})
        status, _ = await add_rows(h, "T", [[1]])
        assert status == 504 and h.admin.rows(ITEM, "T") == []  # the start fault, first
        status, _ = await add_rows(h, "T", [[2]])
        assert status == 504 and h.admin.rows(ITEM, "T") == [[2]]  # then the write fault

    run_emu(body)


@pytest.mark.parametrize(
    "fault, reason",
    [
        ({"fault": "applyThen404"}, "fault"),
        ({"fault": "applyThen504", "count": 0}, "count"),
        ({"fault": "applyThen504", "action": "poll"}, "action"),
        ({"fault": "insertDeleteConflict", "action": "createSession"}, "action"),
        ({"fault": "applyThen504", "error": {"message": "no code"}}, "error"),
        ({"fault": "applyThen504", "when": "later"}, "when"),
    ],
)
def test_injecting_a_bad_write_fault_answers_400(run_emu, fault, reason):
    async def body(h: Harness) -> None:
        status, error = await answer(await h.client.post(f"/_emulator/scenarios/{ITEM}/write-faults", json=fault))
        assert status == 400 and reason in error["error"]["message"]

    run_emu(body)
