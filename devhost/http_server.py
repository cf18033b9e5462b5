"""aiohttp front end that dispatches requests to HTTP-triggered functions (ASP.NET-style routes)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devhost.easyauth import (
    EasyAuth,
    Unauthenticated,
    principal_headers,
    strip_client_principal,
    unauthenticated_body,
)
from devhost.keys import AuthLevel, Secrets, authorize, parse_auth_level, redact_query
from devhost.loader import HttpFunction, InvocationContext, invoke_user_function
from devhost.settings import ConfigurationError

logger = logging.getLogger("devhost.http")

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})
MAX_BODY_BYTES = 100 * 1024 * 1024
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})

_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")
_PARAM = re.compile(r"\{([^{}]+)\}")


def _is_int(value: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value):
        return False
    number = int(value)
    limit = 1 << (bits - 1)
    return -limit <= number < limit


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_int32(value: str) -> bool:
    return _is_int(value, 32)


def _is_int64(value: str) -> bool:
    return _is_int(value, 64)


def _is_guid(value: str) -> bool:
    return _GUID.match(value) is not None


def _is_alpha(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z]+", value) is not None


def _is_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _is_int32,
    "long": _is_int64,
    "guid": _is_guid,
    "alpha": _is_alpha,
    "bool": _is_bool,
    "double": _is_float,
    "float": _is_float,
    "decimal": _is_float,
}


@dataclass(frozen=True)
class RouteParam:
    name: str
    group: str
    optional: bool
    catch_all: bool
    constraints: tuple[str, ...]
    default: str | None


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled ASP.NET-style route template (prefix included)."""

    template: str
    pattern: re.Pattern[str]
    params: tuple[RouteParam, ...]
    literal_segments: int

    def match(self, path: str) -> dict[str, str] | None:
        m = self.pattern.match(path)
        if m is None:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            value = m.group(param.group)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            for constraint in param.constraints:
                check = CONSTRAINTS.get(constraint.split("(", 1)[0].lower())
                if check is not None and not check(value):
                    return None
            values[param.name] = value
        return values

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Higher is more specific: literal segments, then required params, then fewer catch-alls."""
        required = sum(1 for p in self.params if not p.optional and not p.catch_all)
        catch_all = sum(1 for p in self.params if p.catch_all)
        return (self.literal_segments, required, -catch_all)


def _parse_param(body: str, index: int) -> RouteParam:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = body.split(":")
    if constraints and constraints[-1].endswith("?"):
        optional = True
        constraints[-1] = constraints[-1].rstrip("?")
    return RouteParam(
        name=name.strip(),
        group=f"p{index}",
        optional=optional or default is not None or catch_all,
        catch_all=catch_all,
        constraints=tuple(c for c in constraints if c),
        default=default,
    )


def compile_route(route: str, prefix: str = "") -> RouteTemplate:
    """Compile ``prefix/route`` into a RouteTemplate."""
    segments = [s for s in prefix.strip("/").split("/") if s] + [s for s in route.strip("/").split("/") if s]
    pattern = "^"
    params: list[RouteParam] = []
    literal_segments = 0
    for segment in segments:
        whole = _PARAM.fullmatch(segment)
        if whole is not None:
            param = _parse_param(whole.group(1), len(params))
            params.append(param)
            if param.catch_all:
                pattern += f"(?:/(?P<{param.group}>.*))?"
            elif param.optional:
                pattern += f"(?:/(?P<{param.group}>[^/]+))?"
            else:
                pattern += f"/(?P<{param.group}>[^/]+)"
            continue
        if "{" not in segment:
            literal_segments += 1
            pattern += "/" + re.escape(segment)
            continue
        # complex segment such as "{name}.{ext}" or "v{version}"
        piece = "/"
        pos = 0
        for m in _PARAM.finditer(segment):
            piece += re.escape(segment[pos : m.start()])
            param = _parse_param(m.group(1), len(params))
            params.append(param)
            piece += f"(?P<{param.group}>[^/]+?)"
            pos = m.end()
        piece += re.escape(segment[pos:])
        pattern += piece
    pattern += "/?$"
    return RouteTemplate(
        template="/".join(segments),
        pattern=re.compile(pattern, re.IGNORECASE),
        params=tuple(params),
        literal_segments=literal_segments,
    )


@dataclass(frozen=True)
class Route:
    function: HttpFunction
    template: RouteTemplate

    @property
    def methods(self) -> frozenset[str]:
        return self.function.methods if self.function.methods is not None else ALL_METHODS


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    route_params: dict[str, str]


class Router:
    def __init__(self, functions: Iterable[HttpFunction], route_prefix: str) -> None:
        self.routes: list[Route] = [Route(f, compile_route(f.route, route_prefix)) for f in functions]
        # stable sort: most specific first, declaration order breaks ties
        self.routes.sort(key=lambda r: r.template.sort_key, reverse=True)

    def resolve(self, method: str, path: str) -> tuple[RouteMatch | None, frozenset[str]]:
        """Return (match, allowed methods). match is None when nothing matches path+method."""
        allowed: set[str] = set()
        for route in self.routes:
            params = route.template.match(path)
            if params is None:
                continue
            if method.upper() in route.methods:
                return RouteMatch(route, params), frozenset()
            allowed.update(route.methods)
        return None, frozenset(allowed)


def build_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    route_params: Mapping[str, str],
    body: bytes,
) -> func.HttpRequest:
    merged: dict[str, str] = {}
    for key, value in headers:
        lower = key.lower()
        merged[lower] = f"{merged[lower]}, {value}" if lower in merged else value
    params: dict[str, str] = {}
    for key, value in query:
        params.setdefault(key, value)
    return func.HttpRequest(
        method=method.upper(),
        url=url,
        headers=merged,
        params=params,
        route_params=dict(route_params),
        body=body,
    )


def to_web_response(result: Any) -> web.Response:
    """Convert what an HTTP function returned into an aiohttp response."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str | bytes):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"HTTP function returned {type(result).__name__}, expected azure.functions.HttpResponse")
    headers: CIMultiDict[str] = CIMultiDict()
    raw_headers: Any = result.headers
    items: Sequence[tuple[str, str]] = list(raw_headers.items())
    for key, value in items:
        if key.lower() in _HOP_BY_HOP:
            continue
        headers.add(key, str(value))
    if "Content-Type" not in headers and result.mimetype:
        content_type = result.mimetype
        if result.charset:
            content_type += f"; charset={result.charset}"
        headers["Content-Type"] = content_type
    return web.Response(status=int(result.status_code), body=result.get_body() or b"", headers=headers)


# functions-manually-run-non-http.md: "To access non HTTP-triggered functions via an HTTP request, you have to
# send the request through the path admin/functions"; "APIs under the /admin/ path are only accessible with
# authorization" (the master key in x-functions-key); "When running locally, authorization isn't enforced" (so
# only with a keys file here); the body is {"input": "<TRIGGER_INPUT>"}; the host answers 202 Accepted.
ADMIN_INVOKE = re.compile(r"^/admin/functions/(?P<name>[^/]+)/?$", re.IGNORECASE)
AdminInvoker = Callable[[str, str], bool]  # (function name, input) -> started? (False: no such function)


class HttpHost:
    """Holds the router and serves requests via aiohttp."""

    def __init__(
        self,
        functions: Sequence[HttpFunction],
        route_prefix: str,
        function_directory: str,
        auth: EasyAuth | None = None,
        secrets: Secrets | None = None,
        admin_invoke: AdminInvoker | None = None,
    ) -> None:
        self.admin_invoke = admin_invoke
        self.router = Router(functions, route_prefix)
        self.function_directory = function_directory
        self.auth = auth
        self.secrets = secrets
        self.levels: dict[str, AuthLevel] = {}
        if secrets is not None:
            for function in functions:
                try:
                    self.levels[function.name] = parse_auth_level(function.auth_level)
                except ValueError as exc:
                    raise ConfigurationError(f"function {function.name}: {exc}") from None
        self.in_flight = 0

    def key_allows(self, function: HttpFunction, request: web.Request) -> bool:
        """The host's key check (devhost.keys); everything passes when no keys file is configured."""
        if self.secrets is None:
            return True
        return authorize(
            self.secrets, self.levels[function.name], function.name, request.headers.items(), request.query.items()
        )

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def admin(self, request: web.Request, name: str) -> web.StreamResponse:
        """POST /admin/functions/{name}: run a non-HTTP function now (timer functions, here)."""
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        if self.secrets is not None and not authorize(
            self.secrets, AuthLevel.ADMIN, name, request.headers.items(), request.query.items()
        ):
            logger.info("Rejected POST /admin/functions/%s: the master key is required", name)
            return web.Response(status=401)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("input", ""), str | int | float | bool):
            return web.Response(status=400, text='the body must be {"input": "<trigger input>"}')
        if self.admin_invoke is None or not self.admin_invoke(name, str(body.get("input", ""))):
            return web.Response(status=404)
        logger.info("Manual run of 'Functions.%s' requested (admin API)", name)
        return web.Response(status=202)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        admin = ADMIN_INVOKE.match(request.path)
        if admin is not None:
            return await self.admin(request, admin.group("name"))
        match, allowed = self.router.resolve(request.method, request.path)
        if match is None:
            if allowed:
                return web.Response(status=405, headers={"Allow": ", ".join(sorted(allowed))})
            return web.Response(status=404)
        function = match.route.function
        invocation_id = str(uuid.uuid4())
        started = time.monotonic()
        logged_path = redact_query(request.raw_path)  # never log a key (devhost.keys)
        self.in_flight += 1
        try:
            url = f"{request.scheme}://{request.host}{request.raw_path}"
            headers = strip_client_principal(request.headers.items())
            # App Service Authentication runs in front of the host, then the host checks keys: two layers.
            if self.auth is not None and function.auth_level.lower() != "anonymous":
                try:
                    claims = await self.auth.validate(request.headers.get("Authorization"))
                except Unauthenticated as exc:
                    logger.info("Rejected %s %s: %s", request.method, logged_path, exc)
                    return web.Response(
                        status=401,
                        body=unauthenticated_body(str(exc), url.split("?", 1)[0]),
                        content_type="application/problem+json",
                        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc}"'},
                    )
                headers += principal_headers(claims)
            if not self.key_allows(function, request):
                logger.info(
                    "Rejected %s %s: no valid function key for 'Functions.%s' (authLevel %s)",
                    request.method,
                    logged_path,
                    function.name,
                    function.auth_level.lower(),
                )
                # FunctionInvocationMiddleware.cs L117-121: `return new UnauthorizedResult();` (no body)
                return web.Response(status=401)
            body = await request.read()
            req = build_request(
                request.method,
                url,
                headers,
                request.query.items(),
                match.route_params,
                body,
            )
            kwargs: dict[str, Any] = {function.binding_name: req}
            if function.wants_context:
                kwargs["context"] = InvocationContext(invocation_id, function.name, self.function_directory)
            try:
                result = await invoke_user_function(function.user_function, kwargs)
                response = to_web_response(result)
            except Exception:
                logger.exception(
                    "Executed 'Functions.%s' (Failed, Id=%s, %s %s)",
                    function.name,
                    invocation_id,
                    request.method,
                    logged_path,
                )
                return web.Response(status=500)
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, %s %s -> %d, Duration=%.0fms)",
                function.name,
                invocation_id,
                request.method,
                logged_path,
                response.status,
                (time.monotonic() - started) * 1000,
            )
            return response
        finally:
            self.in_flight -= 1
