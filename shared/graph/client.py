"""The Graph client: sends every request with a bearer token (an action's request is built by the action table,
shared/graph/actions/, and handed over as an `OutgoingRequest`).

Only URLs whose origin equals GRAPH_BASE_URL's get a request (and so a token); others raise
UntrustedOrigin before any I/O. A request HTTP cannot carry (a control character in its URL or a header value)
raises RequestNotSendable before any I/O. Transport failures become TransportFailure, never escape as aiohttp
errors.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from opentelemetry.trace import SpanKind
from yarl import URL

from shared.graph.tokens import TokenSource
from shared.observability import telemetry
from shared.wire.origins import origin_of

log = logging.getLogger(__name__)


class UntrustedOrigin(Exception):
    def __init__(self, url: str, expected: str) -> None:
        super().__init__(f"refusing to send a Graph token to {origin_of(url)} (expected {expected})")
        self.origin = origin_of(url)


class TransportFailure(Exception):
    """No HTTP answer: timeout, connection reset, DNS failure."""


class RequestNotSendable(Exception):
    """The request cannot be put on the wire (nothing was sent): a URL or header value with a character HTTP
    forbids. Not transient: the same request fails the same way every time."""


# RFC 9110 section 5.5: CR, LF and NUL are invalid in a field value; aiohttp refuses these (http_writer's
# _FORBIDDEN_HEADER_CHARS_RE) with a ValueError. A URL (RFC 3986) has no space or control character at all.
_BAD_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_URL = re.compile(r"[\x00-\x20\x7f]")


def unsendable(url: str, headers: Mapping[str, str]) -> str | None:
    """Why HTTP cannot carry this request (naming the part, never its value), or None."""
    if _BAD_URL.search(url):
        return "the URL holds a space or a control character"
    for name, value in headers.items():
        if _BAD_HEADER.search(name) or _BAD_HEADER.search(value):
            return f"the {name} header holds a control character"
    return None


@dataclass(frozen=True)
class GraphResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class OutgoingRequest(Protocol):
    """An Excel request as built by the action table (shared/graph/actions/spec.GraphRequest is one): the
    adapter names only the fields it reads instead of importing the decisions above it."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def json(self) -> dict[str, Any] | None: ...
    @property
    def headers(self) -> dict[str, str]: ...


class GraphClient:
    def __init__(self, session: aiohttp.ClientSession, tokens: TokenSource, base_url: str, timeout: float) -> None:
        self._session = session
        self._tokens = tokens
        self._origin = origin_of(base_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def trusted(self, url: str) -> bool:
        return origin_of(url) == self._origin

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        tokens: TokenSource | None = None,
    ) -> GraphResponse:
        """Send once; on 401 fetch one fresh token and send again."""
        if not self.trusted(url):
            raise UntrustedOrigin(url, self._origin)
        reason = unsendable(url, headers or {})
        if reason is not None:
            raise RequestNotSendable(f"the request to Graph cannot be sent: {reason}")
        source = tokens or self._tokens
        response = await self._send(method, url, json, headers or {}, source, refresh=False)
        if response.status == 401:
            log.info("Graph answered 401; retrying once with a fresh token")
            response = await self._send(method, url, json, headers or {}, source, refresh=True)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        json: dict[str, Any] | None,
        headers: dict[str, str],
        tokens: TokenSource,
        refresh: bool,
    ) -> GraphResponse:
        token = await tokens.token(refresh=refresh)
        request_id = str(uuid.uuid4())
        all_headers = {
            **headers,
            "Authorization": f"Bearer {token}",
            "client-request-id": request_id,
            "Accept": "application/json",
        }
        with telemetry.span(
            f"Graph {method}",
            {
                "http.request.method": method,
                "server.address": URL(url, encoded=True).host or "",
                "peer.service": "graph",
                "http.request.header.client-request-id": (request_id,),
            },
            SpanKind.CLIENT,
        ) as span:
            answer = await self._request(method, url, json, all_headers)
            telemetry.set_attributes(
                span,
                {
                    "http.response.status_code": answer.status,
                    "http.response.header.request-id": (answer.headers.get("request-id", ""),),
                    "http.response.header.client-request-id": (answer.headers.get("client-request-id", ""),),
                },
            )
        log.info(
            "graph %s %s -> %s (client-request-id %s, request-id %s)",
            method,
            _path_only(url),
            answer.status,
            request_id,
            answer.headers.get("request-id", "-"),
        )
        return answer

    async def _request(
        self, method: str, url: str, json: dict[str, Any] | None, headers: dict[str, str]
    ) -> GraphResponse:
        try:
            # encoded=True: Location/resourceLocation are sent byte for byte, never re-quoted.
            async with self._session.request(
                method,
                URL(url, encoded=True),
                json=json,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                telemetry.graph_answer(method, resp.status)
                return GraphResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        except TimeoutError as exc:
            telemetry.graph_answer(method, None)
            raise TransportFailure("Graph did not answer in time") from exc
        except aiohttp.InvalidURL as exc:  # refused before sending (a ValueError too, but a ClientError first)
            raise RequestNotSendable(f"the request to Graph cannot be sent: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            telemetry.graph_answer(method, None)
            raise TransportFailure(f"connection to Graph failed: {type(exc).__name__}") from exc
        except ValueError as exc:  # aiohttp refuses a request it cannot write (a header value) before sending
            raise RequestNotSendable(f"the request to Graph cannot be sent: {type(exc).__name__}") from exc

    async def start(self, request: OutgoingRequest, tokens: TokenSource | None = None) -> GraphResponse:
        """Send an action's request (built by shared/graph/actions/table.request_for)."""
        return await self.send(request.method, request.url, json=request.json, headers=request.headers, tokens=tokens)


def _path_only(url: str) -> str:
    """Logged form of a URL: no query (it may carry an opaque session id)."""
    return url.split("?", 1)[0]
