"""The aiohttp plumbing every route group shares: the per-request context, the request log (recorder) wiring,
Graph's error envelope and response headers, and serving a canned fault."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .recorder import Recorder, RequestRecord
from .scenarios import Fault

ADMIN_PREFIX = "/_emulator"

STATUS_CODES: dict[int, str] = {
    400: "badRequest",
    401: "unauthorized",
    403: "accessDenied",
    404: "itemNotFound",
    405: "methodNotAllowed",
    409: "conflict",
    413: "requestTooLarge",
    429: "tooManyRequests",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "gatewayTimeout",
}

_DIAGNOSTIC = json.dumps(
    {"ServerInfo": {"DataCenter": "Emulator", "Slice": "E", "Ring": "0", "ScaleUnit": "000", "RoleInstance": "EMU"}}
)


@dataclass
class RequestContext:
    """Per-request data, kept in a context variable (each aiohttp request runs in its own task)."""

    request_id: str
    client_request_id: str
    record: RequestRecord | None = None
    drop: bool = False
    """Close the connection without an answer (an injected apply-then-drop fault)."""


_CONTEXT: ContextVar[RequestContext] = ContextVar("emulator_request_context")


def _context() -> RequestContext:
    try:
        return _CONTEXT.get()
    except LookupError:
        request_id = str(uuid.uuid4())
        return RequestContext(request_id, request_id)


def current_record() -> RequestRecord:
    """The log record of the request being served (every non-admin request has one)."""
    record = _context().record
    assert record is not None
    return record


def inner_error() -> dict[str, Any]:
    ctx = _context()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": ctx.request_id,
        "client-request-id": ctx.client_request_id,
    }


def drop_connection() -> web.Response:
    """Mark the request being served to end with its connection closed and no answer (the middleware aborts the
    transport); the response returned here is never sent."""
    _context().drop = True
    return web.Response(status=499)


def graph_error(status: int, code: str, message: str, inner: Mapping[str, Any] | None = None) -> web.Response:
    """A response in Graph's error envelope. `inner`: the second level of the chain (``code``, ``message`` and any
    deeper ``innerError``); the request ids and date are added to it, where real answers carry them."""
    second: dict[str, Any] = {}
    if inner is not None:
        second.update({k: copy.deepcopy(v) for k, v in inner.items() if k != "innerError"})
    second.update(inner_error())
    if inner is not None and "innerError" in inner:
        second["innerError"] = copy.deepcopy(inner["innerError"])
    body = {"error": {"code": code, "message": message, "innerError": second}}
    return web.json_response(body, status=status)


def chain_error(status: int, error: Mapping[str, Any]) -> web.Response:
    """Answer an error chain (graph_errors.Chain): its top code and message, its second level with the ids."""
    return graph_error(status, str(error["code"]), str(error["message"]), error.get("innerError"))


def fault_response(fault: Fault) -> web.Response:
    """Serve a canned fault exactly as configured."""
    headers = dict(fault.headers)
    text: str | None
    if fault.raw_body is not None:
        text = fault.raw_body
    elif fault.has_body:
        text = json.dumps(fault.body)
    elif fault.error is not None:
        error = copy.deepcopy(fault.error)
        if "innerError" not in error and "innererror" not in error:
            error["innerError"] = inner_error()
        text = json.dumps({"error": error})
    elif fault.status >= 400:
        code = STATUS_CODES.get(fault.status, "generalException")
        text = json.dumps(
            {
                "error": {
                    "code": code,
                    "message": f"Injected fault (HTTP {fault.status}).",
                    "innerError": inner_error(),
                }
            }
        )
    else:
        text = None
    if text is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return web.Response(status=fault.status, body=text.encode() if text is not None else None, headers=headers)


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def with_query(url: str, query: str | None) -> str:
    return f"{url}?{query}" if query else url


async def not_found(request: web.Request) -> web.StreamResponse:
    return graph_error(404, "notFound", f"No such resource: {request.path}")


Finished = Callable[[web.Request, RequestRecord, web.StreamResponse | None], None]


def middleware(recorder: Recorder, finished: Finished | None = None) -> Middleware:
    """Per request: a context (request ids), a log record (not for the admin API), Graph's error envelope for
    any exception, and the headers Graph puts on every answer. A request marked to drop (drop_connection) has its
    transport aborted: the client sees the connection close with no answer, and its record has no status.
    `finished(request, record, response)` runs after every logged request (response None when dropped)."""

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        ctx = RequestContext(request_id, request.headers.get("client-request-id") or request_id)
        record: RequestRecord | None = None
        if not request.path.startswith(ADMIN_PREFIX):
            record = recorder.begin(
                method=request.method,
                host=request.headers.get("Host"),
                path=request.path,
                query=request.raw_path.partition("?")[2],  # raw, as sent on the wire
                prefer=request.headers.get("Prefer"),
                workbook_session_id=request.headers.get("Workbook-Session-Id"),
                client_request_id=request.headers.get("client-request-id"),
            )
            ctx.record = record
        token = _CONTEXT.set(ctx)
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            code = STATUS_CODES.get(exc.status, "generalException")
            response = graph_error(exc.status, code, exc.reason)
        except Exception as exc:
            response = graph_error(500, "internalServerError", f"Emulator error: {exc!r}")
        finally:
            _CONTEXT.reset(token)
        if "request-id" not in response.headers:
            response.headers["request-id"] = ctx.request_id
        if "client-request-id" not in response.headers:
            response.headers["client-request-id"] = ctx.client_request_id
        if "x-ms-ags-diagnostic" not in response.headers:
            response.headers["x-ms-ags-diagnostic"] = _DIAGNOSTIC
        if ctx.drop:
            transport = request.transport
            if transport is not None:
                transport.abort()
            if record is not None and finished is not None:
                finished(request, record, None)
            return response
        if record is not None:
            record.status = response.status
            if finished is not None:
                finished(request, record, response)
        return response

    return handle
