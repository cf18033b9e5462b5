"""A storage fault proxy: a small reverse proxy between the app and Azurite that fails, resets, delays or drops
chosen requests (by service, method, path pattern, operation id and count) and logs everything it forwards.

One listener per service (blob, queue, table), each on its own 127.0.0.1 port, forwarding to Azurite's port for
that service. A test controls it in-process (`add_rule`, `log`) or over the admin API on the queue listener:
`POST /_faults/rules` (a rule as JSON), `DELETE /_faults/rules`, `GET /_faults/log`.

Faithfulness. The answers model Azure Storage's own:
- Azure Storage docs, "Status and error codes" (rest/api/storageservices/status-and-error-codes2): the error body
  is `<?xml version="1.0" encoding="utf-8"?><Error><Code>string-value</Code><Message>string-value</Message>
  </Error>`, and "for version 2017-07-29 and later, failed API operations also return the Azure Storage error
  code string in a response header": `x-ms-error-code`.
- Azure Storage docs, "Common REST API error codes" (rest/api/storageservices/common-rest-api-error-codes):
  `InternalError` | Internal Server Error (500) | "The server encountered an internal error. Please retry the
  request."; `OperationTimedOut` | Internal Server Error (500) | "The operation could not be completed within the
  permitted time."; `ServerBusy` | Service Unavailable (503) | "The server is currently unable to receive
  requests. Please retry your request." (also "Ingress is over the account limit.", "Operations per second is
  over the account limit.").
- Azure Table docs, "Table service error codes" / "Payload format for Table service operations": a JSON request
  (`Accept: application/json;odata=...`) gets its error as `{"odata.error": {"code": ..., "message":
  {"lang": "en-US", "value": ...}}}`; other requests the XML body above.
So the SDKs' own retry policies see what they would see in Azure: 500/503 are retried with backoff (azure-core
`RetryPolicy`, `_RETRY_CODES` = 5xx except 501 and 505; azure-storage `StorageRetryPolicy`, `ExponentialRetry`).

Actions: `fail` (an Azure error answer; not forwarded), `reset` (TCP reset, not forwarded: the request never
reached storage), `lose` (forwarded and done by storage, then the connection is reset: the caller cannot know it
worked), `delay` (`seconds`, then forwarded), `drop` (not forwarded, the connection closed without an answer),
`damage` (a write of an operation record forwarded with one JSON property made unreadable, `HistoryJson`: storage
keeps a record the app cannot decode, as a bug, a manual edit or another app version would leave it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from devhost.services import AzuritePorts

SERVICES = ("blob", "queue", "table")
ACTIONS = ("fail", "reset", "lose", "delay", "drop", "damage")
DAMAGED_PROPERTY, DAMAGED_VALUE = "HistoryJson", "{damaged by the fault proxy"
ERRORS = {  # Common REST API error codes: code -> (status, message)
    "InternalError": (500, "The server encountered an internal error. Please retry the request."),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
    "ServerBusy": (503, "The server is currently unable to receive requests. Please retry your request."),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
}
_MESSAGE_TEXT = re.compile(rb"<MessageText>([^<]*)</MessageText>")
_MESSAGE_ID = re.compile(rb"<MessageId>([^<]+)</MessageId>")
_MESSAGE_PATH = re.compile(r"/messages/([^/?]+)")
# An operation's keys: its partition, and the lane (workbook) partition its record names (shared/lanes/store.py), so
# the lane entity's reads and writes belong to the operation from its record's first write on.
_KEYS = re.compile(r'"(?:PartitionKey|OperationId|Lane)"\s*:\s*"([^"]+)"')


@dataclass
class Rule:
    """Which requests to hit and how. Matched in order; the first rule that matches and still has `times`
    left acts; `skip` lets that many matching requests through first."""

    action: str = "fail"
    service: str | None = None
    method: str | None = None
    path: str | None = None  # regex searched in the URL-decoded path + query
    match: str | None = None  # a string in the path, the body, a queue message's decoded text, or its message id
    # (or an alias the proxy learned for it: see FaultProxy.track)
    call: str | None = None  # a call label (`call_of(entry).label`, e.g. "queue POST polls messages")
    times: int = 1
    skip: int = 0
    code: str = "ServerBusy"  # for `fail`: one of ERRORS
    seconds: float = 0.0  # for `delay`
    name: str = ""
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        if self.service is not None and self.service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES}")
        if self.code not in ERRORS:
            raise ValueError(f"code must be one of {sorted(ERRORS)}")
        self.name = self.name or uuid.uuid4().hex[:8]

    @property
    def spent(self) -> bool:
        return self.fired >= self.times


@dataclass
class Entry:
    """One request the proxy saw, and what became of it."""

    seq: int
    at: float
    service: str
    method: str
    path: str  # URL-decoded path + query
    text: str  # the request body as text (a queue message's text decoded)
    ids: list[str]  # the queue message ids this request is about (learned from sends)
    action: str  # "forward" or the rule's action
    rule: str | None
    status: int | None  # what the caller got (None: no answer)
    upstream_status: int | None  # what storage answered (None: not forwarded, or storage did not answer)

    def mentions(self, needle: str) -> bool:
        return needle in self.path or needle in self.text or needle in self.ids

    @property
    def done(self) -> bool:
        """Storage carried it out (whatever the caller heard)."""
        return self.upstream_status is not None and self.upstream_status < 300


def _decoded_body(body: bytes) -> str:
    """The body as text, with every queue `<MessageText>` (base64, host.json messageEncoding) decoded."""
    text = body.decode("utf-8", errors="replace")
    for raw in _MESSAGE_TEXT.findall(body):
        with contextlib.suppress(ValueError):
            text += "\n" + base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    return text


def error_answer(service: str, code: str, accept: str) -> web.Response:
    status, message = ERRORS[code]
    request_id = str(uuid.uuid4())
    headers = {"x-ms-error-code": code, "x-ms-request-id": request_id, "x-ms-version": "2019-02-02"}
    detail = f"{message}\nRequestId:{request_id}\nTime:{time.strftime('%Y-%m-%dT%H:%M:%S.0000000Z', time.gmtime())}"
    if service == "table" and "json" in accept:
        body = json.dumps({"odata.error": {"code": code, "message": {"lang": "en-US", "value": detail}}})
        return web.Response(status=status, text=body, headers=headers, content_type="application/json", charset="utf-8")
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{detail}</Message></Error>'
    return web.Response(status=status, text=body, headers=headers, content_type="application/xml", charset="utf-8")


class FaultProxy:
    """The three listeners, their rules and their log. Runs its own event loop in a daemon thread."""

    def __init__(self, upstream: AzuritePorts) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.entries: list[Entry] = []
        self.message_ids: dict[str, str] = {}  # queue message id -> the text of the send that made it
        self.aliases: dict[str, set[str]] = {}  # a tracked string -> the entity keys written along with it
        self.names: dict[str, str] = {}  # queue/table name -> role, for call labels
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fault-proxy")
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self.ports: AzuritePorts | None = None
        self.paused = threading.Event()

    # -- control ---------------------------------------------------------------------------------------------
    def start(self) -> AzuritePorts:
        self._thread.start()
        self.ports = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self.ports

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def add_rule(self, **rule: Any) -> Rule:
        made = Rule(**rule)
        with self._lock:
            self.rules.append(made)
        return made

    def track(self, needle: str, *aliases: str) -> None:
        """Follow `needle` (e.g. a workbook item id): a table write whose body contains it makes its
        PartitionKey (the operation id) an alias, so later requests naming only the id match it too."""
        with self._lock:
            self.aliases.setdefault(needle, set()).update(aliases)

    def mentions(self, entry: Entry, needle: str) -> bool:
        with self._lock:
            aliases = set(self.aliases.get(needle, ()))
        return entry.mentions(needle) or any(entry.mentions(alias) for alias in aliases)

    def _learn(self, entry: Entry) -> None:
        if entry.service != "table" or entry.method == "GET":
            return
        with self._lock:
            for needle, aliases in self.aliases.items():
                if needle in entry.text or any(alias in entry.text for alias in aliases):
                    aliases.update(key for key in _KEYS.findall(entry.text) if not key.startswith("idem-"))

    def label(self, entry: Entry) -> str:
        return call_of(entry, self.names).label

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def log(self, mentioning: str | None = None) -> list[Entry]:
        with self._lock:
            entries = list(self.entries)
        return [e for e in entries if mentioning is None or self.mentions(e, mentioning)]

    @property
    def connection_string(self) -> str:
        assert self.ports is not None
        return self.ports.connection_string

    # -- serving ---------------------------------------------------------------------------------------------
    async def _start(self) -> AzuritePorts:
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))
        ports = []
        for service in SERVICES:
            app = web.Application(client_max_size=256 * 1024 * 1024)
            if service == "queue":
                app.router.add_route("POST", "/_faults/rules", self._admin_add)
                app.router.add_route("DELETE", "/_faults/rules", self._admin_clear)
                app.router.add_route("GET", "/_faults/log", self._admin_log)
            app.router.add_route("*", "/{tail:.*}", self._handler(service))
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            server = site._server
            assert server is not None
            ports.append(int(server.sockets[0].getsockname()[1]))  # type: ignore[union-attr]
        return AzuritePorts(*ports)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _admin_add(self, request: web.Request) -> web.Response:
        try:
            rule = self.add_rule(**await request.json())
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(rule), status=201)

    async def _admin_clear(self, _request: web.Request) -> web.Response:
        self.clear_rules()
        return web.Response(status=204)

    async def _admin_log(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(e) for e in self.log()])

    def _pick(self, entry: Entry) -> Rule | None:
        self._learn(entry)
        label = self.label(entry)
        with self._lock:
            rules = list(self.rules)
        for rule in rules:
            if rule.match is not None and not self.mentions(entry, rule.match):
                continue
            if rule.call is not None and rule.call != label:
                continue
            if rule.action == "damage" and not record_write(entry):
                continue
            with self._lock:
                if rule.spent:
                    continue
                if rule.service not in (None, entry.service) or rule.method not in (None, entry.method):
                    continue
                if rule.path is not None and not re.search(rule.path, entry.path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                rule.fired += 1
                return rule
        return None

    def _record(self, entry: Entry) -> None:
        with self._lock:
            entry.seq = len(self.entries)
            self.entries.append(entry)

    def _handler(self, service: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            path = unquote(request.path_qs)
            ids = []
            if service == "queue":
                found = _MESSAGE_PATH.search(request.path)
                if found and found.group(1) in self.message_ids:
                    ids.append(found.group(1))
            entry = Entry(
                0, time.time(), service, request.method, path, _decoded_body(body), ids, "forward", None, None, None
            )
            if ids:
                entry.text += "\n" + self.message_ids[ids[0]]
            rule = self._pick(entry)
            if rule is not None:
                entry.action, entry.rule = rule.action, rule.name
            try:
                return await self._act(service, request, body, entry, rule)
            finally:
                self._record(entry)

        return handle

    async def _act(
        self, service: str, request: web.Request, body: bytes, entry: Entry, rule: Rule | None
    ) -> web.StreamResponse:
        if rule is not None and rule.action == "fail":
            answer = error_answer(service, rule.code, request.headers.get("Accept", ""))
            entry.status = answer.status
            return answer
        if rule is not None and rule.action in ("reset", "drop"):
            _cut(request, reset=rule.action == "reset")
            raise asyncio.CancelledError  # nothing is answered; aiohttp drops the handler quietly
        if rule is not None and rule.action == "delay":
            await asyncio.sleep(rule.seconds)
        if rule is not None and rule.action == "damage":
            body = _damaged(body)
        status, headers, payload = await self._forward(service, request, body)
        entry.upstream_status = status
        if status is None:
            _cut(request, reset=True)
            raise asyncio.CancelledError
        if service == "queue" and request.method == "POST" and status < 300:
            for message_id in _MESSAGE_ID.findall(payload):
                self.message_ids[message_id.decode()] = entry.text
        if rule is not None and rule.action == "lose":
            _cut(request, reset=True)
            raise asyncio.CancelledError
        entry.status = status
        return web.Response(status=status, body=payload, headers=headers)

    async def _forward(
        self, service: str, request: web.Request, body: bytes
    ) -> tuple[int | None, dict[str, str], bytes]:
        assert self._session is not None
        port = getattr(self.upstream, service)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method,
                f"http://127.0.0.1:{port}{request.raw_path}",
                headers=headers,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
            ) as answer:
                payload = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
                return answer.status, out, payload
        except (TimeoutError, aiohttp.ClientError):
            return None, {}, b""


def record_write(entry: Entry) -> bool:
    """A table write of an operation record (insert, merge or replace of RowKey `operation`)."""
    if entry.service != "table" or entry.method not in ("POST", "PUT", "PATCH", "MERGE"):
        return False
    try:
        body = json.loads(entry.text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("RowKey") == "operation"


def _damaged(body: bytes) -> bytes:
    """The same write with one property the app cannot decode."""
    entity = json.loads(body)
    entity[DAMAGED_PROPERTY] = DAMAGED_VALUE
    entity.pop(f"{DAMAGED_PROPERTY}@odata.type", None)
    return json.dumps(entity).encode()


def _cut(request: web.Request, *, reset: bool) -> None:
    """Close the caller's connection without an answer; with `reset`, as a TCP RST (SO_LINGER 0)."""
    transport = request.transport
    if transport is None:
        return
    sock: socket.socket | None = transport.get_extra_info("socket")
    if reset and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class Call:
    """A storage call as the matrix names it: which service, verb and kind of resource."""

    service: str
    method: str
    kind: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} {self.kind}"


def call_of(entry: Entry, names: dict[str, str]) -> Call:
    """What kind of call an entry is. `names` maps the app's queue/table names to roles (e.g. "polls")."""
    path = entry.path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p][1:]  # drop the account name
    resource = parts[0] if parts else ""
    role = next((role for name, role in names.items() if resource == name or resource.startswith(name + "(")), resource)
    if entry.service == "queue":
        kind = f"{role} message" if len(parts) > 2 else f"{role} messages" if len(parts) == 2 else f"queue {role}"
        return Call("queue", entry.method, kind)
    if entry.service == "table":
        if "(" in resource:
            row = re.search(r"RowKey='([^']*)'", resource)
            partition = re.search(r"PartitionKey='([^']*)'", resource)
            key = row.group(1) if row else "?"
            if partition and partition.group(1).startswith("idem-"):
                key = "idempotency"
            elif partition and partition.group(1).startswith("owner-"):
                key = "owner-index"  # PartitionKey owner-<hash>, RowKey the operation id: one call kind for all
            return Call("table", entry.method, f"{role} entity {key}")
        if entry.method == "POST":
            key = (
                "idempotency"
                if '"PartitionKey": "idem-' in entry.text or '"PartitionKey":"idem-' in entry.text
                else "entity"
            )
            return Call("table", "POST", f"{role} insert {key}")
        return Call("table", entry.method, f"{role} query")
    return Call("blob", entry.method, "blob" if len(parts) > 1 else "container")
