"""The OpenAPI document's answer schemas: the operation record, a page of them, the problem, the subscription and
the duration summary. Built per document from the action table (the actions a record may name). Pure."""

from __future__ import annotations

from typing import Any

from shared.api.openapi_answers import ref
from shared.graph.actions import table as actions
from shared.operations.record import CALLBACK_FORMATS, STATUSES, WEBHOOK_STATES

NULLABLE_STRING: dict[str, Any] = {"type": "string", "nullable": True}


def record_schemas() -> dict[str, dict[str, Any]]:
    action_names = list(actions.names())
    status_names = list(STATUSES)
    return {
        "Operation": {
            "type": "object",
            "required": ["id", "status", "createdAt", "updatedAt", "links"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": status_names},
                "action": {"type": "string", "enum": action_names, "nullable": True},
                "workbook": NULLABLE_STRING,
                "clientReference": NULLABLE_STRING,
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
                        "lastError": NULLABLE_STRING,
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
                "value": {"type": "array", "items": ref("Operation")},
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
            "description": "RFC 9457 problem details, also readable as an OData v4 error (code, message, target)",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "message": {"type": "string", "description": "`detail` (or `title` without one), for OData readers"},
                "instance": {"type": "string"},
                "field": {"type": "string"},
                "target": {"type": "string", "description": "`field`, for OData readers"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        },
        "Subscription": {
            "type": "object",
            "required": ["id", "actions", "statuses", "callbackFormat", "createdAt", "links"],
            "properties": {
                "id": {"type": "string"},
                "actions": {"type": "array", "items": {"type": "string", "enum": action_names}},
                "statuses": {"type": "array", "items": {"type": "string"}},
                "callbackFormat": {"type": "string", "enum": list(CALLBACK_FORMATS)},
                "createdAt": {"type": "string", "format": "date-time"},
                "owner": {"type": "string"},
                "links": {"type": "object", "properties": {"self": {"type": "string", "format": "uri"}}},
            },
        },
        "DurationSummary": {
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
        },
    }
