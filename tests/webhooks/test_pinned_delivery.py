"""Deliveries connect to the address that was checked: rebinding and private answers send nothing.

Real aiohttp servers on 127.0.0.2 ("the checked, public-looking address": allowed only through the
test-only extra network) and 127.0.0.1 (the private address a rebinding answer would point at).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web

from devhost.services import free_port
from shared.delivery.resolver import PinnedResolver
from shared.delivery.sender import deliver
from shared.delivery.targets import OutboundPolicy

POLICY = OutboundPolicy(extra_allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))


class Servers:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {"127.0.0.1": 0, "127.0.0.2": 0}
        self.port = free_port()


async def _start(servers: Servers) -> list[web.AppRunner]:
    runners = []
    for host in servers.hits:

        async def hook(request: web.Request, host: str = host) -> web.Response:
            servers.hits[host] += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, host, servers.port).start()
        runners.append(runner)
    return runners


def answers(*responses: str):
    calls: list[str] = []

    async def lookup(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        calls.append(host)
        address = responses[min(len(calls), len(responses)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return lookup, calls


async def run(lookup, servers: Servers):
    runners = await _start(servers)
    # force_close: every delivery opens a new connection, so each one resolves (a kept-alive connection
    # would simply stay on the address checked when it was opened).
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(POLICY, lookup), use_dns_cache=False, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            first = await deliver(session, f"http://rebind.test:{servers.port}/hook", {}, b"{}", 5)
            second = await deliver(session, f"http://rebind.test:{servers.port}/hook", {}, b"{}", 5)
        return first, second
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
def servers() -> Servers:
    return Servers()


def test_a_name_resolving_to_a_private_address_gets_nothing(servers: Servers) -> None:
    lookup, _ = answers("127.0.0.1")
    first, _ = asyncio.run(run(lookup, servers))
    assert first.refused and first.status_code is None
    assert "rebind.test resolves to 127.0.0.1, a loopback address" in (first.error or "")
    assert servers.hits == {"127.0.0.1": 0, "127.0.0.2": 0}


def test_each_connection_uses_the_answer_it_checked(servers: Servers) -> None:
    """A public answer then a rebinding one: the first delivery goes to the checked address, the second
    resolution is checked afresh and refused; the private server never sees a request."""
    lookup, calls = answers("127.0.0.2", "127.0.0.1")
    first, second = asyncio.run(run(lookup, servers))
    assert first.status_code == 204 and first.error is None
    assert second.refused and "127.0.0.1" in (second.error or "")
    assert servers.hits == {"127.0.0.1": 0, "127.0.0.2": 1}
    assert calls == ["rebind.test", "rebind.test"]  # one resolution per connection, never a silent re-resolve
