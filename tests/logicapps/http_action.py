"""The Http action: one request with retries, then the asynchronous polling pattern.

Sources (MicrosoftDocs/azure-docs, articles/...):
- logic-apps/logic-apps-workflow-actions-triggers.md, "Run actions in a synchronous operation pattern": "By
  default, the HTTP action ... follow the standard asynchronous operation pattern ... The response can include a
  `location` header that specifies the URL ... the caller can use to continually poll or check the status for the
  asynchronous request until the receiver stops processing and returns a "200 OK" success response or other
  non-202 response."; "add and set the "operationOptions" property to `DisableAsyncPattern`".
- logic-apps/logic-apps-create-api-app.md: "A `location` header that specifies the absolute path to a URL";
  "A `retry-after` header that specifies the number of seconds that the engine should wait before checking the
  `location` URL"; "When the engine gets an HTTP `202 ACCEPTED` response and a valid `location` header, the engine
  respects the asynchronous pattern and checks the `location` header until your API returns a non-202 response."
  (so a 202 without a location is the action's final answer.)
- connectors/connectors-native-http.md: "For *stateless* workflows in single-tenant Azure Logic Apps, HTTP-based
  actions don't use the asynchronous operation pattern"; "The `Retry-After` header also works with the
  `202 - Accepted` status code."
- Azure/logicapps#611 (a maintainer): "we use the authentication specified on the action on any follow-up calls
  made on the url returned in the location header" — in that issue a hand-set Authorization header was not
  re-sent. So polls carry the action's `authentication` and none of its `headers`.
- logic-apps-workflow-actions-triggers.md, "Change asynchronous duration": `limit.timeout` bounds the
  asynchronous pattern; "the action's status is marked as `Cancelled` with the `ActionTimedOut` code" (the status
  name is a knob, see options.py).
- "Operation options", `SuppressWorkflowHeaders`: "By default, the Azure Logic Apps service includes extra
  metadata headers with the `x-ms-` prefix in the header name as part of outbound requests."
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import yarl

from tests.logicapps.content import ContentError, encode_body, parse_body, retry_after_seconds
from tests.logicapps.expressions import to_text
from tests.logicapps.options import Options, Waiter
from tests.logicapps.results import ActionResult, RequestRecord
from tests.logicapps.retry import RetryPolicy, is_retryable


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class ActionFailure(Exception):
    """The action ends Failed with this code/message (and outputs, when an answer came)."""

    def __init__(self, code: str, message: str, outputs: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.outputs = outputs


def authentication_headers(auth: Any, options: Options) -> dict[str, str]:
    """The Authorization header an `authentication` object produces (logic-apps-securing-a-logic-app.md,
    "Add authentication to outbound calls"): Raw sends its `value`; Basic user:password; ManagedServiceIdentity
    and ActiveDirectoryOAuth a bearer token for `audience` (here from `options.token_provider`, a placeholder)."""
    if not auth:
        return {}
    if not isinstance(auth, dict):
        raise ActionFailure("InvalidTemplate", f"authentication must be an object, got {auth!r}")
    kind = str(auth.get("type", "")).lower()
    if kind == "raw":
        return {"Authorization": to_text(auth.get("value"))}
    if kind == "basic":
        pair = f"{to_text(auth.get('username'))}:{to_text(auth.get('password'))}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if kind in ("managedserviceidentity", "activedirectoryoauth"):
        audience = to_text(auth.get("audience") or "https://management.azure.com/")
        return {"Authorization": "Bearer " + options.token_provider(audience)}
    if kind == "none":
        return {}
    raise ActionFailure("InvalidTemplate", f"authentication type {auth.get('type')!r} is not modelled")


def with_queries(uri: str, queries: Any) -> str:
    if not queries:
        return uri
    return uri + ("&" if "?" in uri else "?") + urlencode({k: to_text(v) for k, v in queries.items()})


def outputs_of(answer: Answer, options: Options) -> dict[str, Any]:
    try:
        body = parse_body(answer.header("content-type"), answer.body, json_suffix_is_json=options.json_suffix_is_json)
    except ContentError as error:
        raise ActionFailure(
            "InvalidJsonContent", str(error), {"statusCode": answer.status, "headers": answer.headers}
        ) from None
    return {"statusCode": answer.status, "headers": answer.headers, "body": body}


_URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")


def as_sent(url: str) -> yarl.URL | str:
    """The URL byte for byte when it is already encoded (yarl would otherwise re-quote it, e.g. %2F -> /)."""
    return yarl.URL(url, encoded=True) if set(url) <= _URL_SAFE else url


class Sender:
    """Sends one logical request (retrying per the policy) and records every attempt on the action."""

    def __init__(self, session: aiohttp.ClientSession, options: Options, engine_headers: dict[str, str]) -> None:
        self.session = session
        self.options = options
        self.engine_headers = engine_headers

    async def attempt(self, record: RequestRecord) -> Answer | None:
        record.sent_at = time.monotonic()
        try:
            async with self.session.request(
                record.method,
                as_sent(record.url),
                headers=record.headers,
                data=record.body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.options.request_timeout),
            ) as response:
                raw = await response.read()
                headers: dict[str, str] = {}
                for key, value in response.headers.items():
                    headers[key] = f"{headers[key]},{value}" if key in headers else value
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            record.error = f"{type(error).__name__}: {error}"
            return None
        record.status, record.response_headers, record.response_body = response.status, headers, raw
        return Answer(response.status, headers, raw)

    async def send(
        self,
        action: ActionResult,
        purpose: str,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        policy: RetryPolicy,
        waiter: Waiter,
    ) -> Answer | None:
        retry = 0
        while True:
            record = RequestRecord(purpose, method.upper(), url, dict(headers), body)
            action.requests.append(record)
            answer: Answer | None = await waiter.until(self.attempt(record))
            status = answer.status if answer else None
            if not is_retryable(status) or retry >= policy.count:
                return answer
            retry += 1
            wait = retry_after_seconds(answer.header("retry-after"), time.time()) if answer else None
            if wait is None:
                wait = policy.delay(retry, self.options.rng)
            await waiter.sleep(wait * self.options.retry_scale)


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def follow_location(
    sender: Sender,
    action: ActionResult,
    first: Answer,
    auth_headers: dict[str, str],
    policy: RetryPolicy,
    waiter: Waiter,
) -> Answer:
    """Poll `location` with GET while the answer is 202 with a location; return the first other answer."""
    answer = first
    while answer.status == 202 and answer.header("location"):
        location = answer.header("location") or ""
        if not _absolute(location):
            raise ActionFailure(
                "InvalidLocationHeader",
                f"the 202 answer's location {location!r} is not absolute "
                "(logic-apps-create-api-app.md requires an absolute URL)",
                outputs_of(answer, sender.options),
            )
        wait = retry_after_seconds(answer.header("retry-after"), time.time())
        if wait is None:
            wait = sender.options.default_poll_interval
        await waiter.sleep(wait * sender.options.poll_scale)
        # Follow-ups carry the engine's own headers and the action's authentication, never its `headers`.
        headers = {**sender.engine_headers, **auth_headers}
        polled = await sender.send(action, "poll", "GET", location, headers, None, policy, waiter)
        if polled is None:
            raise ActionFailure(
                "ServiceUnavailable", f"no answer from the location {location!r}: {action.requests[-1].error}"
            )
        answer = polled
    return answer


def status_code_name(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return str(status)


def request_parts(
    inputs: dict[str, Any], options: Options
) -> tuple[str, str, dict[str, str], bytes | None, dict[str, str]]:
    """method, url, headers (custom + auth), body bytes, auth headers — from evaluated inputs."""
    method = to_text(inputs.get("method") or "GET").upper()
    uri = inputs.get("uri") or inputs.get("url")
    if not isinstance(uri, str) or not uri:
        raise ActionFailure("InvalidTemplate", "the action has no uri")
    url = with_queries(uri, inputs.get("queries"))
    custom = {str(k): to_text(v) for k, v in (inputs.get("headers") or {}).items()}
    data, content_type = encode_body(inputs.get("body"), custom)
    if content_type and not any(k.lower() == "content-type" for k in custom):
        custom["Content-Type"] = content_type
    auth = authentication_headers(inputs.get("authentication"), options)
    return method, url, {**custom, **auth}, data, auth


async def run_http(
    sender: Sender,
    action: ActionResult,
    definition: dict[str, Any],
    inputs: dict[str, Any],
    waiter: Waiter,
    async_pattern: bool,
) -> dict[str, Any]:
    """Run an Http action; returns its outputs (Succeeded) or raises ActionFailure / Interrupted."""
    method, url, headers, data, auth = request_parts(inputs, sender.options)
    policy = RetryPolicy.from_inputs(inputs)
    answer = await sender.send(
        action, "request", method, url, {**sender.engine_headers, **headers}, data, policy, waiter
    )
    if answer is None:
        raise ActionFailure("ServiceUnavailable", f"no answer from {url!r}: {action.requests[-1].error}")
    if async_pattern:
        answer = await follow_location(sender, action, answer, auth, policy, waiter)
    outputs = outputs_of(answer, sender.options)
    if answer.status >= 400:
        raise ActionFailure(status_code_name(answer.status), f"the answer was {answer.status}", outputs)
    return outputs
