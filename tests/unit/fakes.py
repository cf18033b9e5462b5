"""In-process fakes at the SDK-client seam, so the real adapters (shared/operations/store.py, shared/storage/queues.py,
shared/storage/result_blobs.py, shared/graph/client.py, shared/delivery/sender.py) run over them in milliseconds.

- FakeTable: the subset of `azure.data.tables.aio.TableClient` the adapters call, with Table Storage's rules:
  "Insert Entity" of an existing key fails 409 EntityAlreadyExists (ResourceExistsError); "Update Entity" /
  "Merge Entity" / "Delete Entity" with `If-Match: <etag>` (match_condition=MatchConditions.IfNotModified) fail
  412 UpdateConditionNotSatisfied (ResourceModifiedError) when the entity changed since it was read, and 404
  ResourceNotFound when it is missing; every write returns a new ETag; MERGE keeps the other properties,
  REPLACE drops them (learn.microsoft.com, Table service REST API: "Insert Entity", "Update Entity",
  "Merge Entity", "Delete Entity"; platform-contracts.md and azure-functions-facts.md, "Optimistic
  concurrency"). azure-data-tables 12.7's `delete_entity` swallows a 404 (its _table_client_async.py), so a
  delete of a missing entity is silent here too. `query_entities` understands the OData subset the store writes
  (eq/ne/gt/ge/lt/le over properties, `and`/`or`, parentheses, '...' strings, numbers, @parameters substituted
  as the SDK does) and raises NotImplementedError on anything else.
- FakeQueue: `azure.storage.queue.aio.QueueClient`: "Put Message" with `visibilitytimeout` (0..7 days) and a
  TTL, a 64 KiB limit; "Get Messages" makes a message invisible for its visibility timeout, raises its dequeue
  count and hands out a new pop receipt; "Delete Message" needs the latest pop receipt (400
  PopReceiptMismatch otherwise, 404 MessageNotFound when gone). The text is kept as the app gave it (the
  base64 policy is the SDK's, not the service's).
  Entities keep the service's size limits (a string property of at most 32 K UTF-16 characters, 1 MiB, 252
  properties of one's own: 400 PropertyValueTooLarge / EntityTooLarge / TooManyProperties).
- FakeContainer: the results container (`azure.storage.blob.aio.ContainerClient`): upload without overwrite
  of an existing name fails 409 BlobAlreadyExists, download of a missing blob 404.
- FakeGraphHTTP: an `aiohttp.ClientSession` stand-in for `GraphClient` (and the webhook session): it answers
  each URL from a script (202 + Location, 200 running/succeeded/failed, 429 + Retry-After, 5xx, transport
  errors, as graph-excel-async-facts.md describes Graph's answers) and records every call. An unscripted call
  fails the test.
- FakeClock: `time.time` for shared/ (patched for the test), moved by hand or by `drain`.

`fake_runtime(clock, **env)` builds the app's own `shared.runtime.worker.Runtime` over these; `drain(rt, clock)` plays
the Functions host (host.json: visibilityTimeout 5 s, maxDequeueCount 5, poison queue `<queue>-poison`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import inspect
import ipaddress
import itertools
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode
from yarl import URL

from shared.delivery import operation_webhooks as deliverer
from shared.delivery.resolver import PinnedResolver
from shared.graph.client import GraphClient
from shared.lanes import admission as lane_flow
from shared.lanes.store import LaneStore
from shared.operations import poll_step as poller
from shared.operations.store import OperationStore
from shared.runtime.settings import load_settings
from shared.runtime.worker import Runtime, outbound_policy
from shared.schedule.history_store import HistoryStore
from shared.schedule.timing import Timing
from shared.storage.messages import LANE_KIND, message_kind
from shared.storage.queues import DeliveryQueue, PollQueue
from shared.storage.result_blobs import ResultBlobs

GRAPH = "https://graph.example.test/v1.0"
START_TIME = 1_780_000_000.0  # 2026-05-28: a fixed epoch so records' ISO times are reproducible
HOST_VISIBILITY_TIMEOUT = 5  # host.json extensions.queues.visibilityTimeout (a failed message's retry delay)
HOST_MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount


# ---------------------------------------------------------------------------------------------------- clock
class FakeClock:
    """The wall clock shared/ reads (`time.time()`); `install` patches it for one test."""

    def __init__(self, start: float = START_TIME) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        monkeypatch.setattr(time, "time", self.time)
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock().install(monkeypatch)


def _error(cls: type[HttpResponseError], status: int, code: str) -> HttpResponseError:
    exc = cls(message=f"{status} {code}")
    exc.status_code = status
    exc.error_code = code  # type: ignore[attr-defined]  # set by azure-core's error map from x-ms-error-code
    return exc


@dataclass
class Fault:
    """Fail `times` calls of `method` whose arguments satisfy `match` (after letting `skip` through)."""

    method: str
    error: Exception | None
    times: int = 1
    skip: int = 0
    match: Callable[..., bool] | None = None
    action: Callable[[], Any] | None = None  # instead of failing: run this first (another writer's change)
    running: bool = False


class Faults:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def fail(
        self,
        method: str,
        error: Exception | None = None,
        *,
        times: int = 1,
        skip: int = 0,
        match: Callable[..., bool] | None = None,
    ) -> Fault:
        fault = Fault(method, error or _error(HttpResponseError, 503, "ServerBusy"), times, skip, match)
        self.faults.append(fault)
        return fault

    def before(
        self,
        method: str,
        action: Callable[[], None],
        *,
        times: int = 1,
        skip: int = 0,
        match: Callable[..., bool] | None = None,
    ) -> Fault:
        """Run `action` just before the next `times` matching calls (a concurrent writer getting in between
        this caller's read and its write): the real ETag check then decides."""
        fault = Fault(method, None, times, skip, match, action)
        self.faults.append(fault)
        return fault

    def check(self, method: str, *args: Any) -> Awaitable[None] | None:
        """Raise the first matching fault; a matching `before` action runs instead (an async one is returned
        for the caller to await). A fault does not match calls made while its own action runs."""
        for fault in self.faults:
            if (
                fault.method != method
                or fault.times <= 0
                or fault.running
                or (fault.match is not None and not fault.match(*args))
            ):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.times -= 1
            if fault.action is not None:
                return self._run(fault)
            assert fault.error is not None
            raise fault.error
        return None

    def _run(self, fault: Fault) -> Awaitable[None] | None:
        assert fault.action is not None
        fault.running = True
        result = fault.action()
        if not inspect.isawaitable(result):
            fault.running = False
            return None

        async def finish() -> None:
            try:
                await result
            finally:
                fault.running = False

        return finish()

    async def acheck(self, method: str, *args: Any) -> None:
        pending = self.check(method, *args)
        if pending is not None:
            await pending


# ---------------------------------------------------------------------------------------------------- tables
_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?)|(@\w+)|([A-Za-z_]\w*))")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _tokens(query: str, parameters: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    query = query.rstrip()
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m:
            raise NotImplementedError(f"FakeTable cannot parse the filter at {query[pos:]!r}")
        pos = m.end()
        opened, closed, text, number, param, word = m.groups()
        if opened:
            out.append(("(", None))
        elif closed:
            out.append((")", None))
        elif text is not None:
            out.append(("value", text.replace("''", "'")))
        elif number is not None:
            out.append(("value", float(number) if "." in number else int(number)))
        elif param:
            if param[1:] not in parameters:
                raise NotImplementedError(f"filter parameter {param} not given")
            out.append(("value", parameters[param[1:]]))
        elif word in ("and", "or"):
            out.append((word, None))
        elif word in _COMPARE:
            out.append(("op", word))
        elif word in ("not", "true", "false") or word.endswith("datetime"):
            raise NotImplementedError(f"FakeTable does not implement {word!r} in filters")
        else:
            out.append(("name", word))
    return out


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


class _Filter:
    """A parsed OData filter of the subset above: `or` of `and`s of comparisons, with parentheses."""

    def __init__(self, query: str, parameters: dict[str, Any]) -> None:
        self._tokens = _tokens(query, parameters)
        self._pos = 0
        self.tree = self._or()
        if self._pos != len(self._tokens):
            raise NotImplementedError(f"FakeTable: trailing tokens in filter {query!r}")

    def _peek(self) -> str | None:
        return self._tokens[self._pos][0] if self._pos < len(self._tokens) else None

    def _take(self, kind: str) -> Any:
        if self._peek() != kind:
            raise NotImplementedError(f"FakeTable: expected {kind} in the filter, found {self._peek()}")
        value = self._tokens[self._pos][1]
        self._pos += 1
        return value

    def _or(self) -> Any:
        node = self._and()
        while self._peek() == "or":
            self._pos += 1
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._term()
        while self._peek() == "and":
            self._pos += 1
            node = ("and", node, self._term())
        return node

    def _term(self) -> Any:
        if self._peek() == "(":
            self._pos += 1
            node = self._or()
            self._take(")")
            return node
        name = self._take("name")
        op = self._take("op")
        return ("cmp", name, op, self._take("value"))

    def matches(self, entity: dict[str, Any], node: Any = None) -> bool:
        node = self.tree if node is None else node
        if node[0] == "and":
            return self.matches(entity, node[1]) and self.matches(entity, node[2])
        if node[0] == "or":
            return self.matches(entity, node[1]) or self.matches(entity, node[2])
        _, name, op, value = node
        if name not in entity:  # a missing property matches no comparison (Table service "Querying tables")
            return False
        actual = entity[name]
        return _comparable(actual, value) and _COMPARE[op](actual, value)


class _Pages:
    """`AsyncItemPaged`'s shape: iterate items, or `.by_page(continuation_token)` and read `continuation_token`
    (the continuation is the next (PartitionKey, RowKey) as the service's NextPartitionKey/NextRowKey)."""

    def __init__(self, rows: list[TableEntity], per_page: int | None) -> None:
        self._rows = rows
        self._per_page = per_page or 1000  # Table service: at most 1,000 entities per page
        self.continuation_token: dict[str, str] | None = None

    def __aiter__(self) -> AsyncIterator[TableEntity]:
        return self._items()

    async def _items(self) -> AsyncIterator[TableEntity]:
        for row in self._rows:
            yield row

    def by_page(self, continuation_token: dict[str, str] | None = None) -> _Pages:
        start = 0
        if continuation_token:
            key = (continuation_token["PartitionKey"], continuation_token["RowKey"])
            start = next(
                (i for i, r in enumerate(self._rows) if (r["PartitionKey"], r["RowKey"]) >= key), len(self._rows)
            )
        return _PageIterator(self, start)


class _PageIterator(_Pages):
    def __init__(self, parent: _Pages, start: int) -> None:
        super().__init__(parent._rows, parent._per_page)
        self._start = start

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._pages()

    async def _pages(self) -> AsyncIterator[Any]:
        start = self._start
        while start < len(self._rows):
            page = self._rows[start : start + self._per_page]
            start += len(page)
            following = self._rows[start] if start < len(self._rows) else None
            self.continuation_token = (
                {"PartitionKey": following["PartitionKey"], "RowKey": following["RowKey"]} if following else None
            )
            yield _Pages(page, None)


class FakeTable(Faults):
    """`TableClient` subset; entities in a dict keyed (PartitionKey, RowKey), listed in key order as the
    service returns them. `faults.fail("update_entity", ...)` makes calls fail as storage would."""

    def __init__(self, name: str = "operations") -> None:
        super().__init__()
        self.table_name = name
        self.entities: dict[tuple[str, str], dict[str, Any]] = {}
        self.etags: dict[tuple[str, str], str] = {}
        # The service's own `Timestamp` of each entity: the time of its last write ("Understanding the Table service
        # data model", system properties). Not a property of the stored dict: the SDK hands it back as metadata,
        # and a filter may compare it (`Timestamp lt @before`, a datetime parameter).
        self.stamps: dict[tuple[str, str], datetime] = {}
        self.created = False
        self.closed = False
        self.calls: list[tuple[str, str, str]] = []  # (method, PartitionKey, RowKey)
        self._versions = itertools.count(1)

    # helpers for tests
    def row(self, partition: str, row: str) -> dict[str, Any] | None:
        found = self.entities.get((partition, row))
        return dict(found) if found is not None else None

    def writes(self, partition: str) -> list[str]:
        return [m for m, p, _ in self.calls if p == partition and m != "get_entity"]

    def touch(self, partition: str, row: str, **props: Any) -> None:
        """Another writer's merge: change properties and the ETag, as any write by someone else does."""
        key = (partition, row)
        self.entities[key].update(props)
        self._stamp(key)

    def _stamp(self, key: tuple[str, str]) -> dict[str, Any]:
        etag = f"W/\"datetime'{next(self._versions)}'\""
        self.etags[key] = etag
        self.stamps[key] = datetime.fromtimestamp(time.time(), UTC)
        return {"etag": etag, "date": time.time()}

    def _entity(self, key: tuple[str, str], select: list[str] | None = None) -> TableEntity:
        stored = self.entities[key]
        entity = TableEntity(
            **{k: copy.deepcopy(v) for k, v in stored.items() if select is None or k in select or k in key}
        )
        entity._metadata = {"etag": self.etags[key], "timestamp": self.stamps.get(key)}
        return entity

    @staticmethod
    def _key(entity: dict[str, Any]) -> tuple[str, str]:
        return str(entity["PartitionKey"]), str(entity["RowKey"])

    @staticmethod
    def _limits(entity: dict[str, Any]) -> None:
        """ "Understanding the Table service data model": a string property holds at most 64 KiB (32 K UTF-16
        characters), an entity at most 255 properties (with PartitionKey, RowKey, Timestamp) and 1 MiB."""
        if len(entity) > 252:
            raise _error(HttpResponseError, 400, "TooManyProperties")
        for value in entity.values():
            if isinstance(value, str) and len(value.encode("utf-16-le")) > 64 * 1024:
                raise _error(HttpResponseError, 400, "PropertyValueTooLarge")
        if len(json.dumps(entity, default=str).encode("utf-16-le")) > 1024 * 1024:
            raise _error(HttpResponseError, 400, "EntityTooLarge")

    def _condition(self, key: tuple[str, str], etag: str | None, match_condition: Any) -> None:
        if key not in self.entities:
            raise _error(ResourceNotFoundError, 404, "ResourceNotFound")
        if match_condition == MatchConditions.IfNotModified and etag != self.etags[key]:
            raise _error(ResourceModifiedError, 412, "UpdateConditionNotSatisfied")

    async def create_table(self) -> None:
        if self.created:
            raise _error(ResourceExistsError, 409, "TableAlreadyExists")
        self.created = True

    async def close(self) -> None:
        self.closed = True

    async def create_entity(self, entity: dict[str, Any], **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        key = self._key(entity)
        self.calls.append(("create_entity", *key))
        await self.acheck("create_entity", entity)
        self._limits(entity)
        if key in self.entities:
            raise _error(ResourceExistsError, 409, "EntityAlreadyExists")
        self.entities[key] = copy.deepcopy(dict(entity))
        return self._stamp(key)

    async def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> TableEntity:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        key = (partition_key, row_key)
        self.calls.append(("get_entity", *key))
        await self.acheck("get_entity", partition_key, row_key)
        if key not in self.entities:
            raise _error(ResourceNotFoundError, 404, "ResourceNotFound")
        return self._entity(key, kwargs.get("select"))

    async def update_entity(
        self,
        entity: dict[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        *,
        etag: str | None = None,
        match_condition: Any = None,
        **_: Any,
    ) -> dict[str, Any]:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        key = self._key(entity)
        self.calls.append(("update_entity", *key))
        await self.acheck("update_entity", entity)
        self._condition(key, etag, match_condition)
        self._write(key, entity, mode)
        return self._stamp(key)

    def _write(self, key: tuple[str, str], entity: dict[str, Any], mode: UpdateMode) -> None:
        self._limits(entity if mode == UpdateMode.REPLACE else {**self.entities.get(key, {}), **entity})
        if mode == UpdateMode.REPLACE or key not in self.entities:
            self.entities[key] = copy.deepcopy(dict(entity))
        else:
            self.entities[key].update(copy.deepcopy(dict(entity)))

    async def upsert_entity(self, entity: dict[str, Any], mode: UpdateMode = UpdateMode.MERGE, **_: Any) -> Any:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        key = self._key(entity)
        self.calls.append(("upsert_entity", *key))
        await self.acheck("upsert_entity", entity)
        self._write(key, entity, mode)
        return self._stamp(key)

    async def delete_entity(
        self, partition_key: str, row_key: str, *, etag: str | None = None, match_condition: Any = None, **_: Any
    ) -> None:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        key = (partition_key, row_key)
        self.calls.append(("delete_entity", *key))
        await self.acheck("delete_entity", partition_key, row_key)
        if key not in self.entities:
            return  # azure-data-tables 12.7 swallows the service's 404 on delete
        self._condition(key, etag, match_condition)
        del self.entities[key]
        del self.etags[key]
        self.stamps.pop(key, None)

    def query_entities(
        self,
        query_filter: str,
        *,
        parameters: dict[str, Any] | None = None,
        results_per_page: int | None = None,
        select: list[str] | None = None,
        **_: Any,
    ) -> _Pages:
        if self.check("query_entities", query_filter) is not None:
            raise NotImplementedError("query_entities is not async: give it sync `before` actions only")
        where = _Filter(query_filter, parameters or {})
        rows = [
            self._entity(k, select)
            for k in sorted(self.entities)
            if where.matches({**self.entities[k], "Timestamp": self.stamps.get(k)})
        ]
        return _Pages(rows, results_per_page)


# ---------------------------------------------------------------------------------------------------- queues
MAX_VISIBILITY = 7 * 24 * 3600  # "Put Message": visibilitytimeout 0 s .. 7 days


@dataclass
class FakeMessage:
    id: str
    content: str
    inserted_at: float
    visible_at: float
    expires_at: float
    dequeue_count: int = 0
    pop_receipt: str | None = None


class FakeQueue(Faults):
    """`QueueClient` subset over a list. `sent` keeps every message ever put (text, delay) for assertions."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.queue_name = name
        self.messages: list[FakeMessage] = []
        self.sent: list[tuple[str, int]] = []
        self.created = False
        self.closed = False
        self._ids = itertools.count(1)

    async def create_queue(self) -> None:
        if self.created:
            raise _error(ResourceExistsError, 409, "QueueAlreadyExists")
        self.created = True

    async def close(self) -> None:
        self.closed = True

    async def get_queue_properties(self) -> Any:
        await self.acheck("get_queue_properties")
        return {"approximate_message_count": len(self.messages)}

    async def send_message(
        self, content: str, *, visibility_timeout: int | None = None, time_to_live: int | None = None, **_: Any
    ) -> FakeMessage:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        await self.acheck("send_message", content)
        delay = visibility_timeout or 0
        ttl = 7 * 24 * 3600 if time_to_live is None else time_to_live
        if not 0 <= delay <= MAX_VISIBILITY or (ttl != -1 and delay >= ttl):
            raise _error(HttpResponseError, 400, "OutOfRangeQueryParameterValue")
        if len(base64.b64encode(content.encode())) > 64 * 1024:
            raise _error(HttpResponseError, 413, "RequestBodyTooLarge")
        now = time.time()
        message = FakeMessage(
            f"m{next(self._ids)}", content, now, now + delay, float("inf") if ttl == -1 else now + ttl
        )
        self.messages.append(message)
        self.sent.append((content, delay))
        return message

    def _live(self) -> list[FakeMessage]:
        now = time.time()
        self.messages = [m for m in self.messages if m.expires_at > now]
        return self.messages

    def visible(self) -> list[FakeMessage]:
        now = time.time()
        return [m for m in self._live() if m.visible_at <= now]

    def next_visible_at(self) -> float | None:
        live = self._live()
        return min((m.visible_at for m in live), default=None)

    def receive(self, visibility_timeout: int = 30) -> FakeMessage | None:
        """ "Get Messages" for one: the earliest visible message, now invisible, its dequeue count raised."""
        found = sorted(self.visible(), key=lambda m: (m.visible_at, m.inserted_at))
        if not found:
            return None
        message = found[0]
        message.dequeue_count += 1
        message.pop_receipt = f"pop-{message.id}-{message.dequeue_count}"
        message.visible_at = time.time() + visibility_timeout
        return copy.copy(message)

    async def receive_message(self, *, visibility_timeout: int | None = None, **_: Any) -> FakeMessage | None:
        await self.acheck("receive_message")
        return self.receive(30 if visibility_timeout is None else visibility_timeout)

    async def delete_message(self, message: Any, pop_receipt: str | None = None, **_: Any) -> None:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        await self.acheck("delete_message", message)
        message_id = message if isinstance(message, str) else message.id
        receipt = pop_receipt or getattr(message, "pop_receipt", None)
        for m in self.messages:
            if m.id == message_id:
                if m.pop_receipt != receipt:
                    raise _error(HttpResponseError, 400, "PopReceiptMismatch")
                self.messages.remove(m)
                return
        raise _error(ResourceNotFoundError, 404, "MessageNotFound")

    def release(self, message: FakeMessage, delay: int) -> None:
        """The host's "Update Message" after a failed run: visible again after `delay`."""
        for m in self.messages:
            if m.id == message.id:
                m.visible_at = time.time() + delay

    def texts(self) -> list[str]:
        return [m.content for m in self._live()]

    def decoded(self) -> list[dict[str, Any]]:
        return [json.loads(m.content) for m in self._live()]


# ---------------------------------------------------------------------------------------------------- blobs
class _Download:
    def __init__(self, text: str) -> None:
        self._text = text

    async def readall(self) -> str:
        return self._text


@dataclass
class _BlobItem:
    name: str


class FakeContainer(Faults):
    def __init__(self) -> None:
        super().__init__()
        self.blobs: dict[str, bytes] = {}
        self.created = False

    async def create_container(self) -> None:
        if self.created:
            raise _error(ResourceExistsError, 409, "ContainerAlreadyExists")
        self.created = True

    async def close(self) -> None:
        return None

    async def upload_blob(self, name: str, data: bytes, *, overwrite: bool = False, **_: Any) -> None:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        await self.acheck("upload_blob", name)
        if name in self.blobs and not overwrite:
            raise _error(ResourceExistsError, 409, "BlobAlreadyExists")
        self.blobs[name] = bytes(data)

    async def download_blob(self, name: str, *, encoding: str | None = None, **_: Any) -> _Download:
        await asyncio.sleep(0)  # a real call yields to other invocations (races interleave here)
        await self.acheck("download_blob", name)
        if name not in self.blobs:
            raise _error(ResourceNotFoundError, 404, "BlobNotFound")
        return _Download(self.blobs[name].decode(encoding or "utf-8"))

    async def list_blobs(self, *, name_starts_with: str = "", **_: Any) -> AsyncIterator[_BlobItem]:
        for name in sorted(self.blobs):
            if name.startswith(name_starts_with):
                yield _BlobItem(name)

    async def delete_blob(self, name: str, **_: Any) -> None:
        if self.blobs.pop(name, None) is None:
            raise _error(ResourceNotFoundError, 404, "BlobNotFound")


# ---------------------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer; `error` instead raises it (a transport failure)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return Reply(status, raw, dict(headers or {}))


def accepted(location: str) -> Reply:
    """A start answered asynchronously: 202 Accepted, Location = the operation URL, empty body."""
    return reply(202, None, {"Location": location})


def running() -> Reply:
    return reply(200, {"id": "op", "status": "running"})


def succeeded(resource_location: str | None = None) -> Reply:
    body: dict[str, Any] = {"id": "op", "status": "succeeded"}
    if resource_location:
        body["resourceLocation"] = resource_location
    return reply(200, body)


def failed(code: str = "internalServerError", inner: str = "GenericFileOpenError") -> Reply:
    error = {"code": code, "message": "it failed", "innerError": {"code": inner, "message": "cannot open"}}
    return reply(200, {"id": "op", "status": "failed", "error": error})


def throttled(retry_after: str = "7") -> Reply:
    return reply(429, {"error": {"code": "tooManyRequests", "message": "slow down"}}, {"Retry-After": retry_after})


def server_error(status: int = 503) -> Reply:
    return reply(status, {"error": {"code": "serviceUnavailable", "message": "busy"}})


def transport_error(error: BaseException | None = None) -> Reply:
    return Reply(error=error or aiohttp.ServerDisconnectedError())


def never_connected() -> Reply:
    """No connection was made (the request provably never reached the server)."""
    key = aiohttp.client_reqrep.ConnectionKey("graph.example.test", 443, True, True, None, None, None)
    return Reply(error=aiohttp.ClientConnectorError(key, OSError(111, "Connection refused")))


@dataclass
class Call:
    method: str
    url: str
    json: Any
    headers: dict[str, str]
    body: bytes | None = None


class _Response:
    def __init__(self, answer: Reply, gate: asyncio.Event | None = None) -> None:
        self._gate = gate
        self.status = answer.status
        self.headers = answer.headers
        self._body = answer.body
        self.content = self

    async def read(self, n: int = -1) -> bytes:
        return self._body if n < 0 else self._body[:n]

    async def __aenter__(self) -> _Response:
        if self._gate is not None:
            await self._gate.wait()  # the answer is held until the test opens the gate
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


_FORBIDDEN_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # aiohttp 3.x http_writer._FORBIDDEN_HEADER_CHARS_RE


class _Resolving:
    """A POST through a session whose connector resolves names with a resolver (the webhook session's
    PinnedResolver): aiohttp's TCPConnector asks the resolver for every host that is not an IP literal before
    connecting, and a refusal there means nothing was sent (so no call is recorded)."""

    def __init__(self, http: FakeHTTP, url: Any, kwargs: dict[str, Any]) -> None:
        self._http, self._url, self._kwargs = http, url, kwargs
        self._response: _Response | None = None

    async def __aenter__(self) -> _Response:
        target = URL(str(self._url), encoded=True)
        try:
            ipaddress.ip_address((target.host or "").strip("[]"))
        except ValueError:
            await self._http.resolver.resolve(target.host or "", target.port or 443)
        self._response = self._http._answer("POST", self._url, **self._kwargs)
        return await self._response.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeHTTP:
    """The `aiohttp.ClientSession` methods GraphClient (`request`) and webhooks.deliver (`post`) use. Each URL
    answers from its own script in order; `always(url, answer)` answers every further call alike. With a
    `resolver` (the webhook session's), a POST first resolves its host through it, as the real connector does."""

    def __init__(self) -> None:
        self.resolver: Any = None
        self.scripts: dict[tuple[str, str], list[Reply]] = {}
        self.sticky: dict[tuple[str, str], Reply] = {}
        self.calls: list[Call] = []
        self.closed = False
        self.gate: asyncio.Event | None = None  # set: every answer waits for it (a request in flight)

    def script(self, method: str, url: str, *answers: Reply) -> FakeHTTP:
        self.scripts.setdefault((method, url), []).extend(answers)
        return self

    def always(self, method: str, url: str, answer: Reply) -> FakeHTTP:
        self.sticky[(method, url)] = answer
        return self

    def to(self, url: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.url == url and (method is None or c.method == method)]

    def _answer(self, method: str, url: Any, **kwargs: Any) -> _Response:
        text = str(url)
        data = kwargs.get("data")
        headers = dict(kwargs.get("headers") or {})
        if any(_FORBIDDEN_IN_HEADERS.search(v) for v in (f"{method} {text}", *headers, *headers.values())):
            # aiohttp refuses before anything is sent: http_writer._safe_header checks the request line and
            # every header name and value (RFC 9110 section 5.5: CR, LF and NUL are invalid in a field value)
            raise ValueError("Forbidden control character detected in headers. Potential header injection attack.")
        self.calls.append(Call(method, text, kwargs.get("json"), dict(kwargs.get("headers") or {}), data))
        queue = self.scripts.get((method, text))
        if queue:
            answer = queue.pop(0)
        elif (method, text) in self.sticky:
            answer = self.sticky[(method, text)]
        else:
            raise AssertionError(f"unscripted HTTP call: {method} {text}")
        if answer.error is not None:
            raise answer.error
        return _Response(answer, self.gate)

    def request(self, method: str, url: Any, **kwargs: Any) -> _Response:
        return self._answer(method, url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _Response | _Resolving:
        if self.resolver is not None:
            return _Resolving(self, url, kwargs)
        return self._answer("POST", url, **kwargs)

    async def close(self) -> None:
        self.closed = True


class FakeTokens:
    """A TokenSource: a new token on each refresh (so a test can see the 401 retry used a fresh one)."""

    def __init__(self) -> None:
        self.issued = 0
        self.closed = 0

    async def token(self, *, refresh: bool = False) -> str:
        if refresh or self.issued == 0:
            self.issued += 1
        return f"token-{self.issued}"

    async def close(self) -> None:
        self.closed += 1


PUBLIC_ADDRESS = "20.1.2.3"  # any global address: nothing ever connects to it


class FakeDNS:
    """getaddrinfo for the pinned resolver: a name resolves to `names[host]`, else to one public address."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    async def __call__(self, host: str, port: int, **_: Any) -> list[Any]:
        address = self.names.get(host, PUBLIC_ADDRESS)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


# ---------------------------------------------------------------------------------------------------- runtime
@dataclass
class Fakes:
    table: FakeTable
    history: FakeTable
    polls: FakeQueue
    deliveries: FakeQueue
    poison: dict[str, FakeQueue]
    blobs: FakeContainer
    graph: FakeHTTP
    webhooks: FakeHTTP
    tokens: FakeTokens
    dns: FakeDNS


BASE_ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "GRAPH_BASE_URL": GRAPH,
    "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "WORKBOOK_CONCURRENCY": "0",
    # the runtime always has a status-link key (shared/runtime/link_key.py gives build_runtime one from storage)
    "STATUS_LINK_KEYS": "t1:" + base64.b64encode(b"unit-test-status-link-key-32-byt").decode(),
}


def fake_runtime(**env: str) -> tuple[Runtime, Fakes]:
    """The app's Runtime over fakes; `env` adds or overrides settings (as app settings, strings). Lanes are off
    (WORKBOOK_CONCURRENCY=0) unless the test sets WORKBOOK_CONCURRENCY."""
    settings = load_settings({**BASE_ENV, **env})
    fakes = Fakes(
        table=FakeTable(settings.operations_table),
        history=FakeTable(settings.duration_history_table),
        polls=FakeQueue(settings.poll_queue),
        deliveries=FakeQueue(settings.webhook_queue),
        poison={},
        blobs=FakeContainer(),
        graph=FakeHTTP(),
        webhooks=FakeHTTP(),
        tokens=FakeTokens(),
        dns=FakeDNS(),
    )
    policy = outbound_policy(settings)
    rt = Runtime(
        settings=settings,
        http=fakes.graph,  # type: ignore[arg-type]
        tokens=fakes.tokens,
        graph=GraphClient(fakes.graph, fakes.tokens, settings.graph_base_url, settings.graph_timeout),  # type: ignore[arg-type]
        store=OperationStore(fakes.table, settings.retention_seconds, ResultBlobs(fakes.blobs)),  # type: ignore[arg-type]
        polls=PollQueue(fakes.polls, settings.operation_timeout),  # type: ignore[arg-type]
        deliveries=DeliveryQueue(fakes.deliveries, settings.webhook_retry_window),  # type: ignore[arg-type]
        timing=Timing(
            settings.poll_initial_delay,
            settings.poll_max_delay,
            settings.operation_timeout,
            settings.max_transient_failures,
        ),
        webhook_http=fakes.webhooks,  # type: ignore[arg-type]
        resolver=PinnedResolver(policy, fakes.dns),
        outbound=policy,
        history=HistoryStore(fakes.history),  # type: ignore[arg-type]
        lanes=LaneStore(fakes.table) if settings.workbook_concurrency > 0 else None,  # type: ignore[arg-type]
    )
    fakes.webhooks.resolver = rt.resolver  # as build_runtime's webhook session resolves through it
    return rt, fakes


def workbook_url(item: str = "01ITEM") -> str:
    return f"{GRAPH}/me/drive/items/{item}/workbook"


# ---------------------------------------------------------------------------------------------------- host
@dataclass
class Run:
    """What one delivery of a message did: which queue, the message, and the exception if the handler raised."""

    queue: str
    text: str
    dequeue_count: int
    error: BaseException | None


async def deliver_one(rt: Runtime, queue: FakeQueue, poison: dict[str, FakeQueue]) -> Run | None:
    """The Functions host's part for one visible message: receive it (invisible while the function runs), run
    the function body's use case, delete it on success; on failure make it visible after visibilityTimeout, or
    move it to `<queue>-poison` once its dequeue count reached maxDequeueCount (azure-functions-facts.md)."""
    message = queue.receive(visibility_timeout=600)
    if message is None:
        return None
    error: BaseException | None = None
    try:
        if queue.queue_name == rt.settings.poll_queue:  # function_app.poll_operation
            if message_kind(message.content) == LANE_KIND:
                await lane_flow.handle_message(rt, message.content)
            else:
                await poller.handle_message(rt, message.content, message.dequeue_count, message.id)
        else:  # function_app.deliver_webhook
            await deliverer.handle_message(rt, message.content)
    except Exception as exc:
        error = exc
    if error is None:
        await queue.delete_message(message.id, message.pop_receipt)
    elif message.dequeue_count >= rt.settings.poll_max_dequeue_count:
        await queue.delete_message(message.id, message.pop_receipt)
        poisoned = poison.setdefault(queue.queue_name, FakeQueue(queue.queue_name + "-poison"))
        await poisoned.send_message(message.content)
    else:
        queue.release(message, HOST_VISIBILITY_TIMEOUT)
    return Run(queue.queue_name, message.content, message.dequeue_count, error)


async def drain(
    rt: Runtime, clock: FakeClock, fakes: Fakes, *, until: float | None = None, max_runs: int = 500
) -> list[Run]:
    """Run both queues' functions over every visible message, moving the clock to the next visible time when
    none is, until both queues are empty (or the clock would pass `until`). Returns every run, in order."""
    runs: list[Run] = []
    queues = (fakes.polls, fakes.deliveries)
    while len(runs) < max_runs:
        ran = False
        for queue in queues:
            run = await deliver_one(rt, queue, fakes.poison)
            if run is not None:
                runs.append(run)
                ran = True
        if ran:
            continue
        upcoming = [t for q in queues if (t := q.next_visible_at()) is not None]
        if not upcoming:
            return runs
        target = min(upcoming)
        if until is not None and target > until:
            return runs
        clock.now = max(clock.now, target)
    raise AssertionError(f"the queues did not drain in {max_runs} runs")


def entity_of(fakes: Fakes, operation_id: str) -> dict[str, Any] | None:
    return fakes.table.row(operation_id, "operation")


def iter_runs(runs: list[Run], queue: str) -> Iterator[Run]:
    return (r for r in runs if r.queue == queue)
