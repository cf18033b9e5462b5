"""Schemathesis hooks for tests/e2e/test_api_schema.py (loaded through SCHEMATHESIS_HOOKS).

Refusals of schema-valid requests (positive_data_acceptance, "Schema-valid request rejected") are sorted by
kind: the operation, the status, the problem's code and field. A kind in CANNOT_SAY is a rule no schema can
state (docs/testing.md explains each): it is counted (written to FUZZ_REFUSALS, one JSON line per refusal)
and dropped; any other kind stays a failure, so the document cannot become looser than the API again.

One other kind of failure is dropped, narrowly: the devhost's own bare 404 (`text/plain`, "404: Not Found", sent
by its router before any function runs) for a path whose id or key holds a line feed or a slash. The devhost
does not route such paths; the Functions host passes the decoded segment to the function, whose answer is a
400 or 404 problem like any other bad id. Those failures describe the devhost's router, not the app. Every
other failure counts, including a text/plain 404 for any other path.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote

import schemathesis

HOST_404 = b"404: Not Found"  # aiohttp's default body: the app never writes it (its 404s are problem+json)


def _unroutable(path_parameters: dict[str, Any] | None) -> bool:
    """By then schemathesis holds the values percent-encoded, as sent."""
    decoded = [unquote(str(value)) for value in (path_parameters or {}).values()]
    return any("\n" in value or "/" in value for value in decoded)


# (operation, problem code, field) of the refusals a schema cannot foresee; "*" matches any field
CANNOT_SAY: frozenset[tuple[str, str, str]] = frozenset(
    {
        # a callback's host must resolve to public addresses only, its port be 443 or from 1024, and
        # WEBHOOK_SECRET be set: DNS and settings, not syntax
        ("POST /operations", "invalidRequest", "callbackUrl"),
        ("POST /subscriptions", "invalidRequest", "callbackUrl"),
        # only GRAPH_BASE_URL's origin receives Graph tokens
        ("POST /operations", "untrustedOperationOrigin", "operationUrl"),
        # a `.` or `..` path segment (URL libraries would collapse it: the request would go elsewhere)
        ("POST /operations", "invalidRequest", "workbook"),
        ("POST /operations", "invalidRequest", "operationUrl"),
        # values of at most 32 KiB as JSON, a body of at most 1 MiB: sizes of the serialised JSON
        ("POST /operations", "invalidRequest", "parameters.values"),
        ("POST /operations", "bodyTooLarge", "body"),
        # only a previous page's nextLink holds a valid continuation token
        ("GET /operations", "invalidRequest", "continuationToken"),
    }
)
GRAPH_REFUSED = "graph"  # the bridge passes Graph's own refusal of the start on (the problem has graphStatus)
FAIL_ON_ERROR = "failOnError"  # failOnError: the operation failed at Graph (422 with the record)


def refusal_kind(label: str, status: int, body: bytes) -> tuple[str, str, str]:
    """(operation, code, field) of a refusal; the code is GRAPH_REFUSED or FAIL_ON_ERROR for those."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = {}
    problem = problem if isinstance(problem, dict) else {}
    if "graphStatus" in problem:
        return label, GRAPH_REFUSED, str(problem.get("code", ""))
    if status == 422 and "operation" in problem:
        return label, FAIL_ON_ERROR, str(problem.get("code", ""))
    return label, str(problem.get("code", "")), str(problem.get("field", ""))


def _explained(kind: tuple[str, str, str]) -> bool:
    return kind in CANNOT_SAY or kind[1] in (GRAPH_REFUSED, FAIL_ON_ERROR)


def _tally(kind: tuple[str, str, str], status: int, explained: bool) -> None:
    path = os.environ.get("FUZZ_REFUSALS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": list(kind), "status": status, "explained": explained}) + "\n")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False drops the failure (schemathesis hook_specs: "Drop check failures that fail the predicate")."""
    if getattr(failure, "code", "") == "ST202":  # RejectedPositiveData: a schema-valid request refused
        kind = refusal_kind(case.operation.label, response.status_code, response.content)
        explained = _explained(kind)
        _tally(kind, response.status_code, explained)
        return not explained
    from_host_router = (
        response.status_code == 404
        and response.content.strip() == HOST_404
        and str(response.headers.get("content-type", [""])[0]).startswith("text/plain")
    )
    return not (from_host_router and _unroutable(case.path_parameters))
