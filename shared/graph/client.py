"""The Graph client: builds the three Excel requests and sends every request with a bearer token.

Only URLs whose origin equals GRAPH_BASE_URL's get a request (and so a token); others raise
UntrustedOrigin before any I/O. Transport failures become TransportFailure, never escape as aiohttp errors.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

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


@dataclass(frozen=True)
class GraphResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class GraphRequest:
    method: str
    url: str
    json: dict[str, Any] | None
    headers: dict[str, str]


class WorkbookAction(Protocol):
    """What an Excel request is built from (shared/validation.StartRequest is one): the adapter names only the
    fields it reads instead of importing the request validation above it."""

    @property
    def workbook(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def parameters(self) -> dict[str, Any]: ...
    @property
    def session_id(self) -> str | None: ...


def start_request(base_url: str, start: WorkbookAction) -> GraphRequest:
    """The Graph request for an action, asking for the asynchronous answer."""
    headers = {"Prefer": "respond-async"}
    if start.session_id:
        headers["Workbook-Session-Id"] = start.session_id
    workbook = f"{base_url}{start.workbook}/workbook"
    params = start.parameters
    if start.action == "createSession":
        return GraphRequest("POST", f"{workbook}/createSession", {"persistChanges": params["persistChanges"]}, headers)
    table = quote(str(params["table"]), safe="")
    if start.action == "createTableRow":
        body = {"index": params.get("index"), "values": params["values"]}
        return GraphRequest("POST", f"{workbook}/tables/{table}/rows", body, headers)
    return GraphRequest("DELETE", f"{workbook}/tables/{table}/rows/itemAt(index={int(params['index'])})", None, headers)


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
        except aiohttp.ClientError as exc:
            telemetry.graph_answer(method, None)
            raise TransportFailure(f"connection to Graph failed: {type(exc).__name__}") from exc

    async def start(self, base_url: str, start: WorkbookAction, tokens: TokenSource | None = None) -> GraphResponse:
        request = start_request(base_url, start)
        return await self.send(request.method, request.url, json=request.json, headers=request.headers, tokens=tokens)


def _path_only(url: str) -> str:
    """Logged form of a URL: no query (it may carry an opaque session id)."""
    return url.split("?", 1)[0]
