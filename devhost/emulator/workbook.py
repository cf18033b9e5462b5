"""In-memory workbooks: sessions, tables and rows, keyed by drive item id."""

from __future__ import annotations

import base64
import copy
import secrets
from dataclasses import dataclass, field
from typing import Any


class WorkbookError(Exception):
    """A Graph-style failure: HTTP status plus error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class SessionInfo:
    id: str
    persist_changes: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "persistChanges": self.persist_changes}


@dataclass
class Workbook:
    item_id: str
    tables: dict[str, list[list[Any]]] = field(default_factory=dict)
    sessions: dict[str, SessionInfo] = field(default_factory=dict)

    def table(self, name: str) -> list[list[Any]]:
        return self.tables.setdefault(name, [])


def new_session_id() -> str:
    """A long opaque base64 session id shaped like Graph's."""
    inner = (
        f"cluster=EMU{secrets.randbelow(10)}&session={secrets.token_hex(24)}."
        f"{secrets.token_urlsafe(30)}&usid={secrets.token_hex(16)}"
    )
    return base64.b64encode(inner.encode()).decode()


def parse_create_session(body: Any) -> bool:
    if body is None:
        return False
    if not isinstance(body, dict):
        raise WorkbookError(400, "invalidArgument", "The request body must be a JSON object.")
    persist = body.get("persistChanges", False)
    if not isinstance(persist, bool):
        raise WorkbookError(400, "invalidArgument", "persistChanges must be a boolean.")
    return persist


def parse_add_rows(body: Any) -> tuple[int | None, list[list[Any]]]:
    if not isinstance(body, dict):
        raise WorkbookError(400, "invalidArgument", "The request body must be a JSON object.")
    index = body.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise WorkbookError(400, "invalidArgument", "The argument 'index' is invalid or missing.")
    values = body.get("values")
    if not isinstance(values, list) or not values or not all(isinstance(row, list) and row for row in values):
        raise WorkbookError(400, "invalidArgument", "The argument 'values' is invalid or missing.")
    width = len(values[0])
    if any(len(row) != width for row in values):
        raise WorkbookError(400, "invalidArgument", "All rows in 'values' must have the same length.")
    return index, copy.deepcopy(values)


class WorkbookStore:
    def __init__(self) -> None:
        self._books: dict[str, Workbook] = {}

    def get(self, item_id: str) -> Workbook:
        book = self._books.get(item_id)
        if book is None:
            book = self._books[item_id] = Workbook(item_id)
        return book

    def peek_rows(self, item_id: str, table: str) -> list[list[Any]]:
        book = self._books.get(item_id)
        if book is None:
            return []
        return copy.deepcopy(book.tables.get(table, []))

    def reset(self) -> None:
        self._books.clear()

    def create_session(self, item_id: str, persist_changes: bool) -> SessionInfo:
        info = SessionInfo(new_session_id(), persist_changes)
        self.get(item_id).sessions[info.id] = info
        return info

    def check_insert(self, item_id: str, table: str, index: int | None) -> None:
        rows = self.get(item_id).table(table)
        if index is not None and index > len(rows):
            raise WorkbookError(400, "invalidArgument", f"The argument 'index' ({index}) is out of range.")

    def insert_rows(self, item_id: str, table: str, index: int | None, values: list[list[Any]]) -> dict[str, Any]:
        self.check_insert(item_id, table, index)
        rows = self.get(item_id).table(table)
        at = len(rows) if index is None else index
        rows[at:at] = copy.deepcopy(values)
        return {"index": at, "values": [copy.deepcopy(values[0])]}

    def check_delete(self, item_id: str, table: str, index: int) -> None:
        rows = self.get(item_id).table(table)
        if not 0 <= index < len(rows):
            raise WorkbookError(404, "itemNotFound", f"The requested row ({index}) does not exist.")

    def delete_row(self, item_id: str, table: str, index: int) -> None:
        self.check_delete(item_id, table, index)
        del self.get(item_id).table(table)[index]

    def list_rows(self, item_id: str, table: str) -> list[dict[str, Any]]:
        rows = self.get(item_id).table(table)
        return [{"index": n, "values": [copy.deepcopy(row)]} for n, row in enumerate(rows)]
