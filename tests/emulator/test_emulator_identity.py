"""Managed-identity token endpoint and bearer-token validation."""

from __future__ import annotations

import asyncio
import time

from tests.emulator.emulator_harness import ITEM_PATH, SECRET

TOKEN_PARAMS = {"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"}


def test_token_issue_and_header_checks(run_emu):
    async def body(h):
        resp = await h.client.get("/msi/token", params=TOKEN_PARAMS)
        assert resp.status == 401
        assert "error" in await resp.json()

        resp = await h.client.get("/msi/token", params=TOKEN_PARAMS, headers={"X-IDENTITY-HEADER": "nope"})
        assert resp.status == 401
        assert (await resp.json())["error"]["code"]

        before = time.time()
        resp = await h.client.get("/msi/token", params=TOKEN_PARAMS, headers={"X-IDENTITY-HEADER": SECRET})
        assert resp.status == 200
        assert resp.content_type == "application/json"
        data = await resp.json()
        assert set(data) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
        assert isinstance(data["access_token"], str) and len(data["access_token"]) >= 32
        assert isinstance(data["expires_on"], str)
        assert int(before) + 3590 <= int(data["expires_on"]) <= int(time.time()) + 3601
        assert data["resource"] == "https://graph.microsoft.com"
        assert data["token_type"] == "Bearer"
        assert data["client_id"]

        # client_id is echoed; the trailing-slash path variant works too.
        resp = await h.client.get(
            "/msi/token/",
            params={**TOKEN_PARAMS, "resource": "http://127.0.0.1:1/", "client_id": "abc"},
            headers={"X-IDENTITY-HEADER": SECRET},
        )
        assert resp.status == 200
        data2 = await resp.json()
        assert data2["client_id"] == "abc"
        assert data2["resource"] == "http://127.0.0.1:1/"
        assert data2["access_token"] != data["access_token"]

        resp = await h.client.get("/msi/token", params={"resource": "x"}, headers={"X-IDENTITY-HEADER": SECRET})
        assert resp.status == 400

    run_emu(body)


def test_graph_requires_bearer_token(run_emu):
    async def body(h):
        url = f"/v1.0{ITEM_PATH}/workbook/createSession"
        for headers, auth in (
            ({}, "none"),
            ({"Authorization": "Bearer not-a-real-token"}, "invalid"),
            ({"Authorization": "Basic Zm9vOmJhcg=="}, "invalid"),
        ):
            resp = await h.client.post(
                url, json={"persistChanges": True}, headers={**headers, "client-request-id": "cr-1"}
            )
            assert resp.status == 401
            assert resp.headers["client-request-id"] == "cr-1"
            assert resp.headers["request-id"]
            err = (await resp.json())["error"]
            assert err["code"] == "InvalidAuthenticationToken"
            assert err["message"]
            inner = err["innerError"]
            assert inner["client-request-id"] == "cr-1"
            assert inner["request-id"] == resp.headers["request-id"]
            assert inner["date"]
            log = h.admin.requests(kind="start")
            assert log[-1]["auth"] == auth
            assert log[-1]["status"] == 401

    run_emu(body)


async def _wait_for_401(h, headers):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        resp = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers=headers)
        if resp.status == 401:
            return await resp.json()
        assert resp.status == 201
        await asyncio.sleep(0.02)
    raise AssertionError("token never expired")


def test_expired_token(run_emu):
    async def body(h):
        headers = await h.auth()
        err = await _wait_for_401(h, headers)
        assert err["error"]["code"] == "InvalidAuthenticationToken"
        assert "expired" in err["error"]["message"]
        log = h.admin.requests()
        assert log[-1]["auth"] == "expired"
        assert {r["auth"] for r in log if r["kind"] == "start"} <= {"valid", "expired"}

    run_emu(body, token_lifetime=0.2)


def test_config_changes_lifetime_of_new_tokens(run_emu):
    async def body(h):
        long_lived = await h.auth()
        assert h.admin.config(tokenLifetimeSeconds=0.2)["tokenLifetimeSeconds"] == 0.2
        short_lived = await h.auth()
        await _wait_for_401(h, short_lived)
        resp = await h.client.post(f"/v1.0{ITEM_PATH}/workbook/createSession", json={}, headers=long_lived)
        assert resp.status == 201

        resp = await h.client.put("/_emulator/config", json={"tokenLifetime": 1})
        assert resp.status == 400
        assert (await resp.json())["error"]["code"]

    run_emu(body)


def test_revoked_token(run_emu):
    async def body(h):
        headers = await h.auth()
        url = f"/v1.0{ITEM_PATH}/workbook/createSession"
        assert (await h.client.post(url, json={}, headers=headers)).status == 201
        assert h.admin.revoke_tokens() == 1
        resp = await h.client.post(url, json={}, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "InvalidAuthenticationToken"
        assert h.admin.requests()[-1]["auth"] == "revoked"
        # Tokens issued after the revocation work.
        assert (await h.client.post(url, json={}, headers=await h.auth())).status == 201

    run_emu(body)


def test_azure_identity_managed_identity_credential(run_emu, monkeypatch):
    from azure.identity.aio import ManagedIdentityCredential

    async def body(h):
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{h.origin}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", SECRET)
        for name in ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
            monkeypatch.delenv(name, raising=False)
        async with ManagedIdentityCredential() as credential:
            token = await credential.get_token(f"{h.origin}/.default")
        assert token.token
        assert token.expires_on > time.time() + 3000
        log = h.admin.requests(kind="token")
        assert len(log) == 1
        assert log[0]["status"] == 200
        assert "api-version=2019-08-01" in log[0]["query"]
        # The token it got is accepted by the Graph side.
        resp = await h.client.post(
            f"/v1.0{ITEM_PATH}/workbook/createSession",
            json={"persistChanges": False},
            headers={"Authorization": f"Bearer {token.token}"},
        )
        assert resp.status == 201

    run_emu(body)
