"""devhost.services.start_process, the one launcher of the tests and `make run`: readiness, the environment
it passes on, the log it keeps."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from devhost.services import ServiceError, free_port, port_open, start_process

CHILD = """
import os, socket, sys, time
print("inherited=" + os.environ.get("AzureFunctionsJobHost__Logging__LogLevel", "<none>"))
print("given=" + os.environ.get("AzureFunctionsJobHost__Given", "<none>"))
print("to stderr", file=sys.stderr)
port = int(sys.argv[1])
if port:
    time.sleep(0.3)
    server = socket.create_server(("127.0.0.1", port))
print(f"child listening on http://127.0.0.1:{port}", flush=True)
time.sleep(30)
"""


def test_a_marker_gives_the_url_and_the_log_holds_stdout_and_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureFunctionsJobHost__Logging__LogLevel", "Debug")  # e.g. set in the developer's shell
    service = start_process(
        "child",
        [sys.executable, "-c", CHILD, "0"],
        marker="child listening on",
        log_dir=tmp_path,
        env={"AzureFunctionsJobHost__Given": "yes"},
        drop_inherited=("azurefunctionsjobhost__",),
    )
    try:
        assert service.url == "http://127.0.0.1:0" and service.port == 0
        output = service.output()
        assert "inherited=<none>" in output and "given=yes" in output  # dropped when inherited, kept when given
        assert "to stderr" in output
    finally:
        assert service.stop() != 0  # SIGTERM ends it (it does not handle the signal)
    # once stop() returned, the pump has written everything and closed the pipe and the log file
    assert service._pump is not None and not service._pump.is_alive()


def test_without_drop_inherited_the_environment_is_passed_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureFunctionsJobHost__Logging__LogLevel", "Debug")
    service = start_process("child", [sys.executable, "-c", CHILD, "0"], marker="child listening on", log_dir=tmp_path)
    try:
        assert "inherited=Debug" in service.output()
    finally:
        service.stop()


def test_ready_waits_for_the_condition(tmp_path: Path) -> None:
    port = free_port()
    service = start_process(
        "child",
        [sys.executable, "-c", CHILD, str(port)],
        ready=lambda: port_open(port),
        url=f"http://127.0.0.1:{port}",
        log_dir=tmp_path,
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # listening when start_process returned (the child binds only after 0.3 s)
        assert service.url == f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def test_a_process_that_ends_before_it_is_ready_is_a_service_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="did not start"):
        start_process(
            "quitter", [sys.executable, "-c", "print('bye')"], marker="never printed", log_dir=tmp_path, timeout=20
        )
    with pytest.raises(ValueError, match="exactly one"):
        start_process("neither", [sys.executable, "-c", ""], log_dir=tmp_path)
