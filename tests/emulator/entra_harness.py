"""TLS + Entra helpers for the emulator tests: a trustme CA, an in-process HTTPS emulator, admin calls."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import trustme
from aiohttp import web

from devhost.emulator.__main__ import server_ssl_context
from devhost.emulator.app import EMULATOR_KEY, Emulator, build_app

TENANT = "11111111-2222-4333-8444-555555555555"
API_CLIENT = "aaaaaaaa-0000-4000-8000-0000000000a1"  # the bridge's API app (confidential client)
API_SECRET = "api-secret-value-Zq9~x"
DAEMON_CLIENT = "bbbbbbbb-0000-4000-8000-0000000000b2"
DAEMON_SECRET = "daemon-secret-value-Kp3~y"
USER = "ada@contoso.example"
USER_OID = "cccccccc-0000-4000-8000-0000000000c3"
IDENTITY_SECRET = "tls-identity-secret"


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    ca_obj: trustme.CA


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key", ca)
    ca.cert_pem.write_to_path(str(files.ca))
    for n, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files.cert), append=n > 0)
    server.private_key_pem.write_to_path(str(files.key))
    return files


def jwt_claims(token: str) -> dict[str, Any]:
    """Payload of a JWT, unverified (tests check signatures separately)."""
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


class TlsEmu:
    """An HTTPS emulator running in this event loop plus an aiohttp client that trusts the test CA."""

    def __init__(self, base: str, session: aiohttp.ClientSession, emulator: Emulator, tls: TlsFiles) -> None:
        self.base = base
        self.session = session
        self.emulator = emulator
        self.tls = tls

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, f"/_emulator{path}", json=body)
        assert status == 200, (status, data)
        return data

    async def setup_tenant(self) -> None:
        await self.admin(
            "PUT",
            f"/entra/clients/{API_CLIENT}",
            {"secret": API_SECRET, "apiScopes": ["access_as_user"], "appRoles": ["Operations.ReadAll"]},
        )
        await self.admin("PUT", f"/entra/clients/{DAEMON_CLIENT}", {"secret": DAEMON_SECRET, "appRoles": ["Ops.All"]})
        await self.admin("PUT", f"/entra/users/{USER}", {"oid": USER_OID, "tid": TENANT, "roles": ["Operator"]})

    async def user_token(self, lifetime: float = 300, audience: str = f"api://{API_CLIENT}") -> str:
        data = await self.admin(
            "POST",
            f"/entra/users/{USER}/token",
            {"audience": audience, "scopes": ["access_as_user"], "lifetimeSeconds": lifetime},
        )
        return str(data["access_token"])

    async def token_endpoint(self, form: dict[str, str], tenant: str = TENANT) -> tuple[int, Any]:
        return await self.call("POST", f"/{tenant}/oauth2/v2.0/token", data=form)

    async def requests(self, **params: str) -> list[dict[str, Any]]:
        status, data = await self.call("GET", "/_emulator/requests", params=params)
        assert status == 200
        assert isinstance(data, list)
        return data


def run_tls(tls: TlsFiles, body: Callable[[TlsEmu], Awaitable[None]]) -> None:
    """Run ``body`` against a fresh HTTPS emulator on a free loopback port."""

    async def main() -> None:
        app: web.Application = build_app(identity_header=IDENTITY_SECRET)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(str(tls.cert), str(tls.key)))
            await site.start()
            port = next(int(a[1]) for a in runner.addresses if isinstance(a, tuple))
            client_ctx = ssl.create_default_context(cafile=str(tls.ca))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
                await body(TlsEmu(f"https://127.0.0.1:{port}", session, app[EMULATOR_KEY], tls))
        finally:
            await runner.cleanup()

    asyncio.run(main())
