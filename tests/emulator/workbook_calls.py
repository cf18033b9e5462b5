"""Graph calls the realism tests make, as a client would (aiohttp against the in-process emulator)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.emulator.emulator_harness import ITEM_PATH, Harness

ASYNC = {"Prefer": "respond-async"}
WORKBOOK = f"/v1.0{ITEM_PATH}/workbook"


def table_url(table: str, tail: str = "") -> str:
    return f"{WORKBOOK}/tables/{table}{tail}"


async def answer(response: aiohttp.ClientResponse) -> tuple[int, Any]:
    """Status and JSON body (None when empty)."""
    text = await response.text()
    return response.status, (await response.json(content_type=None) if text else None)


async def add_rows(h: Harness, table: str, values: list[list[Any]], **headers: str) -> tuple[int, Any]:
    response = await h.client.post(table_url(table, "/rows"), json={"values": values}, headers=await h.auth(**headers))
    return await answer(response)


async def get(h: Harness, path: str, **headers: str) -> tuple[int, Any]:
    return await answer(await h.client.get(path, headers=await h.auth(**headers)))


async def create_session(h: Harness, persist: bool = True) -> str:
    status, body = await answer(
        await h.client.post(f"{WORKBOOK}/createSession", json={"persistChanges": persist}, headers=await h.auth())
    )
    assert status == 201, body
    return str(body["id"])


def chain_codes(error: dict[str, Any]) -> list[str]:
    """The codes of an error chain, outermost first."""
    codes = []
    level: dict[str, Any] | None = error
    while level is not None:
        codes.append(level["code"])
        level = level.get("innerError") if isinstance(level.get("innerError"), dict) else None
        if level is not None and "code" not in level:
            break
    return codes


async def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check()` until it returns something truthy, with a deadline (a wait for a condition)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def wait_until_async(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """`wait_until` for a check that is itself a request (awaited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
