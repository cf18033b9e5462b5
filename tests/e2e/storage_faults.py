"""A tiny HTTP proxy in front of one Azurite endpoint that fails chosen requests, for chain tests.

Only what these tests need: forward every request byte for byte (Shared Key signatures cover the path
and headers, not the host and port, so a proxy on another port verifies: Azure Storage docs,
"Authorize with Shared Key", "Constructing the canonicalized resource string"), and answer the first
`count` requests matching (method, path substring, body regex) with a canned Azure Storage error instead.
The error is a 400 with a Table service error body, which azure-core does not retry (its RetryPolicy
retries 408, 429 and 5xx only), so each matching request reaches the app as one failure.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Table service error body, as Azure answers an entity whose property is too large
# (learn.microsoft.com, "Table service error codes": PropertyValueTooLarge, 400).
_ERROR_BODY = (
    b'{"odata.error":{"code":"PropertyValueTooLarge","message":{"lang":"en-US",'
    b'"value":"injected by the test fault proxy"}}}'
)


@dataclass
class Rule:
    method: str
    path_contains: str
    body_pattern: str
    count: int
    hits: int = 0


@dataclass
class FaultProxy:
    server: ThreadingHTTPServer
    target_port: int
    rules: list[Rule] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def fail(self, method: str, path_contains: str, body_pattern: str, count: int) -> Rule:
        rule = Rule(method.upper(), path_contains, body_pattern, count)
        with self.lock:
            self.rules.append(rule)
        return rule

    def match(self, method: str, path: str, body: bytes) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if (
                    rule.hits < rule.count
                    and rule.method == method
                    and rule.path_contains in path
                    and re.search(rule.body_pattern.encode(), body)
                ):
                    rule.hits += 1
                    return rule
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_fault_proxy(target_port: int) -> FaultProxy:
    holder: dict[str, FaultProxy] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            proxy = holder["p"]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if proxy.match(self.command, self.path, body):
                self.send_response(400)
                self.send_header("content-type", "application/json;odata=minimalmetadata")
                self.send_header("x-ms-error-code", "PropertyValueTooLarge")
                self.send_header("content-length", str(len(_ERROR_BODY)))
                self.end_headers()
                self.wfile.write(_ERROR_BODY)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            finally:
                upstream.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = do_HEAD = _forward

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy = FaultProxy(server, target_port)
    holder["p"] = proxy
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy
