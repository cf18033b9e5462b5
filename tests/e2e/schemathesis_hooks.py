"""Schemathesis hooks for tests/e2e/test_api_schema.py (loaded through SCHEMATHESIS_HOOKS).

One kind of failure is dropped, narrowly: the devhost's own bare 404 (`text/plain`, "404: Not Found", sent
by its router before any function runs) for a path whose id or key holds a line feed or a slash. The devhost
does not route such paths; the Functions host passes the decoded segment to the function, whose answer is a
400 or 404 problem like any other bad id. Those failures describe the devhost's router, not the app. Every
other failure counts, including a text/plain 404 for any other path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import schemathesis

HOST_404 = b"404: Not Found"  # aiohttp's default body: the app never writes it (its 404s are problem+json)


def _unroutable(path_parameters: dict[str, Any] | None) -> bool:
    """By then schemathesis holds the values percent-encoded, as sent."""
    decoded = [unquote(str(value)) for value in (path_parameters or {}).values()]
    return any("\n" in value or "/" in value for value in decoded)


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False drops the failure (schemathesis hook_specs: "Drop check failures that fail the predicate")."""
    from_host_router = (
        response.status_code == 404
        and response.content.strip() == HOST_404
        and str(response.headers.get("content-type", [""])[0]).startswith("text/plain")
    )
    return not (from_host_router and _unroutable(case.path_parameters))
