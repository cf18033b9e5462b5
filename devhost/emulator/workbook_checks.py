"""What every workbook request (write, read, session control) goes through when the scenario asks for it: the
session gate (expiry, closed and unknown sessions), the latency model and the response payload limit. Each is a
no-op with the scenario's defaults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from .graph_errors import invalid_session, response_payload_too_large
from .scenarios import Scenario
from .server import chain_error, current_record
from .state import Emulator

SESSION_HEADER = "Workbook-Session-Id"


def session_gate(emulator: Emulator, item_id: str, scenario: Scenario, request: web.Request) -> web.Response | None:
    """With session expiry on (scenario ``sessionExpiry``), a request whose ``Workbook-Session-Id`` names a
    session that expired, was closed or never existed on this workbook is refused with 404 and the scenario's
    invalidSession* code, before anything is applied (resources/excel.md "Usage": "If the session id has expired,
    a 404 HTTP error code is returned on the session"; workbook-error-codes.md). A request with a live id renews it
    (excel.md: sessions expire "after about 5 minutes of inactivity"). Sessionless requests pass."""
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        return None
    now = time.monotonic()
    info = emulator.workbooks.session(item_id, session_id)
    expiry = scenario.session_expiry
    if expiry is None:
        if info is not None and not info.closed:
            info.last_used = now
        return None
    state = info.state(expiry.idle(info.persist_changes), now) if info is not None else "unknown"
    if state == "alive":
        assert info is not None
        info.last_used = now
        return None
    emulator.fault(item_id, "invalidSession", current_record().action)
    why = {"expired": "the session expired", "closed": "the session was closed", "unknown": "no such session"}[state]
    return chain_error(404, invalid_session(expiry.error_code, why))


async def hold(scenario: Scenario, cells: int) -> None:
    """The latency model: hold a synchronous answer ``perRequestSeconds + perCellSeconds x cells`` (an asyncio
    sleep: other requests go on meanwhile)."""
    if scenario.latency is not None:
        seconds = scenario.latency.seconds(cells)
        if seconds > 0:
            await asyncio.sleep(seconds)


def json_answer(emulator: Emulator, item_id: str, scenario: Scenario, body: Any, *, status: int = 200) -> web.Response:
    """A JSON read answer, or ``ResponsePayloadSizeLimitExceeded`` when its body is over the scenario's
    ``responsePayloadLimitBytes`` (microsoft-graph-docs #15709)."""
    data = json.dumps(body).encode()  # ASCII (ensure_ascii): its length is the payload's size
    limit = scenario.response_payload_limit_bytes
    if limit is not None and len(data) > limit:
        emulator.fault(item_id, "responsePayloadTooLarge", current_record().action)
        return chain_error(413, response_payload_too_large(limit, len(data)))
    return web.Response(body=data, status=status, content_type="application/json")
