"""Where webhooks may go (SSRF rules), and a resolver that pins the addresses it checked.

Callback URLs are checked when an operation is created and again at every delivery. Names are resolved
once per connection by `PinnedResolver`, which refuses the whole name if any A/AAAA record is not a public
address and hands aiohttp exactly the addresses it checked, so a second (rebinding) answer is never used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

MAX_URL_LENGTH = 2048
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CGNAT = ipaddress.ip_network("100.64.0.0/10")
GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class Refused(Exception):
    """The target is not allowed; `reason` says why in words a caller can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()
    extra_allowed_networks: tuple[IPNetwork, ...] = ()  # tests only: treat these as public


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    return tuple(h.lower().rstrip(".") for h in re.split(r"[\s,]+", raw.strip()) if h)


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return True
        if host == entry:
            return True
    return False


def refusal(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why an address may not be called, or None when it may."""
    if policy.allow_private or any(address in net for net in policy.extra_allowed_networks):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = refusal(mapped, policy)
            return f"IPv6 form of {mapped}: {inner}" if inner else None
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address (this includes the cloud metadata endpoint 169.254.169.254)"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "shared address space (100.64.0.0/10, carrier-grade NAT)"
    if address.is_multicast:
        return "multicast address"
    if address.is_private:
        return "private address"
    if address.is_reserved or not address.is_global:
        return "address that is not publicly routable"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including resolver shorthands such as 127.1 or 2130706433."""
    name = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", name) and re.search(r"[0-9]", name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def check_url(url: str, policy: OutboundPolicy) -> SplitResult:
    """Static checks (no DNS): scheme, user info, port, length, literal addresses, the allowlist."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not _URL_CHARACTERS.fullmatch(url):
        raise Refused("must be an encoded URL (ASCII letters, digits and URL punctuation; no spaces)")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("must be an absolute https URL")
    if parts.scheme != "https" and not policy.allow_private:
        raise Refused("must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("must not carry user information")
    try:
        port = parts.port
    except ValueError:
        raise Refused("has an invalid port") from None
    default = 443 if parts.scheme == "https" else 80
    if port is not None and port != default and port < 1024 and port != 443:
        raise Refused(f"port {port} is not allowed (use 443 or a port from 1024 up)")
    host = parts.hostname.lower().rstrip(".")
    if policy.allowed_hosts and not _host_allowed(host, policy.allowed_hosts):
        raise Refused(f"host {host} is not in WEBHOOK_ALLOWED_HOSTS")
    if not policy.allow_private:
        if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
            raise Refused(f"{host} is a loopback name")
        address = literal_address(host)
        if address is not None and (reason := refusal(address, policy)):
            raise Refused(f"{address} is a {reason}" if not reason.startswith("IPv6") else f"{host}: {reason}")
    return parts


class PinnedResolver(AbstractResolver):
    """Resolves once, refuses the name if any answer is not allowed, returns exactly what it checked."""

    def __init__(self, policy: OutboundPolicy, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._policy = policy
        self._getaddrinfo = getaddrinfo

    async def addresses(self, host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
        lookup = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
        infos = await lookup(host, port, type=socket.SOCK_STREAM)  # gaierror: a connection failure, retried
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
    """Everything a delivery will check, without sending anything: used when an operation is created."""
    parts = check_url(url, policy)
    host = parts.hostname or ""
    if literal_address(host) is None and not policy.allow_private:
        try:
            await resolver.addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror as exc:
            raise Refused(f"{host} does not resolve ({exc.strerror})") from None
