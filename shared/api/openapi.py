"""The OpenAPI 3 description of the HTTP API, served at `GET /api/openapi.json`: the routes
(shared/api/openapi_operations.py, openapi_routes.py) and the schemas (openapi_requests.py from the action table
and the deployment's bounds, openapi_records.py) assembled into one document.

`tests/unit/test_openapi.py` loads `function_app.py` and checks that every HTTP function's route and
method is in `PATHS` and nothing else is, so this file cannot drift from the handlers unnoticed.
Paths here are relative to the host's route prefix (`extensions.http.routePrefix` in host.json).
Every limit, pattern and enum comes from the module that enforces it (the patterns there read the same as
ECMA-262, JSON Schema's dialect), so the document cannot drift from the validators.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.api.openapi_operations import OPERATION_PATHS
from shared.api.openapi_records import record_schemas
from shared.api.openapi_requests import request_schemas
from shared.api.openapi_routes import OTHER_PATHS
from shared.schedule.timing import MAX_OPERATION_TIMEOUT_SECONDS

OPENAPI_VERSION = "3.0.3"
API_VERSION = "0.1.0"

# (route relative to the route prefix, method) -> OpenAPI operation object
PATHS: dict[str, dict[str, dict[str, Any]]] = {**OPERATION_PATHS, **OTHER_PATHS}


def routes() -> set[tuple[str, str]]:
    """(route, METHOD) pairs the document describes, routes relative to the route prefix."""
    return {(route, method.upper()) for route, item in PATHS.items() for method in item}


def schemas(
    operation_timeout: float = MAX_OPERATION_TIMEOUT_SECONDS,
    http_callbacks: bool = False,
    graph_origin: str | None = None,
) -> dict[str, Any]:
    """Every schema of the document, for a deployment's OPERATION_TIMEOUT_SECONDS, outbound rule and Graph origin."""
    return {**request_schemas(operation_timeout, http_callbacks, graph_origin), **record_schemas()}


def build_spec(
    api_base: str = "/api",
    *,
    operation_timeout: float = MAX_OPERATION_TIMEOUT_SECONDS,
    http_callbacks: bool = False,
    graph_origin: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3 document; `api_base` is the server URL including the route prefix; `operation_timeout` the
    deployment's OPERATION_TIMEOUT_SECONDS (the largest expectedDurationSeconds); `http_callbacks`: whether
    callbacks may use http (WEBHOOK_ALLOW_PRIVATE_NETWORKS); `graph_origin`: GRAPH_BASE_URL's origin, the only one
    an operationUrl may have (any when None)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Excel Async Bridge",
            "version": API_VERSION,
            "description": "Follows Microsoft Graph's asynchronous Excel operations for callers that cannot.",
        },
        "servers": [{"url": api_base.rstrip("/") or "/"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": {f"/{route}": copy.deepcopy(item) for route, item in PATHS.items()},
        "components": {
            "schemas": schemas(operation_timeout, http_callbacks, graph_origin),
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
