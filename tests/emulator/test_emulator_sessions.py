"""Sessions that expire (scenario ``sessionExpiry``), refreshSession and closeSession, the invalidSession* answer,
and the per-workbook session cap (``sessionLimit``)."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import ASYNC, WORKBOOK, add_rows, answer, chain_codes, create_session, wait_until


def expiring(h: Harness, **expiry: object) -> None:
    h.admin.scenario(ITEM, {"mode": "sync", "sessionExpiry": dict(expiry)})


async def control(h: Harness, verb: str, session_id: str | None) -> tuple[int, object]:
    headers = await h.auth(**({"Workbook-Session-Id": session_id} if session_id else {}))
    return await answer(await h.client.post(f"{WORKBOOK}/{verb}", headers=headers))


def test_sessions_expire_after_about_5_or_7_minutes_idle_by_default(run_emu):
    """resources/excel.md ("Usage") and microsoft-graph-docs PR #5575: "Typically the persistent session expires
    after about 5 minutes of inactivity. Non persistent session expires after about 7 minutes of inactivity.\""""

    async def body(h: Harness) -> None:
        expiring(h)
        await create_session(h, persist=True)
        await create_session(h, persist=False)
        idle = {s["persistChanges"]: s["expiresAt"] - s["lastUsedAt"] for s in h.admin.sessions(ITEM)}
        assert idle == {True: pytest.approx(300), False: pytest.approx(420)}

    run_emu(body)


def test_a_request_renews_its_session(run_emu):
    """excel.md: sessions die after "inactivity"; any request that carries the session id renews it (reads and
    writes alike; an operation poll is not a sessionful request, excel-manage-sessions.md "Request types")."""

    async def body(h: Harness) -> None:
        expiring(h)
        session = await create_session(h)
        [before] = h.admin.sessions(ITEM)
        assert (await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": session}))[0] == 201
        [after] = h.admin.sessions(ITEM)
        assert after["lastUsedAt"] > before["lastUsedAt"]
        assert after["expiresAt"] == pytest.approx(after["lastUsedAt"] + 300)

    run_emu(body)


def test_an_idle_session_dies_and_a_request_with_it_gets_invalid_session_and_applies_nothing(run_emu):
    """resources/excel.md: "If the session id has expired, a 404 HTTP error code is returned on the session";
    workbook-error-codes.md: the second-level ``invalidSessionReCreatable`` ("The session specified in the request
    does not exist or is invalid due to a transient error"). Nothing is applied; a dead session stays dead."""

    async def body(h: Harness) -> None:
        expiring(h, persistentIdleSeconds=0.2)
        session = await create_session(h)
        await wait_until(lambda: h.admin.sessions(ITEM)[0]["state"] == "expired")
        for headers in ({"Workbook-Session-Id": session}, {"Workbook-Session-Id": session, **ASYNC}):
            status, error = await add_rows(h, "T", [[1]], **headers)
            assert status == 404
            assert chain_codes(error["error"])[:2] == ["notFound", "invalidSessionReCreatable"]
        assert h.admin.rows(ITEM, "T") == [] and h.admin.operations(ITEM) == []
        assert (await control(h, "refreshSession", session))[0] == 404  # refreshing cannot revive it
        assert (await add_rows(h, "T", [[1]]))[0] == 201  # a sessionless write still works
        assert h.admin.counters(ITEM)["faults"] == {"invalidSession": 3}

    run_emu(body)


def test_refresh_session_keeps_a_session_alive_and_answers_204(run_emu):
    """workbook-refreshsession.md: ``POST /workbook/refreshSession`` with header ``workbook-session-id``, "If
    successful, this method returns 204 No Content"; "Note that workbook-session-id header is required"."""

    async def body(h: Harness) -> None:
        expiring(h)
        session = await create_session(h, persist=False)
        [before] = h.admin.sessions(ITEM)
        assert await control(h, "refreshSession", session) == (204, None)
        [after] = h.admin.sessions(ITEM)
        assert after["lastUsedAt"] > before["lastUsedAt"] and after["state"] == "alive"
        status, error = await control(h, "refreshSession", None)
        assert status == 400 and "Workbook-Session-Id" in error["error"]["message"]  # type: ignore[index]
        status, error = await control(h, "refreshSession", "no-such-session")
        assert status == 404 and error["error"]["innerError"]["code"] == "invalidSessionReCreatable"  # type: ignore[index]

    run_emu(body)


def test_a_closed_session_is_refused_from_then_on(run_emu):
    """workbook-closesession.md: ``POST /workbook/closeSession`` with the ``workbook-session-id`` header ("Required")
    answers 204; a request with the closed session gets the invalidSession* answer and applies nothing."""

    async def body(h: Harness) -> None:
        expiring(h)
        session = await create_session(h)
        assert await control(h, "closeSession", session) == (204, None)
        assert h.admin.sessions(ITEM)[0]["state"] == "closed"
        status, error = await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": session})
        assert status == 404 and "closed" in error["error"]["innerError"]["message"]
        assert (await control(h, "closeSession", session))[0] == 404
        assert h.admin.rows(ITEM, "T") == []

    run_emu(body)


def test_the_session_error_code_is_configurable_among_the_documented_ones(run_emu):
    """workbook-error-codes.md lists seven invalidSession* codes; the scenario picks which one a dead session gets
    (``invalidSessionReCreatable`` by default)."""

    async def body(h: Harness) -> None:
        expiring(h, errorCode="invalidSessionNotFound")
        session = await create_session(h)
        assert h.admin.expire_sessions(ITEM, session) == [session]
        status, error = await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": session})
        assert status == 404 and error["error"]["innerError"]["code"] == "invalidSessionNotFound"
        response = await h.client.put(
            f"/_emulator/scenarios/{ITEM}", json={"sessionExpiry": {"errorCode": "sessionGone"}}
        )
        assert response.status == 400

    run_emu(body)


def test_an_operation_that_waited_longer_than_its_session_lived_finds_it_dead(run_emu):
    """Issue 19: "An operation that waits in a workbook's lane can wait longer than that and then send a dead
    session id." The admin API expires a session at once so tests need not wait minutes."""

    async def body(h: Harness) -> None:
        expiring(h)
        h.admin.patch_scenario(ITEM, mode="async")
        session = await create_session(h)
        h.admin.expire_sessions(ITEM)
        status, error = await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": session, **ASYNC})
        assert status == 404 and error["error"]["innerError"]["code"] == "invalidSessionReCreatable"
        assert h.admin.operations(ITEM) == [] and h.admin.rows(ITEM, "T") == []

    run_emu(body)


def test_without_session_expiry_any_session_id_is_accepted(run_emu):
    """The default, as the emulator always was: session ids are not checked, refresh and close answer 204."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync"})
        assert (await add_rows(h, "T", [[1]], **{"Workbook-Session-Id": "made-up"}))[0] == 201
        assert (await control(h, "refreshSession", None))[0] == 204
        assert (await control(h, "closeSession", "made-up"))[0] == 204

    run_emu(body)


def test_about_25_sessions_per_workbook_then_429(run_emu):
    """microsoft-graph-docs #416 (a maintainer, on 429s): "limiting the number of sessions being created on the same
    workbook (which caps around 25)"; workbook-error-codes.md: 429 ``tooManyRequests`` /
    ``tooManyRequestsUncategorized``. Closed (and, with expiry on, expired) sessions free their place."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync", "sessionLimit": 3})
        sessions = [await create_session(h) for _ in range(3)]
        response = await h.client.post(f"{WORKBOOK}/createSession", json={}, headers=await h.auth())
        status, error = await answer(response)
        assert status == 429
        assert chain_codes(error["error"])[:2] == ["tooManyRequests", "tooManyRequestsUncategorized"]
        assert (await control(h, "closeSession", sessions[0]))[0] == 204
        await create_session(h)
        assert len(h.admin.sessions(ITEM)) == 4

    run_emu(body)


@pytest.mark.parametrize(
    "scenario, field",
    [
        ({"sessionExpiry": {"persistentIdleSeconds": 0}}, "persistentIdleSeconds"),
        ({"sessionExpiry": {"nonPersistentIdleSeconds": "7m"}}, "nonPersistentIdleSeconds"),
        ({"sessionExpiry": {"idle": 5}}, "idle"),
        ({"sessionExpiry": 300}, "sessionExpiry"),
        ({"sessionLimit": 0}, "sessionLimit"),
    ],
)
def test_bad_session_fields_are_refused_naming_the_field(run_emu, scenario, field):
    async def body(h: Harness) -> None:
        status, error = await answer(await h.client.put(f"/_emulator/scenarios/{ITEM}", json=scenario))
        assert status == 400 and field in error["error"]["message"]

    run_emu(body)


def test_expiring_an_unknown_session_answers_404_and_bad_input_400(run_emu):
    async def body(h: Harness) -> None:
        status, _ = await answer(await h.client.post(f"/_emulator/sessions/{ITEM}/expire", json={"sessionId": "x"}))
        assert status == 404
        status, _ = await answer(await h.client.post(f"/_emulator/sessions/{ITEM}/expire", json={"id": "x"}))
        assert status == 400

    run_emu(body)
