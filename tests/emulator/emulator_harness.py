"""Helpers for the Graph/managed-identity emulator tests (in-process aiohttp test server)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devhost.emulator.app import build_app  # noqa: E402

SECRET = "test-identity-secret"
ITEM = "01CCETFLK7GVZTZHSQNRD2AEI5XWTCU6FJ"
ITEM_PATH = f"/me/drive/items/{ITEM}"


class Harness:
    """Thin helpers around an aiohttp TestClient talking to the emulator."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

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

    async def put_scenario(self, item: str, scenario: dict[str, Any]) -> None:
        resp = await self.client.put(f"/_emulator/scenarios/{item}", json=scenario)
        assert resp.status == 200, await resp.text()

    async def requests(self, **params: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/_emulator/requests", params=params)
        assert resp.status == 200
        data: list[dict[str, Any]] = await resp.json()
        return data

    async def rows(self, item: str, table: str) -> list[list[Any]]:
        resp = await self.client.get(f"/_emulator/tables/{item}/{table}")
        assert resp.status == 200
        data: dict[str, list[list[Any]]] = await resp.json()
        return data["rows"]

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


def make_runner() -> RunEmu:
    """``run(async_fn, token_lifetime=...)`` runs ``async_fn(harness)`` against a fresh emulator."""

    def run(body: Callable[[Harness], Awaitable[None]], token_lifetime: float = 3600.0) -> None:
        async def main() -> None:
            app = build_app(identity_header=SECRET, token_lifetime=token_lifetime)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                await body(Harness(client))

        asyncio.run(main())

    return run
