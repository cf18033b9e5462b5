"""Helpers for the Graph/managed-identity emulator tests: the emulator's aiohttp app in this process.

The app is served on a thread of its own (its own event loop) on a free 127.0.0.1 port, so a test body (a
coroutine on the test's loop) sends its Graph requests with aiohttp and its admin calls with the one admin
client, tests.harness.emulator.Emulator (synchronous; it never blocks the server's loop).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from yarl import URL

from devhost.emulator.app import build_app
from tests.harness.emulator import Emulator

SECRET = "test-identity-secret"
ITEM = "01CCETFLK7GVZTZHSQNRD2AEI5XWTCU6FJ"
ITEM_PATH = f"/me/drive/items/{ITEM}"


@contextmanager
def serve_in_thread(
    make_app: Callable[[], web.Application], ssl_context: ssl.SSLContext | None = None
) -> Iterator[int]:
    """Serve `make_app()` (built on the server's loop) on 127.0.0.1 from a thread; yields the port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="emulator")
    thread.start()
    holder: dict[str, web.AppRunner] = {}

    async def start() -> int:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        holder["runner"] = runner
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        return next(int(a[1]) for a in runner.addresses if isinstance(a, tuple))

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    finally:
        if "runner" in holder:
            asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


class Client:
    """Requests by path to the emulator (what the tests used of aiohttp's TestClient): `await client.get(path)`
    gives the response; every response is released when the client closes."""

    def __init__(self, session: aiohttp.ClientSession, origin: str) -> None:
        self.session = session
        self.origin = URL(origin)
        self._responses: list[aiohttp.ClientResponse] = []

    @property
    def host(self) -> str:
        return str(self.origin.host)

    @property
    def port(self) -> int:
        return int(self.origin.port or 0)

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        response = await self.session.request(method, self.origin.join(URL(path)), **kwargs)
        self._responses.append(response)
        return response

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("DELETE", path, **kwargs)

    def release(self) -> None:
        for response in self._responses:
            response.release()


class Harness:
    """A test's view of one fresh emulator: `client` for Graph/identity requests, `admin` for /_emulator/*."""

    def __init__(self, client: Client, admin: Emulator) -> None:
        self.client = client
        self.admin = admin

    @property
    def origin(self) -> str:
        return f"http://{self.client.host}:{self.client.port}"

    async def token(self, resource: str = "https://graph.microsoft.com") -> str:
        resp = await self.client.get(
            "/msi/token",
            params={"api-version": "2019-08-01", "resource": resource},
            headers={"X-IDENTITY-HEADER": SECRET},
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return str(body["access_token"])

    async def auth(self, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {await self.token()}"}
        headers.update(extra)
        return headers

    async def get_url(self, url: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """GET an absolute URL handed out by the emulator (Location/resourceLocation) via its path."""
        resp = await self.client.get(URL(url).path_qs, headers=headers)
        text = await resp.text()
        try:
            body: Any = await resp.json(content_type=None) if text else None
        except ValueError:
            body = text
        return resp.status, body, dict(resp.headers)

    async def poll_statuses(self, location: str, headers: dict[str, str], count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            status, body, _ = await self.get_url(location, headers)
            assert status == 200, body
            out.append(body)
        return out


RunEmu = Callable[..., None]


def make_runner(http: httpx.Client) -> RunEmu:
    """``run(async_fn, token_lifetime=...)`` runs ``async_fn(harness)`` against a fresh emulator; the admin client
    sends with `http` (one for the session: an httpx client costs tens of milliseconds to make)."""

    def run(body: Callable[[Harness], Awaitable[None]], token_lifetime: float = 3600.0) -> None:
        with serve_in_thread(lambda: build_app(identity_header=SECRET, token_lifetime=token_lifetime)) as port:
            origin = f"http://127.0.0.1:{port}"

            async def main() -> None:
                async with aiohttp.ClientSession() as session:
                    client = Client(session, origin)
                    try:
                        await body(Harness(client, Emulator(origin, http)))
                    finally:
                        client.release()

            asyncio.run(main())

    return run
