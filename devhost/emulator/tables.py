"""A workbook table: its name, id, columns and rows, where it sits on its sheet, and the workbookRange answers of
its ``range`` and ``dataBodyRange`` (api-reference/v1.0/api/table-range.md, table-databodyrange.md;
resources/workbookrange.md for the properties).

Rows are stored as the lists the request's JSON parser made and are never changed in place (an insert puts new
lists in, a delete takes one out), so reads and the admin API serialise them without copying: a 200,000 x 10 table
costs its cells and one list per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SHEET = "Sheet1"
_A1 = re.compile(r"^([A-Za-z]{1,3})([1-9][0-9]{0,6})$")
MAX_COLUMNS = 16384  # Excel's grid: XFD
MAX_ROWS = 1048576


def column_letters(index: int) -> str:
    """Zero-based column index → Excel letters (0 → A, 25 → Z, 26 → AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def parse_cell(ref: str) -> tuple[int, int]:
    """``"B3"`` → (column 1, row 2), zero-based; ValueError for anything else or off the grid."""
    match = _A1.match(ref)
    if match is None:
        raise ValueError(f"'{ref}' is not an A1 cell reference")
    col = 0
    for ch in match.group(1).upper():
        col = col * 26 + (ord(ch) - ord("A") + 1)
    row = int(match.group(2))
    if col > MAX_COLUMNS or row > MAX_ROWS:
        raise ValueError(f"'{ref}' is off the worksheet grid")
    return col - 1, row - 1


def _text(value: Any) -> str:
    """A cell's text under the General number format (workbookRange.text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_type(value: Any) -> str:
    """workbookRange.valueTypes: Unknown, Empty, String, Integer, Double, Boolean, Error."""
    if value is None or value == "":
        return "Empty"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Double"
    if isinstance(value, str):
        return "String"
    return "Unknown"


@dataclass
class Table:
    """One table. ``columns`` is None for a table made on demand by a write (the width is then the first row's);
    a declared table has its header names and, with strict tables on, a fixed width."""

    name: str
    id: str
    columns: list[str] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    sheet: str = DEFAULT_SHEET
    origin_col: int = 0
    origin_row: int = 0

    @property
    def declared(self) -> bool:
        return self.columns is not None

    @property
    def width(self) -> int:
        if self.columns is not None:
            return len(self.columns)
        return len(self.rows[0]) if self.rows else 0

    def header(self) -> list[str]:
        """The header row's names (``Column1``… for a table made on demand, as Excel names new columns)."""
        if self.columns is not None:
            return list(self.columns)
        return [f"Column{n + 1}" for n in range(self.width)]

    def _address(self, first_row: int, row_count: int) -> str:
        width = max(self.width, 1)
        top = f"{column_letters(self.origin_col)}{first_row + 1}"
        bottom = f"{column_letters(self.origin_col + width - 1)}{first_row + row_count}"
        return f"{self.sheet}!{top}:{bottom}"

    def range_values(self, *, body_only: bool) -> list[list[Any]]:
        """The ``values`` of ``range`` / ``dataBodyRange`` (empty cells read back as ``""``, as Excel answers)."""
        body: list[list[Any]] = [["" if v is None else v for v in row] for row in self.rows]
        if not body:
            body = [[""] * max(self.width, 1)]
        return body if body_only else [self.header(), *body]

    def range_json(self, *, body_only: bool) -> dict[str, Any]:
        """The table's ``range`` (header row + data rows) or ``dataBodyRange`` (data rows only) as a workbookRange.

        An empty table's data body is one blank row: Excel keeps at least one data row in a table, so
        ``dataBodyRange`` of a table without rows has ``rowCount`` 1 and blank values while ``rows`` lists none.
        The docs say nothing of empty tables; this is the reading harshest for a client that would take
        ``dataBodyRange.rowCount`` for the number of rows.
        """
        width = max(self.width, 1)
        values = self.range_values(body_only=body_only)
        first_row = self.origin_row + (1 if body_only else 0)
        count = len(values)
        address = self._address(first_row, count)
        return {
            "address": address,
            "addressLocal": address,
            "cellCount": count * width,
            "columnCount": width,
            "columnHidden": False,
            "columnIndex": self.origin_col,
            "formulas": values,
            "formulasLocal": values,
            "formulasR1C1": values,
            "hidden": False,
            "numberFormat": [["General"] * width for _ in range(count)],
            "rowCount": count,
            "rowHidden": False,
            "rowIndex": first_row,
            "text": [[_text(v) for v in row] for row in values],
            "valueTypes": [[_value_type(v) for v in row] for row in values],
            "values": values,
        }

    def describe(self) -> dict[str, Any]:
        """The admin view: name, id, columns, row count and where the table sits."""
        return {
            "name": self.name,
            "id": self.id,
            "columns": list(self.columns) if self.columns is not None else None,
            "declared": self.declared,
            "rowCount": len(self.rows),
            "sheet": self.sheet,
            "address": self._address(self.origin_row, max(len(self.rows), 1) + 1),  # as ``range`` answers it
        }
