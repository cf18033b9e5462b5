"""The two polls tools/walk.py measures, set up over the in-process fakes (tests/unit/fakes.py): an operation that
holds its workbook's lane, has a callback URL and a learned history key, polled once while Graph still runs and
once when Graph says it succeeded (result GET, terminal write, fan-out, webhook, history, lane release)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.crypto.sealing import seal
from shared.lanes.line import admit
from shared.lanes.store import lane_key
from shared.operations import poll_step as poller
from shared.operations.record import Operation, iso, new_operation_id
from shared.storage.messages import PollState, encode
from tests.unit.fakes import GRAPH, fake_runtime, reply, running, succeeded

WORKBOOK = "/me/drive/items/01ITEM"
LOCATION = f"{GRAPH}{WORKBOOK}/workbook/operations/op1"
RESULT = f"{GRAPH}{WORKBOOK}/workbook/sessionInfoResource(key='k')"
CALLBACK = "https://hooks.example.com/cb"


def _seeded(graph_answers: Callable[[Any], None]) -> Callable[[], Awaitable[None]]:
    rt, fakes = fake_runtime(WORKBOOK_CONCURRENCY="1")
    graph_answers(fakes)
    now = time.time() - 30
    lane = lane_key(WORKBOOK, rt.settings.default_owner)
    op = Operation(
        id=new_operation_id(now),
        status="running",
        action="createSession",
        workbook=WORKBOOK,
        operation_url=LOCATION,
        created_at=iso(now),
        updated_at=iso(now),
        base_url="https://bridge.example.test/api",
        generation=1,
        owner=rt.settings.default_owner,
        lane=lane,
    )
    op = op.with_(callback_sealed=seal(CALLBACK, rt.settings.webhook_secrets, op.id), webhook_state="pending")
    asyncio.run(rt.store.create(op))
    asyncio.run(rt.lanes.change(lane, lambda s: (admit(s, op.id, now, 1, 600.0)[0], None)))  # type: ignore[union-attr]
    text = encode(PollState(op.id, op.generation, 3))

    async def step() -> None:
        await poller.handle_message(rt, text, 1, "message-1")

    return step


def uneventful_poll() -> Callable[[], Awaitable[None]]:
    return _seeded(lambda f: f.graph.script("GET", LOCATION, running()))


def finishing_poll() -> Callable[[], Awaitable[None]]:
    return _seeded(
        lambda f: f.graph.script("GET", LOCATION, succeeded(RESULT)).script(
            "GET", RESULT, reply(200, {"id": "session-1", "persistChanges": True})
        )
    )
