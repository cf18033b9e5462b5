"""A resolver that pins the addresses it checked, and the check of a callback URL's target before anything is
sent (the SSRF rules themselves are shared/delivery/targets.py's).

Names are resolved once per connection by `PinnedResolver`, which refuses the whole name if any A/AAAA record is
not a public address and hands aiohttp exactly the addresses it checked, so a second (rebinding) answer is never
used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from shared.delivery.targets import OutboundPolicy, Refused, check_url, literal_address, refusal

GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class PinnedResolver(AbstractResolver):
    """Resolves once, refuses the name if any answer is not allowed, returns exactly what it checked."""

    def __init__(self, policy: OutboundPolicy, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._policy = policy
        self._getaddrinfo = getaddrinfo

    async def addresses(self, host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
        lookup = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
        try:
            infos = await lookup(host, port, type=socket.SOCK_STREAM)  # gaierror: a connection failure, retried
        except UnicodeError:  # IDNA refuses the name itself (an empty or over-long label): no lookup can help
            raise Refused(f"{host[:100]!r} is not a host name") from None
        found: list[tuple[socket.AddressFamily, str]] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]
            if (family, text) not in found:
                found.append((family, text))
        if not found:
            raise Refused(f"{host} has no addresses")
        for _family, text in found:
            reason = refusal(ipaddress.ip_address(text), self._policy)
            if reason:
                raise Refused(f"{host} resolves to {text}, a {reason}")
        return found

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=fam,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for fam, address in await self.addresses(host, port)
        ]

    async def close(self) -> None:
        return None


async def check_target(url: str, policy: OutboundPolicy, resolver: PinnedResolver) -> None:
    """Everything a delivery will check, without sending anything: used when an operation or a subscription is
    created. A name is resolved whatever WEBHOOK_ALLOW_PRIVATE_NETWORKS says, since a platform address is refused
    even then; with it on, a name that does not resolve (yet) is left to the delivery, as before."""
    parts = check_url(url, policy)
    host = parts.hostname or ""
    if literal_address(host) is None:
        try:
            await resolver.addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror as exc:
            if not policy.allow_private:
                raise Refused(f"{host} does not resolve ({exc.strerror})") from None
