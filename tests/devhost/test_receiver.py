"""devhost/receiver.py (what `make run` prints webhooks with) accepts both CloudEvents content modes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest

from devhost.receiver import make_handler
from devhost.services import DEV_WEBHOOK_SECRET
from shared.crypto.webhook_keys import parse_webhook_secrets
from shared.delivery.formats import render_event, webhook_headers

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def receiver_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(DEV_WEBHOOK_SECRET.split()[0]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def post(url: str, fmt: str, tamper: bool = False) -> httpx.Response:
    message = render_event(
        fmt,
        event_id="evt-1",
        status="succeeded",
        time="2024-05-01T12:00:00.000Z",
        subject="op-1",
        data={"id": "op-1", "status": "succeeded", "result": {"a": 1}},
    )
    keys = parse_webhook_secrets(DEV_WEBHOOK_SECRET)
    headers = webhook_headers(keys, "evt-1", int(time.time()), message.body, message.headers)
    return httpx.post(url, content=message.body + (b" " if tamper else b""), headers=headers)


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_receiver_verifies_and_reads_both_modes(
    receiver_url: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(receiver_url, fmt).status_code == 204
    printed = capsys.readouterr().out
    assert f"webhook verified ({fmt}): type=workbook.operation.succeeded id=evt-1 operation=op-1" in printed
    assert 'result={"a": 1}' in printed


@pytest.mark.parametrize("fmt", ["binary", "structured"])
def test_receiver_rejects_changed_bytes(receiver_url: str, fmt: str) -> None:
    assert post(receiver_url, fmt, tamper=True).status_code == 401
