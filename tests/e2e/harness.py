"""Test helpers: a webhook receiver and a bridge client (the emulator's admin client is tests.harness.emulator's,
named here too)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy
from cloudevents.http import from_http
from standardwebhooks.webhooks import Webhook

from devhost.services import AzuritePorts, Service, start_function_app
from tests.harness.emulator import Emulator
from tests.support import wait_for

__all__ = [
    "Bridge",
    "BridgeFactory",
    "Emulator",
    "WebhookReceiver",
    "new_item",
    "restart",
    "start_receiver",
    "wait_for",
]


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def event(self) -> dict[str, Any]:
        """The CloudEvent as the `cloudevents` SDK reads it (binary or structured content mode): its
        attributes plus `data`."""
        parsed = from_http(self.headers, self.body)
        return {**parsed.get_attributes(), "data": parsed.data}

    def verified(self, secret: str) -> dict[str, Any]:
        """`event`, after standardwebhooks has verified the signature over the exact bytes received."""
        Webhook(secret).verify(self.body, self.headers)
        return self.event


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers from a per-URL script."""

    server: ThreadingHTTPServer
    deliveries: list[Delivery] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def new_url(self, *statuses: int, headers: dict[str, str] | None = None) -> str:
        """A fresh URL answering `statuses` in turn (the last one repeats; 200 when none)."""
        path = f"/hook/{uuid.uuid4().hex}"
        with self.changed:
            self.scripts[path] = [(status, dict(headers or {})) for status in (statuses or (200,))]
        return self.url + path

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self.changed:
            script = self.scripts.get(path.split("?", 1)[0], [(200, {})])
            return script.pop(0) if len(script) > 1 else script[0]

    def for_path(self, url: str) -> list[Delivery]:
        path = "/" + url.split("/", 3)[3]
        with self.changed:
            return [d for d in self.deliveries if d.path == path]

    def wait(self, url: str, count: int = 1, timeout: float = 60.0) -> list[Delivery]:
        path = "/" + url.split("/", 3)[3]
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                got = [d for d in self.deliveries if d.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no webhook at {path} within {timeout}s")
                self.changed.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver(port: int = 0) -> WebhookReceiver:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            receiver = holder["r"]
            with receiver.changed:
                receiver.deliveries.append(
                    Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                receiver.changed.notify_all()
            status, headers = receiver.answer(self.path)
            if "x-test-hang-seconds" in headers:  # a receiver that accepts, then never answers in time
                time.sleep(float(headers["x-test-hang-seconds"]))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if 300 <= status < 400:
                self.send_header("Location", f"{receiver.url}/redirected")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True  # a hanging handler must not hold up the end of the test session
    server.block_on_close = False
    receiver = WebhookReceiver(server)
    holder["r"] = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


def new_item() -> str:
    return "01TEST" + uuid.uuid4().hex.upper()[:20]


@dataclass
class Bridge:
    """A running function app (devhost) with its own queue and table."""

    service: Service
    port: int
    env: dict[str, str]
    storage: AzuritePorts
    client: httpx.Client
    log_dir: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, body: Any, **headers: str) -> httpx.Response:
        return self.client.post(f"{self.api}/operations", json=body, headers=headers)

    def post_raw(self, content: bytes, **headers: str) -> httpx.Response:
        return self.client.post(
            f"{self.api}/operations", content=content, headers={"content-type": "application/json", **headers}
        )

    def status(self, operation_id: str) -> httpx.Response:
        return self.client.get(f"{self.api}/operations/{operation_id}")

    def wait_done(self, operation_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Follow the status endpoint until it stops answering 202 (as Logic Apps would)."""

        def done() -> dict[str, Any] | None:
            response = self.status(operation_id)
            assert response.status_code in (200, 202), response.text
            return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

        return wait_for(done, timeout, f"operation {operation_id} to finish", interval=0.2)  # type: ignore[no-any-return]

    @property
    def table(self) -> TableClient:
        return TableClient.from_connection_string(self.storage.connection_string, self.env["OPERATIONS_TABLE"])

    @property
    def queue(self) -> QueueClient:
        return QueueClient.from_connection_string(
            self.storage.connection_string, self.env["POLL_QUEUE"], message_decode_policy=TextBase64DecodePolicy()
        )

    def entity(self, operation_id: str) -> dict[str, Any]:
        with self.table as table:
            return dict(table.get_entity(operation_id, "operation"))

    def entities(self) -> list[dict[str, Any]]:
        with self.table as table:
            return [dict(e) for e in table.list_entities()]

    def queued(self) -> int:
        with self.queue as queue:
            return int(queue.get_queue_properties().approximate_message_count)

    def webhook_messages(self) -> list[dict[str, Any]]:
        """The webhook queue's visible messages, decoded (peeked: nothing is received or hidden)."""
        with QueueClient.from_connection_string(
            self.storage.connection_string, self.env["WEBHOOK_QUEUE"], message_decode_policy=TextBase64DecodePolicy()
        ) as queue:
            return [json.loads(m.content) for m in queue.peek_messages(max_messages=32)]


BridgeFactory = Callable[..., Bridge]


def restart(bridge: Bridge, extra_args: list[str] | None = None) -> Service:
    """Start the bridge's function app again (same port, settings and log) after it was stopped or killed."""
    bridge.service = start_function_app(
        bridge.port, bridge.env, bridge.log_dir, name=bridge.service.name, extra_args=extra_args
    )
    return bridge.service
