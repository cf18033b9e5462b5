"""Graph's table reads, the ones a writer can reconcile with, as the docs and the schema give them:

* ``GET …/tables/{id|name}/rows`` with ``$top``/``$skip`` (api-reference/v1.0/api/table-list-rows.md: "For reliable
  results, use the $top and $skip query parameters to page through the results"): a workbookTableRow collection
  ``{"value": [{"index": i, "values": [[…]]}]}``;
* ``GET …/rows/itemAt(index=n)``: the schema's ``itemAt`` function bound to the row collection (msgraph-metadata
  clean_v10_metadata/cleanMetadata.xml), which users report working where ``rows/{index}`` does not
  (microsoft-graph-docs-contrib #3940, #8599); the page tablerowcollection-itemat.md shows a POST with a body, which
  the schema's Function contradicts: only the GET is built;
* ``GET …/rows/count()``: the schema's ``count`` function on the row collection (Edm.Int32, answered as
  ``{"value": n}``). No docs page documents it and ``rows/$count`` is documented nowhere: not built;
* ``GET …/tables/{id|name}/range`` and ``…/dataBodyRange`` (table-range.md, table-databodyrange.md; ``range()`` and
  ``dataBodyRange()`` as the schema's functions are accepted too): a workbookRange (resources/workbookrange.md).

Every read goes through the session gate, the latency model (cells read) and the response payload limit.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .graph_errors import response_payload_too_large
from .scenarios import Scenario
from .server import chain_error, graph_error
from .state import Emulator
from .tables import Table
from .workbook import WorkbookError
from .workbook_checks import hold, json_answer, session_gate
from .workbook_routes import error_answer


def _paging(request: web.Request) -> tuple[int, int | None]:
    """``$skip`` and ``$top`` (non-negative integers); WorkbookError 400 otherwise."""
    out: list[int | None] = []
    for name in ("$skip", "$top"):
        raw = request.query.get(name)
        if raw is None:
            out.append(None)
            continue
        if not raw.isdigit():
            raise WorkbookError(400, "badRequest", f"Invalid value '{raw}' for the query option '{name}'.")
        out.append(int(raw))
    return out[0] or 0, out[1]


class ReadRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _table(self, request: web.Request, item_id: str, key: str) -> tuple[Scenario, Table]:
        """The scenario and the table (strict tables: 404 ItemNotFound when unknown), after the session gate."""
        _, scenario = self.emulator.scenario(item_id)
        refused = session_gate(self.emulator, item_id, scenario, request)
        if refused is not None:
            raise _Answer(refused)
        return scenario, self.emulator.workbooks.table(item_id, key, strict=scenario.strict_tables)

    async def _answer(self, item_id: str, scenario: Scenario, table: Table, rows: int, body: Any) -> web.StreamResponse:
        cells = rows * max(table.width, 1)
        await hold(scenario, cells)
        counters = self.emulator.counters.item(item_id)
        counters.rows_read += rows
        counters.cells_read += cells
        return json_answer(self.emulator, item_id, scenario, body)

    async def rows(self, request: web.Request, item_id: str, key: str) -> web.StreamResponse:
        """``GET …/rows[?$top=&$skip=]``."""
        try:
            skip, top = _paging(request)
            scenario, table = self._table(request, item_id, key)
        except WorkbookError as exc:
            return error_answer(exc)
        except _Answer as answer:
            return answer.response
        end = len(table.rows) if top is None else min(len(table.rows), skip + top)
        value = [{"index": n, "values": [table.rows[n]]} for n in range(skip, end)]
        return await self._answer(item_id, scenario, table, len(value), {"value": value})

    async def item_at(self, request: web.Request, item_id: str, key: str, index: int) -> web.StreamResponse:
        """``GET …/rows/itemAt(index=n)``: the workbookTableRow at position n (404 ItemNotFound past the end)."""
        try:
            scenario, table = self._table(request, item_id, key)
            self.emulator.workbooks.check_delete(item_id, table.name, index, strict=scenario.strict_tables)
        except WorkbookError as exc:
            return error_answer(exc)
        except _Answer as answer:
            return answer.response
        return await self._answer(item_id, scenario, table, 1, {"index": index, "values": [table.rows[index]]})

    async def count(self, request: web.Request, item_id: str, key: str) -> web.StreamResponse:
        """``GET …/rows/count()``: the number of data rows (the schema's Edm.Int32 function)."""
        try:
            scenario, table = self._table(request, item_id, key)
        except WorkbookError as exc:
            return error_answer(exc)
        except _Answer as answer:
            return answer.response
        return await self._answer(item_id, scenario, table, 0, {"value": len(table.rows)})

    async def range(self, request: web.Request, item_id: str, key: str, *, body_only: bool) -> web.StreamResponse:
        """``GET …/range`` (header row and data rows) or ``…/dataBodyRange`` (data rows only)."""
        try:
            scenario, table = self._table(request, item_id, key)
        except WorkbookError as exc:
            return error_answer(exc)
        except _Answer as answer:
            return answer.response
        limit = scenario.response_payload_limit_bytes
        if limit is not None:
            # A workbookRange carries its values four times (values, formulas, formulasLocal, formulasR1C1): over
            # the limit already, answer so without building the text and type grids of a large table.
            lower_bound = 4 * len(json.dumps(table.range_values(body_only=body_only)))
            if lower_bound > limit:
                self.emulator.fault(item_id, "responsePayloadTooLarge", None)
                return chain_error(413, response_payload_too_large(limit, lower_bound))
        body = table.range_json(body_only=body_only)
        return await self._answer(item_id, scenario, table, int(body["rowCount"]), body)


class _Answer(Exception):
    """An answer decided before the read (the session gate's refusal)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__("answered")
        self.response = response


def bad_segment(segment: str) -> web.Response:
    """Graph's router for a path segment the schema does not have (microsoft-graph-docs-contrib #4500,
    microsoft-graph-docs #4818: ``POST …/rows/{index}/delete`` → 400 "Resource not found for the segment
    'delete'."; v1.0's schema has no ``delete`` action bound to workbookTableRow)."""
    return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
