"""Graph workbook API: async/sync createSession, table rows, operations and results."""

from __future__ import annotations

import re

from tests.emulator.emulator_harness import ITEM, ITEM_PATH

ASYNC = {"Prefer": "respond-async"}
OP_URL_RE = re.compile(
    r"^http://127\.0\.0\.1:\d+/v1\.0/me/drive/items/" + ITEM + r"/workbook/operations/[0-9a-f-]{36}$"
)


def test_async_create_session_state_machine(run_emu):
    async def body(h):
        h.admin.scenario(ITEM, {"notStartedPolls": 1, "runningPolls": 3})
        headers = await h.auth(**{"client-request-id": "abc-123"})
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession",
            json={"persistChanges": True},
            headers={**headers, **ASYNC},
        )
        assert resp.status == 202
        assert await resp.json() == {}
        assert resp.headers["client-request-id"] == "abc-123"
        location = resp.headers["Location"]
        assert OP_URL_RE.match(location), location
        op_id = location.rsplit("/", 1)[1]

        polls = await h.poll_statuses(location, headers, 6)
        assert [p["status"] for p in polls] == [
            "notStarted",
            "running",
            "running",
            "running",
            "succeeded",
            "succeeded",
        ]
        assert all(p["id"] == op_id for p in polls)
        assert "resourceLocation" not in polls[3]
        done = polls[4]
        assert set(done) == {"id", "status", "resourceLocation"}
        assert done["resourceLocation"] == (f"{h.origin}/v1.0{ITEM_PATH}/workbook/sessionInfoResource(key='{op_id}')")
        assert polls[5]["resourceLocation"] == done["resourceLocation"]

        status, info, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 200
        assert set(info) == {"id", "persistChanges"}
        assert info["persistChanges"] is True
        assert len(info["id"]) > 60

        # The result also answers with the key percent-encoded.
        status, info2, _ = await h.get_url(f"/v1.0{ITEM_PATH}/workbook/sessionInfoResource(key=%27{op_id}%27)", headers)
        assert status == 200 and info2 == info

    run_emu(body)


def test_default_scenario_two_running_polls_and_item_prefixes(run_emu):
    async def body(h):
        headers = await h.auth(**ASYNC)
        for prefix in (
            "/drives/b!drive/items/ITEM2",
            "/users/u@x.com/drive/items/ITEM2",
            "/sites/contoso.sharepoint.com,1,2/drive/items/ITEM2",
            "/groups/g1/drive/items/ITEM2",
        ):
            for version in ("v1.0", "beta"):
                resp = await h.client.post(
                    f"/{version}{prefix}/workbook/createSession", json={"persistChanges": False}, headers=headers
                )
                assert resp.status == 202
                location = resp.headers["Location"]
                assert location.startswith(f"{h.origin}/{version}{prefix}/workbook/operations/")
                polls = await h.poll_statuses(location, headers, 3)
                assert [p["status"] for p in polls] == ["running", "running", "succeeded"]
                assert f"/{version}{prefix}/workbook/sessionInfoResource(key=" in polls[2]["resourceLocation"]

    run_emu(body)


def test_create_session_sync_without_prefer_and_in_sync_mode(run_emu):
    async def body(h):
        headers = await h.auth()
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession", json={"persistChanges": True}, headers=headers
        )
        assert resp.status == 201
        info = await resp.json()
        assert info["persistChanges"] is True and info["id"]
        assert "Location" not in resp.headers

        h.admin.scenario(ITEM, {"mode": "sync"})
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession",
            json={"persistChanges": False},
            headers={**headers, **ASYNC},
        )
        assert resp.status == 201
        assert (await resp.json())["persistChanges"] is False
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/tables/Table1/rows",
            json={"index": None, "values": [[1, 2]]},
            headers={**headers, **ASYNC, "Workbook-Session-Id": "s"},
        )
        assert resp.status == 201
        assert h.admin.rows(ITEM, "Table1") == [[1, 2]]

    run_emu(body)


def test_rows_async_needs_workbook_session_id(run_emu):
    async def body(h):
        headers = await h.auth()
        url = f"/v1.0{ITEM_PATH}/workbook/tables/Table1/rows"
        # Prefer but no Workbook-Session-Id: synchronous 201.
        resp = await h.client.post(url, json={"index": None, "values": [["a", 1]]}, headers={**headers, **ASYNC})
        assert resp.status == 201
        assert await resp.json() == {"index": 0, "values": [["a", 1]]}
        assert h.admin.rows(ITEM, "Table1") == [["a", 1]]

        # With a session: 202, and the row appears only when the operation succeeds.
        resp = await h.client.post(
            url,
            json={"index": None, "values": [["b", 2], ["c", 3]]},
            headers={**headers, **ASYNC, "Workbook-Session-Id": "session-1"},
        )
        assert resp.status == 202
        location = resp.headers["Location"]
        op_id = location.rsplit("/", 1)[1]
        polls = await h.poll_statuses(location, headers, 2)
        assert [p["status"] for p in polls] == ["running", "running"]
        assert h.admin.rows(ITEM, "Table1") == [["a", 1]]
        (done,) = await h.poll_statuses(location, headers, 1)
        assert done["status"] == "succeeded"
        assert done["resourceLocation"].endswith(f"/v1.0{ITEM_PATH}/workbook/tableRowOperationResult(key='{op_id}')")
        assert h.admin.rows(ITEM, "Table1") == [["a", 1], ["b", 2], ["c", 3]]
        status, row, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 200
        assert row == {"index": 1, "values": [["b", 2]]}
        # The session result endpoint does not know a row operation.
        status, err, _ = await h.get_url(f"/v1.0{ITEM_PATH}/workbook/sessionInfoResource(key='{op_id}')", headers)
        assert status == 404 and err["error"]["code"] == "itemNotFound"

        # Insert at an index.
        resp = await h.client.post(url, json={"index": 0, "values": [["z", 0]]}, headers=headers)
        assert resp.status == 201
        assert (await resp.json())["index"] == 0
        assert (h.admin.rows(ITEM, "Table1"))[0] == ["z", 0]

    run_emu(body)


def test_rows_bad_body(run_emu):
    async def body(h):
        headers = await h.auth()
        url = f"/v1.0{ITEM_PATH}/workbook/tables/T/rows"
        for payload in ({"index": None}, {"values": "x"}, {"index": "1", "values": [[1]]}, [1], {"values": []}):
            resp = await h.client.post(url, json=payload, headers=headers)
            assert resp.status == 400, payload
            err = (await resp.json())["error"]
            assert err["code"] == "invalidArgument"
            assert err["innerError"]["request-id"] == resp.headers["request-id"]
        resp = await h.client.post(url, data=b"{not json", headers={**headers, "Content-Type": "application/json"})
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalidArgument"
        assert h.admin.rows(ITEM, "T") == []

    run_emu(body)


def test_delete_row_sync_and_async(run_emu):
    async def body(h):
        headers = await h.auth()
        base = f"/v1.0{ITEM_PATH}/workbook/tables/T/rows"
        for n in range(4):
            assert (await h.client.post(base, json={"values": [[n]]}, headers=headers)).status == 201
        resp = await h.client.delete(f"{base}/1", headers=headers)
        assert resp.status == 200
        assert await resp.read() == b""
        assert h.admin.rows(ITEM, "T") == [[0], [2], [3]]
        resp = await h.client.delete(f"{base}/itemAt(index=2)", headers=headers)
        assert resp.status == 200
        assert h.admin.rows(ITEM, "T") == [[0], [2]]

        resp = await h.client.delete(f"{base}/itemAt(index=5)", headers=headers)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "itemNotFound"
        resp = await h.client.delete(f"{base}/7", headers=headers)
        assert resp.status == 404

        resp = await h.client.delete(
            f"{base}/itemAt(index=0)", headers={**headers, **ASYNC, "Workbook-Session-Id": "s"}
        )
        assert resp.status == 202
        location = resp.headers["Location"]
        polls = await h.poll_statuses(location, headers, 3)
        assert [p["status"] for p in polls] == ["running", "running", "succeeded"]
        assert "resourceLocation" not in polls[2]
        assert h.admin.rows(ITEM, "T") == [[2]]

    run_emu(body)


def test_pascal_case_statuses(run_emu):
    async def body(h):
        h.admin.scenario(ITEM, {"statusCase": "pascal", "notStartedPolls": 1, "runningPolls": 1})
        headers = await h.auth()
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession", json={"persistChanges": True}, headers={**headers, **ASYNC}
        )
        polls = await h.poll_statuses(resp.headers["Location"], headers, 3)
        assert [p["status"] for p in polls] == ["NotStarted", "Running", "Completed"]
        assert "resourceLocation" in polls[2]

        h.admin.scenario(ITEM, {"statusCase": "pascal", "runningPolls": 0, "outcome": "failed"})
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession", json={"persistChanges": True}, headers={**headers, **ASYNC}
        )
        (failed,) = await h.poll_statuses(resp.headers["Location"], headers, 1)
        assert failed["status"] == "Failed"

    run_emu(body)


def test_failed_outcome_has_three_level_chain_and_no_state_change(run_emu):
    async def body(h):
        h.admin.scenario(ITEM, {"outcome": "failed", "runningPolls": 1})
        headers = await h.auth()
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/tables/T/rows",
            json={"index": None, "values": [[1]]},
            headers={**headers, **ASYNC, "Workbook-Session-Id": "s"},
        )
        assert resp.status == 202
        polls = await h.poll_statuses(resp.headers["Location"], headers, 3)
        assert [p["status"] for p in polls] == ["running", "failed", "failed"]
        failed = polls[1]
        assert "resourceLocation" not in failed
        err = failed["error"]
        assert err["code"] == "internalServerError"
        assert err["innerError"]["code"] == "internalServerErrorUncategorized"
        assert err["innerError"]["innerError"]["code"] == "GenericFileOpenError"
        assert err["innerError"]["innerError"]["message"] == "The workbook cannot be opened."
        assert h.admin.rows(ITEM, "T") == []
        op_id = failed["id"]
        status, _, _ = await h.get_url(f"/v1.0{ITEM_PATH}/workbook/tableRowOperationResult(key='{op_id}')", headers)
        assert status == 404

        custom = {"code": "generalException", "message": "boom", "innerError": {"code": "invalidSessionReCreatable"}}
        h.admin.scenario(ITEM, {"outcome": "failed", "runningPolls": 0, "error": custom})
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession", json={"persistChanges": True}, headers={**headers, **ASYNC}
        )
        (failed,) = await h.poll_statuses(resp.headers["Location"], headers, 1)
        assert failed["error"] == custom

    run_emu(body)


def test_unknown_operation_and_unknown_segment(run_emu):
    async def body(h):
        headers = await h.auth()
        status, err, _ = await h.get_url(
            f"/v1.0{ITEM_PATH}/workbook/operations/00000000-0000-0000-0000-000000000000", headers
        )
        assert status == 404
        assert err["error"]["code"] == "itemNotFound"
        status, err, _ = await h.get_url(f"/v1.0{ITEM_PATH}/workbook/nonsense", headers)
        assert status == 400
        assert "error" in err

    run_emu(body)
