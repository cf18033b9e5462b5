"""In-process tests of devhost pieces: settings, host.json parsing, routing and the queue listener."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.http_server import Router, build_request, compile_route, to_web_response
from devhost.loader import HttpFunction, QueueFunction, QueueOptions, load_host_config, parse_timespan
from devhost.queue_listener import MessageDecodeError, QueueListener, decode_message
from devhost.settings import (
    DEV_STORAGE_CONNECTION_STRING,
    ConfigurationError,
    apply_local_settings,
    resolve_setting_expression,
)
from devhost.storage import QueueClients

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------- settings


def test_local_settings_env_wins_and_dev_storage_expanded(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"A": "local", "B": "local", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}})
    )
    env = {"A": "env"}
    applied = apply_local_settings(tmp_path, env)
    assert sorted(applied) == ["AzureWebJobsStorage", "B"]
    assert env["A"] == "env"
    assert env["B"] == "local"
    assert env["AzureWebJobsStorage"] == DEV_STORAGE_CONNECTION_STRING
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;" in DEV_STORAGE_CONNECTION_STRING


def test_missing_local_settings_is_fine(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    assert apply_local_settings(tmp_path, env) == []


def test_setting_expressions() -> None:
    env = {"POLL_QUEUE": "poll-q"}
    assert resolve_setting_expression("%POLL_QUEUE%", env) == "poll-q"
    assert resolve_setting_expression("%poll_queue%-x", env) == "poll-q-x"
    assert resolve_setting_expression("plain", env) == "plain"
    with pytest.raises(ConfigurationError, match="MISSING"):
        resolve_setting_expression("%MISSING%", env)


# ---------------------------------------------------------------- host.json


def test_timespans() -> None:
    assert parse_timespan("00:00:05") == 5
    assert parse_timespan("01:02:03") == 3723
    assert parse_timespan("00:00:00.5") == 0.5
    assert parse_timespan("1.00:00:00") == 86400
    with pytest.raises(ValueError):
        parse_timespan("5 seconds")


def test_host_config_defaults(tmp_path: Path) -> None:
    cfg = load_host_config(tmp_path, {})
    assert cfg.route_prefix == "api"
    assert cfg.queues == QueueOptions(16, 8, 5, 0.0, 2.0, "base64")


def test_host_config_file_and_env_overrides(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "extensions": {
                    "http": {"routePrefix": ""},
                    "queues": {"batchSize": 8, "visibilityTimeout": "00:00:05", "messageEncoding": "none"},
                }
            }
        )
    )
    cfg = load_host_config(tmp_path, {})
    assert cfg.route_prefix == ""
    assert cfg.queues.batch_size == 8
    assert cfg.queues.new_batch_threshold == 4  # batchSize / 2
    assert cfg.queues.visibility_timeout == 5
    assert cfg.queues.message_encoding == "none"
    env = {
        "AzureFunctionsJobHost__extensions__queues__batchSize": "2",
        "azurefunctionsjobhost__EXTENSIONS__QUEUES__MAXPOLLINGINTERVAL": "00:00:10",
        "AzureFunctionsJobHost__extensions__http__routePrefix": "v1",
    }
    cfg = load_host_config(tmp_path, env)
    assert cfg.queues.batch_size == 2
    assert cfg.queues.new_batch_threshold == 1
    assert cfg.queues.max_polling_interval == 10
    assert cfg.queues.visibility_timeout == 5
    assert cfg.route_prefix == "v1"


def test_invalid_host_config(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"messageEncoding": "utf16"}}}))
    with pytest.raises(ConfigurationError, match="messageEncoding"):
        load_host_config(tmp_path, {})


# ---------------------------------------------------------------- routing


def _http(name: str, route: str, methods: list[str] | None = None) -> HttpFunction:
    return HttpFunction(
        name=name,
        binding_name="req",
        route=route,
        methods=frozenset(methods) if methods else None,
        auth_level="FUNCTION",
        user_function=lambda req: None,
        wants_context=False,
    )


def test_route_templates() -> None:
    t = compile_route("items/{id:int}", "api")
    assert t.match("/api/items/12") == {"id": "12"}
    assert t.match("/api/items/12/") == {"id": "12"}
    assert t.match("/API/ITEMS/12") == {"id": "12"}
    assert t.match("/api/items/x") is None
    assert t.match("/api/items/99999999999") is None  # not an int32
    assert compile_route("{a}/{b:regex(^x$)}", "").match("/1/2") == {"a": "1", "b": "2"}  # unknown: ignored
    assert compile_route("f/{name}.{ext}", "").match("/f/report.pdf") == {"name": "report", "ext": "pdf"}
    assert compile_route("x/{n=7}", "api").match("/api/x") == {"n": "7"}
    assert compile_route("", "api").match("/api") == {}
    assert compile_route("w/{*rest}", "").match("/w/a/b") == {"rest": "a/b"}


def test_router_prefers_literals_and_reports_405() -> None:
    router = Router(
        [
            _http("by_id", "operations/{id}", ["GET", "DELETE"]),
            _http("health", "operations/health", ["GET"]),
            _http("any", "anything"),
        ],
        "api",
    )
    match, _ = router.resolve("GET", "/api/operations/health")
    assert match is not None and match.route.function.name == "health"
    match, _ = router.resolve("GET", "/api/operations/42")
    assert match is not None and match.route_params == {"id": "42"}
    match, allowed = router.resolve("POST", "/api/operations/42")
    assert match is None and allowed == {"GET", "DELETE"}
    match, allowed = router.resolve("GET", "/api/missing")
    assert match is None and not allowed
    match, _ = router.resolve("PATCH", "/api/anything")
    assert match is not None


def test_build_request_and_response_conversion() -> None:
    req = build_request(
        "post",
        "http://h:1/api/x?a=1&a=2",
        [("X-A", "1"), ("x-a", "2")],
        [("a", "1"), ("a", "2")],
        {"id": "5"},
        b"body",
    )
    assert req.method == "POST"
    assert req.headers["x-a"] == "1, 2"
    assert req.params == {"a": "1"}
    assert req.route_params == {"id": "5"}
    assert req.get_body() == b"body"

    resp = func.HttpResponse(b"{}", status_code=202, mimetype="application/json")
    resp.headers.add("Set-Cookie", "a=1")
    resp.headers.add("Set-Cookie", "b=2")
    web_resp = to_web_response(resp)
    assert web_resp.status == 202
    assert web_resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert web_resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert web_resp.body == b"{}"
    explicit = to_web_response(func.HttpResponse("x", headers={"content-type": "text/csv"}))
    assert explicit.headers.getall("Content-Type") == ["text/csv"]


# ---------------------------------------------------------------- storage


def test_storage_connection_resolution() -> None:
    clients = QueueClients({"Conn": DEV_STORAGE_CONNECTION_STRING, "Ident__accountName": "acct"})
    assert clients.describe("Conn") == "connection string"
    assert clients.describe("Ident") == "identity-based (https://acct.queue.core.windows.net)"
    assert clients.service_client("Conn") is clients.service_client("Conn")
    with pytest.raises(ConfigurationError, match="Nope"):
        clients.service_client("Nope")


# ---------------------------------------------------------------- queue listener (fake client)


def test_decode_message() -> None:
    assert decode_message(base64.b64encode(b"hi").decode(), "base64") == b"hi"
    assert decode_message("plain ✓", "none") == "plain ✓".encode()
    with pytest.raises(MessageDecodeError):
        decode_message("not base64!", "base64")


@dataclass
class FakeMessage:
    id: str
    content: str
    dequeue_count: int
    pop_receipt: str
    expires_on: Any = None
    inserted_on: Any = None
    next_visible_on: Any = None


class FakeQueue:
    """In-memory stand-in for azure.storage.queue.aio.QueueClient."""

    def __init__(self) -> None:
        self.visible: list[FakeMessage] = []
        self.invisible: dict[str, FakeMessage] = {}
        self.deleted: list[str] = []
        self.sent: list[str] = []
        self.updates: list[tuple[str, int | None]] = []
        self._receipt = 0

    def add(self, content: str, dequeue_count: int = 0) -> str:
        mid = f"m{len(self.visible) + len(self.invisible) + len(self.deleted)}"
        self.visible.append(FakeMessage(mid, content, dequeue_count, ""))
        return mid

    def _next_receipt(self) -> str:
        self._receipt += 1
        return f"r{self._receipt}"

    def receive_messages(self, **kwargs: Any) -> Any:
        count = int(kwargs.get("max_messages") or 1)
        batch, self.visible = self.visible[:count], self.visible[count:]
        for m in batch:
            m.dequeue_count += 1
            m.pop_receipt = self._next_receipt()
            self.invisible[m.id] = m

        async def gen() -> Any:
            for m in batch:
                yield m

        return gen()

    async def update_message(
        self, message: Any, pop_receipt: str | None = None, content: object = None, **kw: Any
    ) -> Any:
        m = self.invisible[message]
        assert m.pop_receipt == pop_receipt, "stale pop receipt"
        m.pop_receipt = self._next_receipt()
        self.updates.append((message, kw.get("visibility_timeout")))
        if kw.get("visibility_timeout") == 0:
            del self.invisible[message]
            self.visible.append(m)
        return m

    async def delete_message(self, message: Any, pop_receipt: str | None = None, **kw: Any) -> None:
        m = self.invisible.pop(message)
        assert m.pop_receipt == pop_receipt, "stale pop receipt"
        self.deleted.append(message)

    async def send_message(self, content: Any, **kw: Any) -> Any:
        self.sent.append(content)
        return None


def _queue_function(fn: Callable[..., Any]) -> QueueFunction:
    return QueueFunction(
        name="fn", binding_name="msg", queue_name="q", connection="c", user_function=fn, wants_context=False
    )


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


OPTS = QueueOptions(
    batch_size=4,
    new_batch_threshold=2,
    max_dequeue_count=3,
    visibility_timeout=0,
    max_polling_interval=0.1,
    message_encoding="base64",
)


def test_listener_pre_exceeded_dequeue_count_goes_to_poison_without_invoking() -> None:
    calls: list[bytes] = []

    async def main() -> None:
        queue, poison = FakeQueue(), FakeQueue()
        queue.add("aGk=", dequeue_count=3)  # becomes 4 on receive > maxDequeueCount 3
        listener = QueueListener(_queue_function(lambda msg: calls.append(msg.get_body())), queue, poison, OPTS)
        listener.start()
        await _until(lambda: poison.sent == ["aGk="])
        await listener.stop_receiving()
        assert queue.deleted == ["m0"]

    _run(main())
    assert calls == []


def test_listener_retries_then_poisons_and_succeeds() -> None:
    seen: list[tuple[bytes, int]] = []

    async def handler(msg: func.QueueMessage) -> None:
        seen.append((msg.get_body(), msg.dequeue_count or 0))
        if msg.get_body() == b"bad":
            raise RuntimeError("nope")

    async def main() -> None:
        queue, poison = FakeQueue(), FakeQueue()
        good = base64.b64encode(b"good").decode()
        bad = base64.b64encode(b"bad").decode()
        queue.add(good)
        queue.add(bad)
        listener = QueueListener(_queue_function(handler), queue, poison, OPTS)
        listener.start()
        await _until(lambda: poison.sent == [bad] and len(queue.deleted) == 2)
        await listener.stop_receiving()
        assert ("m1", 0) in queue.updates  # released with host visibilityTimeout for retry

    _run(main())
    assert (b"good", 1) in seen
    assert sorted(c for b, c in seen if b == b"bad") == [1, 2, 3]


def test_listener_renews_lease_and_limits_concurrency() -> None:
    gate = threading.Semaphore(0)
    lock = threading.Lock()
    running = 0
    peak = 0

    def handler(msg: func.QueueMessage) -> None:  # sync: runs in a worker thread
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.acquire(timeout=5)
        with lock:
            running -= 1

    async def main() -> None:
        queue, poison = FakeQueue(), FakeQueue()
        for i in range(10):
            queue.add(base64.b64encode(str(i).encode()).decode())
        listener = QueueListener(_queue_function(handler), queue, poison, OPTS, lease_seconds=0.1)
        listener.start()
        # first batch of batchSize=4; no new batch while in-flight > newBatchThreshold=2
        await _until(lambda: listener.in_flight == 4 and running == 4)
        await _until(lambda: len([u for u in queue.updates if u[1] == 1]) >= 8)  # lease renewals
        assert listener.in_flight == 4 and len(queue.visible) == 6
        gate.release()
        gate.release()
        # in-flight dropped to 2 => next batch of 4 => 6 = batchSize + newBatchThreshold
        await _until(lambda: listener.in_flight == 6 and running == 6)
        for _ in range(8):
            gate.release()
        await _until(lambda: len(queue.deleted) == 10)  # deletes use the renewed pop receipts
        await listener.stop_receiving()
        assert await listener.drain(1)
        assert listener.max_in_flight_seen == 6

    _run(main())
    assert peak == 6
