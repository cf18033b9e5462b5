"""The admin API for the workbook state issue 19 adds (under ``/_emulator``, never Graph's): declared tables,
injected write faults, sessions, counters and the fault log. Bad input answers 400 ``invalidArgument`` naming the
field, as the rest of the admin API does."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .admin_json import admin_json
from .scenario_parts import ScenarioError
from .scenario_realism import parse_write_fault, parse_write_faults
from .server import ADMIN_PREFIX, graph_error
from .state import Emulator
from .tables import DEFAULT_SHEET, MAX_COLUMNS, parse_cell

_TABLE_FIELDS = {"columns", "id", "rows", "sheet", "origin"}
_SCALARS = (str, int, float, bool, type(None))


def _bad(message: str) -> web.Response:
    return graph_error(400, "invalidArgument", message)


def _table_name(name: str) -> str:
    if not name.strip():
        raise ScenarioError("the table name must not be empty")
    return name


def _columns(body: dict[str, Any]) -> list[str]:
    columns = body.get("columns")
    if (
        not isinstance(columns, list)
        or not columns
        or len(columns) > MAX_COLUMNS
        or not all(isinstance(c, str) and c.strip() for c in columns)
    ):
        raise ScenarioError(f"'columns' must be a list of 1 to {MAX_COLUMNS} non-empty strings")
    if len({c.lower() for c in columns}) != len(columns):
        raise ScenarioError("'columns' must not repeat a name (Excel's column names are case-insensitive)")
    return columns


def _rows(body: dict[str, Any], width: int) -> list[list[Any]]:
    rows = body.get("rows", [])
    if not isinstance(rows, list):
        raise ScenarioError("'rows' must be a list of rows")
    for n, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise ScenarioError(f"rows[{n}]: must be a list of {width} values (one per column)")
        if not all(type(cell) in _SCALARS for cell in row):
            raise ScenarioError(f"rows[{n}]: a value is not a string, number, boolean or null")
    return rows


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"'{name}' must be a non-empty string")
    return value


def _query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ScenarioError(f"'{name}' must be a non-negative integer")
    return int(raw)


class AdminWorkbookRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get(f"{ADMIN_PREFIX}/tables/{{item}}", self.list_tables, allow_head=False)
        router.add_put(f"{ADMIN_PREFIX}/tables/{{item}}/{{table}}", self.declare_table)
        router.add_get(f"{ADMIN_PREFIX}/tables/{{item}}/{{table}}", self.table, allow_head=False)
        router.add_delete(f"{ADMIN_PREFIX}/tables/{{item}}/{{table}}", self.drop_table)
        router.add_post(f"{ADMIN_PREFIX}/scenarios/{{item}}/write-faults", self.inject_write_faults)
        router.add_get(f"{ADMIN_PREFIX}/sessions", self.sessions, allow_head=False)
        router.add_post(f"{ADMIN_PREFIX}/sessions/{{item}}/expire", self.expire_sessions)
        router.add_get(f"{ADMIN_PREFIX}/counters", self.counters, allow_head=False)
        router.add_get(f"{ADMIN_PREFIX}/faults", self.faults, allow_head=False)

    async def declare_table(self, request: web.Request) -> web.StreamResponse:
        """``PUT /_emulator/tables/{item}/{table}`` ``{"columns": [...], "id"?, "rows"?, "sheet"?, "origin"?}``:
        declare (or replace) a table with its header names, optionally its rows, its id (default: the next
        number, as Excel numbers tables), its sheet (``Sheet1``) and its top-left cell (``A1``)."""
        item_id = request.match_info["item"]
        try:
            name = _table_name(request.match_info["table"])
            body = await admin_json(request)
            if not isinstance(body, dict):
                raise ScenarioError("a table must be a JSON object")
            unknown = set(body) - _TABLE_FIELDS
            if unknown:
                raise ScenarioError(f"unknown table field(s): {', '.join(sorted(unknown))}")
            columns = _columns(body)
            rows = _rows(body, len(columns))
            table_id = _optional_str(body, "id")
            sheet = _optional_str(body, "sheet") or DEFAULT_SHEET
            origin_ref = _optional_str(body, "origin") or "A1"
            try:
                origin = parse_cell(origin_ref)
            except ValueError as exc:
                raise ScenarioError(f"'origin': {exc}") from exc
            if origin[0] + len(columns) > MAX_COLUMNS:
                raise ScenarioError("'origin': the table would run off the worksheet grid")
            try:
                table = self.emulator.workbooks.declare_table(item_id, name, columns, table_id, rows, sheet, origin)
            except ValueError as exc:
                raise ScenarioError(f"'id': {exc}") from exc
        except ScenarioError as exc:
            return _bad(str(exc))
        return web.json_response({"item": item_id, "table": table.describe()})

    async def list_tables(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["item"]
        self.emulator.operations.settle()
        return web.json_response([t.describe() for t in self.emulator.workbooks.list_tables(item_id)])

    async def table(self, request: web.Request) -> web.StreamResponse:
        """``GET /_emulator/tables/{item}/{table}[?offset=&limit=]``: ``{"rows": [...], "count": n, "offset": o}``,
        the rows exactly as stored (``count`` is the table's whole row count); an unknown table has no rows."""
        try:
            offset = _query_int(request, "offset") or 0
            limit = _query_int(request, "limit")
        except ScenarioError as exc:
            return _bad(str(exc))
        self.emulator.operations.settle()
        table = self.emulator.workbooks.peek(request.match_info["item"], request.match_info["table"])
        rows = table.rows if table is not None else []
        end = len(rows) if limit is None else offset + limit
        return web.json_response({"rows": rows[offset:end], "count": len(rows), "offset": offset})

    async def drop_table(self, request: web.Request) -> web.StreamResponse:
        if not self.emulator.workbooks.drop_table(request.match_info["item"], request.match_info["table"]):
            return graph_error(404, "itemNotFound", "No such table.")
        return web.Response(status=204)

    async def inject_write_faults(self, request: web.Request) -> web.StreamResponse:
        """``POST /_emulator/scenarios/{item}/write-faults`` with one write fault (``{"fault": "applyThen504",
        "count": 2, "action": "createTableRow"}``) or a list of them: queued after the item's current ones (the item
        gets the default scenario if it has none). Answers the item's queue."""
        item_id = request.match_info["item"]
        try:
            body = await admin_json(request)
            faults = parse_write_faults(body) if isinstance(body, list) else (parse_write_fault(body, "fault"),)
        except ScenarioError as exc:
            return _bad(str(exc))
        state = self.emulator.state_for(item_id)
        state.add_write_faults(faults)
        return web.json_response({"item": item_id, "writeFaults": state.to_json()["remaining"]["writeFaults"]})

    async def sessions(self, request: web.Request) -> web.StreamResponse:
        """``GET /_emulator/sessions[?item=]``: every session with its state (alive, expired, closed) under its
        item's scenario, ``lastUsedAt`` and ``expiresAt`` (Unix seconds; null without session expiry)."""
        now = time.monotonic()
        out = []
        for item_id, info in self.emulator.workbooks.sessions(request.query.get("item") or None):
            expiry = self.emulator.scenario(item_id)[1].session_expiry
            idle = expiry.idle(info.persist_changes) if expiry is not None else None
            out.append({"item": item_id, **info.admin_json(idle, now)})
        return web.json_response(out)

    async def expire_sessions(self, request: web.Request) -> web.StreamResponse:
        """``POST /_emulator/sessions/{item}/expire`` ``{"sessionId": id}`` (or ``{}`` for all of the item's):
        the sessions are dead from now on, as if idle past their limit (tests need not wait minutes)."""
        item_id = request.match_info["item"]
        try:
            body = await admin_json(request)
            if not isinstance(body, dict) or set(body) - {"sessionId"}:
                raise ScenarioError('the body must be {} or {"sessionId": "..."}')
            wanted = body.get("sessionId")
            if wanted is not None and not isinstance(wanted, str):
                raise ScenarioError("'sessionId' must be a string")
        except ScenarioError as exc:
            return _bad(str(exc))
        expired = []
        for _, info in self.emulator.workbooks.sessions(item_id):
            if wanted is None or info.id == wanted:
                info.expired = True
                expired.append(info.id)
        if wanted is not None and not expired:
            return graph_error(404, "itemNotFound", "No such session on this item.")
        return web.json_response({"expired": expired})

    async def counters(self, request: web.Request) -> web.StreamResponse:
        """``GET /_emulator/counters[?item=]``: requests, bytes in/out, dropped answers, rows/cells written and
        read, faults fired by name; all items (``total`` and ``items``) or one item's."""
        self.emulator.operations.settle()
        return web.json_response(self.emulator.counters.to_json(request.query.get("item") or None))

    async def faults(self, request: web.Request) -> web.StreamResponse:
        """``GET /_emulator/faults[?item=]``: every fault fired, oldest first (``seq`` is the request's in
        ``/_emulator/requests``)."""
        return web.json_response(self.emulator.counters.fault_log(request.query.get("item") or None))
