"""Graph's long-running operation answers: the operation's status (with resourceLocation once it succeeded)
and the result behind resourceLocation (``sessionInfoResource`` / ``tableRowOperationResult``)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiohttp import web

from .operations import Action, Operation, spell_status
from .server import current_record, fault_response, graph_error, origin, with_query
from .state import Emulator


class OperationRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def operation(
        self, request: web.Request, version: str, item_path: str, item_id: str, op_id: str
    ) -> web.StreamResponse:
        """``GET .../workbook/operations/{id}``."""
        latency = self.emulator.scenario(item_id)[1].operation_latency_seconds
        if latency:
            await asyncio.sleep(latency)  # a slow Graph: keeps pollers mid-request
        state, _ = self.emulator.scenario(item_id)
        op = self.emulator.operations.get(op_id)
        if state is not None and state.operation_faults:
            return fault_response(state.operation_faults.popleft())
        if op is None or op.item_id != item_id or op.expired():
            return graph_error(404, "itemNotFound", "The requested operation was not found.")
        phase = op.poll()
        current_record().phase = phase
        body: dict[str, Any] = {"id": op.id, "status": spell_status(phase, op.scenario.status_case)}
        if phase == "succeeded" and op.action != "deleteTableRow":
            body["resourceLocation"] = self._resource_location(request, version, item_path, op)
        if phase == "failed":
            body["error"] = copy.deepcopy(op.error)
        return web.json_response(body)

    @staticmethod
    def _resource_location(request: web.Request, version: str, item_path: str, op: Operation) -> str:
        sc = op.scenario
        base = sc.resource_location_origin or origin(request)
        res_version = sc.resource_location_version or version
        segment = "sessionInfoResource" if op.action == "createSession" else "tableRowOperationResult"
        url = f"{base}/{res_version}{item_path}/workbook/{segment}(key='{op.id}')"
        return with_query(url, sc.resource_location_query)

    def result(self, item_id: str, key: str, action: Action) -> web.StreamResponse:
        """``GET .../workbook/sessionInfoResource(key=...)`` or ``.../tableRowOperationResult(key=...)``."""
        state, _ = self.emulator.scenario(item_id)
        if state is not None and state.result_faults:
            return fault_response(state.result_faults.popleft())
        op = self.emulator.operations.get(key)
        if op is None or op.item_id != item_id or op.action != action or op.phase != "succeeded":
            return graph_error(404, "itemNotFound", f"No result for key '{key}'.")
        return web.json_response(copy.deepcopy(op.result))
