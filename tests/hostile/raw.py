"""A raw HTTP/1.1 client: the request goes out byte for byte, so a test can send what httpx and h11 would refuse
to build (control characters in a header, invalid UTF-8 in the request target or the body)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names (the last one of a name wins)
    body: bytes = b""

    @property
    def problem(self) -> dict[str, Any] | None:
        """The RFC 9457 problem, when the answer is one (application/problem+json)."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return None
        found = json.loads(self.body)
        return found if isinstance(found, dict) else None

    def names(self, name: str) -> bool:
        """Whether the problem names `name` as the field at fault (its `field`, or one of its `errors`), or a part
        of it (`parameters.values[0][0]` names `parameters.values`)."""
        problem = self.problem or {}
        fields = {problem.get("field"), *(e.get("field") for e in problem.get("errors") or [] if isinstance(e, dict))}
        return any(isinstance(f, str) and (f == name or f.startswith((name + "[", name + "."))) for f in fields)


def send(
    port: int, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None, timeout: float = 30
) -> Answer:
    """One request on a fresh connection (`Connection: close`), read to the end."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1:" + str(port).encode()]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    request = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return _parse(b"".join(chunks))


def _parse(raw: bytes) -> Answer:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer = Answer(int(status_line.split(" ", 2)[1]))
    for line in header_lines:
        name, _, value = line.partition(":")
        answer.headers[name.strip().lower()] = value.strip()
    if answer.headers.get("transfer-encoding", "").lower() == "chunked":
        rest = _unchunk(rest)
    answer.body = rest
    return answer


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out
