"""Parsing and validating `POST /api/operations` bodies. Pure: no I/O, every error names its field."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.api.problems import FieldError, Problem, invalid
from shared.delivery.targets import MAX_URL_LENGTH, OutboundPolicy, Refused, check_url
from shared.graph.actions import table as actions
from shared.graph.actions.params import CONTROL, has_control
from shared.operations.record import BINARY, CALLBACK_FORMATS
from shared.wire.origins import origin_of
from shared.wire.strict_json import JsonRefused, loads, lone_surrogate_at

# The patterns are written so that they read the same as Python and as ECMA-262 regular expressions: the
# OpenAPI document (shared/api/openapi.py) publishes them as they are. Python matches them with `fullmatch`:
# its `$` also matches before a trailing line feed, which would let "id\n" through.
SEGMENT = r"[A-Za-z0-9!._,:@=$'()~-]{1,400}"  # one path segment of a drive or item id
_DRIVE = rf"(?:me/drive|drives/{SEGMENT}|users/{SEGMENT}/drive|sites/{SEGMENT}/drive|groups/{SEGMENT}/drive)"
WORKBOOK_PATTERN = rf"^/{_DRIVE}/items/{SEGMENT}$"
WORKBOOK_RE = re.compile(WORKBOOK_PATTERN)
OPERATION_PATH_RE = re.compile(rf"^/(?:v1\.0|beta)(/{_DRIVE}/items/{SEGMENT})/workbook/operations/{SEGMENT}$")
SESSION_ID_PATTERN = r"^[!-~]{1,2048}$"  # printable ASCII without spaces: it is sent as a header value
_HEADER_SAFE = re.compile(SESSION_ID_PATTERN)
# An encoded URL: ASCII letters, digits and URL punctuation (check_url's characters for callbacks), no space or control
URL_PATTERN = r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$"
_URL_SAFE = re.compile(URL_PATTERN)
_QUERY = r"(?:\?[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]*)?"  # any query, no fragment
_OPERATION_PATH = rf"/(?:v1\.0|beta)/{_DRIVE}/items/{SEGMENT}/workbook/operations/{SEGMENT}"


def operation_url_pattern(graph_origin: str | None = None) -> str:
    """An operationUrl as the validator reads it: on `graph_origin` (any http(s) host when None), a workbook
    operation path, any query. Dot segments are refused too, which a pattern cannot say without look-ahead."""
    if graph_origin is None:
        origin = r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?"
    else:
        default = {"https": ":443", "http": ":80"}.get(graph_origin.split(":", 1)[0], "")
        origin = re.sub(r"([.^$|?*+()\[\]{}\\])", r"\\\1", graph_origin)
        if default and graph_origin.count(":") == 1:
            origin += f"(?:{default})?"
    return f"^{origin}{_OPERATION_PATH}{_QUERY}$"


CLIENT_REFERENCE_MAX_LENGTH = 256
CLIENT_REFERENCE_PATTERN = rf"^[^{CONTROL}]{{1,{CLIENT_REFERENCE_MAX_LENGTH}}}$"  # stored and echoed: no control
IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$"  # printable ASCII, no spaces
LIST_TOP_MAX = 100  # GET /operations?top=: 1 to this
LIST_TOP_DEFAULT = 20
_START_FIELDS = {
    "workbook",
    "action",
    "parameters",
    "sessionId",
    "callbackUrl",
    "clientReference",
    "failOnError",
    "callbackFormat",
    "expectedDurationSeconds",
}
_TRACK_FIELDS = {
    "operationUrl",
    "action",
    "callbackUrl",
    "clientReference",
    "failOnError",
    "callbackFormat",
    "expectedDurationSeconds",
}


@dataclass(frozen=True)
class StartRequest:
    workbook: str
    action: str  # a name in the action table (shared/graph/actions/table.py)
    parameters: dict[str, Any]
    session_id: str | None
    callback_url: str | None
    client_reference: str | None
    fail_on_error: bool = False
    callback_format: str | None = None  # set (default "binary") whenever callback_url is
    expected_duration: float | None = None  # expectedDurationSeconds: the caller's hint for the poll schedule


@dataclass(frozen=True)
class TrackRequest:
    operation_url: str
    workbook: str
    action: str | None
    callback_url: str | None
    client_reference: str | None
    fail_on_error: bool = False
    callback_format: str | None = None
    expected_duration: float | None = None


def check_json_content_type(content_type: str | None) -> None:
    """415 for a body declared as anything but JSON (`application/json` or a `+json` type, any parameters).

    A missing Content-Type is read as JSON (curl and some low-code tools omit it for raw bodies); a declared
    other type (text/plain, form data, XML) is refused rather than guessed at."""
    if content_type is None or not content_type.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    raise Problem(
        415,
        "unsupportedMediaType",
        "The body must be JSON",
        f"Content-Type {media[:100]!r} is not JSON; send Content-Type: application/json.",
        [FieldError("Content-Type", "must be application/json")],
        headers={"Accept-Post": "application/json"},
    )


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "bodyTooLarge",
        "The body is too large",
        f"At most {limit} bytes.",
        [FieldError("body", f"must be at most {limit} bytes")],
    )


def parse_json_body(body: bytes, content_type: str | None = None, limit: int | None = None) -> Any:
    """Strict JSON of at most `limit` bytes (default: the largest any action accepts), every string Unicode text
    (a lone surrogate is refused naming its field: RFC 7493 I-JSON)."""
    check_json_content_type(content_type)
    limit = limit if limit is not None else actions.body_limit()
    if len(body) > limit:
        raise too_large(limit)
    if not body.strip():
        raise invalid([FieldError("body", "a JSON object is required")])
    try:
        payload = loads(body)
    except JsonRefused as exc:  # also NaN/Infinity, over-deep nesting, huge numbers, duplicate keys
        raise invalid([FieldError("body", str(exc))]) from None
    where = lone_surrogate_at(payload)
    if where is not None:
        raise invalid(
            [FieldError(where, "must be Unicode text: a lone surrogate (such as \\ud800) is not a character")]
        )
    return payload


def parse_operation_request(
    payload: Any,
    *,
    graph_origin: str,
    allow_private_callbacks: bool,
    webhooks_configured: bool,
    allowed_callback_hosts: tuple[str, ...] = (),
    max_expected_duration: float | None = None,
    body_bytes: int | None = None,
) -> StartRequest | TrackRequest:
    """`max_expected_duration`: the operation timeout (OPERATION_TIMEOUT_SECONDS), the largest hint accepted;
    `body_bytes`: the body's size, held to the action's own limit (413)."""
    if not isinstance(payload, dict):
        raise invalid([FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    if "operationUrl" in payload:
        if "workbook" in payload:
            errors.append(FieldError("workbook", "give either workbook (start) or operationUrl (track), not both"))
        result: StartRequest | TrackRequest | None = _track(payload, graph_origin, errors)
    elif "workbook" in payload:
        result = _start(payload, errors)
        action = actions.find(payload.get("action"))
        if action is not None and body_bytes is not None and body_bytes > action.max_body_bytes:
            raise too_large(action.max_body_bytes)
    else:
        raise invalid([FieldError("workbook", "required (or operationUrl to track an existing operation)")])
    policy = OutboundPolicy(allow_private_callbacks, allowed_callback_hosts)
    callback = _callback_url(payload.get("callbackUrl"), policy, webhooks_configured, errors)
    reference = payload.get("clientReference")
    if reference is not None and (
        not isinstance(reference, str)
        or not 1 <= len(reference) <= CLIENT_REFERENCE_MAX_LENGTH
        or has_control(reference)
    ):
        errors.append(
            FieldError(
                "clientReference",
                f"must be a string of 1-{CLIENT_REFERENCE_MAX_LENGTH} characters without control characters",
            )
        )
    fail_on_error = payload.get("failOnError", False)
    if not isinstance(fail_on_error, bool):
        errors.append(FieldError("failOnError", "must be true or false"))
    callback_format = parse_callback_format(payload, errors)
    expected = parse_expected_duration(payload, max_expected_duration, errors)
    if errors or result is None:
        raise invalid(errors)
    if isinstance(result, StartRequest):
        return StartRequest(
            result.workbook,
            result.action,
            result.parameters,
            result.session_id,
            callback,
            reference,
            fail_on_error,
            callback_format if callback else None,
            expected,
        )
    return TrackRequest(
        result.operation_url,
        result.workbook,
        result.action,
        callback,
        reference,
        fail_on_error,
        callback_format if callback else None,
        expected,
    )


def parse_expected_duration(payload: dict[str, Any], maximum: float | None, errors: list[FieldError]) -> float | None:
    """`expectedDurationSeconds`: how long the caller expects the operation to take, a positive finite number no
    larger than the operation timeout. It only moves the polls (shared/schedule/plans.py learned_plan)."""
    value = payload.get("expectedDurationSeconds")
    if value is None and "expectedDurationSeconds" not in payload:
        return None
    limit = f" and at most {maximum:g} (OPERATION_TIMEOUT_SECONDS)" if maximum is not None else ""
    try:
        seconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer past float's range
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0 or (maximum is not None and seconds > maximum):
        errors.append(FieldError("expectedDurationSeconds", f"must be a number of seconds greater than 0{limit}"))
        return None
    return seconds


def parse_callback_format(payload: dict[str, Any], errors: list[FieldError]) -> str:
    """`callbackFormat`: "binary" (default) or "structured" CloudEvents; meaningful only with a callbackUrl."""
    if "callbackFormat" not in payload:
        return BINARY
    value = payload["callbackFormat"]
    if not isinstance(value, str) or value not in CALLBACK_FORMATS:  # null too: the schema says a string
        errors.append(FieldError("callbackFormat", "must be one of " + ", ".join(CALLBACK_FORMATS)))
        return BINARY
    if payload.get("callbackUrl") is None:
        errors.append(FieldError("callbackFormat", "only allowed together with callbackUrl"))
    return str(value)


def _unknown_fields(payload: dict[str, Any], allowed: set[str], errors: list[FieldError]) -> None:
    for name in sorted(set(payload) - allowed):
        errors.append(FieldError(name, "unknown field"))


def _action(value: Any, errors: list[FieldError], required: bool) -> str | None:
    if value is None and not required:
        return None
    action = actions.find(value)
    if action is None:
        errors.append(FieldError("action", "must be one of " + ", ".join(actions.names())))
        return None
    return action.name


def _start(payload: dict[str, Any], errors: list[FieldError]) -> StartRequest | None:
    _unknown_fields(payload, _START_FIELDS, errors)
    workbook = payload.get("workbook")
    if not isinstance(workbook, str) or not WORKBOOK_RE.fullmatch(workbook) or _has_dot_segment(workbook):
        errors.append(
            FieldError(
                "workbook",
                "must be a drive item path such as /drives/{drive-id}/items/{item-id}, /me/drive/items/{id}, "
                "/users/{id}/drive/items/{id}, /sites/{id}/drive/items/{id} or /groups/{id}/drive/items/{id}",
            )
        )
        workbook = None
    action = _action(payload.get("action"), errors, required=True)
    session_id = payload.get("sessionId")
    if session_id is not None and (not isinstance(session_id, str) or not _HEADER_SAFE.fullmatch(session_id)):
        errors.append(FieldError("sessionId", "must be a workbook session id (printable ASCII, no spaces)"))
    entry = actions.find(action)
    checked = None
    if entry is not None:
        parameters = payload.get("parameters", None if entry.parameters_required else {})
        checked = entry.check(parameters, errors)
    if workbook is None or action is None or checked is None:
        return None
    return StartRequest(workbook, action, checked, session_id, None, None)


def _track(payload: dict[str, Any], graph_origin: str, errors: list[FieldError]) -> TrackRequest | None:
    _unknown_fields(payload, _TRACK_FIELDS, errors)
    url = payload.get("operationUrl")
    action = _action(payload.get("action"), errors, required=False)
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        errors.append(FieldError("operationUrl", "must be a URL string"))
        return None
    if not _URL_SAFE.fullmatch(url):  # urlsplit would silently drop a tab or line feed inside (bpo-43882)
        errors.append(FieldError("operationUrl", "must be an encoded URL (ASCII, no spaces or control characters)"))
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an IPv6 host bracket opened and never closed ("https://[::1/...")
        errors.append(FieldError("operationUrl", "must be a URL (its host could not be read)"))
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.fragment:
        errors.append(FieldError("operationUrl", "must be an absolute http(s) URL without credentials"))
        return None
    if origin_of(url) != graph_origin:
        raise Problem(
            400,
            "untrustedOperationOrigin",
            "The operation URL is not on the configured Graph origin",
            f"Only {graph_origin} receives Graph tokens; this URL's origin is {origin_of(url)}.",
            [FieldError("operationUrl", f"origin must be {graph_origin}")],
        )
    match = OPERATION_PATH_RE.fullmatch(parts.path)
    if not match or _has_dot_segment(parts.path):
        errors.append(
            FieldError("operationUrl", "must be a workbook operation URL: .../items/{id}/workbook/operations/{id}")
        )
        return None
    return TrackRequest(url, match.group(1), action, None, None)


def _callback_url(
    value: Any, policy: OutboundPolicy, webhooks_configured: bool, errors: list[FieldError]
) -> str | None:
    """Static SSRF checks (shared with every delivery); names are resolved and checked by the caller."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError("callbackUrl", "must be a URL string"))
        return None
    try:
        check_url(value, policy)
    except Refused as exc:
        errors.append(FieldError("callbackUrl", exc.reason))
        return None
    except ValueError:  # urlsplit: an IPv6 host bracket opened and never closed ("https://[::1/...")
        errors.append(FieldError("callbackUrl", "must be a URL (its host could not be read)"))
        return None
    if not webhooks_configured:
        errors.append(FieldError("callbackUrl", "webhooks are not configured on this bridge (WEBHOOK_SECRET)"))
        return None
    return value


def parse_callback_url(
    value: Any, policy: OutboundPolicy, webhooks_configured: bool, errors: list[FieldError]
) -> str | None:
    """The static callbackUrl checks of operations, for other callers (subscriptions)."""
    return _callback_url(value, policy, webhooks_configured, errors)


def _has_dot_segment(path: str) -> bool:
    """`.` or `..` segments would be collapsed by URL libraries: the request would go elsewhere."""
    return any(segment in (".", "..") for segment in path.split("/"))
