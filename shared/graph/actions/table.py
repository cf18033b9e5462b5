"""The table itself: the actions by name, and what the rest of the app asks of it (the names, one action, the
Graph request of a start, the result of an answer, the action a result URL names). Pure.

Adding an action: its module beside this one, and one line in `TABLE` below.
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.graph.actions.rows import CREATE_TABLE_ROW, DELETE_TABLE_ROW
from shared.graph.actions.session import CREATE_SESSION
from shared.graph.actions.spec import MAX_BODY_BYTES, Action, GraphRequest, graph_request

TABLE: dict[str, Action] = {action.name: action for action in (CREATE_SESSION, CREATE_TABLE_ROW, DELETE_TABLE_ROW)}


def names() -> tuple[str, ...]:
    """The actions' names, in the table's order (read at call time: a test may add an entry)."""
    return tuple(TABLE)


def find(name: Any) -> Action | None:
    return TABLE.get(name) if isinstance(name, str) else None


def body_limit() -> int:
    """The largest body any action accepts: a body past it is refused before it is parsed."""
    return max([MAX_BODY_BYTES, *(action.max_body_bytes for action in TABLE.values())])


class StartFields(Protocol):
    """What a start is built from (shared/operations/requests.StartRequest is one)."""

    @property
    def workbook(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def parameters(self) -> dict[str, Any]: ...
    @property
    def session_id(self) -> str | None: ...


def request_for(base_url: str, start: StartFields) -> GraphRequest:
    """The Graph request of a validated start (KeyError for an action not in the table)."""
    return graph_request(TABLE[start.action], base_url, start.workbook, start.parameters, start.session_id)


def result_of(action: str | None, parsed: Any) -> Any:
    """The record's `result` from Graph's parsed result body: the action's shape; for an unknown action (a tracked
    operation nobody named) the body without its @odata annotations; None when the body is not an object."""
    known = find(action)
    if known is not None and known.result is None:
        return None
    if not isinstance(parsed, dict):
        return None
    if known is not None and known.result is not None:
        return known.result(parsed)
    return {k: v for k, v in parsed.items() if not k.startswith("@odata")}


def infer(resource_location: str | None) -> str | None:
    """The action a result URL names (for tracked operations without an action), or None."""
    if not resource_location:
        return None
    lowered = resource_location.lower()
    return next((a.name for a in TABLE.values() if a.result_marker and a.result_marker in lowered), None)
