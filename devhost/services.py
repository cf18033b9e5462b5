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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode or 0)

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to finish anything."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _pump_output(stream: IO[str], sink: IO[str], ready: threading.Event, marker: str, found: list[str]) -> None:
    for line in stream:
        sink.write(line)
        sink.flush()
        if not ready.is_set() and marker in line:
            found.append(line.strip())
            ready.set()
    ready.set()


def start_process(
    name: str,
    args: list[str],
    *,
    marker: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 60.0,
    echo: bool = False,
) -> Service:
    """Start a process and wait until it prints `marker` (its "listening" line)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    sink: IO[str] = sys.stdout if echo else log_path.open("a", encoding="utf-8")
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    ready, found = threading.Event(), list[str]()
    assert process.stdout is not None
    pump = threading.Thread(target=_pump_output, args=(process.stdout, sink, ready, marker, found), daemon=True)
    pump.start()
    if not ready.wait(timeout) or not found:
        process.kill()
        raise ServiceError(f"{name} did not start (see {log_path}):\n" + _tail(log_path))
    url = found[0].rsplit(" ", 1)[-1]
    return Service(name, process, url, log_path, pump)


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
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "azurite.log"
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while not all(port_open(p) for p in (ports.blob, ports.queue, ports.table)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise ServiceError("Azurite did not start:\n" + _tail(log_path))
        time.sleep(0.1)
    return Service("azurite", process, f"http://127.0.0.1:{ports.queue}", log_path)  # type: ignore[arg-type]


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
) -> Service:
    return start_process(
        name,
        [sys.executable, "-m", "devhost", "--port", str(port), "--app-dir", str(ROOT), *(extra_args or [])],
        marker="devhost listening on",
        log_dir=log_dir,
        env=env,
        echo=echo,
    )
