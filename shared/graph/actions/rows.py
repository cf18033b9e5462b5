"""createTableRow and deleteTableRow: add rows to a table (`POST .../tables/{t}/rows`; the result is the row
`{index, values}`, from `tableRowOperationResult(key=...)`) and delete one (`DELETE .../rows/itemAt(index=n)`,
no result)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from shared.graph.actions.params import Index, Name, Rows
from shared.graph.actions.spec import Action, Call

TABLE = Name("table", "the table's id or name")


def _table(params: dict[str, Any]) -> str:
    return f"/tables/{quote(str(params['table']), safe='')}"


def _row(body: dict[str, Any]) -> Any:
    return {"index": body.get("index"), "values": body.get("values")}


CREATE_TABLE_ROW = Action(
    name="createTableRow",
    summary="Add rows to a table (at `index`, or at the end)",
    params=(
        TABLE,
        Rows("values", "the rows to add"),
        Index("index", "where to insert (null or absent: at the end)", required=False, nullable=True),
    ),
    call=lambda p: Call("POST", f"{_table(p)}/rows", {"index": p["index"], "values": p["values"]}),
    result=_row,
    result_marker="/tablerowoperationresult(",
)

DELETE_TABLE_ROW = Action(
    name="deleteTableRow",
    summary="Delete one row of a table",
    params=(TABLE, Index("index", "the zero-based index of the row to delete")),
    call=lambda p: Call("DELETE", f"{_table(p)}/rows/itemAt(index={int(p['index'])})"),
)
