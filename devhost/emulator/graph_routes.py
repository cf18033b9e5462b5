"""The Graph API's front door (``/v1.0`` and ``/beta``): which workbook request a path is, the bearer token
check, and the hand-off to the workbook writes or the operation answers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from .identity_routes import IdentityRoutes
from .operation_routes import OperationRoutes
from .operations import Action
from .server import current_record, graph_error, inner_error
from .state import Emulator
from .workbook_routes import WorkbookRoutes

# Matched against the raw (still percent-encoded) path so the item path can be echoed verbatim.
_GRAPH_RE = re.compile(
    r"^/(?P<version>v1\.0|beta)"
    r"(?P<item>/(?:me/drive|drives/[^/]+|users/[^/]+/drive|sites/[^/]+/drive|groups/[^/]+/drive)"
    r"/items/(?P<item_id>[^/]+))"
    r"/workbook(?P<rest>/.*)?$"
)
_CREATE_SESSION_RE = re.compile(r"^/createSession/?$", re.IGNORECASE)
_ROWS_RE = re.compile(r"^/tables/(?P<table>[^/]+)/rows/?$", re.IGNORECASE)
_ROWS_ADD_RE = re.compile(r"^/tables/(?P<table>[^/]+)/rows/add/?$", re.IGNORECASE)
_ROW_RE = re.compile(
    r"^/tables/(?P<table>[^/]+)/rows/(?:(?P<index>\d+)|itemAt\(index=(?P<at>\d+)\))(?P<delete>/delete)?/?$",
    re.IGNORECASE,
)
_OPERATION_RE = re.compile(r"^/operations/(?P<op>[^/]+)/?$", re.IGNORECASE)
_RESULT_RE = re.compile(
    r"^/(?P<kind>sessionInfoResource|tableRowOperationResult)\(key=(?P<key>[^)]*)\)/?$", re.IGNORECASE
)
_SESSION_CONTROL_RE = re.compile(r"^/(?:refreshSession|closeSession)/?$", re.IGNORECASE)

_UNAUTHENTICATED = {
    "none": "Access token is empty.",
    "expired": "Access token has expired or is not yet valid.",
    "revoked": "Access token has been revoked.",
    "invalid": "Access token validation failure. Invalid audience or malformed token.",
}

Route = Callable[[], Awaitable[web.StreamResponse]]


def _ready(make: Callable[[], web.StreamResponse]) -> Route:
    async def run() -> web.StreamResponse:
        return make()

    return run


def _app_only_denied() -> web.Response:
    """Graph's 403 for an app-only token on an API the emulator is told to serve to users only."""
    inner = {"code": "forbidden", **inner_error()}
    body = {
        "error": {
            "code": "accessDenied",
            "message": "Application permissions are not supported here: this workbook API requires a "
            "delegated (signed-in user) token.",
            "innerError": inner,
        }
    }
    return web.json_response(body, status=403)


class GraphRoutes:
    def __init__(self, emulator: Emulator, identity: IdentityRoutes) -> None:
        self.emulator = emulator
        self.identity = identity
        self.workbook = WorkbookRoutes(emulator)
        self.operations = OperationRoutes(emulator)

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self.graph)  # last: everything no other group claimed

    async def graph(self, request: web.Request) -> web.StreamResponse:
        record = current_record()
        self.emulator.operations.settle()  # drawn-duration operations finish on time, polled or not
        raw_path = request.rel_url.raw_path
        if not raw_path.startswith(("/v1.0/", "/beta/")):
            return graph_error(404, "notFound", f"No such resource: {request.path}")
        match = _GRAPH_RE.match(raw_path)
        if match is not None:
            record.item = unquote(match.group("item_id"))
        route = self._route(request, match) if match is not None else None
        auth, principal = self.identity.authenticate(request)
        record.auth = auth
        record.user = principal.label if principal is not None else None
        if auth != "valid":
            response = graph_error(401, "InvalidAuthenticationToken", _UNAUTHENTICATED[auth])
            response.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return response
        if route is None:
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")
        if self.emulator.strict_delegated and principal is not None and not principal.delegated:
            return _app_only_denied()
        return await route()

    def _route(self, request: web.Request, match: re.Match[str]) -> Route | None:
        """Classify the request (filling its log record) and return the handler to run after auth."""
        record = current_record()
        version = match.group("version")
        item_path = match.group("item")
        item_id = unquote(match.group("item_id"))
        rest = unquote(match.group("rest") or "")
        method = request.method

        def start(action: Action, table: str | None, index: int | None, never_async: bool = False) -> Route:
            record.kind = "start"
            record.action = action
            return lambda: self.workbook.start(
                request, version, item_path, item_id, action, table, index, never_async=never_async
            )

        if method == "POST" and _CREATE_SESSION_RE.match(rest):
            return start("createSession", None, None)
        if method == "POST" and (m := _ROWS_RE.match(rest)):
            return start("createTableRow", m["table"], None)
        if method == "POST" and (m := _ROWS_ADD_RE.match(rest)):
            return start("createTableRow", m["table"], None, never_async=True)
        if (m := _ROW_RE.match(rest)) and (
            (method == "DELETE" and not m["delete"]) or (method == "POST" and m["delete"])
        ):
            return start("deleteTableRow", m["table"], int(m["index"] if m["index"] is not None else m["at"]))
        if method == "GET" and (m := _OPERATION_RE.match(rest)):
            op_id = m["op"]
            record.kind = "operation"
            record.operation_id = op_id
            op = self.emulator.operations.get(op_id)
            if op is not None and op.item_id == item_id:
                record.action = op.action
            return lambda: self.operations.operation(request, version, item_path, item_id, op_id)
        if method == "GET" and (m := _RESULT_RE.match(rest)):
            key = m["key"].strip().strip("'\"")
            action: Action = "createSession" if m["kind"].lower() == "sessioninforesource" else "createTableRow"
            record.kind = "result"
            record.operation_id = key
            record.action = action
            return _ready(lambda: self.operations.result(item_id, key, action))
        if method == "GET" and (m := _ROWS_RE.match(rest)):
            table = m["table"]
            return _ready(lambda: self.workbook.list_rows(item_id, table))
        if method == "POST" and _SESSION_CONTROL_RE.match(rest):
            return _ready(lambda: web.Response(status=204))
        return None
