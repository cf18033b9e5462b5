"""The OpenAPI 3 description of the HTTP API, served at `GET /api/openapi.json`.

`tests/unit/test_openapi.py` loads `function_app.py` and checks that every HTTP function's route and
method is in `PATHS` and nothing else is, so this file cannot drift from the handlers unnoticed.
Paths here are relative to the host's route prefix (`extensions.http.routePrefix` in host.json).
"""

from __future__ import annotations

import copy
from typing import Any

from shared.api.problems import PROBLEM_CONTENT_TYPE
from shared.crypto.status_links import EXPIRY_PARAM, EXPIRY_PATTERN, SIGNATURE_PARAM
from shared.crypto.status_links import ROUTE as STATUS_ROUTE
from shared.operations.record import BINARY, CALLBACK_FORMATS, OPERATION_ID_PATTERN, WEBHOOK_STATES
from shared.operations.record import STATUSES as _STATUSES
from shared.operations.requests import ACTIONS as _ACTIONS
from shared.operations.requests import (
    CLIENT_REFERENCE_MAX_LENGTH,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    LIST_TOP_DEFAULT,
    LIST_TOP_MAX,
    MAX_BODY_BYTES,
    SESSION_ID_PATTERN,
    WORKBOOK_PATTERN,
)
from shared.schedule.timing import MAX_OPERATION_TIMEOUT_SECONDS
from shared.subscriptions.record import DEFAULT_STATUSES, EVENT_STATUSES
from shared.subscriptions.rules import MAX_PER_OWNER

OPENAPI_VERSION = "3.0.3"
API_VERSION = "0.1.0"

# Every limit, pattern and enum below comes from the module that enforces it, so the document cannot drift
# from the validators (the patterns there read the same as ECMA-262, JSON Schema's dialect).
STATUSES = list(_STATUSES)
ACTIONS = list(_ACTIONS)

_JSON = "application/json"
_PROBLEM = PROBLEM_CONTENT_TYPE
_BODY_LIMIT = f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {_PROBLEM: {"schema": _ref("Problem")}}}
    if retry_after:
        answer["headers"] = {
            "Retry-After": {
                "description": "Whole seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return answer


# Every operation may answer these (function_app._answer): the bridge is misconfigured or storage failed.
_ALWAYS = {"500": _problem("misconfigured or internalError (nothing was half-written)")}


def _record(description: str, *, location: bool = False, retry_after: bool = False) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if location:
        headers["Location"] = {
            "description": "Absolute status URL to poll: GET /status/{id}?se=&sig= (signed, "
            "no other credential needed) or, without STATUS_LINK_KEYS, "
            "GET /operations/{id}",
            "schema": {"type": "string", "format": "uri"},
        }
    if retry_after:
        headers["Retry-After"] = {
            "description": "Whole seconds until the bridge's next poll of Graph",
            "schema": {"type": "integer", "minimum": 0},
        }
    answer: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": _ref("Operation")}}}
    if headers:
        answer["headers"] = headers
    return answer


_ID_PARAMETER: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Operation id (from `id` or `Location`)",
    "schema": {"type": "string", "pattern": OPERATION_ID_PATTERN},
}
_LINK_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": EXPIRY_PARAM,
        "in": "query",
        "required": True,
        "description": "Expiry of the signed URL (Unix seconds)",
        "schema": {"type": "string", "pattern": EXPIRY_PATTERN},
    },
    {
        "name": SIGNATURE_PARAM,
        "in": "query",
        "required": True,
        "description": "`<key id>.<signature>` from the Location",
        "schema": {"type": "string", "minLength": 1},
    },
]
_LINK_REFUSED = {
    "401": _problem("statusLinkRefused: the URL carries no se/sig"),
    "403": _problem("statusLinkRefused: bad signature, another operation's, or expired"),
}

# What a status read answers, by either route (the keyed one and the signed URL)
_STATUS_ANSWERS: dict[str, Any] = {
    "202": _record("Still running", location=True, retry_after=True),
    "200": _record("Terminal: succeeded, failed, timedOut or canceled"),
    "404": _problem("Unknown id"),
    "409": _problem("failOnError: the operation was canceled"),
    "422": _problem("failOnError: the operation failed or timed out"),
    **_ALWAYS,
}

# (route relative to the route prefix, method) -> OpenAPI operation object
PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "operations": {
        "post": {
            "operationId": "startOperation",
            "summary": "Start an Excel request (or track an operation URL) and follow it to the end",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": f"1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII; the same key and body give "
                    "back the same operation",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"oneOf": [_ref("StartRequest"), _ref("TrackRequest")]}}},
            },
            "responses": {
                "202": _record("Accepted: poll Location until it answers 200", location=True, retry_after=True),
                "201": _record(
                    "With callbackUrl: the webhook subscription is registered (Location: its status)", location=True
                ),
                "200": _record("The outcome is already known (terminal record)"),
                "400": _problem("Bad JSON or a bad field (the problem names it)"),
                "409": _problem("Idempotency conflict, Graph refused the start with 409, or canceled (failOnError)"),
                "413": _problem(f"bodyTooLarge: the body is over {_BODY_LIMIT}"),
                "415": _problem("Content-Type is not application/json"),
                "429": _problem(
                    "requestInProgress: the same Idempotency-Key is still being started; retry after Retry-After",
                    retry_after=True,
                ),
                "422": _problem("failOnError: the operation failed or timed out (the record is under `operation`)"),
                "502": _problem("Graph rejected the bridge's token"),
                "503": _problem(
                    "Graph answered 429/5xx or did not answer, or the poll could not be queued; nothing was stored",
                    retry_after=True,
                ),
                "401": _problem("GRAPH_AUTH=delegated: sign-in required, or the caller's credential expired"),
                "403": _problem("GRAPH_AUTH=delegated: Graph cannot be called on the caller's behalf"),
                **_ALWAYS,
                "default": _problem("Graph refused the start request (403, 404, ...)"),
            },
        },
        "get": {
            "operationId": "listOperations",
            "summary": "List operations, newest first",
            "parameters": [
                {"name": "status", "in": "query", "required": False, "schema": {"type": "string", "enum": STATUSES}},
                {
                    "name": "top",
                    "in": "query",
                    "required": False,
                    "description": f"1-{LIST_TOP_MAX}, in ASCII digits",
                    "schema": {"type": "integer", "minimum": 1, "maximum": LIST_TOP_MAX, "default": LIST_TOP_DEFAULT},
                },
                {
                    "name": "continuationToken",
                    "in": "query",
                    "required": False,
                    "description": "Opaque: only a previous page's nextLink has a valid one (else 400); empty is none",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {"description": "A page of records", "content": {_JSON: {"schema": _ref("OperationPage")}}},
                "400": _problem("Bad status, top or continuation token"),
                **_ALWAYS,
            },
        },
    },
    "operations/{id}": {
        "get": {
            "operationId": "getOperation",
            "summary": "Get an operation: 202 while it runs, 200 when it is terminal (the async pattern)",
            "parameters": [_ID_PARAMETER],
            "responses": {
                **_STATUS_ANSWERS,
            },
        },
        "delete": {
            "operationId": "cancelOperation",
            "summary": "Stop tracking an operation (status becomes canceled; idempotent)",
            "parameters": [_ID_PARAMETER],
            "responses": {
                "200": _record("The record, now canceled (or its earlier terminal state)"),
                "404": _problem("Unknown id"),
                "409": _problem("concurrentUpdate: the record kept changing; retry"),
                **_ALWAYS,
            },
        },
    },
    f"{STATUS_ROUTE}/{{id}}": {
        "get": {
            "operationId": "getOperationBySignedUrl",
            "summary": "The signed status URL (Location): like GET /operations/{id}, opened by its own signature",
            "security": [],
            "parameters": [_ID_PARAMETER, *_LINK_PARAMETERS],
            "responses": {
                **_STATUS_ANSWERS,
                **_LINK_REFUSED,
            },
        },
        "delete": {
            "operationId": "cancelOperationBySignedUrl",
            "summary": "Cancel through the signed status URL (like DELETE /operations/{id})",
            "security": [],
            "parameters": [_ID_PARAMETER, *_LINK_PARAMETERS],
            "responses": {
                "200": _record("The record, now canceled (or its earlier terminal state)"),
                **_LINK_REFUSED,
                "404": _problem("Unknown id"),
                "409": _problem("concurrentUpdate: the record kept changing; retry"),
                **_ALWAYS,
            },
        },
    },
    "operations/by-key/{key}": {
        "delete": {
            "operationId": "cancelOperationByKey",
            "summary": "Stop tracking the operation started with this Idempotency-Key (webhook unsubscribe)",
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "description": "The Idempotency-Key of the start",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                }
            ],
            "responses": {
                "200": _record("The record, now canceled (or its earlier terminal state)"),
                "400": _problem(f"The key is not 1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"),
                "404": _problem("Unknown key"),
                "409": _problem("concurrentUpdate: the record kept changing; retry"),
                **_ALWAYS,
            },
        },
    },
    "operations/{id}/webhook/redeliver": {
        "post": {
            "operationId": "redeliverWebhook",
            "summary": "Send the operation's terminal event again (same webhook-id and body)",
            "parameters": [_ID_PARAMETER],
            "responses": {
                "202": _record("Queued: webhook.state is pending"),
                "404": _problem("Unknown id"),
                "409": _problem(
                    "noWebhook (no callbackUrl), operationNotFinished, or redeliveryInProgress (the "
                    "webhook is still pending: one delivery chain at a time; Retry-After says when "
                    "to look again)",
                    retry_after=True,
                ),
                **_ALWAYS,
            },
        },
    },
    "health": {
        "get": {
            "operationId": "health",
            "summary": "Storage reachability (anonymous)",
            "security": [],
            "responses": {
                "200": {
                    "description": "Healthy",
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "status": {"type": "string", "enum": ["healthy"]},
                                    "poison": {
                                        "type": "object",
                                        "additionalProperties": {"type": "integer"},
                                        "description": "Approximate message count of each poison queue",
                                    },
                                },
                            }
                        }
                    },
                },
                "503": _problem("Table or poll queue unreachable"),
            },
        },
    },
    "openapi.json": {
        "get": {
            "operationId": "openApiDocument",
            "summary": "This OpenAPI document (anonymous)",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3 document", "content": {_JSON: {"schema": {"type": "object"}}}}
            },
        },
    },
}

_NULLABLE_STRING: dict[str, Any] = {"type": "string", "nullable": True}
_CALLBACK_FORMAT: dict[str, Any] = {
    "type": "string",
    "enum": list(CALLBACK_FORMATS),
    "default": BINARY,
    "description": "CloudEvents HTTP content mode of the webhook (only with callbackUrl): binary = the record as "
    "application/json with ce-* headers; structured = application/cloudevents+json",
}

_EXPECTED_DURATION: dict[str, Any] = {
    "type": "number",
    "exclusiveMinimum": True,
    "minimum": 0,
    "maximum": int(MAX_OPERATION_TIMEOUT_SECONDS),
    "description": "How long the caller expects the operation to take, in seconds (at most the deployment's "
    "OPERATION_TIMEOUT_SECONDS, itself at most 7 days; more is a 400): the first polls go around "
    "it until the bridge has its own history of this kind of operation. Only moves the polls; "
    "Retry-After tells when the next one is.",
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "StartRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workbook", "action"],
        "properties": {
            "workbook": {
                "type": "string",
                "pattern": WORKBOOK_PATTERN,
                "description": "/drives/{d}/items/{i}, /me/drive/items/{i}, ...",
            },
            "action": {"type": "string", "enum": ACTIONS},
            "parameters": {"type": "object", "description": "Per action: persistChanges / table, values, index"},
            "sessionId": {
                "type": "string",
                "pattern": SESSION_ID_PATTERN,
                "description": "Workbook session id (Workbook-Session-Id)",
            },
            "callbackUrl": {"type": "string", "format": "uri", "description": "Webhook for the terminal status"},
            "callbackFormat": _CALLBACK_FORMAT,
            "clientReference": {"type": "string", "minLength": 1, "maxLength": CLIENT_REFERENCE_MAX_LENGTH},
            "failOnError": {
                "type": "boolean",
                "default": False,
                "description": "Finished but failed/timedOut answers 422, canceled 409 (problem + record)",
            },
            "expectedDurationSeconds": _EXPECTED_DURATION,
        },
    },
    "TrackRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["operationUrl"],
        "properties": {
            "operationUrl": {
                "type": "string",
                "format": "uri",
                "description": "Graph workbook operation URL on GRAPH_BASE_URL's origin",
            },
            "action": {"type": "string", "enum": ACTIONS},
            "callbackUrl": {"type": "string", "format": "uri"},
            "callbackFormat": _CALLBACK_FORMAT,
            "clientReference": {"type": "string", "minLength": 1, "maxLength": CLIENT_REFERENCE_MAX_LENGTH},
            "failOnError": {"type": "boolean", "default": False},
            "expectedDurationSeconds": _EXPECTED_DURATION,
        },
    },
    "Operation": {
        "type": "object",
        "required": ["id", "status", "createdAt", "updatedAt", "links"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "action": {"type": "string", "enum": ACTIONS, "nullable": True},
            "workbook": _NULLABLE_STRING,
            "clientReference": _NULLABLE_STRING,
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "completedAt": {"type": "string", "format": "date-time", "nullable": True},
            "expiresAt": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "When the finished record is deleted (RETENTION_DAYS after completedAt)",
            },
            "pollCount": {"type": "integer"},
            "result": {"nullable": True, "description": "Per action (session, row, null or the resource)"},
            "error": {"type": "object", "nullable": True, "description": "Graph's error chain or {code, message}"},
            "failOnError": {"type": "boolean"},
            "owner": {
                "type": "string",
                "nullable": True,
                "description": "`<tenant id>/<object id>` of the authenticated caller, or DEFAULT_OWNER",
            },
            "lane": {
                "type": "object",
                "description": "Only while `waiting`: its place in its workbook's lane",
                "properties": {
                    "position": {
                        "type": "integer",
                        "nullable": True,
                        "minimum": 0,
                        "description": "1 = next; 0 = holds the slot and is being sent; null in lists",
                    }
                },
            },
            "webhook": {
                "type": "object",
                "properties": {
                    "state": {"type": "string", "enum": list(WEBHOOK_STATES)},
                    "attempts": {"type": "integer"},
                    "lastStatusCode": {"type": "integer", "nullable": True},
                    "lastAttemptAt": {"type": "string", "format": "date-time", "nullable": True},
                    "lastError": _NULLABLE_STRING,
                    "nextAttemptAt": {"type": "string", "format": "date-time", "nullable": True},
                    "deadLetteredAt": {"type": "string", "format": "date-time", "nullable": True},
                    "format": {
                        "type": "string",
                        "enum": list(CALLBACK_FORMATS),
                        "description": "Present with a callback: how its webhook is sent",
                    },
                },
            },
            "history": {
                "type": "array",
                "description": "The timeline, oldest first (the newest 32 events): status changes (`status`, "
                "`polls`, `code`), webhook attempts (`attempt`, `statusCode`, `outcome` delivered | retrying | "
                "failed, `error`, `nextAttemptAt`), redeliveries (`attempt`) and `webhookStopped`",
                "items": {
                    "type": "object",
                    "required": ["at", "type"],
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "type": {"type": "string", "enum": ["status", "webhook", "redeliver", "webhookStopped"]},
                        "status": {"type": "string"},
                        "polls": {"type": "integer"},
                        "code": {"type": "string"},
                        "attempt": {"type": "integer"},
                        "statusCode": {"type": "integer"},
                        "outcome": {"type": "string", "enum": ["delivered", "retrying", "failed"]},
                        "error": {"type": "string"},
                        "nextAttemptAt": {"type": "string", "format": "date-time"},
                    },
                },
            },
            "links": {
                "type": "object",
                "properties": {
                    "self": {"type": "string", "format": "uri"},
                    "cancel": {"type": "string", "format": "uri"},
                    "redeliver": {"type": "string", "format": "uri"},
                },
            },
        },
    },
    "OperationPage": {
        "type": "object",
        "required": ["value"],
        "properties": {
            "value": {"type": "array", "items": _ref("Operation")},
            "nextLink": {"type": "string", "format": "uri"},
            "damaged": {
                "type": "array",
                "description": "Operations of this page whose stored record cannot be read (left out of value)",
                "items": {
                    "type": "object",
                    "required": ["id", "code", "property"],
                    "properties": {
                        "id": {"type": "string"},
                        "code": {"type": "string", "enum": ["recordDamaged"]},
                        "property": {"type": "string"},
                    },
                },
            },
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "field": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}},
            },
        },
    },
}


def routes() -> set[tuple[str, str]]:
    """(route, METHOD) pairs the document describes, routes relative to the route prefix."""
    return {(route, method.upper()) for route, item in PATHS.items() for method in item}


def build_spec(api_base: str = "/api") -> dict[str, Any]:
    """The OpenAPI 3 document; `api_base` is the server URL including the route prefix."""
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
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


# Subscriptions (shared/subscriptions/api.py): added here, after the operation routes, to keep merges simple.
_SUBSCRIPTION_ID: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Subscription id (from `id` or `Location`)",
    "schema": {"type": "string", "minLength": 1},
}


def _subscription(description: str, *, location: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": _ref("Subscription")}}}
    if location:
        answer["headers"] = {
            "Location": {
                "description": "The subscription's URL; DELETE it to unsubscribe",
                "schema": {"type": "string", "format": "uri"},
            }
        }
    return answer


PATHS["subscriptions"] = {
    "post": {
        "operationId": "createSubscription",
        "summary": "Subscribe to your operations' terminal events (starts nothing in Graph)",
        "description": "Each operation of the caller that finishes fires every matching active subscription once: "
        "a signed CloudEvent POSTed to callbackUrl (the connector's webhook trigger).",
        "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("SubscriptionRequest")}}},
        "responses": {
            "201": _subscription("Registered", location=True),
            "400": _problem("Invalid body; `field` names the field at fault"),
            "409": _problem(f"tooManySubscriptions: the owner has {MAX_PER_OWNER} already"),
            "413": _problem(f"bodyTooLarge: over {_BODY_LIMIT}"),
            "415": _problem("Content-Type is not application/json"),
            **_ALWAYS,
        },
    },
    "get": {
        "operationId": "listSubscriptions",
        "summary": "Your subscriptions",
        "responses": {
            "200": {
                "description": "All of the caller's subscriptions",
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"value": {"type": "array", "items": _ref("Subscription")}},
                        }
                    }
                },
            },
            **_ALWAYS,
        },
    },
}
PATHS["subscriptions/{id}"] = {
    "get": {
        "operationId": "getSubscription",
        "summary": "One of your subscriptions",
        "parameters": [_SUBSCRIPTION_ID],
        "responses": {
            "200": _subscription("The subscription"),
            "404": _problem("Unknown id, or another owner's subscription"),
            **_ALWAYS,
        },
    },
    "delete": {
        "operationId": "deleteSubscription",
        "summary": "Unsubscribe (idempotent); undelivered events for it stop",
        "parameters": [_SUBSCRIPTION_ID],
        "responses": {
            "204": {"description": "Deleted, or already gone"},
            "404": _problem("Another owner's subscription"),
            **_ALWAYS,
        },
    },
}
SCHEMAS["SubscriptionRequest"] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["callbackUrl"],
    "properties": {
        "callbackUrl": {"type": "string", "format": "uri", "description": "Where each event is POSTed; never returned"},
        "actions": {
            "type": "array",
            "items": {"type": "string", "enum": ACTIONS},
            "description": "Only these actions (default: all)",
        },
        "statuses": {
            "type": "array",
            "items": {"type": "string", "enum": list(EVENT_STATUSES)},
            "description": f"Only these outcomes (default: {', '.join(DEFAULT_STATUSES)})",
        },
        "callbackFormat": _CALLBACK_FORMAT,
    },
}
SCHEMAS["Subscription"] = {
    "type": "object",
    "required": ["id", "actions", "statuses", "callbackFormat", "createdAt", "links"],
    "properties": {
        "id": {"type": "string"},
        "actions": {"type": "array", "items": {"type": "string", "enum": ACTIONS}},
        "statuses": {"type": "array", "items": {"type": "string"}},
        "callbackFormat": {"type": "string", "enum": list(CALLBACK_FORMATS)},
        "createdAt": {"type": "string", "format": "date-time"},
        "owner": {"type": "string"},
        "links": {"type": "object", "properties": {"self": {"type": "string", "format": "uri"}}},
    },
}

_CONSOLE_FILE = {"200": {"description": "The file", "content": {"text/html": {"schema": {"type": "string"}}}}}
PATHS["console"] = {
    "get": {
        "operationId": "consolePage",
        "summary": "The operations console (anonymous static page: it holds no data and no key; docs/console.md)",
        "security": [],
        "responses": {**_CONSOLE_FILE, **_ALWAYS},
    },
}
PATHS["console/{asset}"] = {
    "get": {
        "operationId": "consoleAsset",
        "summary": "The console's script and style sheet (app.js, app.css; anonymous static files)",
        "security": [],
        "parameters": [
            {"name": "asset", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
        ],
        "responses": {
            "200": {
                "description": "The file",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                },
            },
            "404": _problem("Not one of the console's files"),
            **_ALWAYS,
        },
    },
}
PATHS["durations"] = {
    "get": {
        "operationId": "listDurations",
        "summary": "How long your kinds of work took: the duration history the poll schedule learns from",
        "description": "Only the caller's own history (read-all role or not). Per action: all workbooks "
        "(`workbookKey` null) and each workbook (its key hash, never its path).",
        "responses": {
            "200": {
                "description": "The caller's summaries",
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"value": {"type": "array", "items": _ref("DurationSummary")}},
                        }
                    }
                },
            },
            **_ALWAYS,
        },
    },
}
SCHEMAS["DurationSummary"] = {
    "type": "object",
    "required": ["action", "workbookKey", "count", "durations", "p50", "p90", "max"],
    "properties": {
        "action": {"type": "string"},
        "workbookKey": {"type": "string", "nullable": True, "description": "null: all workbooks"},
        "count": {"type": "integer", "description": "Finishes ever merged"},
        "durations": {
            "type": "array",
            "items": {"type": "number"},
            "description": "Recent sample, seconds, oldest first",
        },
        "p50": {"type": "number"},
        "p90": {"type": "number"},
        "max": {"type": "number"},
    },
}
