"""Fault fixtures: a storage fault proxy per bridge, on the session's stack (tests/conftest.py: Azurite, emulator,
receiver, bridges)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devhost.services import AzuritePorts
from tests.e2e.harness import Bridge, BridgeFactory

from .proxy import FaultProxy

ProxiedBridgeFactory = Callable[..., tuple[Bridge, FaultProxy]]


@pytest.fixture(scope="module")
def make_proxied_bridge(make_bridge: BridgeFactory, azurite: AzuritePorts) -> Iterator[ProxiedBridgeFactory]:
    """A bridge whose storage (AzureWebJobsStorage: the app's clients and the host's queue listener) goes
    through its own fault proxy; the test's own storage clients (`bridge.table`, ...) still talk to Azurite."""
    made: list[tuple[Bridge, FaultProxy]] = []

    def make(name: str, extra_args: list[str] | None = None, **settings: str) -> tuple[Bridge, FaultProxy]:
        proxy = FaultProxy(azurite)
        proxy.start()
        bridge = make_bridge(name, extra_args=extra_args, AzureWebJobsStorage=proxy.connection_string, **settings)
        proxy.names = {
            bridge.env["POLL_QUEUE"]: "polls",
            bridge.env["WEBHOOK_QUEUE"]: "hooks",
            bridge.env["OPERATIONS_TABLE"]: "ops",
        }
        made.append((bridge, proxy))
        return bridge, proxy

    yield make
    for bridge, proxy in made:
        bridge.service.stop()
        proxy.close()
