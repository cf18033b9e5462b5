"""TLS + Entra helpers for the emulator tests: a trustme CA, an in-process HTTPS emulator, its tenant set up."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import trustme

from devhost.emulator.__main__ import server_ssl_context
from devhost.emulator.app import build_app
from tests.emulator.emulator_harness import serve_in_thread
from tests.harness.emulator import Emulator
from tests.harness.tokens import jwt_claims

__all__ = ["jwt_claims"]

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


class TlsEmu:
    """An HTTPS emulator on a thread of this process: `session` (aiohttp, trusting the test CA) for the Entra and
    Graph endpoints under test, `admin` (the one admin client, trusting it too) for /_emulator/*."""

    def __init__(self, base: str, session: aiohttp.ClientSession, admin: Emulator, tls: TlsFiles) -> None:
        self.base = base
        self.session = session
        self.admin = admin
        self.tls = tls

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    def setup_tenant(self) -> None:
        self.admin.entra_client(
            API_CLIENT, secret=API_SECRET, apiScopes=["access_as_user"], appRoles=["Operations.ReadAll"]
        )
        self.admin.entra_client(DAEMON_CLIENT, secret=DAEMON_SECRET, appRoles=["Ops.All"])
        self.admin.entra_user(USER, oid=USER_OID, tid=TENANT, roles=["Operator"])

    def user_token(self, lifetime: float = 300, audience: str = f"api://{API_CLIENT}") -> str:
        return self.admin.user_token(USER, audience, ["access_as_user"], lifetime)

    async def token_endpoint(self, form: dict[str, str], tenant: str = TENANT) -> tuple[int, Any]:
        return await self.call("POST", f"/{tenant}/oauth2/v2.0/token", data=form)


def run_tls(tls: TlsFiles, body: Callable[[TlsEmu], Awaitable[None]]) -> None:
    """Run ``body`` against a fresh HTTPS emulator on a free loopback port."""
    client_ctx = ssl.create_default_context(cafile=str(tls.ca))
    server_ctx = server_ssl_context(str(tls.cert), str(tls.key))
    with (
        serve_in_thread(lambda: build_app(identity_header=IDENTITY_SECRET), server_ctx) as port,
        httpx.Client(verify=client_ctx, timeout=10) as http,
    ):
        base = f"https://127.0.0.1:{port}"

        async def main() -> None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
                await body(TlsEmu(base, session, Emulator(base, http), tls))

        asyncio.run(main())
