"""End-to-end tests: devhost subprocess + in-memory Azurite + a sample v2 app."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from tests.devhost.devhost_testlib import (
    REPO_ROOT,
    AzuritePorts,
    SampleApp,
    Service,
    free_port,
    start_devhost,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _queue(azurite: AzuritePorts, name: str, *, base64_encode: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if base64_encode else None
    return QueueClient.from_connection_string(azurite.connection_string, name, message_encode_policy=policy)


def test_listening_line_and_function_listing(devhost: Service) -> None:
    listing = devhost.output()
    listening = [line for line in listing.splitlines() if line.startswith("devhost listening on ")]
    assert listening == [f"devhost listening on http://127.0.0.1:{devhost.port}"]
    assert "get_item: httpTrigger [GET]" in listing
    assert "/api/items/{id:int}" in listing
    assert "work: queueTrigger queue=devhost-work" in listing
    assert "always_fails: queueTrigger queue=devhost-fail" in listing
    assert "not enforced locally" in devhost.output()
    assert "tick: timerTrigger schedule='0 */5 * * * *'" in listing  # timers run now (tests/devhost/test_timers.py)
    assert "skipped unsupported functions" not in listing


def test_route_param_constraint_query_and_context(devhost: Service) -> None:
    r = httpx.get(f"{devhost.url}/api/items/42?x=1&y=two", headers={"X-Custom": "hello"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    data = r.json()
    assert data["id"] == "42"
    assert data["params"] == {"x": "1", "y": "two"}
    assert data["url"] == f"http://127.0.0.1:{devhost.port}/api/items/42?x=1&y=two"
    assert data["method"] == "GET"
    assert data["thread"] is False  # sync function ran off the event loop thread
    assert data["context_function"] == "get_item"
    assert uuid.UUID(data["invocation_id"])
    assert data["header"] == "hello"
    # int constraint rejects non-numbers; literal route segments are case-insensitive
    assert httpx.get(f"{devhost.url}/api/items/abc").status_code == 404
    assert httpx.get(f"{devhost.url}/API/Items/7").json()["id"] == "7"


def test_literal_route_beats_parameter_route(devhost: Service) -> None:
    r = httpx.get(f"{devhost.url}/api/operations/health")
    assert r.status_code == 203
    assert r.text == "healthy"
    assert r.headers["x-health"] == "ok"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    r = httpx.get(f"{devhost.url}/api/operations/abc-123")
    assert r.status_code == 200
    assert r.text == "operation abc-123"
    # DELETE is not allowed on the literal route but is on the parameter route
    assert httpx.delete(f"{devhost.url}/api/operations/health").text == "operation health"


def test_post_echo_and_explicit_content_type(devhost: Service) -> None:
    payload = bytes(range(256)) * 4
    r = httpx.post(f"{devhost.url}/api/echo", content=payload)
    assert r.status_code == 201
    assert r.content == payload
    assert r.headers["content-type"] == "application/x-echo"
    assert r.headers["x-echo-length"] == str(len(payload))
    assert "x-devhost-function" not in r.headers


def test_405_and_404(devhost: Service) -> None:
    r = httpx.get(f"{devhost.url}/api/echo")
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert httpx.put(f"{devhost.url}/api/operations/1").status_code == 405
    assert httpx.get(f"{devhost.url}/api/nope").status_code == 404
    assert httpx.get(f"{devhost.url}/echo").status_code == 404  # route prefix required


def test_optional_catch_all_and_guid(devhost: Service) -> None:
    assert httpx.get(f"{devhost.url}/api/files/a/b/c.txt").text == "a/b/c.txt"
    assert httpx.get(f"{devhost.url}/api/files").text == "<none>"
    assert httpx.get(f"{devhost.url}/api/opt/bob").text == "bob"
    assert httpx.get(f"{devhost.url}/api/opt").text == "<none>"
    assert httpx.get(f"{devhost.url}/api/opt/123").status_code == 404
    guid = str(uuid.uuid4())
    assert httpx.get(f"{devhost.url}/api/guids/{guid}").text == guid
    assert httpx.get(f"{devhost.url}/api/guids/not-a-guid").status_code == 404


def test_async_function_and_error(devhost: Service) -> None:
    r = httpx.get(f"{devhost.url}/api/async")
    assert (r.status_code, r.text) == (200, "async ok")
    r = httpx.get(f"{devhost.url}/api/boom")
    assert r.status_code == 500
    assert r.content == b""
    wait_until(lambda: "kaboom" in devhost.output(), 5, "traceback in log")
    assert "Traceback" in devhost.output()


def test_settings_env_wins_and_loaded_before_import(devhost: Service) -> None:
    data = httpx.get(f"{devhost.url}/api/settings").json()
    assert data == {"greeting": "from-env", "greeting_at_import": "from-env", "only_local": "yes"}


def test_base64_messages_delivered(devhost: Service, azurite: AzuritePorts, sample_app: SampleApp) -> None:
    queue = _queue(azurite, sample_app.work_queue)  # queue name came from %WORK_QUEUE%
    bodies = [f"hello {i} ✓" for i in range(10)]
    for body in bodies:
        queue.send_message(body)
    records = wait_until(lambda: (r := sample_app.records("work")) and len(r) >= len(bodies) and r, 20, "work messages")
    assert sorted(r["body"] for r in records) == sorted(bodies)
    assert all(r["dequeue_count"] == 1 for r in records)
    assert all(r["has_pop_receipt"] and r["has_insertion_time"] for r in records)
    # successful messages are deleted
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0, 10, "work queue empty")


def test_failing_message_retried_then_poisoned(devhost: Service, azurite: AzuritePorts, sample_app: SampleApp) -> None:
    queue = _queue(azurite, sample_app.fail_queue)
    poison = _queue(azurite, f"{sample_app.fail_queue}-poison", base64_encode=False)
    text = f"doomed-{uuid.uuid4().hex}"
    queue.send_message(text)
    encoded = base64.b64encode(text.encode()).decode()

    def poisoned() -> list[str]:
        return [m.content for m in poison.peek_messages(max_messages=32)]

    assert wait_until(lambda: encoded in poisoned(), 20, "message in poison queue")
    attempts = [r for r in sample_app.records("fail") if r["body"] == text]
    # maxDequeueCount is 5 in host.json but 2 via AzureFunctionsJobHost__... override
    assert sorted(r["dequeue_count"] for r in attempts) == [1, 2]
    # the host copies to the poison queue, then deletes the original: wait for the delete
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0, 10, "original deleted")
    assert "always fails" in devhost.output()
    assert text not in devhost.output()  # message bodies are never logged


def test_undecodable_message_goes_to_poison(devhost: Service, azurite: AzuritePorts, sample_app: SampleApp) -> None:
    raw = _queue(azurite, sample_app.work_queue, base64_encode=False)
    poison = _queue(azurite, f"{sample_app.work_queue}-poison", base64_encode=False)
    raw.send_message("this is not base64!")
    assert wait_until(
        lambda: "this is not base64!" in [m.content for m in poison.peek_messages(max_messages=32)],
        20,
        "undecodable message in poison queue",
    )
    assert not any(r["body"] == "this is not base64!" for r in sample_app.records("work"))


def test_sigterm_drains_in_flight_request_and_exits_zero(sample_app: SampleApp, tmp_path: Path) -> None:
    host = start_devhost(sample_app.app_dir, {}, tmp_path / "devhost.log")
    marker = tmp_path / "started"
    release = tmp_path / "release"
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["r"] = httpx.get(
            f"{host.url}/api/slow", params={"marker": str(marker), "release": str(release)}, timeout=30
        )

    thread = threading.Thread(target=call)
    thread.start()
    try:
        wait_until(marker.exists, 10, "slow function to start")
        host.process.send_signal(15)
        wait_until(lambda: "shutting down" in host.output(), 10, "shutdown to begin")
        release.write_text("go")
        assert host.process.wait(timeout=20) == 0
        thread.join(timeout=10)
        assert result["r"].status_code == 200
        assert result["r"].text == "slow done"
    finally:
        release.write_text("go")
        thread.join(timeout=10)
        if host.process.poll() is None:
            host.stop()


UNRESOLVED_APP = """
import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%UNSET_QUEUE_SETTING%", connection="AzureWebJobsStorage")
def handler(msg: func.QueueMessage) -> None:
    pass


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def tick(timer: func.TimerRequest) -> None:
    pass
"""


def test_unset_queue_name_setting_fails_startup_clearly(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(UNRESOLVED_APP)
    env = {k: v for k, v in os.environ.items() if k != "UNSET_QUEUE_SETTING"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", str(free_port()), "--app-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert "devhost listening" not in proc.stdout
    assert "UNSET_QUEUE_SETTING" in proc.stderr
    assert "Traceback" not in proc.stderr
