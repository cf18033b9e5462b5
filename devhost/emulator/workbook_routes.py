"""Graph's workbook writes (createSession, add and delete table rows) as the emulator answers them: the
scenario's faults, limits and session checks, contention with a running request, the latency model, synchronous
or ``202 Accepted`` + ``Location``, and the faults that fire after the write was applied.

The order a write goes through (each step is a no-op with the scenario's defaults):

1. ``startFaults`` / ``startError``: canned answers before anything is applied (as from the start);
2. ``requestPayloadLimitBytes``: 413 RequestPayloadSizeLimitExceeded, nothing applied;
3. the session gate (``sessionExpiry``) and, for createSession, ``sessionLimit``;
4. contention with a running operation (``contention``);
5. the body and, with ``strictTables``, the table and the row's width (404 ItemNotFound, 400 InvalidArgument);
6. ``maxRequestCells``: 504 MaxRequestDurationExceeded, nothing applied;
7. a write fault (``writeFaults``, ``writeFaultRate``): ``insertDeleteConflict`` answers 409 and applies nothing;
   ``applyThen504``/``applyThen500``/``applyThenDrop`` apply the write (at once, as a synchronous write, even when
   asynchronous was asked for: the client never sees a Location) and then answer 504, 500 or nothing;
8. the write: synchronous (held by the latency model, then applied) or ``202`` + an operation that runs the drawn
   duration, else the latency model's time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .graph_errors import (
    insert_delete_conflict,
    internal_server_error,
    invalid_argument,
    max_request_duration,
    request_payload_too_large,
    too_many_sessions,
)
from .operations import Action, Operation
from .scenario_realism import WriteFault
from .scenarios import Scenario
from .server import (
    chain_error,
    current_record,
    drop_connection,
    fault_response,
    graph_error,
    inner_error,
    origin,
    with_query,
)
from .state import Emulator
from .workbook import WorkbookError, check_shape, parse_add_rows, parse_create_session
from .workbook_checks import SESSION_HEADER, hold, session_gate


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


def error_answer(exc: WorkbookError) -> web.Response:
    """A WorkbookError as Graph answers it (its chain's second level, when it has one, with the request ids)."""
    return graph_error(exc.status, exc.code, exc.message, exc.inner)


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise WorkbookError(400, "invalidArgument", f"The request body is not valid JSON: {exc}") from exc


@dataclass
class Write:
    """A checked write: `apply` makes the change (once, now or when its operation finishes); `cells` is what the
    latency model and ``maxRequestCells`` count."""

    apply: Callable[[], dict[str, Any] | None]
    cells: int


def _after_apply_answer(fault: WriteFault) -> web.Response:
    """The answer of a write that was applied: 504 (table-post-rows.md / workbook-createsession.md: "might
    occasionally receive a 504"; chain of microsoft-graph-explorer-v4 #3907), 500 (workbook-error-codes.md), or no
    answer at all (the connection closes, as when a gateway or the network fails after the workbook did the work)."""
    if fault.fault == "applyThenDrop":
        return drop_connection()
    if fault.fault == "applyThen500":
        return chain_error(500, fault.error or internal_server_error())
    return chain_error(504, fault.error or max_request_duration())


class WorkbookRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

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
        """A write, in the order the module's docstring gives."""
        emulator = self.emulator
        record = current_record()
        state, scenario = emulator.scenario(item_id)
        if state is not None and state.start_faults:
            return fault_response(state.start_faults.popleft())
        if scenario.start_error is not None:
            return fault_response(scenario.start_error)
        raw = await request.read()
        limit = scenario.request_payload_limit_bytes
        if limit is not None and len(raw) > limit:
            emulator.fault(item_id, "requestPayloadTooLarge", action)
            return chain_error(413, request_payload_too_large(limit, len(raw)))
        refused = session_gate(emulator, item_id, scenario, request)
        if refused is not None:
            return refused
        if action == "createSession" and scenario.session_limit is not None:
            if self._open_sessions(item_id, scenario) >= scenario.session_limit:
                emulator.fault(item_id, "sessionLimit", action)
                return chain_error(429, too_many_sessions(scenario.session_limit))
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
            write = self._change(raw, item_id, action, table, row_index, scenario)
        except WorkbookError as exc:
            return error_answer(exc)
        if scenario.max_request_cells is not None and write.cells > scenario.max_request_cells:
            await hold(scenario, write.cells)
            emulator.fault(item_id, "maxRequestDuration", action)
            return chain_error(504, max_request_duration())
        fault = state.next_write_fault(action) if state is not None else None
        if fault is not None and fault.fault == "insertDeleteConflict":
            emulator.fault(item_id, fault.fault, action)
            return chain_error(409, fault.error or insert_delete_conflict())

        is_async = scenario.mode == "async" and not never_async and prefers_async(request)
        if action != "createSession" and not request.headers.get(SESSION_HEADER):
            is_async = False
        if doomed is not None and not is_async:  # merge mode, but this write would run synchronously
            record.contention = "conflict"
            return _conflict()
        if fault is not None:  # apply, then fail: the write lands, the client is told otherwise
            await hold(scenario, write.cells)
            try:
                write.apply()
            except WorkbookError as exc:
                return error_answer(exc)
            emulator.fault(item_id, fault.fault, action)
            return _after_apply_answer(fault)
        if is_async:
            duration = state.draw_duration(action) if state is not None else None
            if duration is None and scenario.latency is not None and scenario.running_seconds is None:
                duration = scenario.latency.seconds(write.cells)
            op = emulator.operations.create(
                item_id,
                item_path,
                action,
                scenario,
                write.apply,
                duration,
                doomed,
                on_finish=self._renew_session(item_id, request.headers.get(SESSION_HEADER)),
            )
            if doomed is not None:
                record.contention = "merge"
            record.operation_id = op.id
            base = scenario.location_origin or origin(request)
            loc_version = scenario.location_version or version
            location = with_query(
                f"{base}/{loc_version}{item_path}/workbook/operations/{op.id}", scenario.location_query
            )
            return web.json_response({}, status=202, headers={"Location": location})
        await hold(scenario, write.cells)
        try:
            result = write.apply()
        except WorkbookError as exc:
            return error_answer(exc)
        if action == "deleteTableRow":
            return web.Response(status=200)
        return web.json_response(result, status=200 if never_async else 201)

    def _open_sessions(self, item_id: str, scenario: Scenario) -> int:
        now = time.monotonic()
        expiry = scenario.session_expiry
        return sum(
            1
            for _, info in self.emulator.workbooks.sessions(item_id)
            if info.state(expiry.idle(info.persist_changes) if expiry else None, now) == "alive"
        )

    def _renew_session(self, item_id: str, session_id: str | None) -> Callable[[Operation], None] | None:
        """An operation's end renews the session it ran in (the workbook was busy in it until then)."""
        if not session_id:
            return None
        workbooks = self.emulator.workbooks

        def renew(op: Operation) -> None:
            info = workbooks.session(item_id, session_id)
            if info is not None and not info.closed and not info.expired and op.completed_monotonic is not None:
                info.last_used = max(info.last_used, op.completed_monotonic)

        return renew

    def _change(
        self, raw: bytes, item_id: str, action: Action, table: str | None, row_index: int | None, scenario: Scenario
    ) -> Write:
        """Read and check the write's body now (WorkbookError); the change itself runs when it is applied."""
        workbooks = self.emulator.workbooks
        counters = self.emulator.counters.item(item_id)
        strict = scenario.strict_tables
        if action == "createSession":
            persist = parse_create_session(_parse_json(raw))

            def create() -> dict[str, Any] | None:
                return workbooks.create_session(item_id, persist).to_json()

            return Write(create, 0)
        if action == "createTableRow":
            assert table is not None
            tbl = table
            try:
                index, values = parse_add_rows(_parse_json(raw))
            except WorkbookError as exc:
                if strict and exc.inner is None:  # strict tables answer every bad argument with Graph's chain
                    raise WorkbookError.of(400, invalid_argument(exc.message)) from exc
                raise
            found = workbooks.check_insert(item_id, tbl, index, strict=strict)
            if strict:
                check_shape(found, values)
            cells = len(values) * len(values[0])

            def insert() -> dict[str, Any] | None:
                result = workbooks.insert_rows(item_id, tbl, index, values, strict=strict)
                counters.rows_written += len(values)
                counters.cells_written += cells
                return result

            return Write(insert, cells)
        assert table is not None and row_index is not None
        tbl, at = table, row_index
        found = workbooks.check_delete(item_id, tbl, at, strict=strict)

        def delete() -> dict[str, Any] | None:
            workbooks.delete_row(item_id, tbl, at, strict=strict)
            return None

        return Write(delete, max(found.width, 1))
