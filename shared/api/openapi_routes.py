"""The OpenAPI document's other routes: subscriptions, the duration history, the console's files, health and the
document itself. Pure: data, relative to the host's route prefix."""

from __future__ import annotations

from typing import Any

from shared.api.openapi_answers import ALWAYS, JSON, body_limit_text, problem, ref
from shared.subscriptions.rules import MAX_PER_OWNER

OTHER_PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "health": {
        "get": {
            "operationId": "health",
            "summary": "Storage reachability (anonymous)",
            "security": [],
            "responses": {
                "200": {
                    "description": "Healthy",
                    "content": {
                        JSON: {
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
                "503": problem("Table or poll queue unreachable"),
            },
        },
    },
    "openapi.json": {
        "get": {
            "operationId": "openApiDocument",
            "summary": "This OpenAPI document (anonymous)",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3 document", "content": {JSON: {"schema": {"type": "object"}}}}
            },
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
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ref("Subscription")}}}
    if location:
        answer["headers"] = {
            "Location": {
                "description": "The subscription's URL; DELETE it to unsubscribe",
                "schema": {"type": "string", "format": "uri"},
            }
        }
    return answer


OTHER_PATHS["subscriptions"] = {
    "post": {
        "operationId": "createSubscription",
        "summary": "Subscribe to your operations' terminal events (starts nothing in Graph)",
        "description": "Each operation of the caller that finishes fires every matching active subscription once: "
        "a signed CloudEvent POSTed to callbackUrl (the connector's webhook trigger).",
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("SubscriptionRequest")}}},
        "responses": {
            "201": _subscription("Registered", location=True),
            "400": problem("Invalid body; `field` names the field at fault"),
            "409": problem(f"tooManySubscriptions: the owner has {MAX_PER_OWNER} already"),
            "413": problem(f"bodyTooLarge: over {body_limit_text()}"),
            "415": problem("Content-Type is not application/json"),
            **ALWAYS,
        },
    },
    "get": {
        "operationId": "listSubscriptions",
        "summary": "Your subscriptions",
        "responses": {
            "200": {
                "description": "All of the caller's subscriptions",
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"value": {"type": "array", "items": ref("Subscription")}},
                        }
                    }
                },
            },
            **ALWAYS,
        },
    },
}
OTHER_PATHS["subscriptions/{id}"] = {
    "get": {
        "operationId": "getSubscription",
        "summary": "One of your subscriptions",
        "parameters": [_SUBSCRIPTION_ID],
        "responses": {
            "200": _subscription("The subscription"),
            "404": problem("Unknown id, or another owner's subscription"),
            **ALWAYS,
        },
    },
    "delete": {
        "operationId": "deleteSubscription",
        "summary": "Unsubscribe (idempotent); undelivered events for it stop",
        "parameters": [_SUBSCRIPTION_ID],
        "responses": {
            "204": {"description": "Deleted, or already gone"},
            "404": problem("Another owner's subscription"),
            **ALWAYS,
        },
    },
}
_CONSOLE_FILE = {"200": {"description": "The file", "content": {"text/html": {"schema": {"type": "string"}}}}}
OTHER_PATHS["console"] = {
    "get": {
        "operationId": "consolePage",
        "summary": "The operations console (anonymous static page: it holds no data and no key; docs/console.md)",
        "security": [],
        "responses": {**_CONSOLE_FILE, **ALWAYS},
    },
}
OTHER_PATHS["console/{asset}"] = {
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
            "404": problem("Not one of the console's files"),
            **ALWAYS,
        },
    },
}
OTHER_PATHS["durations"] = {
    "get": {
        "operationId": "listDurations",
        "summary": "How long your kinds of work took: the duration history the poll schedule learns from",
        "description": "Only the caller's own history (read-all role or not). Per action: all workbooks "
        "(`workbookKey` null) and each workbook (its key hash, never its path).",
        "responses": {
            "200": {
                "description": "The caller's summaries",
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"value": {"type": "array", "items": ref("DurationSummary")}},
                        }
                    }
                },
            },
            **ALWAYS,
        },
    },
}
