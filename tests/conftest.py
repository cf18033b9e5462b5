"""The one stack every test package shares, all session-scoped and started on first use: an in-memory Azurite,
the Graph/Entra emulator, a webhook receiver and the function apps (devhost) as real processes.

Processes are started by devhost.services (start_azurite, start_emulator, start_function_app: all on
start_process), as `make run` starts them. Each bridge gets its own queues and tables, so tests in different
modules share one Azurite and one emulator without seeing each other's work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.services import (
    AzuritePorts,
    bridge_environment,
    free_port,
    start_azurite,
    start_emulator,
    start_function_app,
)
from tests.e2e.harness import Bridge, BridgeFactory, WebhookReceiver, start_receiver
from tests.harness.emulator import Emulator


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every process of the session logs (E2E_LOG_DIR to keep them). Under `pytest -n` each worker is a
    session with its own stack, so each logs into a folder of its own (PYTEST_XDIST_WORKER: gw0, gw1, ...)."""
    kept = os.environ.get("E2E_LOG_DIR")
    path = Path(kept) / os.environ.get("PYTEST_XDIST_WORKER", "") if kept else tmp_path_factory.mktemp("logs")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def azurite(log_dir: Path) -> Iterator[AzuritePorts]:
    """The session's one Azurite (in memory)."""
    ports = AzuritePorts(free_port(), free_port(), free_port())
    service = start_azurite(ports, log_dir)
    yield ports
    service.stop()


@pytest.fixture(scope="session")
def emulator(log_dir: Path) -> Iterator[Emulator]:
    """The session's Graph/managed identity/Entra emulator, through its admin client."""
    service = start_emulator(free_port(), log_dir)
    with httpx.Client(timeout=10) as client:
        yield Emulator(service.url, client)
    service.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = start_receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def make_bridge(azurite: AzuritePorts, emulator: Emulator, log_dir: Path) -> Iterator[BridgeFactory]:
    """Start a function app with its own queue and table; settings can be overridden per bridge."""
    started: list[Bridge] = []
    client = httpx.Client(timeout=30)

    def make(name: str, extra_args: list[str] | None = None, **overrides: str) -> Bridge:
        port = free_port()
        settings = {
            "POLL_QUEUE": f"{name}-polls",
            "WEBHOOK_QUEUE": f"{name}-hooks",
            "OPERATIONS_TABLE": f"{name.replace('-', '')}ops",
            "POLL_MAX_DELAY_SECONDS": "2",
            "DURATION_HISTORY_TABLE": f"{name.replace('-', '')}durations",
            "WEBHOOK_RETRY_INITIAL_DELAY_SECONDS": "1",
            "WEBHOOK_RETRY_WINDOW_SECONDS": "30",
            **overrides,
        }
        env = bridge_environment(azurite, int(emulator.url.rsplit(":", 1)[1]), **settings)
        service = start_function_app(port, env, log_dir, name=f"functions-{name}", extra_args=extra_args)
        bridge = Bridge(service, port, env, azurite, client, log_dir)
        started.append(bridge)
        return bridge

    yield make
    for bridge in started:
        bridge.service.stop()
    client.close()


@pytest.fixture(scope="session")
def bridge(make_bridge: BridgeFactory) -> Bridge:
    """The shared bridge most tests use."""
    return make_bridge("main")
