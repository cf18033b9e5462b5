"""The benches' local stack: Azurite, the Graph emulator (with its admin client) and one function app (devhost),
started with the same launchers as `make run` and the tests (devhost/services.py) and stopped together."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devhost.emulator_client import Emulator
from devhost.services import (
    AzuritePorts,
    Service,
    bridge_environment,
    free_port,
    start_azurite,
    start_emulator,
    start_function_app,
)


@dataclass
class Stack:
    api: str  # the function app's http://127.0.0.1:<port>/api
    storage: AzuritePorts
    admin: Emulator  # the emulator's admin API (scenarios, stats, request log)


@contextmanager
def bench_stack(prefix: str, app_name: str, **settings: str) -> Iterator[Stack]:
    """Everything a bench run needs, logs under a new temporary folder `prefix*`; `settings` are app settings."""
    logs = Path(tempfile.mkdtemp(prefix=prefix))
    storage = AzuritePorts(free_port(), free_port(), free_port())
    services: list[Service] = [start_azurite(storage, logs)]
    try:
        emulator = start_emulator(free_port(), logs)
        services.append(emulator)
        env = bridge_environment(storage, int(emulator.url.rsplit(":", 1)[1]), **settings)
        port = free_port()
        services.append(start_function_app(port, env, logs, name=app_name))
        with httpx.Client(timeout=30) as client:
            yield Stack(f"http://127.0.0.1:{port}/api", storage, Emulator(emulator.url, client))
    finally:
        for service in reversed(services):
            service.stop()
