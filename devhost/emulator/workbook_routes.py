"""Graph's workbook writes (createSession, add and delete table rows) as the emulator answers them: the
scenario's faults, contention with a running request, synchronous or ``202 Accepted`` + ``Location``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .operations import Action
from .server import current_record, fault_response, graph_error, inner_error, origin, with_query
from .state import Emulator
from .workbook import WorkbookError, parse_add_rows, parse_create_session


def prefers_async(request: web.Request) -> bool:
    prefer = ",".join(request.headers.getall("Prefer", []))
    return any(part.strip().lower() == "respond-async" for part in re.split(r"[,;]", prefer))


def _merge_conflict_error() -> dict[str, Any]:
    """The error of an accepted write that lost to another change on the same workbook. Graph documents 409
    conflict / accessConflict (facts, "Throttling and errors") and Excel's guidance names merge conflicts
    from concurrent requests, but no operation error code for them: this chain is the emulator's choice."""
    return {
        "code": "conflict",
        "message": "The change could not be merged: another request changed the workbook at the same time.",
        "innerError": {"code": "accessConflict", "message": "Merge conflict with a concurrent request."},
    }


def _throttled(retry_after: float) -> web.Response:
    """Graph's 429 (facts: "429 Too Many Requests with Retry-After, which can be fractional"), for a write
    to a workbook that is already running a request (facts: "One workbook should get one request at a
    time")."""
    response = graph_error(
        429,
        "tooManyRequests",
        "The workbook is busy with another request; retry after the interval in Retry-After.",
    )
    response.headers["Retry-After"] = f"{retry_after:g}"
    return response


def _conflict() -> web.Response:
    """Graph's 409 (facts: "409 conflict (accessConflict)") for a write to a busy workbook."""
    body = {
        "error": {
            "code": "conflict",
            "message": "The request could not be completed because another request is changing the workbook.",
            "innerError": {"code": "accessConflict", **inner_error()},
        }
    }
    return web.json_response(body, status=409)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise WorkbookError(400, "invalidArgument", f"The request body is not valid JSON: {exc}") from exc


class WorkbookRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def list_rows(self, item_id: str, table: str) -> web.StreamResponse:
        return web.json_response({"value": self.emulator.workbooks.list_rows(item_id, table)})

    async def start(
        self,
        request: web.Request,
        version: str,
        item_path: str,
        item_id: str,
        action: Action,
        table: str | None,
        row_index: int | None,
        *,
        never_async: bool = False,
    ) -> web.StreamResponse:
        """A write: a fault or contention answer, else the change now (200/201) or later (202 + Location)."""
        emulator = self.emulator
        record = current_record()
        state, scenario = emulator.scenario(item_id)
        if state is not None and state.start_faults:
            return fault_response(state.start_faults.popleft())
        if scenario.start_error is not None:
            return fault_response(scenario.start_error)
        doomed: dict[str, Any] | None = None
        if scenario.contention != "off" and emulator.operations.busy_on(item_id) is not None:
            if scenario.contention == "throttle":
                record.contention = "throttled"
                return _throttled(scenario.contention_retry_after_seconds)
            if scenario.contention == "conflict" or not (
                scenario.mode == "async" and not never_async and prefers_async(request)
            ):
                record.contention = "conflict"
                return _conflict()
            doomed = _merge_conflict_error()  # marked on the record once the operation exists

        try:
            apply = await self._change(request, item_id, action, table, row_index)
        except WorkbookError as exc:
            return graph_error(exc.status, exc.code, exc.message)

        is_async = scenario.mode == "async" and not never_async and prefers_async(request)
        if action != "createSession" and not request.headers.get("Workbook-Session-Id"):
            is_async = False
        if doomed is not None and not is_async:  # merge mode, but this write would run synchronously
            record.contention = "conflict"
            return _conflict()
        if is_async:
            duration = state.draw_duration(action) if state is not None else None
            op = emulator.operations.create(item_id, item_path, action, scenario, apply, duration, doomed)
            if doomed is not None:
                record.contention = "merge"
            record.operation_id = op.id
            base = scenario.location_origin or origin(request)
            loc_version = scenario.location_version or version
            location = with_query(
                f"{base}/{loc_version}{item_path}/workbook/operations/{op.id}", scenario.location_query
            )
            return web.json_response({}, status=202, headers={"Location": location})
        try:
            result = apply()
        except WorkbookError as exc:
            return graph_error(exc.status, exc.code, exc.message)
        if action == "deleteTableRow":
            return web.Response(status=200)
        return web.json_response(result, status=200 if never_async else 201)

    async def _change(
        self, request: web.Request, item_id: str, action: Action, table: str | None, row_index: int | None
    ) -> Callable[[], dict[str, Any] | None]:
        """Read and check the write's body now (WorkbookError); the change itself runs when it is applied."""
        workbooks = self.emulator.workbooks
        if action == "createSession":
            persist = parse_create_session(await _json_body(request))

            def create() -> dict[str, Any] | None:
                return workbooks.create_session(item_id, persist).to_json()

            return create
        if action == "createTableRow":
            assert table is not None
            tbl = table
            index, values = parse_add_rows(await _json_body(request))
            workbooks.check_insert(item_id, tbl, index)

            def insert() -> dict[str, Any] | None:
                return workbooks.insert_rows(item_id, tbl, index, values)

            return insert
        assert table is not None and row_index is not None
        tbl, at = table, row_index
        workbooks.check_delete(item_id, tbl, at)

        def delete() -> dict[str, Any] | None:
            workbooks.delete_row(item_id, tbl, at)
            return None

        return delete
