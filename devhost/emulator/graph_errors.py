"""Graph's error chains for the failures real Excel produces, one builder per failure, each citing its source.

Shape. Real payloads reported by users put Excel's own PascalCase code at the top and the documented camelCase
code at the second level, e.g. ``{"code": "ResponsePayloadSizeLimitExceeded", "innerError": {"code":
"responsePayloadSizeLimitExceeded", "date", "request-id", "client-request-id"}}`` (microsoft-graph-docs #15709) or
``ApiNotFound``/``apiNotFound`` (microsoft-graph-docs-contrib #3425, #460). workbook-error-handling.md ("Parse
second-level error code") tells a client to act on the second level; deeper levels are "intended for the
developer to read" (workbook-error-codes.md). Every chain here has a documented second-level code
(workbook-error-codes.md, "Detailed error code") where one fits.

A ``Chain`` is the error object without the per-request ``date``/``request-id``/``client-request-id`` (which
``server.graph_error`` adds to the second level of an answer).
"""

from __future__ import annotations

import copy
from typing import Any

Chain = dict[str, Any]

# workbook-error-codes.md, "Detailed error code": the invalidSession* family.
SESSION_ERROR_CODES = (
    "invalidSessionReCreatable",
    "invalidSessionAccessConflict",
    "invalidSessionAuthentication",
    "invalidSessionNotFound",
    "invalidSessionRestricted",
    "invalidSessionUnexpected",
    "invalidSessionUnsupportedWorkbook",
)

_SESSION_MESSAGES = {
    "invalidSessionReCreatable": "The session specified in the request does not exist or is invalid due to a "
    "transient error.",
    "invalidSessionAccessConflict": "The session specified in the request is invalid due to conflicts with other "
    "clients that are accessing the workbook.",
    "invalidSessionAuthentication": "The session specified in the request is invalid due to an authentication error.",
    "invalidSessionNotFound": "The session specified in the request is invalid because the workbook can't be found.",
    "invalidSessionRestricted": "The session specified in the request is invalid due to service configurations or "
    "restrictions.",
    "invalidSessionUnexpected": "The session specified in the request is invalid due to an unexpected issue.",
    "invalidSessionUnsupportedWorkbook": "The session specified in the request is invalid because the workbook "
    "contains unsupported features or exceeds the size limit.",
}


def chain(code: str, message: str, inner_code: str, inner_message: str, deeper: Chain | None = None) -> Chain:
    """A two- (or three-) level error object."""
    inner: Chain = {"code": inner_code, "message": inner_message}
    if deeper is not None:
        inner["innerError"] = copy.deepcopy(deeper)
    return {"code": code, "message": message, "innerError": inner}


def item_not_found(what: str) -> Chain:
    """An unknown table (or row). workbook-error-codes.md: 404 and the second-level ``itemNotFound`` ("The
    requested resource doesn't exist.")."""
    return chain("ItemNotFound", "The requested resource doesn't exist.", "itemNotFound", what)


def invalid_argument(what: str) -> Chain:
    """A bad argument, e.g. a row of the wrong width. microsoft-graph-docs-contrib #7248: a row one column short
    answered ``InvalidArgument`` ("The number of rows or columns in the input array doesn't match the size or
    dimensions of the range."); workbook-error-codes.md's second-level ``invalidArgument``."""
    return chain(
        "InvalidArgument", "The argument is invalid or missing or has an incorrect format.", "invalidArgument", what
    )


def insert_delete_conflict() -> Chain:
    """microsoft-graph-docs-contrib #7248 / microsoft-graph-docs #4392 (``InsertDeleteConflict`` on a row add:
    "This operation won't work because it would move cells in a table on your worksheet");
    workbook-error-codes.md's second-level ``insertDeleteConflict``. The HTTP status is not in the reports:
    409 (conflict) is this emulator's reading."""
    return chain(
        "InsertDeleteConflict",
        "This operation won't work because it would move cells in a table on your worksheet.",
        "insertDeleteConflict",
        "The insert or delete operation attempted resulted in a conflict.",
    )


API_NOT_FOUND_MESSAGE = (
    "The API you are trying to use could not be found. It may be available in a newer version of Excel. Please "
    'refer to the documentation: "https://docs.microsoft.com/office/dev/add-ins/reference/requirement-sets/'
    'excel-api-requirement-sets".'
)


def api_not_found() -> Chain:
    """``DELETE rows/{index}`` / ``GET rows/{index}``: microsoft-graph-docs-contrib #3425, #460, #3940, #8599 and
    #9041 report ``ApiNotFound``/``apiNotFound`` for the ``rows/{index}`` form (``rows/itemAt(index=n)`` works).
    The reports show no HTTP status; 404 is the reading harshest for a client (a client that keys on the status
    could take it for "that row is already gone")."""
    return chain("ApiNotFound", API_NOT_FOUND_MESSAGE, "apiNotFound", API_NOT_FOUND_MESSAGE)


def request_payload_too_large(limit: int, size: int) -> Chain:
    """A write over Excel's request payload limit. office-js-docs-pr #2278 adds ``RequestPayloadSizeLimitExceeded``
    ("The request payload size has exceeded the limit ... This error occurs in Excel on the web"); the limit is
    about 5 MB (office-js-docs-pr #920, resource-limits-and-performance-optimization). The chain's shape follows
    the one report of its twin on Graph (``ResponsePayloadSizeLimitExceeded`` / ``responsePayloadSizeLimitExceeded``,
    microsoft-graph-docs #15709); the status is workbook-error-codes.md's 413."""
    message = (
        "The request payload size has exceeded the limit. Please refer to the documentation: "
        '"https://docs.microsoft.com/office/dev/add-ins/concepts/resource-limits-and-performance-optimization'
        '#excel-add-ins".'
    )
    return chain(
        "RequestPayloadSizeLimitExceeded",
        message,
        "requestPayloadSizeLimitExceeded",
        f"{message} (emulator: {size} bytes, limit {limit})",
    )


def response_payload_too_large(limit: int, size: int) -> Chain:
    """A read whose answer would be over the response payload limit: microsoft-graph-docs #15709 (the exact chain,
    seen on ``GET …/tables/{t}/range`` of a large table). The report shows no status; 413 as for requests."""
    message = (
        "The size of the payload exceeded the limit. Read the documentation: "
        "https://docs.microsoft.com/office/dev/add-ins/concepts/resource-limits-and-performance-optimization"
        "#excel-add-ins."
    )
    return chain(
        "ResponsePayloadSizeLimitExceeded",
        message,
        "responsePayloadSizeLimitExceeded",
        f"{message} (emulator: {size} bytes, limit {limit})",
    )


MAX_DURATION_MESSAGE = "We're sorry. We couldn't finish what you asked us to do because it was taking too long."


def max_request_duration() -> Chain:
    """A 504 on a large request: microsoft-graph-explorer-v4 #3907 (the exact three-level chain
    ``MaxRequestDurationExceeded`` / ``gatewayTimeoutUncategorized`` / ``MaxRequestDurationExceeded``)."""
    return chain(
        "MaxRequestDurationExceeded",
        MAX_DURATION_MESSAGE,
        "gatewayTimeoutUncategorized",
        "The service wasn't able to complete the request within the time limit.",
        {"code": "MaxRequestDurationExceeded", "message": MAX_DURATION_MESSAGE},
    )


def internal_server_error() -> Chain:
    """A 500 (workbook-error-codes.md: 500 ``internalServerError``, second level
    ``internalServerErrorUncategorized``)."""
    return chain(
        "internalServerError",
        "An internal server error occurred while processing the request.",
        "internalServerErrorUncategorized",
        "An unspecified error has occurred.",
    )


def invalid_session(code: str, why: str) -> Chain:
    """A request with a dead, closed or unknown session. resources/excel.md ("Usage"): "If the session id has
    expired, a 404 HTTP error code is returned on the session"; workbook-error-codes.md gives 404 the top-level
    ``notFound`` and lists the invalidSession* second-level codes (``invalidSessionReCreatable``: "does not exist
    or is invalid due to a transient error" by default)."""
    return chain("notFound", "The resource could not be found.", code, f"{_SESSION_MESSAGES[code]} ({why})")


def too_many_sessions(limit: int) -> Chain:
    """A createSession past the per-workbook session cap: microsoft-graph-docs #416 (a maintainer, on 429s: "limiting
    the number of sessions being created on the same workbook (which caps around 25)"); workbook-error-codes.md's
    429 ``tooManyRequests`` / ``tooManyRequestsUncategorized``."""
    return chain(
        "tooManyRequests",
        "The app or user has been throttled.",
        "tooManyRequestsUncategorized",
        f"The client app or user has been throttled. Please try your request again. (emulator: {limit} sessions "
        "are open on this workbook)",
    )
