"""Request log and admin API."""

from __future__ import annotations

import itertools
import json

from tests.emulator.emulator_harness import ITEM, ITEM_PATH

ASYNC = {"Prefer": "respond-async"}
FIELDS = {
    "seq",
    "time",
    "method",
    "host",
    "path",
    "query",
    "kind",
    "item",
    "operationId",
    "action",
    "auth",
    "status",
    "prefer",
    "workbookSessionId",
    "clientRequestId",
    "user",
    "grantType",
    "phase",
    "contention",
}


def test_request_log_content_and_no_token(run_emu):
    async def body(h):
        token = await h.token()
        headers = {"Authorization": f"Bearer {token}", "client-request-id": "cid-1"}
        h.admin.scenario(ITEM, {"runningPolls": 1})
        r = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/tables/Table1/rows",
            json={"index": None, "values": [[1, "x"]]},
            headers={**headers, **ASYNC, "Workbook-Session-Id": "sess-9"},
        )
        assert r.status == 202
        location = r.headers["Location"]
        op_id = location.rsplit("/", 1)[1]
        polls = await h.poll_statuses(location, headers, 2)
        status, _, _ = await h.get_url(polls[1]["resourceLocation"], headers)
        assert status == 200
        await h.client.get(f"/v1.0{ITEM_PATH}/workbook/createSession?access_token={token}", headers=headers)
        await h.client.get("/somewhere/else")
        # Admin requests are not logged.
        h.admin.rows(ITEM, "Table1")

        log = h.admin.requests()
        assert token not in json.dumps(log)
        assert all(set(entry) == FIELDS for entry in log)
        assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
        assert all(a["time"] <= b["time"] for a, b in itertools.pairwise(log))
        assert [e["kind"] for e in log] == ["token", "start", "operation", "operation", "result", "other", "other"]

        tok, start, op1, op2, result, other, elsewhere = log
        assert tok["path"] == "/msi/token" and tok["auth"] == "none" and tok["status"] == 200
        assert tok["item"] is None
        assert start["method"] == "POST"
        assert start["host"] == f"127.0.0.1:{h.client.port}"
        assert start["path"] == f"/v1.0{ITEM_PATH}/workbook/tables/Table1/rows"
        assert start["item"] == ITEM
        assert start["action"] == "createTableRow"
        assert start["operationId"] == op_id
        assert start["auth"] == "valid"
        assert start["status"] == 202
        assert start["prefer"] == "respond-async"
        assert start["workbookSessionId"] == "sess-9"
        assert start["clientRequestId"] == "cid-1"
        assert start["user"] == "app:msi" and tok["user"] is None and start["grantType"] is None
        assert (op1["operationId"], op1["action"], op1["status"]) == (op_id, "createTableRow", 200)
        assert op2["operationId"] == op_id
        assert op1["workbookSessionId"] is None and op1["prefer"] is None
        assert result["operationId"] == op_id and result["action"] == "createTableRow"
        assert other["query"] == "access_token=REDACTED"
        assert elsewhere["status"] == 404 and elsewhere["item"] is None

        assert [e["seq"] for e in h.admin.requests(kind="operation")] == [op1["seq"], op2["seq"]]
        assert len(h.admin.requests(item=ITEM)) == 5
        assert h.admin.requests(item="nope") == []
        assert len(h.admin.requests(item=ITEM, kind="start")) == 1

    run_emu(body)


def test_reset_clears_everything(run_emu):
    async def body(h):
        headers = await h.auth()
        h.admin.scenario(ITEM, {"mode": "sync"})
        h.admin.config(tokenLifetimeSeconds=5)
        r = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/tables/T/rows", json={"values": [[1]]}, headers=headers)
        assert r.status == 201
        r = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers={**headers, **ASYNC})
        assert r.status == 201
        h.admin.reset()  # 204
        assert h.admin.requests() == []
        assert h.admin.rows(ITEM, "T") == []
        assert (await h.client.get(f"/_emulator/scenarios/{ITEM}")).status == 404
        assert h.admin.get_config()["tokenLifetimeSeconds"] == 3600
        r = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers=headers)
        assert r.status == 401
        headers = await h.auth()
        r = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers={**headers, **ASYNC})
        assert r.status == 202

    run_emu(body)
