"""How Logic Apps stores HTTP bodies it receives and encodes bodies it sends (pure functions).

Source: MicrosoftDocs/azure-docs `articles/logic-apps/logic-apps-content-type.md`:
- "Any request with the content type `application/json` is stored and handled as a JSON Object."
- "`text/plain` ... are stored in raw form."
- "Other content types ... the request is stored in the action as follows: "body": {"$content-type":
  "application/x-www-url-formencoded", "$content": "AAB1241BACDFA=="}"; "the engine converts the content to a
  binary base64 encoded string with appropriate metadata that preserves both `$content` and `$content-type`".
The doc names only `application/json` as parsed; `application/cloudevents+json` or `application/problem+json`
are therefore "other content types" in the default reading. `json_suffix_is_json=True` gives the other reading
(any `+json` parsed) so a caller can be built to work under both.
"""

from __future__ import annotations

import base64
import json
import re
from email.utils import parsedate_to_datetime
from typing import Any


class ContentError(Exception):
    """A body declared as JSON that does not parse."""


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(content_type: str | None, raw: bytes, *, json_suffix_is_json: bool = False) -> Any:
    """The value Logic Apps stores for a received body (None when there is none)."""
    if not raw:
        return None
    kind = media_type(content_type)
    if kind == "application/json" or (json_suffix_is_json and kind.endswith("+json")):
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ContentError(f"the body is declared {kind} but does not parse: {error}") from None
    if kind == "text/plain":
        return raw.decode(_charset(content_type) or "utf-8", errors="replace")
    return {
        "$content-type": content_type or "application/octet-stream",
        "$content": base64.b64encode(raw).decode("ascii"),
    }


def _charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=([\w-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else None


def encode_body(body: Any, headers: dict[str, str]) -> tuple[bytes | None, str | None]:
    """The bytes and Content-Type an outbound request carries for an evaluated `body` input.

    A JSON object/array goes out as JSON; a string as text/plain; a `$content` object as its own bytes and type
    (logic-apps-content-type.md: "If in the next action, you send the request as the body of another request
    (`@body('flatfile')`), the request would have a `text/plain` Content-Type header"; "The Logic Apps Engine
    always preserves the `Content-Type` that was received"). A Content-Type set in the headers wins.
    """
    given = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if body is None:
        return None, given
    if isinstance(body, dict) and "$content" in body and "$content-type" in body:
        return base64.b64decode(str(body["$content"])), given or str(body["$content-type"])
    if isinstance(body, str):
        return body.encode("utf-8"), given or "text/plain; charset=utf-8"
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), given or "application/json"


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration_seconds(text: str) -> float:
    """Seconds in an ISO 8601 duration such as PT1H, PT10S, P1D, PT0.5S (the forms the docs use)."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds: delta-seconds (fractions accepted) or an HTTP-date; None when absent/unreadable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
