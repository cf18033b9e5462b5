"""Starting the local pieces as processes: Azurite, the Graph emulator and the function app (devhost).

Used by `make run` (devhost.stack) and by the test suite, so both start things the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
IDENTITY_HEADER = "devhost-identity-header"
# A development-only Standard Webhooks secret (never use it anywhere real).
DEV_WEBHOOK_SECRET = "whsec_ZGV2aG9zdC1vbmx5LXdlYmhvb2stc2lnbmluZy1rZXk="  # noqa: S105
DEV_STATUS_LINK_KEYS = "dev1:ZGV2aG9zdC1vbmx5LXN0YXR1cy1saW5rLWtleSEzMmI="  # local only; azd generates the real one


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Service:
    name: str
    process: subprocess.Popen[str]
    url: str
    log_path: Path
    _pump: threading.Thread | None = field(default=None, repr=False)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, SIGKILL after `timeout` s; the exit code. `output()` is complete afterwards."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._drained()
        return int(self.process.returncode or 0)

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to finish anything."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._drained()

    def _drained(self, timeout: float = 2.0) -> None:
        """Let the output pump write the last lines (it ends when the process's pipe closes)."""
        if self._pump is not None:
            self._pump.join(timeout)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr, in order)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def _pump_output(stream: IO[str], sink: IO[str], ready: threading.Event, marker: str | None, found: list[str]) -> None:
    try:
        for line in stream:
            sink.write(line)
            sink.flush()
            if marker is not None and not ready.is_set() and marker in line:
                found.append(line.strip())
                ready.set()
    finally:
        ready.set()
        stream.close()  # the process ended: its pipe and its log file are done
        if sink is not sys.stdout:
            sink.close()


def start_process(
    name: str,
    args: list[str],
    *,
    marker: str | None = None,
    ready: Callable[[], bool] | None = None,
    url: str | None = None,
    log_dir: Path,
    env: dict[str, str] | None = None,
    drop_inherited: tuple[str, ...] = (),
    cwd: Path = ROOT,
    timeout: float = 60.0,
    echo: bool = False,
) -> Service:
    """Start a process in its own session, its output (stdout and stderr) in `log_dir/<name>.log`, and wait
    until it is ready: it printed `marker` (its "listening" line, which ends with its URL) or `ready()` holds
    (then `url` is the service's address).

    The environment is this process's plus `env`, without inherited variables whose names start with one of
    `drop_inherited` (case-insensitive), and with PYTHONUNBUFFERED=1 so a Python child's log is current.
    """
    if (marker is None) == (ready is None):
        raise ValueError("start_process needs exactly one of marker and ready")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    sink: IO[str] = sys.stdout if echo else log_path.open("a", encoding="utf-8")
    prefixes = tuple(p.lower() for p in drop_inherited)
    inherited = {k: v for k, v in os.environ.items() if not (prefixes and k.lower().startswith(prefixes))}
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**inherited, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    started, found = threading.Event(), list[str]()
    assert process.stdout is not None
    pump = threading.Thread(
        target=_pump_output, args=(process.stdout, sink, started, marker, found), daemon=True, name=f"pump-{name}"
    )
    pump.start()
    deadline = time.monotonic() + timeout
    if ready is not None:
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ServiceError(f"{name} did not start (see {log_path}):\n" + _tail(log_path))
            time.sleep(0.1)
        return Service(name, process, url or "", log_path, pump)
    if not started.wait(timeout) or not found:
        process.kill()
        raise ServiceError(f"{name} did not start (see {log_path}):\n" + _tail(log_path))
    return Service(name, process, found[0].rsplit(" ", 1)[-1], log_path, pump)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:])
    return ""


@dataclass(frozen=True)
class AzuritePorts:
    blob: int
    queue: int
    table: int

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{self.queue}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table}/devstoreaccount1;"
        )


def start_azurite(ports: AzuritePorts, log_dir: Path, location: Path | None = None, timeout: float = 60.0) -> Service:
    """Azurite from node_modules, telemetry off; in memory unless a location is given."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise ServiceError("Azurite is not installed: run `make install` (npm ci)")
    args = [
        str(binary),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--blobHost",
        "127.0.0.1",
        "--queueHost",
        "127.0.0.1",
        "--tableHost",
        "127.0.0.1",
        "--blobPort",
        str(ports.blob),
        "--queuePort",
        str(ports.queue),
        "--tablePort",
        str(ports.table),
    ]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    return start_process(
        "azurite",
        args,
        ready=lambda: all(port_open(p) for p in (ports.blob, ports.queue, ports.table)),
        url=f"http://127.0.0.1:{ports.queue}",
        log_dir=log_dir,
        timeout=timeout,
    )


def start_emulator(
    port: int,
    log_dir: Path,
    token_lifetime: float = 3600.0,
    echo: bool = False,
    extra_args: list[str] | None = None,
    name: str = "emulator",
) -> Service:
    return start_process(
        name,
        [
            sys.executable,
            "-m",
            "devhost.emulator",
            "--port",
            str(port),
            "--identity-header",
            IDENTITY_HEADER,
            "--token-lifetime",
            str(token_lifetime),
            *(extra_args or []),
        ],
        marker="emulator listening on",
        log_dir=log_dir,
        echo=echo,
    )


def bridge_environment(storage: AzuritePorts, emulator_port: int, **overrides: str) -> dict[str, str]:
    """The function app's settings for a local run against Azurite and the emulator."""
    env = {
        "AzureWebJobsStorage": storage.connection_string,
        "GRAPH_BASE_URL": f"http://127.0.0.1:{emulator_port}/v1.0",
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{emulator_port}/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
        "STATUS_LINK_KEYS": DEV_STATUS_LINK_KEYS,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "POLL_QUEUE": "operation-polls",
        "WEBHOOK_QUEUE": "webhook-deliveries",
        "OPERATIONS_TABLE": "operations",
        "DURATION_HISTORY_TABLE": "durations",
        "POLL_INITIAL_DELAY_SECONDS": "1",
        "POLL_MAX_DELAY_SECONDS": "30",
        "OPERATION_TIMEOUT_SECONDS": "3600",
    }
    env.update(overrides)
    return env


def start_function_app(
    port: int,
    env: dict[str, str],
    log_dir: Path,
    name: str = "functions",
    extra_args: list[str] | None = None,
    echo: bool = False,
    app_dir: Path = ROOT,
    drop_inherited: tuple[str, ...] = (),
) -> Service:
    """devhost serving the function app in `app_dir` (this repository's by default) on `port`."""
    return start_process(
        name,
        [sys.executable, "-m", "devhost", "--port", str(port), "--app-dir", str(app_dir), *(extra_args or [])],
        marker="devhost listening on",
        log_dir=log_dir,
        env=env,
        drop_inherited=drop_inherited,
        echo=echo,
    )
