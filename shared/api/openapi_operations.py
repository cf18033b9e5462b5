"""The OpenAPI document's operation routes: start and track, list, get, cancel (by id, by key, by signed URL),
the signed status URL and webhook redelivery. Pure: data, relative to the host's route prefix."""

from __future__ import annotations

from typing import Any

from shared.api.openapi_answers import (
    ALWAYS,
    ID_PARAMETER,
    JSON,
    LINK_PARAMETERS,
    LINK_REFUSED,
    STATUS_ANSWERS,
    body_limit_text,
    problem,
    record,
    ref,
)
from shared.crypto.status_links import ROUTE as STATUS_ROUTE
from shared.operations.record import STATUSES
from shared.operations.requests import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    LIST_TOP_DEFAULT,
    LIST_TOP_MAX,
)

# (route relative to the route prefix, method) -> OpenAPI operation object
OPERATION_PATHS: dict[str, dict[str, dict[str, Any]]] = {
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
                "content": {JSON: {"schema": {"oneOf": [ref("StartRequest"), ref("TrackRequest")]}}},
            },
            "responses": {
                "202": record("Accepted: poll Location until it answers 200", location=True, retry_after=True),
                "201": record(
                    "With callbackUrl: the webhook subscription is registered (Location: its status)", location=True
                ),
                "200": record("The outcome is already known (terminal record)"),
                "400": problem("Bad JSON or a bad field (the problem names it)"),
                "409": problem("Idempotency conflict, Graph refused the start with 409, or canceled (failOnError)"),
                "413": problem(f"bodyTooLarge: the body is over {body_limit_text()}"),
                "415": problem("Content-Type is not application/json"),
                "429": problem(
                    "requestInProgress: the same Idempotency-Key is still being started; retry after Retry-After",
                    retry_after=True,
                ),
                "422": problem("failOnError: the operation failed or timed out (the record is under `operation`)"),
                "502": problem("Graph rejected the bridge's token"),
                "503": problem(
                    "Graph answered 429/5xx or did not answer, or the poll could not be queued; nothing was stored",
                    retry_after=True,
                ),
                "401": problem("GRAPH_AUTH=delegated: sign-in required, or the caller's credential expired"),
                "403": problem("GRAPH_AUTH=delegated: Graph cannot be called on the caller's behalf"),
                **ALWAYS,
                "default": problem("Graph refused the start request (403, 404, ...)"),
            },
        },
        "get": {
            "operationId": "listOperations",
            "summary": "List operations, newest first",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(STATUSES)},
                },
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
                "200": {"description": "A page of records", "content": {JSON: {"schema": ref("OperationPage")}}},
                "400": problem("Bad status, top or continuation token"),
                **ALWAYS,
            },
        },
    },
    "operations/{id}": {
        "get": {
            "operationId": "getOperation",
            "summary": "Get an operation: 202 while it runs, 200 when it is terminal (the async pattern)",
            "parameters": [ID_PARAMETER],
            "responses": {
                **STATUS_ANSWERS,
            },
        },
        "delete": {
            "operationId": "cancelOperation",
            "summary": "Stop tracking an operation (status becomes canceled; idempotent)",
            "parameters": [ID_PARAMETER],
            "responses": {
                "200": record("The record, now canceled (or its earlier terminal state)"),
                "404": problem("Unknown id"),
                "409": problem("concurrentUpdate: the record kept changing; retry"),
                **ALWAYS,
            },
        },
    },
    f"{STATUS_ROUTE}/{{id}}": {
        "get": {
            "operationId": "getOperationBySignedUrl",
            "summary": "The signed status URL (Location): like GET /operations/{id}, opened by its own signature",
            "security": [],
            "parameters": [ID_PARAMETER, *LINK_PARAMETERS],
            "responses": {
                **STATUS_ANSWERS,
                **LINK_REFUSED,
            },
        },
        "delete": {
            "operationId": "cancelOperationBySignedUrl",
            "summary": "Cancel through the signed status URL (like DELETE /operations/{id})",
            "security": [],
            "parameters": [ID_PARAMETER, *LINK_PARAMETERS],
            "responses": {
                "200": record("The record, now canceled (or its earlier terminal state)"),
                **LINK_REFUSED,
                "404": problem("Unknown id"),
                "409": problem("concurrentUpdate: the record kept changing; retry"),
                **ALWAYS,
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
                "200": record("The record, now canceled (or its earlier terminal state)"),
                "400": problem(f"The key is not 1-{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"),
                "404": problem("Unknown key"),
                "409": problem("concurrentUpdate: the record kept changing; retry"),
                **ALWAYS,
            },
        },
    },
    "operations/{id}/webhook/redeliver": {
        "post": {
            "operationId": "redeliverWebhook",
            "summary": "Send the operation's terminal event again (same webhook-id and body)",
            "parameters": [ID_PARAMETER],
            "responses": {
                "202": record("Queued: webhook.state is pending"),
                "404": problem("Unknown id"),
                "409": problem(
                    "noWebhook (no callbackUrl), operationNotFinished, or redeliveryInProgress (the "
                    "webhook is still pending: one delivery chain at a time; Retry-After says when "
                    "to look again)",
                    retry_after=True,
                ),
                **ALWAYS,
            },
        },
    },
}
