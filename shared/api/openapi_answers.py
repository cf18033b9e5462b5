"""The pieces the OpenAPI document's routes share: references, problem and record answers, the operation id and
signed-link parameters, and the answers of a status read. Pure."""

from __future__ import annotations

from typing import Any

from shared.api.problems import PROBLEM_CONTENT_TYPE
from shared.crypto.status_links import EXPIRY_PARAM, EXPIRY_PATTERN, SIGNATURE_PARAM
from shared.graph.actions import table as actions
from shared.operations.record import OPERATION_ID_PATTERN

JSON = "application/json"
PROBLEM = PROBLEM_CONTENT_TYPE


def body_limit_text() -> str:
    """The body limit as the descriptions say it (the largest any action accepts)."""
    return f"{actions.body_limit() // (1024 * 1024)} MiB"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {PROBLEM: {"schema": ref("Problem")}}}
    if retry_after:
        answer["headers"] = {
            "Retry-After": {
                "description": "Whole seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return answer


# Every operation may answer these (function_app._answer): the bridge is misconfigured or storage failed.
ALWAYS = {"500": problem("misconfigured or internalError (nothing was half-written)")}


def record(description: str, *, location: bool = False, retry_after: bool = False) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if location:
        headers["Location"] = {
            "description": "Absolute status URL to poll: GET /status/{id}?se=&sig= (signed: no other "
            "credential needed; always signed, with STATUS_LINK_KEYS or the key the bridge keeps in its storage)",
            "schema": {"type": "string", "format": "uri"},
        }
    if retry_after:
        headers["Retry-After"] = {
            "description": "Whole seconds until the bridge's next poll of Graph",
            "schema": {"type": "integer", "minimum": 0},
        }
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ref("Operation")}}}
    if headers:
        answer["headers"] = headers
    return answer


ID_PARAMETER: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Operation id (from `id` or `Location`)",
    "schema": {"type": "string", "pattern": OPERATION_ID_PATTERN},
}
LINK_PARAMETERS: list[dict[str, Any]] = [
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
LINK_REFUSED = {
    "401": problem("statusLinkRefused: the URL carries no se/sig"),
    "403": problem("statusLinkRefused: bad signature, another operation's, or expired"),
}

# What a status read answers, by either route (the keyed one and the signed URL)
STATUS_ANSWERS: dict[str, Any] = {
    "202": record("Still running", location=True, retry_after=True),
    "200": record("Terminal: succeeded, failed, timedOut or canceled"),
    "404": problem("Unknown id"),
    "409": problem("failOnError: the operation was canceled"),
    "422": problem("failOnError: the operation failed or timed out"),
    **ALWAYS,
}
