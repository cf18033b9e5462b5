"""What a Graph answer means. Pure functions: status code + headers + body in, a verdict out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shared.graph.actions import table as actions
from shared.wire.retry_after import parse_retry_after
from shared.wire.strict_json import JsonRefused, loads

__all__ = ["parse_retry_after"]  # its home: shared/wire/retry_after.py (the webhook delivery reads it too)

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ERROR_DEPTH = 16


class Kind(enum.Enum):
    NOT_STARTED = "notStarted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TRANSIENT = "transient"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "notFound"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Answer:
    kind: Kind
    status_code: int | None = None
    retry_after: float | None = None
    resource_location: str | None = None
    error: dict[str, Any] | None = None
    reason: str = ""
    own: bool = False  # the bridge refused before Graph answered (untrusted origin, delegated credential)


def header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _json(body: bytes) -> Any:
    """Graph's body as strict JSON, or None (a body with NaN or absurd nesting is as good as none)."""
    try:
        return loads(body)
    except JsonRefused:
        return None


def graph_error(body: bytes, status: int | None = None) -> dict[str, Any]:
    """Graph's `error` object with its whole innerError chain; a stand-in when the body has none."""
    parsed = _json(body)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return sanitize_error(parsed["error"])
    return {"code": f"http{status}" if status else "unknown", "message": "Graph answered without an error body"}


def sanitize_error(error: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Keep code, message and the nested chain (`innerError` or `innererror`) plus scalar details."""
    out: dict[str, Any] = {}
    for key, value in error.items():
        if key.lower() == "innererror" and isinstance(value, dict):
            if depth < MAX_ERROR_DEPTH:
                out["innerError"] = sanitize_error(value, depth + 1)
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value if not isinstance(value, str) else value[:2000]
    if depth == 0:  # Graph's inner errors may carry only date/request-id: give no code they lack
        out.setdefault("code", "unknown")
        out.setdefault("message", "")
    return out


def innermost_code(error: dict[str, Any]) -> str:
    """The most detailed code: the deepest non-empty `code` in the chain."""
    code = str(error.get("code") or "unknown")
    inner = error.get("innerError")
    while isinstance(inner, dict):
        if inner.get("code"):
            code = str(inner["code"])
        inner = inner.get("innerError")
    return code


def classify_operation(status: int, headers: dict[str, str], body: bytes, now: float | None = None) -> Answer:
    """Classify the answer to `GET <operation Location>`."""
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
    if status == 200:
        parsed = _json(body)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("status"), str):
            return Answer(Kind.TRANSIENT, status, retry_after, reason="unparseable operation body")
        value = parsed["status"].strip().lower()
        if value == "notstarted":
            return Answer(Kind.NOT_STARTED, status, retry_after)
        if value == "running":
            return Answer(Kind.RUNNING, status, retry_after)
        if value in ("succeeded", "completed"):
            location = parsed.get("resourceLocation")
            return Answer(Kind.SUCCEEDED, status, resource_location=location if isinstance(location, str) else None)
        if value == "failed":
            error = parsed.get("error")
            return Answer(
                Kind.FAILED,
                status,
                error=sanitize_error(error)
                if isinstance(error, dict)
                else {"code": "operationFailed", "message": "Graph reported the operation failed without details"},
            )
        return Answer(Kind.TRANSIENT, status, retry_after, reason=f"unknown operation status {value[:40]!r}")
    if status == 202:
        return Answer(Kind.RUNNING, status, retry_after)
    return classify_error_status(status, retry_after, body)


def classify_error_status(status: int, retry_after: float | None, body: bytes) -> Answer:
    if status in TRANSIENT_STATUSES or status >= 500:
        return Answer(Kind.TRANSIENT, status, retry_after, reason=f"Graph answered {status}")
    if status == 401:
        return Answer(Kind.UNAUTHORIZED, status, error=graph_error(body, status))
    if status == 404:
        return Answer(Kind.NOT_FOUND, status, error=graph_error(body, status))
    return Answer(Kind.REJECTED, status, error=graph_error(body, status))


def classify_result(status: int, headers: dict[str, str], body: bytes, now: float | None = None) -> Answer:
    """Classify the answer to `GET <resourceLocation>`: SUCCEEDED carries nothing; the caller reads the body."""
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
    if 200 <= status < 300:
        if not isinstance(_json(body), dict):
            return Answer(Kind.TRANSIENT, status, retry_after, reason="unparseable result body")
        return Answer(Kind.SUCCEEDED, status)
    return classify_error_status(status, retry_after, body)


def result_from(action: str | None, body: bytes) -> Any:
    """The record's `result` for an action, from a resourceLocation or synchronous body (its shape: the action
    table's entry, shared/graph/actions/)."""
    return actions.result_of(action, _json(body))


def infer_action(resource_location: str | None) -> str | None:
    """For tracked operations without an action: the action its result URL names (the action table's markers)."""
    return actions.infer(resource_location)
