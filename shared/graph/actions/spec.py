"""What an action is: its name, its parameter rules, the Graph call it makes, the result it keeps and how its
result URL is recognised; and the Graph request built from it. Pure: values and functions, no I/O.

An action declares its own body limit and whether it is one Graph request (a chunked job, such as a later
appendRows, is not: the start use case runs it its own way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.api.problems import FieldError
from shared.graph.actions.params import MISSING, Param

MAX_BODY_BYTES = 1024 * 1024  # an action's default body limit: the largest of today's requests is far smaller


@dataclass(frozen=True)
class Call:
    """What an action asks of Graph, below `{item}/workbook`: `path` starts with a slash (or is empty)."""

    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class GraphRequest:
    """One Excel request as the Graph client sends it."""

    method: str
    url: str
    json: dict[str, Any] | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Action:
    """One entry of the action table.

    - `call`: the checked parameters -> the Graph call;
    - `result`: Graph's result body (a resourceLocation's or a synchronous answer's, parsed) -> the record's
      `result`; None: the action has no result (the record's `result` is null);
    - `result_marker`: a lower-case piece of the result URL (`resourceLocation`) that names this action, for a
      tracked operation whose action was not given; None: not recognisable;
    - `respond_async`: sent with `Prefer: respond-async` (Graph's long-running operation);
    - `max_body_bytes`: the largest request body this action accepts (413 beyond);
    - `one_request`: the start is one Graph request (False: a job of several; the start use case runs it).
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    call: Callable[[dict[str, Any]], Call]
    result: Callable[[dict[str, Any]], Any] | None = None
    result_marker: str | None = None
    respond_async: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    one_request: bool = True

    @property
    def parameters_required(self) -> bool:
        """Whether `parameters` must be given (some parameter is required); else it defaults to {}."""
        return any(p.required for p in self.params)

    def check(self, value: Any, errors: list[FieldError]) -> dict[str, Any] | None:
        """The checked parameters (defaults filled in), or None with the errors appended (each naming
        `parameters.<name>`; unknown names are refused: they are usually typos)."""
        before = len(errors)
        if not isinstance(value, dict):
            errors.append(FieldError("parameters", f"an object is required for {self.name}"))
            return None
        known = {p.name for p in self.params}
        for name in sorted(set(value) - known):
            errors.append(FieldError(f"parameters.{name}", f"unknown parameter for {self.name}"))
        out = {p.name: p.check(value.get(p.name, MISSING), f"parameters.{p.name}", errors) for p in self.params}
        return out if len(errors) == before else None

    def parameters_schema(self) -> dict[str, Any]:
        """`parameters` as an OpenAPI 3.0 schema: the required names, no others."""
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {p.name: p.schema() for p in self.params},
            "description": f"The parameters of {self.name}",
        }
        required = [p.name for p in self.params if p.required]
        if required:
            schema["required"] = required
        return schema


def graph_request(
    action: Action, base_url: str, workbook: str, params: dict[str, Any], session_id: str | None
) -> GraphRequest:
    """The Graph request of one start: `{base}{workbook}/workbook{path}`, asking for the asynchronous answer."""
    call = action.call(params)
    headers = {"Prefer": "respond-async"} if action.respond_async else {}
    if session_id:
        headers["Workbook-Session-Id"] = session_id
    return GraphRequest(call.method, f"{base_url}{workbook}/workbook{call.path}", call.body, headers)
