"""aiohttp application: routing for the identity endpoint, the Graph workbook API and the admin API."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler

from . import DEFAULT_IDENTITY_HEADER, DEFAULT_TOKEN_LIFETIME
from .entra import DEFAULT_TENANT_ID, GRAPH_RESOURCE, AdminError, EntraError, EntraService, Principal
from .identity import AuthState, TokenRegistry, token_response
from .operations import Action, Operation, OperationStore, spell_status
from .recorder import Recorder, RequestRecord
from .scenarios import Fault, Scenario, ScenarioError, ScenarioState, parse_config, parse_scenario
from .workbook import WorkbookError, WorkbookStore, parse_add_rows, parse_create_session

ADMIN_PREFIX = "/_emulator"

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

_STATUS_CODES: dict[int, str] = {
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


_CONTEXT: ContextVar[RequestContext] = ContextVar("emulator_request_context")


def _context() -> RequestContext:
    try:
        return _CONTEXT.get()
    except LookupError:
        request_id = str(uuid.uuid4())
        return RequestContext(request_id, request_id)


def _inner_error() -> dict[str, Any]:
    ctx = _context()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": ctx.request_id,
        "client-request-id": ctx.client_request_id,
    }


def graph_error(status: int, code: str, message: str) -> web.Response:
    """A response in Graph's error envelope."""
    body = {"error": {"code": code, "message": message, "innerError": _inner_error()}}
    return web.json_response(body, status=status)


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
            error["innerError"] = _inner_error()
        text = json.dumps({"error": error})
    elif fault.status >= 400:
        code = _STATUS_CODES.get(fault.status, "generalException")
        text = json.dumps(
            {
                "error": {
                    "code": code,
                    "message": f"Injected fault (HTTP {fault.status}).",
                    "innerError": _inner_error(),
                }
            }
        )
    else:
        text = None
    if text is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return web.Response(status=fault.status, body=text.encode() if text is not None else None, headers=headers)


def _prefers_async(request: web.Request) -> bool:
    prefer = ",".join(request.headers.getall("Prefer", []))
    return any(part.strip().lower() == "respond-async" for part in re.split(r"[,;]", prefer))


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _with_query(url: str, query: str | None) -> str:
    return f"{url}?{query}" if query else url


def _merge_conflict_error() -> dict[str, Any]:
    """The error of an accepted write that lost to another change on the same workbook. Graph documents 409
    conflict / accessConflict (facts, "Throttling and errors") and Excel's guidance names merge conflicts
    from concurrent requests, but no operation error code for them: this chain is the emulator's choice."""
    return {
        "code": "conflict",
        "message": "The change could not be merged: another request changed the workbook at the same time.",
        "innerError": {"code": "accessConflict", "message": "Merge conflict with a concurrent request."},
    }


def _ready(make: Callable[[], web.StreamResponse]) -> Callable[[], Awaitable[web.StreamResponse]]:
    async def run() -> web.StreamResponse:
        return make()

    return run


class Emulator:
    """All emulator state plus the request handlers."""

    def __init__(self, identity_header: str, token_lifetime: float, tenant_id: str = DEFAULT_TENANT_ID) -> None:
        self.identity_header = identity_header
        self.tokens = TokenRegistry(token_lifetime)
        self.entra = EntraService(tenant_id)
        self.strict_delegated = False
        self.workbooks = WorkbookStore()
        self.operations = OperationStore()
        self.recorder = Recorder()
        self.scenarios: dict[str, ScenarioState] = {}

    # ------------------------------------------------------------------ plumbing
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        ctx = RequestContext(request_id, request.headers.get("client-request-id") or request_id)
        record: RequestRecord | None = None
        if not request.path.startswith(ADMIN_PREFIX):
            record = self.recorder.begin(
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
            code = _STATUS_CODES.get(exc.status, "generalException")
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
        if record is not None:
            record.status = response.status
        return response

    def _record(self) -> RequestRecord:
        record = _context().record
        assert record is not None
        return record

    def _scenario(self, item_id: str) -> tuple[ScenarioState | None, Scenario]:
        state = self.scenarios.get(item_id)
        return state, (state.scenario if state is not None else Scenario())

    # ------------------------------------------------------------------ identity
    async def token(self, request: web.Request) -> web.StreamResponse:
        record = self._record()
        record.kind = "token"
        return token_response(request, self.tokens, self.identity_header)

    # ------------------------------------------------------------------ graph
    async def graph(self, request: web.Request) -> web.StreamResponse:
        record = self._record()
        self.operations.settle()  # drawn-duration operations finish on time, polled or not
        raw_path = request.rel_url.raw_path
        if not raw_path.startswith(("/v1.0/", "/beta/")):
            return graph_error(404, "notFound", f"No such resource: {request.path}")
        match = _GRAPH_RE.match(raw_path)
        if match is not None:
            record.item = unquote(match.group("item_id"))
        route = self._route(request, match) if match is not None else None
        auth, principal = self._authenticate(request)
        record.auth = auth
        record.user = principal.label if principal is not None else None
        if auth != "valid":
            messages = {
                "none": "Access token is empty.",
                "expired": "Access token has expired or is not yet valid.",
                "revoked": "Access token has been revoked.",
                "invalid": "Access token validation failure. Invalid audience or malformed token.",
            }
            response = graph_error(401, "InvalidAuthenticationToken", messages[auth])
            response.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return response
        if route is None:
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")
        if self.strict_delegated and principal is not None and not principal.delegated:
            return self._app_only_denied()
        return await route()

    def _authenticate(self, request: web.Request) -> tuple[AuthState, Principal | None]:
        """Opaque managed-identity tokens (registry) or JWTs this emulator signed for the Graph resource."""
        authorization = request.headers.get("Authorization")
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value.count(".") == 2:
            origin = _origin(request)
            audiences = [origin, f"{origin}/", GRAPH_RESOURCE, f"{GRAPH_RESOURCE}/"]
            state, principal = self.entra.graph_principal(value, audiences)
            if state == "valid":
                return "valid", principal
            return ("expired" if state == "expired" else "revoked" if state == "revoked" else "invalid"), None
        auth = self.tokens.check(authorization)
        return auth, (Principal(False, "app:msi") if auth == "valid" else None)

    def _app_only_denied(self) -> web.Response:
        """Graph's 403 for an app-only token on an API the emulator is told to serve to users only."""
        inner = _inner_error()
        inner = {"code": "forbidden", **inner}
        body = {
            "error": {
                "code": "accessDenied",
                "message": "Application permissions are not supported here: this workbook API requires a "
                "delegated (signed-in user) token.",
                "innerError": inner,
            }
        }
        return web.json_response(body, status=403)

    def _route(self, request: web.Request, match: re.Match[str]) -> Callable[[], Awaitable[web.StreamResponse]] | None:
        """Classify the request (filling its log record) and return the handler to run after auth."""
        record = self._record()
        version = match.group("version")
        item_path = match.group("item")
        item_id = unquote(match.group("item_id"))
        rest = unquote(match.group("rest") or "")
        method = request.method

        def start(
            action: Action, table: str | None, index: int | None, never_async: bool = False
        ) -> Callable[[], Awaitable[web.StreamResponse]]:
            record.kind = "start"
            record.action = action
            return lambda: self._start(
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
            op = self.operations.get(op_id)
            if op is not None and op.item_id == item_id:
                record.action = op.action

            async def answer_operation() -> web.StreamResponse:
                latency = self._scenario(item_id)[1].operation_latency_seconds
                if latency:
                    await asyncio.sleep(latency)  # a slow Graph: keeps pollers mid-request
                return self._operation(request, version, item_path, item_id, op_id)

            return answer_operation
        if method == "GET" and (m := _RESULT_RE.match(rest)):
            key = m["key"].strip().strip("'\"")
            action: Action = "createSession" if m["kind"].lower() == "sessioninforesource" else "createTableRow"
            record.kind = "result"
            record.operation_id = key
            record.action = action
            return _ready(lambda: self._result(item_id, key, action))
        if method == "GET" and (m := _ROWS_RE.match(rest)):
            table = m["table"]
            return _ready(lambda: web.json_response({"value": self.workbooks.list_rows(item_id, table)}))
        if method == "POST" and _SESSION_CONTROL_RE.match(rest):
            return _ready(lambda: web.Response(status=204))
        return None

    async def _start(
        self,
        request: web.Request,
        version: str,
        item_path: str,
        item_id: str,
        action: Action,
        table: str | None,
        row_index: int | None,
        *,
        never_async: bool = False,
    ) -> web.StreamResponse:
        record = self._record()
        state, scenario = self._scenario(item_id)
        if state is not None and state.start_faults:
            return fault_response(state.start_faults.popleft())
        if scenario.start_error is not None:
            return fault_response(scenario.start_error)
        doomed: dict[str, Any] | None = None
        if scenario.contention != "off" and self.operations.busy_on(item_id) is not None:
            if scenario.contention == "throttle":
                record.contention = "throttled"
                return self._throttled(scenario.contention_retry_after_seconds)
            if scenario.contention == "conflict" or not (
                scenario.mode == "async" and not never_async and _prefers_async(request)
            ):
                record.contention = "conflict"
                return self._conflict()
            doomed = _merge_conflict_error()  # marked on the record once the operation exists

        apply: Callable[[], dict[str, Any] | None]
        try:
            if action == "createSession":
                persist = parse_create_session(await self._json_body(request))

                def apply() -> dict[str, Any] | None:
                    return self.workbooks.create_session(item_id, persist).to_json()

            elif action == "createTableRow":
                assert table is not None
                tbl = table
                index, values = parse_add_rows(await self._json_body(request))
                self.workbooks.check_insert(item_id, tbl, index)

                def apply() -> dict[str, Any] | None:
                    return self.workbooks.insert_rows(item_id, tbl, index, values)

            else:
                assert table is not None and row_index is not None
                tbl, at = table, row_index
                self.workbooks.check_delete(item_id, tbl, at)

                def apply() -> dict[str, Any] | None:
                    self.workbooks.delete_row(item_id, tbl, at)
                    return None

        except WorkbookError as exc:
            return graph_error(exc.status, exc.code, exc.message)

        is_async = scenario.mode == "async" and not never_async and _prefers_async(request)
        if action != "createSession" and not request.headers.get("Workbook-Session-Id"):
            is_async = False
        if doomed is not None and not is_async:  # merge mode, but this write would run synchronously
            record.contention = "conflict"
            return self._conflict()
        if is_async:
            duration = state.draw_duration(action) if state is not None else None
            op = self.operations.create(item_id, item_path, action, scenario, apply, duration, doomed)
            if doomed is not None:
                record.contention = "merge"
            record.operation_id = op.id
            origin = scenario.location_origin or _origin(request)
            loc_version = scenario.location_version or version
            location = _with_query(
                f"{origin}/{loc_version}{item_path}/workbook/operations/{op.id}", scenario.location_query
            )
            return web.json_response({}, status=202, headers={"Location": location})
        try:
            result = apply()
        except WorkbookError as exc:
            return graph_error(exc.status, exc.code, exc.message)
        if action == "deleteTableRow":
            return web.Response(status=200)
        return web.json_response(result, status=200 if never_async else 201)

    def _throttled(self, retry_after: float) -> web.Response:
        """Graph's 429 (facts: "429 Too Many Requests with Retry-After, which can be fractional"), for a write
        to a workbook that is already running a request (facts: "One workbook should get one request at a
        time")."""
        response = graph_error(
            429,
            "tooManyRequests",
            "The workbook is busy with another request; retry after the interval in Retry-After.",
        )
        response.headers["Retry-After"] = f"{retry_after:g}"
        return response

    def _conflict(self) -> web.Response:
        """Graph's 409 (facts: "409 conflict (accessConflict)") for a write to a busy workbook."""
        body = {
            "error": {
                "code": "conflict",
                "message": "The request could not be completed because another request is changing the workbook.",
                "innerError": {"code": "accessConflict", **_inner_error()},
            }
        }
        return web.json_response(body, status=409)

    async def _json_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WorkbookError(400, "invalidArgument", f"The request body is not valid JSON: {exc}") from exc

    def _operation(
        self, request: web.Request, version: str, item_path: str, item_id: str, op_id: str
    ) -> web.StreamResponse:
        state, _ = self._scenario(item_id)
        op = self.operations.get(op_id)
        if state is not None and state.operation_faults:
            return fault_response(state.operation_faults.popleft())
        if op is None or op.item_id != item_id or op.expired():
            return graph_error(404, "itemNotFound", "The requested operation was not found.")
        phase = op.poll()
        self._record().phase = phase
        body: dict[str, Any] = {"id": op.id, "status": spell_status(phase, op.scenario.status_case)}
        if phase == "succeeded" and op.action != "deleteTableRow":
            body["resourceLocation"] = self._resource_location(request, version, item_path, op)
        if phase == "failed":
            body["error"] = copy.deepcopy(op.error)
        return web.json_response(body)

    def _resource_location(self, request: web.Request, version: str, item_path: str, op: Operation) -> str:
        sc = op.scenario
        origin = sc.resource_location_origin or _origin(request)
        res_version = sc.resource_location_version or version
        segment = "sessionInfoResource" if op.action == "createSession" else "tableRowOperationResult"
        url = f"{origin}/{res_version}{item_path}/workbook/{segment}(key='{op.id}')"
        return _with_query(url, sc.resource_location_query)

    def _result(self, item_id: str, key: str, action: Action) -> web.StreamResponse:
        state, _ = self._scenario(item_id)
        if state is not None and state.result_faults:
            return fault_response(state.result_faults.popleft())
        op = self.operations.get(key)
        if op is None or op.item_id != item_id or op.action != action or op.phase != "succeeded":
            return graph_error(404, "itemNotFound", f"No result for key '{key}'.")
        return web.json_response(copy.deepcopy(op.result))

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return graph_error(404, "notFound", f"No such resource: {request.path}")

    # ------------------------------------------------------------------ admin
    async def _admin_json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ScenarioError(f"body is not valid JSON: {exc}") from exc

    async def put_scenario(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["item"]
        try:
            scenario = parse_scenario(await self._admin_json(request))
        except ScenarioError as exc:
            return graph_error(400, "invalidArgument", str(exc))
        state = ScenarioState.create(scenario)
        self.scenarios[item_id] = state
        return web.json_response({"item": item_id, "scenario": state.to_json()})

    async def get_scenario(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["item"]
        state = self.scenarios.get(item_id)
        if state is None:
            return graph_error(404, "itemNotFound", f"No scenario for item '{item_id}'.")
        return web.json_response({"item": item_id, "scenario": state.to_json()})

    async def delete_scenario(self, request: web.Request) -> web.StreamResponse:
        self.scenarios.pop(request.match_info["item"], None)
        return web.Response(status=204)

    async def reset(self, _request: web.Request) -> web.StreamResponse:
        self.scenarios.clear()
        self.workbooks.reset()
        self.operations.reset()
        self.recorder.reset()
        self.tokens.reset()
        self.entra.reset()
        self.strict_delegated = False
        return web.Response(status=204)

    async def put_config(self, request: web.Request) -> web.StreamResponse:
        try:
            update = parse_config(await self._admin_json(request))
        except ScenarioError as exc:
            return graph_error(400, "invalidArgument", str(exc))
        if update.token_lifetime is not None:
            self.tokens.lifetime = update.token_lifetime
        if update.strict_delegated is not None:
            self.strict_delegated = update.strict_delegated
        return await self.get_config(request)

    async def get_config(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"tokenLifetimeSeconds": self.tokens.lifetime, "strictDelegated": self.strict_delegated}
        )

    async def revoke_tokens(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"revoked": self.tokens.revoke_all() + self.entra.revoke_access_tokens()})

    # ------------------------------------------------------------------ entra (token service)
    def _entra_record(self) -> RequestRecord:
        record = self._record()
        record.kind = "entra"
        return record

    @staticmethod
    def _entra_error(exc: EntraError) -> web.Response:
        return web.json_response(exc.to_json(), status=exc.status)

    async def entra_openid_configuration(self, request: web.Request) -> web.StreamResponse:
        self._entra_record()
        tenant = request.match_info["tenant"]
        if not self.entra.known_tenant(tenant):
            return self._entra_error(EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
        return web.json_response(self.entra.openid_configuration(_origin(request), tenant))

    async def entra_instance_discovery(self, request: web.Request) -> web.StreamResponse:
        self._entra_record()
        return web.json_response(
            self.entra.instance_discovery(_origin(request), request.query.get("authorization_endpoint"))
        )

    async def entra_keys(self, _request: web.Request) -> web.StreamResponse:
        self._entra_record()
        return web.json_response(self.entra.jwks())

    async def entra_token(self, request: web.Request) -> web.StreamResponse:
        record = self._entra_record()
        if request.method != "POST":
            return self._entra_error(EntraError(405, "invalid_request", 900561, "The endpoint only accepts POST."))
        if request.content_type != "application/x-www-form-urlencoded":
            return self._entra_error(
                EntraError(400, "invalid_request", 900144, "The request body must be form-encoded.")
            )
        posted = await request.post()
        form = {key: value for key, value in posted.items() if isinstance(value, str)}
        record.grant_type = form.get("grant_type")
        try:
            body = self.entra.token(form, _origin(request), request.match_info["tenant"])
        except EntraError as exc:
            return self._entra_error(exc)
        response = web.json_response(body)
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
        return response

    async def _entra_admin(self, request: web.Request, act: Callable[[Any], dict[str, Any]]) -> web.StreamResponse:
        try:
            return web.json_response(act(await self._admin_json(request)))
        except (AdminError, ScenarioError) as exc:
            return graph_error(400, "invalidArgument", str(exc))

    async def entra_put_client(self, request: web.Request) -> web.StreamResponse:
        client_id = request.match_info["client"]
        return await self._entra_admin(request, lambda body: self.entra.put_client(client_id, body).to_json())

    async def entra_put_user(self, request: web.Request) -> web.StreamResponse:
        upn = request.match_info["upn"]
        return await self._entra_admin(request, lambda body: self.entra.put_user(upn, body).to_json())

    async def entra_user_token(self, request: web.Request) -> web.StreamResponse:
        upn = request.match_info["upn"]
        origin = _origin(request)
        return await self._entra_admin(
            request, lambda body: {"access_token": self.entra.user_token(upn, origin, body), "token_type": "Bearer"}
        )

    async def entra_put_config(self, request: web.Request) -> web.StreamResponse:
        def act(body: Any) -> dict[str, Any]:
            self.entra.put_config(body)
            return self.entra.config_json()

        return await self._entra_admin(request, act)

    async def entra_get_config(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.entra.config_json())

    async def entra_revoke_refresh_tokens(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"revoked": self.entra.revoke_refresh_tokens()})

    async def requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.recorder.list(item=request.query.get("item"), kind=request.query.get("kind")))

    async def stats(self, _request: web.Request) -> web.StreamResponse:
        self.operations.settle()
        phases: dict[str, int] = {}
        for op in self.operations.all():
            phases[op.phase] = phases.get(op.phase, 0) + 1
        return web.json_response({**self.recorder.stats(), "operations": phases})

    async def list_operations(self, request: web.Request) -> web.StreamResponse:
        self.operations.settle()
        return web.json_response([op.to_json() for op in self.operations.all(request.query.get("item"))])

    async def table(self, request: web.Request) -> web.StreamResponse:
        self.operations.settle()
        rows = self.workbooks.peek_rows(request.match_info["item"], request.match_info["table"])
        return web.json_response({"rows": rows})


EMULATOR_KEY = web.AppKey("emulator", Emulator)


def build_app(
    identity_header: str = DEFAULT_IDENTITY_HEADER,
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
    tenant_id: str = DEFAULT_TENANT_ID,
) -> web.Application:
    """Build the emulator application (state lives in ``app[EMULATOR_KEY]``)."""
    emulator = Emulator(identity_header, token_lifetime, tenant_id)
    app = web.Application(middlewares=[emulator.middleware])
    app[EMULATOR_KEY] = emulator
    r = app.router
    r.add_put(f"{ADMIN_PREFIX}/scenarios/{{item}}", emulator.put_scenario)
    r.add_get(f"{ADMIN_PREFIX}/scenarios/{{item}}", emulator.get_scenario)
    r.add_delete(f"{ADMIN_PREFIX}/scenarios/{{item}}", emulator.delete_scenario)
    r.add_post(f"{ADMIN_PREFIX}/reset", emulator.reset)
    r.add_put(f"{ADMIN_PREFIX}/config", emulator.put_config)
    r.add_get(f"{ADMIN_PREFIX}/config", emulator.get_config, allow_head=False)
    r.add_post(f"{ADMIN_PREFIX}/tokens/revoke", emulator.revoke_tokens)
    r.add_get(f"{ADMIN_PREFIX}/requests", emulator.requests, allow_head=False)
    r.add_get(f"{ADMIN_PREFIX}/tables/{{item}}/{{table}}", emulator.table, allow_head=False)
    r.add_get(f"{ADMIN_PREFIX}/stats", emulator.stats, allow_head=False)
    r.add_get(f"{ADMIN_PREFIX}/operations", emulator.list_operations, allow_head=False)
    r.add_put(f"{ADMIN_PREFIX}/entra/clients/{{client}}", emulator.entra_put_client)
    r.add_put(f"{ADMIN_PREFIX}/entra/users/{{upn}}", emulator.entra_put_user)
    r.add_post(f"{ADMIN_PREFIX}/entra/users/{{upn}}/token", emulator.entra_user_token)
    r.add_put(f"{ADMIN_PREFIX}/entra/config", emulator.entra_put_config)
    r.add_get(f"{ADMIN_PREFIX}/entra/config", emulator.entra_get_config, allow_head=False)
    r.add_post(f"{ADMIN_PREFIX}/entra/refresh-tokens/revoke", emulator.entra_revoke_refresh_tokens)
    r.add_route("*", ADMIN_PREFIX + "/{tail:.*}", emulator.not_found)
    r.add_route("*", "/msi/token", emulator.token)
    r.add_route("*", "/msi/token/", emulator.token)
    r.add_get("/common/discovery/instance", emulator.entra_instance_discovery, allow_head=False)
    r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", emulator.entra_openid_configuration, allow_head=False)
    r.add_get("/{tenant}/discovery/v2.0/keys", emulator.entra_keys, allow_head=False)
    r.add_route("*", "/{tenant}/oauth2/v2.0/token", emulator.entra_token)
    r.add_route("*", "/{tail:.*}", emulator.graph)
    return app
