"""Operation URLs that stop answering (scenario ``operationTtlAfterEndSeconds``, and the older
``operationTtlSeconds`` counted from creation), although the write was applied."""

from __future__ import annotations

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import ASYNC, add_rows, wait_until, wait_until_async

SESSION = {"Workbook-Session-Id": "s1", **ASYNC}


async def location_of_row_add(h: Harness, values: list[list[object]]) -> str:
    response = await h.client.post(
        "/v1.0/me/drive/items/" + ITEM + "/workbook/tables/T/rows",
        json={"values": values},
        headers=await h.auth(**SESSION),
    )
    assert response.status == 202
    return response.headers["Location"]


def test_an_operation_url_404s_after_the_operation_ended_though_the_row_is_there(run_emu):
    """graph-get-workbookoperation.md documents ``200 OK`` with the status while the operation exists and says
    nothing of how long an operation id stays valid (graph-excel-async-facts.md: "How long an operation id stays
    valid is not documented"). Harshest reading: once ended, the URL can answer 404 ``itemNotFound`` at any time,
    here at once (``operationTtlAfterEndSeconds: 0``), so the client never sees ``succeeded``."""

    async def body(h: Harness) -> None:
        h.admin.scenario(
            ITEM, {"duration": {"distribution": "fixed", "seconds": 0.2}, "operationTtlAfterEndSeconds": 0}
        )
        headers = await h.auth()
        location = await location_of_row_add(h, [[1, "a"]])
        status, first, _ = await h.get_url(location, headers)
        assert status == 200 and first["status"] == "running"
        await wait_until(lambda: h.admin.rows(ITEM, "T"))
        status, error, _ = await h.get_url(location, headers)
        assert status == 404 and error["error"]["code"] == "itemNotFound"
        assert h.admin.rows(ITEM, "T") == [[1, "a"]]
        [op] = h.admin.operations(ITEM)
        assert op["phase"] == "succeeded" and op["firstTerminalPollAt"] is None

    run_emu(body)


def test_with_a_grace_time_the_terminal_poll_answers_then_the_url_expires(run_emu):
    """With ``operationTtlAfterEndSeconds: t`` the ended operation still answers for t seconds (a poll-count
    operation ends at its terminal poll, which answers ``succeeded``), then 404 ``itemNotFound``."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"runningPolls": 1, "operationTtlAfterEndSeconds": 1.0})
        headers = await h.auth()
        location = await location_of_row_add(h, [[1]])
        polls = await h.poll_statuses(location, headers, 3)
        assert [p["status"] for p in polls] == ["running", "succeeded", "succeeded"]

        async def expired() -> bool:
            status, answer_, _ = await h.get_url(location, headers)
            assert status == 404 or answer_["status"] == "succeeded"
            return status == 404

        await wait_until_async(expired)
        [op] = h.admin.operations(ITEM)
        assert op["phase"] == "succeeded" and h.admin.rows(ITEM, "T") == [[1]]

    run_emu(body)


def test_operation_urls_never_expire_by_default(run_emu):
    """The default, as the emulator always was: an ended operation keeps answering its outcome."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"runningPolls": 0})
        headers = await h.auth()
        location = await location_of_row_add(h, [[1]])
        polls = await h.poll_statuses(location, headers, 3)
        assert [p["status"] for p in polls] == ["succeeded"] * 3
        assert (await add_rows(h, "T", [[2]]))[0] == 201

    run_emu(body)
