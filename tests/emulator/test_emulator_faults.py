"""Scenario-driven fault injection: start faults, operation/result faults, Location overrides, TTL."""

from __future__ import annotations

import asyncio
import json
import time

from tests.emulator.emulator_harness import ITEM, ITEM_PATH

ASYNC = {"Prefer": "respond-async"}


async def _start_session(h, headers, path=ITEM_PATH, version="v1.0", extra=None):
    return await h.client.post(
        f"/{version}{path}/workbook/createSession",
        json={"persistChanges": True},
        headers={**headers, **ASYNC, **(extra or {})},
    )


def test_location_overrides_beta_and_session_query(run_emu):
    async def body(h):
        h.admin.scenario(
            ITEM,
            {
                "locationVersion": "beta",
                "locationQuery": "sessionId=abc",
                "resourceLocationVersion": "beta",
                "resourceLocationQuery": "sessionId=Y2x1c3Rlcj1QU0c0",
                "runningPolls": 0,
            },
        )
        headers = await h.auth()
        resp = await _start_session(h, headers)
        assert resp.status == 202
        location = resp.headers["Location"]
        assert location.startswith(f"{h.origin}/beta{ITEM_PATH}/workbook/operations/")
        assert location.endswith("?sessionId=abc")
        status, done, _ = await h.get_url(location, headers)
        assert status == 200 and done["status"] == "succeeded"
        op_id = done["id"]
        assert done["resourceLocation"] == (
            f"{h.origin}/beta{ITEM_PATH}/workbook/sessionInfoResource(key='{op_id}')?sessionId=Y2x1c3Rlcj1QU0c0"
        )
        status, info, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 200 and info["persistChanges"] is True

        # Reverse direction: a beta request pointed at v1.0.
        h.admin.scenario(ITEM, {"locationVersion": "v1.0", "resourceLocationVersion": "v1.0"})
        resp = await _start_session(h, headers, version="beta")
        assert resp.headers["Location"].startswith(f"{h.origin}/v1.0{ITEM_PATH}/workbook/operations/")

    run_emu(body)


def test_foreign_origin_location_and_host_header(run_emu):
    async def body(h):
        headers = await h.auth()
        foreign = f"localhost:{h.client.port}"
        # Without an override the Location follows the Host the request used.
        resp = await _start_session(h, headers, extra={"Host": foreign})
        assert resp.headers["Location"].startswith(f"http://{foreign}/v1.0{ITEM_PATH}/workbook/operations/")
        log = h.admin.requests(kind="start")
        assert log[-1]["host"] == foreign

        h.admin.scenario(
            ITEM,
            {
                "locationOrigin": f"http://{foreign}",
                "resourceLocationOrigin": "https://graph.example",
                "runningPolls": 0,
            },
        )
        resp = await _start_session(h, headers)
        location = resp.headers["Location"]
        assert location.startswith(f"http://{foreign}/v1.0{ITEM_PATH}/workbook/operations/")
        status, done, _ = await h.get_url(location, {**headers, "Host": foreign})
        assert status == 200
        assert done["resourceLocation"].startswith(f"https://graph.example/v1.0{ITEM_PATH}/workbook/")
        log = h.admin.requests(kind="operation")
        assert log[-1]["host"] == foreign
        assert log[-1]["operationId"] == done["id"]

    run_emu(body)


def test_operation_faults_in_order_then_state_machine(run_emu):
    raw = '{"id": "x", "status": ""running"}'

    async def body(h):
        h.admin.scenario(
            ITEM,
            {
                "runningPolls": 1,
                "operationFaults": [
                    {
                        "status": 429,
                        "headers": {"Retry-After": "2.128"},
                        "error": {"code": "tooManyRequests", "message": "Slow down"},
                    },
                    {"status": 503},
                    {"status": 200, "rawBody": raw},
                    {"status": 200, "body": {"id": "fake", "status": "running"}, "headers": {"X-Test": "1"}},
                ],
            },
        )
        headers = await h.auth()
        resp = await _start_session(h, headers)
        location = resp.headers["Location"]

        r = await h.client.get(location.split(str(h.client.port), 1)[1], headers=headers)
        assert r.status == 429
        assert r.headers["Retry-After"] == "2.128"
        err = (await r.json())["error"]
        assert err["code"] == "tooManyRequests" and err["message"] == "Slow down"
        assert err["innerError"]["request-id"] == r.headers["request-id"]

        status, err, _ = await h.get_url(location, headers)
        assert status == 503
        assert err["error"]["code"] == "serviceUnavailable"

        r = await h.client.get(location.split(str(h.client.port), 1)[1], headers=headers)
        assert r.status == 200
        assert await r.text() == raw
        assert r.headers["Content-Type"].startswith("application/json")

        status, fake, hdrs = await h.get_url(location, headers)
        assert status == 200 and fake == {"id": "fake", "status": "running"} and hdrs["X-Test"] == "1"

        # Faults did not consume polls of the state machine.
        polls = await h.poll_statuses(location, headers, 2)
        assert [p["status"] for p in polls] == ["running", "succeeded"]

        log = h.admin.requests(kind="operation")
        assert [r["status"] for r in log] == [429, 503, 200, 200, 200, 200]

    run_emu(body)


def test_start_faults_then_normal_and_start_error_every_time(run_emu):
    async def body(h):
        h.admin.scenario(
            ITEM,
            {
                "startFaults": [
                    {"status": 504},
                    {"status": 200, "rawBody": '{"id": oops'},
                ]
            },
        )
        headers = await h.auth()
        r = await _start_session(h, headers)
        assert r.status == 504
        assert (await r.json())["error"]["code"] == "gatewayTimeout"
        r = await _start_session(h, headers)
        assert r.status == 200 and await r.text() == '{"id": oops'
        r = await _start_session(h, headers)
        assert r.status == 202

        nested = {
            "code": "itemNotFound",
            "message": "The resource could not be found.",
            "innerError": {"code": "itemDoesNotExist", "innerError": {"code": "fileNotFound"}},
        }
        h.admin.scenario(ITEM, {"startError": {"status": 404, "error": nested}})
        for _ in range(3):
            r = await _start_session(h, headers)
            assert r.status == 404
            assert (await r.json()) == {"error": nested}
        r = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/tables/T/rows", json={"values": [[1]]}, headers=headers)
        assert r.status == 404
        assert h.admin.rows(ITEM, "T") == []

        h.admin.scenario(ITEM, {"startError": {"status": 403, "error": {"code": "accessDenied", "message": "No."}}})
        r = await _start_session(h, headers)
        assert r.status == 403
        err = (await r.json())["error"]
        assert err["code"] == "accessDenied" and err["innerError"]["date"]

        h.admin.delete_scenario(ITEM)  # 204
        assert (await _start_session(h, headers)).status == 202
        # Another item is unaffected by a scenario.
        h.admin.scenario(ITEM, {"startError": {"status": 403}})
        assert (await _start_session(h, headers, path="/me/drive/items/OTHER")).status == 202

    run_emu(body)


def test_result_faults(run_emu):
    async def body(h):
        h.admin.scenario(
            ITEM,
            {"runningPolls": 0, "resultFaults": [{"status": 502}, {"status": 200, "rawBody": "not json"}]},
        )
        headers = await h.auth()
        resp = await _start_session(h, headers)
        status, done, _ = await h.get_url(resp.headers["Location"], headers)
        assert done["status"] == "succeeded"
        status, err, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 502 and err["error"]["code"] == "badGateway"
        status, text, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 200 and text == "not json"
        status, info, _ = await h.get_url(done["resourceLocation"], headers)
        assert status == 200 and info["persistChanges"] is True
        assert [r["status"] for r in h.admin.requests(kind="result")] == [502, 200, 200]

    run_emu(body)


def test_operation_ttl_expires(run_emu):
    async def body(h):
        h.admin.scenario(ITEM, {"operationTtlSeconds": 0.2, "runningPolls": 1000})
        headers = await h.auth()
        resp = await _start_session(h, headers)
        location = resp.headers["Location"]
        status, first, _ = await h.get_url(location, headers)
        assert status == 200 and first["status"] == "running"
        deadline = time.monotonic() + 5
        while True:
            status, body_, _ = await h.get_url(location, headers)
            if status == 404:
                break
            assert status == 200 and body_["status"] == "running"
            assert time.monotonic() < deadline, "operation never expired"
            await asyncio.sleep(0.02)
        assert body_["error"]["code"] == "itemNotFound"

    run_emu(body)


def test_running_seconds(run_emu):
    async def body(h):
        h.admin.scenario(ITEM, {"runningSeconds": 0.2})
        headers = await h.auth()
        started = time.monotonic()
        resp = await _start_session(h, headers)
        location = resp.headers["Location"]
        seen = []
        deadline = time.monotonic() + 5
        while True:
            status, op, _ = await h.get_url(location, headers)
            assert status == 200
            seen.append(op["status"])
            if op["status"] != "running":
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert seen[-1] == "succeeded"
        assert time.monotonic() - started >= 0.2

    run_emu(body)


def test_scenario_validation(run_emu):
    async def body(h):
        for bad in (
            {"bogus": 1},
            {"mode": "maybe"},
            {"runningPolls": -1},
            {"startFaults": [{"status": 504, "what": 1}]},
            {"operationFaults": [{"headers": {}}]},
            {"startError": {"status": 500, "body": {}, "rawBody": "x"}},
            {"statusCase": "snake"},
            [],
        ):
            resp = await h.client.put(f"/_emulator/scenarios/{ITEM}", data=json.dumps(bad))
            assert resp.status == 400, bad
            assert (await resp.json())["error"]["code"] == "invalidArgument"
        resp = await h.client.put(f"/_emulator/scenarios/{ITEM}", data=b"{nope")
        assert resp.status == 400
        h.admin.scenario(ITEM, {"runningPolls": 5, "statusCase": "pascal"})
        resp = await h.client.get(f"/_emulator/scenarios/{ITEM}")
        assert (await resp.json())["scenario"]["runningPolls"] == 5

    run_emu(body)
