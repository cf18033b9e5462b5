"""``POST {item}/workbook/refreshSession`` and ``closeSession`` (api-reference/v1.0/api/workbook-refreshsession.md,
workbook-closesession.md: header ``workbook-session-id``, "Required", answer ``204 No Content``).

Without session expiry (the default) both answer 204 whatever they carry, as the emulator always did; closeSession
still marks a known session closed (it no longer counts against ``sessionLimit``). With ``sessionExpiry`` on, a
missing header is a 400, a dead, closed or unknown session the session gate's 404 invalidSession*, and a live one is
renewed (refresh) or closed (close: any later use of it is refused).
"""

from __future__ import annotations

from aiohttp import web

from .server import graph_error
from .state import Emulator
from .workbook_checks import SESSION_HEADER, hold, session_gate


class SessionRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def control(self, request: web.Request, item_id: str, *, close: bool) -> web.StreamResponse:
        emulator = self.emulator
        _, scenario = emulator.scenario(item_id)
        session_id = request.headers.get(SESSION_HEADER)
        if scenario.session_expiry is not None:
            if not session_id:
                return graph_error(400, "badRequest", f"The {SESSION_HEADER} header is required.")
            refused = session_gate(emulator, item_id, scenario, request)
            if refused is not None:
                return refused
        else:
            session_gate(emulator, item_id, scenario, request)  # renews a known session, refuses nothing
        await hold(scenario, 0)
        if close and session_id:
            info = emulator.workbooks.session(item_id, session_id)
            if info is not None:
                info.closed = True
        return web.Response(status=204)
