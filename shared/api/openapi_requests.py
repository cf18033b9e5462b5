"""The OpenAPI document's request schemas, as strict as the validators: one start schema per action of the action
table (its required parameters, no other keys), the track and subscription bodies, the conditional
`callbackFormat` (only with `callbackUrl`) and the deployment's bounds (`expectedDurationSeconds` up to its
OPERATION_TIMEOUT_SECONDS, `http:` callbacks only where private networks are allowed). Pure.

OpenAPI 3.0's Schema Object has no `if`/`then` nor `dependentRequired`; "callbackFormat needs callbackUrl" is
written with `not`: not (callbackFormat present and callbackUrl absent). No property of a request declares a
default a client could send and have refused (a generated client sends declared defaults: issue 17).
"""

from __future__ import annotations

from typing import Any

from shared.api.openapi_answers import ref
from shared.delivery.targets import MAX_URL_LENGTH
from shared.graph.actions import table as actions
from shared.graph.actions.spec import Action
from shared.operations.record import CALLBACK_FORMATS
from shared.operations.requests import (
    CLIENT_REFERENCE_MAX_LENGTH,
    CLIENT_REFERENCE_PATTERN,
    SESSION_ID_PATTERN,
    WORKBOOK_PATTERN,
    operation_url_pattern,
)
from shared.subscriptions.record import DEFAULT_STATUSES, EVENT_STATUSES

# A callback URL as check_url reads it before any name is resolved: the scheme, a host without user information,
# an optional port, then encoded URL characters.
_URL_TAIL = r"(?::[0-9]{1,5})?(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?$"
CALLBACK_URL_PATTERN = r"^https://[A-Za-z0-9.\-]+" + _URL_TAIL
CALLBACK_URL_PATTERN_HTTP = r"^https?://[A-Za-z0-9.\-]+" + _URL_TAIL

# Present only with callbackUrl: not (callbackFormat given and callbackUrl not given)
CALLBACK_FORMAT_NEEDS_URL: dict[str, Any] = {
    "not": {"required": ["callbackFormat"], "not": {"required": ["callbackUrl"]}}
}


def schema_name(action: Action, suffix: str = "") -> str:
    """`createTableRow` -> `StartCreateTableRow` (suffix "") or `CreateTableRowParameters` (suffix "Parameters")."""
    title = action.name[:1].upper() + action.name[1:]
    return f"{title}{suffix}" if suffix else f"Start{title}"


def _callback_fields(operation_timeout: float, http_callbacks: bool) -> dict[str, Any]:
    """What a start and a track both take: the webhook, the caller's reference, failOnError and the poll hint."""
    return {
        "callbackUrl": {
            "type": "string",
            "maxLength": MAX_URL_LENGTH,
            "pattern": CALLBACK_URL_PATTERN_HTTP if http_callbacks else CALLBACK_URL_PATTERN,
            "description": "Webhook for the terminal status: an encoded https URL whose host resolves to public "
            "addresses only (checked now and at every delivery)",
        },
        "callbackFormat": {
            "type": "string",
            "enum": list(CALLBACK_FORMATS),
            "description": "Only with callbackUrl (binary when absent): the CloudEvents HTTP content mode of the "
            "webhook. binary = the record as application/json with ce-* headers; structured = "
            "application/cloudevents+json",
        },
        "clientReference": {
            "type": "string",
            "minLength": 1,
            "maxLength": CLIENT_REFERENCE_MAX_LENGTH,
            "pattern": CLIENT_REFERENCE_PATTERN,
            "description": "Anything of yours without control characters, echoed in the record and webhooks",
        },
        "failOnError": {
            "type": "boolean",
            "default": False,
            "description": "Finished but failed/timedOut answers 422, canceled 409 (problem + record)",
        },
        "expectedDurationSeconds": {
            "type": "number",
            "exclusiveMinimum": True,
            "minimum": 0,
            "maximum": int(operation_timeout) if operation_timeout == int(operation_timeout) else operation_timeout,
            "description": "How long the caller expects the operation to take, in seconds (at most this "
            "deployment's OPERATION_TIMEOUT_SECONDS; more is a 400): the first polls go around it until the bridge "
            "has its own history of this kind of operation. Only moves the polls; Retry-After tells when the "
            "next one is.",
        },
    }


def _start_schema(action: Action, common: dict[str, Any]) -> dict[str, Any]:
    required = ["workbook", "action", *(["parameters"] if action.parameters_required else [])]
    return {
        "type": "object",
        "description": f"{action.name}: {action.summary}",
        "additionalProperties": False,
        "required": required,
        "properties": {
            "workbook": {
                "type": "string",
                "pattern": WORKBOOK_PATTERN,
                "description": "/drives/{d}/items/{i}, /me/drive/items/{i}, /users/{u}/drive/items/{i}, "
                "/sites/{s}/drive/items/{i} or /groups/{g}/drive/items/{i}",
            },
            "action": {"type": "string", "enum": [action.name]},
            "parameters": ref(schema_name(action, "Parameters")),
            "sessionId": {
                "type": "string",
                "pattern": SESSION_ID_PATTERN,
                "description": "Workbook session id (sent as Workbook-Session-Id)",
            },
            **common,
        },
        **CALLBACK_FORMAT_NEEDS_URL,
    }


def request_schemas(
    operation_timeout: float, http_callbacks: bool = False, graph_origin: str | None = None
) -> dict[str, dict[str, Any]]:
    """The request bodies' schemas for this deployment (its timeout; whether callbacks may use http; the Graph
    origin an operationUrl must have, any when None)."""
    common = _callback_fields(operation_timeout, http_callbacks)
    table = [actions.TABLE[name] for name in actions.names()]
    out: dict[str, dict[str, Any]] = {
        "StartRequest": {
            "description": "Start an Excel request: one schema per action",
            "oneOf": [ref(schema_name(action)) for action in table],
            "discriminator": {
                "propertyName": "action",
                "mapping": {action.name: ref(schema_name(action))["$ref"] for action in table},
            },
        },
        "TrackRequest": {
            "type": "object",
            "description": "Track an operation someone else started",
            "additionalProperties": False,
            "required": ["operationUrl"],
            "properties": {
                "operationUrl": {
                    "type": "string",
                    "maxLength": MAX_URL_LENGTH,
                    "pattern": operation_url_pattern(graph_origin),
                    "description": "Graph workbook operation URL on GRAPH_BASE_URL's origin: "
                    "<origin>/{v1.0|beta}/{item}/workbook/operations/{id}, any query",
                },
                "action": {"type": "string", "enum": list(actions.names())},
                **common,
            },
            **CALLBACK_FORMAT_NEEDS_URL,
        },
        "SubscriptionRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["callbackUrl"],
            "properties": {
                "callbackUrl": {**common["callbackUrl"], "description": "Where each event is POSTed; never returned"},
                "actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(actions.names())},
                    "description": "Only these actions (default: all)",
                },
                "statuses": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(EVENT_STATUSES)},
                    "description": f"Only these outcomes (default: {', '.join(DEFAULT_STATUSES)})",
                },
                "callbackFormat": {
                    **common["callbackFormat"],
                    "description": "binary (when absent) or structured: as for operations",
                },
            },
        },
    }
    for action in table:
        out[schema_name(action)] = _start_schema(action, common)
        out[schema_name(action, "Parameters")] = action.parameters_schema()
    return out
