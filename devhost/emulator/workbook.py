"""In-memory workbooks: sessions, tables and rows, keyed by drive item id.

Tables are made on demand by the first write that names them (the emulator's behaviour from the start), or
declared through the admin API with a name, an id and column names. With strict tables (a scenario switch) only a
declared table exists and a row must have its width; see workbook_routes for the answers.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .graph_errors import Chain, invalid_argument, item_not_found
from .tables import DEFAULT_SHEET, Table

SessionState = Literal["alive", "expired", "closed", "unknown"]


class WorkbookError(Exception):
    """A Graph-style failure: HTTP status plus error code and message, and (for the chains real Excel answers)
    the second level of the error object."""

    def __init__(self, status: int, code: str, message: str, inner: Chain | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    @classmethod
    def of(cls, status: int, error: Chain) -> WorkbookError:
        return cls(status, str(error["code"]), str(error["message"]), error.get("innerError"))

    def to_error(self) -> dict[str, Any]:
        """The error object an operation that failed with it reports."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner is not None:
            out["innerError"] = dict(self.inner)
        return out


@dataclass
class SessionInfo:
    """A workbook session. ``last_used`` (monotonic) is renewed by every request that carries its id; with session
    expiry on it dies after an idle time (scenario ``sessionExpiry``) or when closed, and stays dead."""

    id: str
    persist_changes: bool
    created: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    last_used: float = 0.0
    closed: bool = False
    expired: bool = False

    def __post_init__(self) -> None:
        self.last_used = self.created

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "persistChanges": self.persist_changes}

    def state(self, idle_limit: float | None, now: float) -> SessionState:
        """alive, closed or expired (idle past `idle_limit`; None: sessions never expire)."""
        if self.closed:
            return "closed"
        if not self.expired and idle_limit is not None and now - self.last_used >= idle_limit:
            self.expired = True
        return "expired" if self.expired else "alive"

    def admin_json(self, idle_limit: float | None, now: float) -> dict[str, Any]:
        wall_offset = time.time() - now
        return {
            "id": self.id,
            "persistChanges": self.persist_changes,
            "state": self.state(idle_limit, now),
            "createdAt": self.created_wall,
            "lastUsedAt": self.last_used + wall_offset,
            "expiresAt": (self.last_used + idle_limit + wall_offset) if idle_limit is not None else None,
        }


@dataclass
class Workbook:
    item_id: str
    tables: dict[str, Table] = field(default_factory=dict)
    sessions: dict[str, SessionInfo] = field(default_factory=dict)
    _next_table_id: int = 1

    def find(self, key: str) -> Table | None:
        """A table by name, then by id, then by name ignoring case (Excel's table names are case-insensitive)."""
        table = self.tables.get(key)
        if table is not None:
            return table
        for table in self.tables.values():
            if table.id == key:
                return table
        lowered = key.lower()
        return next((t for t in self.tables.values() if t.name.lower() == lowered), None)

    def new_table_id(self) -> str:
        while any(t.id == str(self._next_table_id) for t in self.tables.values()):
            self._next_table_id += 1
        self._next_table_id += 1
        return str(self._next_table_id - 1)


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
    """``{"index": n|null, "values": [[…], …]}`` (table-post-rows.md). The lists are the parser's own, kept as they
    are (never changed in place afterwards)."""
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
    return index, values


_SCALARS = (str, int, float, bool, type(None))


def check_shape(table: Table, values: list[list[Any]]) -> None:
    """Strict tables: every row has the table's width and every cell is a scalar (string, number, boolean or null);
    else Graph's 400 InvalidArgument (microsoft-graph-docs-contrib #7248)."""
    width = table.width
    if table.declared or table.rows:
        if len(values[0]) != width:
            raise WorkbookError.of(
                400,
                invalid_argument(
                    "The number of rows or columns in the input array doesn't match the size or dimensions of "
                    f"the range. (emulator: table '{table.name}' has {width} columns, the row has {len(values[0])})"
                ),
            )
    if not all(type(cell) in _SCALARS for row in values for cell in row):
        raise WorkbookError.of(400, invalid_argument("A value in 'values' is not a string, number, boolean or null."))


class WorkbookStore:
    def __init__(self) -> None:
        self._books: dict[str, Workbook] = {}

    def get(self, item_id: str) -> Workbook:
        book = self._books.get(item_id)
        if book is None:
            book = self._books[item_id] = Workbook(item_id)
        return book

    def reset(self) -> None:
        self._books.clear()

    # ------------------------------------------------------------------ tables
    def table(self, item_id: str, key: str, *, strict: bool) -> Table:
        """The table `key` names (name or id); made on demand unless `strict` (then Graph's 404 ItemNotFound)."""
        book = self.get(item_id)
        table = book.find(key)
        if table is not None:
            return table
        if strict:
            raise WorkbookError.of(404, item_not_found(f"The table '{key}' does not exist in this workbook."))
        table = book.tables[key] = Table(name=key, id=book.new_table_id())
        return table

    def peek(self, item_id: str, key: str) -> Table | None:
        """The table, if it exists (never makes one)."""
        book = self._books.get(item_id)
        return book.find(key) if book is not None else None

    def peek_rows(self, item_id: str, table: str) -> list[list[Any]]:
        found = self.peek(item_id, table)
        return list(found.rows) if found is not None else []

    def declare_table(
        self,
        item_id: str,
        name: str,
        columns: list[str],
        table_id: str | None = None,
        rows: list[list[Any]] | None = None,
        sheet: str = DEFAULT_SHEET,
        origin: tuple[int, int] = (0, 0),
    ) -> Table:
        """Declare (or replace) a table with its columns and optional rows."""
        book = self.get(item_id)
        existing = book.tables.pop(name, None)
        if table_id is not None and any(t.id == table_id for t in book.tables.values()):
            if existing is not None:
                book.tables[name] = existing
            raise ValueError(f"another table of this workbook has the id '{table_id}'")
        tid = table_id or (existing.id if existing is not None else book.new_table_id())
        table = Table(name, tid, list(columns), list(rows or []), sheet, origin[0], origin[1])
        book.tables[name] = table
        return table

    def drop_table(self, item_id: str, key: str) -> bool:
        book = self._books.get(item_id)
        table = book.find(key) if book is not None else None
        if book is None or table is None:
            return False
        del book.tables[table.name]
        return True

    def list_tables(self, item_id: str) -> list[Table]:
        book = self._books.get(item_id)
        return list(book.tables.values()) if book is not None else []

    def check_insert(self, item_id: str, table: str, index: int | None, *, strict: bool = False) -> Table:
        found = self.table(item_id, table, strict=strict)
        if index is not None and index > len(found.rows):
            message = f"The argument 'index' ({index}) is out of range."
            if strict:
                raise WorkbookError.of(400, invalid_argument(message))
            raise WorkbookError(400, "invalidArgument", message)
        return found

    def insert_rows(
        self, item_id: str, table: str, index: int | None, values: list[list[Any]], *, strict: bool = False
    ) -> dict[str, Any]:
        found = self.check_insert(item_id, table, index, strict=strict)
        at = len(found.rows) if index is None else index
        if at == len(found.rows):
            found.rows.extend(values)
        else:
            found.rows[at:at] = values
        return {"index": at, "values": [values[0]]}

    def check_delete(self, item_id: str, table: str, index: int, *, strict: bool = False) -> Table:
        found = self.table(item_id, table, strict=strict)
        if not 0 <= index < len(found.rows):
            message = f"The requested row ({index}) does not exist."
            if strict:
                raise WorkbookError.of(404, item_not_found(message))
            raise WorkbookError(404, "itemNotFound", message)
        return found

    def delete_row(self, item_id: str, table: str, index: int, *, strict: bool = False) -> None:
        found = self.check_delete(item_id, table, index, strict=strict)
        del found.rows[index]

    # ------------------------------------------------------------------ sessions
    def create_session(self, item_id: str, persist_changes: bool) -> SessionInfo:
        info = SessionInfo(new_session_id(), persist_changes)
        self.get(item_id).sessions[info.id] = info
        return info

    def session(self, item_id: str, session_id: str) -> SessionInfo | None:
        book = self._books.get(item_id)
        return book.sessions.get(session_id) if book is not None else None

    def sessions(self, item_id: str | None = None) -> list[tuple[str, SessionInfo]]:
        return [
            (item, info)
            for item, book in self._books.items()
            if item_id is None or item == item_id
            for info in book.sessions.values()
        ]
