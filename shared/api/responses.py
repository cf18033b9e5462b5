"""Formatting HTTP answers: records, lists and problems as azure.functions.HttpResponse."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from shared.api.problems import PROBLEM_CONTENT_TYPE, Problem
from shared.operations.record import DamagedRecord, Operation, Reply, status_url, to_json
from shared.wire.strict_json import dumps

log = logging.getLogger(__name__)
JSON = "application/json"


def api_base(req: func.HttpRequest, route: str) -> str:
    """The public URL prefix the caller used, e.g. https://app.azurewebsites.net/api (from req.url)."""
    parts = urlsplit(req.url)
    path = parts.path
    cut = path.lower().rfind("/" + route.lower())
    prefix = path[:cut] if cut >= 0 else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        dumps(body, separators=(",", ":")), status_code=status, headers=headers or {}, mimetype=JSON, charset="utf-8"
    )


def reply_response(
    reply: Reply, *, failure: Problem | None = None, status_code: int | None = None
) -> func.HttpResponse:
    """The record with Location (and Retry-After while active); `failure` replaces it (failOnError)."""
    op = reply.operation
    if failure is not None:
        return problem_response(failure, status_url(op))
    headers = {"Location": reply.location}
    if reply.retry_after is not None:
        headers["Retry-After"] = str(reply.retry_after)
    return json_response(status_code or reply.status_code, to_json(op, link=reply.location), headers)


def page_response(
    operations: list[Operation],
    continuation: str | None,
    list_url: str,
    status: str | None,
    top: int | None,
    damaged: Sequence[DamagedRecord] = (),
) -> func.HttpResponse:
    """A page of the list; `nextLink` carries the (signed) continuation token and the same filter. Records of the
    page that cannot be read are named in `damaged`, left out of `value`: the rest of the page still answers."""
    body: dict[str, Any] = {"value": [to_json(op) for op in operations]}
    if damaged:
        body["damaged"] = [{"id": d.operation_id, "code": "recordDamaged", "property": d.prop} for d in damaged]
    if continuation:
        query = {k: v for k, v in (("status", status), ("top", top)) if v is not None}
        query["continuationToken"] = continuation
        body["nextLink"] = f"{list_url}?{urlencode(query)}"
    return json_response(200, body)


def problem_response(problem: Problem, instance: str | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        dumps(problem.body(instance)),
        status_code=problem.status,
        headers=problem.headers,
        mimetype=PROBLEM_CONTENT_TYPE,
        charset="utf-8",
    )


def unexpected_response(exc: BaseException) -> func.HttpResponse:
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return problem_response(
        Problem(
            500,
            "internalError",
            "Unexpected error",
            "The bridge failed; nothing was half-written. Retry, or check the logs.",
        )
    )
