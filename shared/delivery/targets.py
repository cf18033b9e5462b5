"""Where webhooks may go: the SSRF rules every callback URL is checked against, when an operation or a
subscription is created and again at every delivery. Pure: no I/O (names are resolved and checked by
shared/delivery/resolver.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CGNAT = ipaddress.ip_network("100.64.0.0/10")


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


# Azure's platform endpoints, which the host of a function app trusts: refused whatever
# WEBHOOK_ALLOW_PRIVATE_NETWORKS says. learn.microsoft.com, "What is IP address 168.63.129.16?": a virtual public IP
# of the host node (the VM agent, DNS, health probes, DHCP; "only the internal Azure platform can source a
# message from this IP address"); "Azure Instance Metadata Service": 169.254.169.254, "treat 169.254.169.254 the
# same as 168.63.129.16". The link-local ranges around it hold nothing a webhook receiver could be.
WIRESERVER = ipaddress.ip_address("168.63.129.16")
PLATFORM_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("168.63.129.16/32"), "platform address (Azure's WireServer, 168.63.129.16)"),
    (
        ipaddress.ip_network("169.254.0.0/16"),
        "link-local address (this includes the instance metadata service 169.254.169.254)",
    ),
    (ipaddress.ip_network("fe80::/10"), "link-local address"),
)
# IPv6 prefixes that carry an IPv4 address a translator or tunnel connects to (RFC 6052 NAT64: the well-known
# prefix and the local-use one of RFC 8215; RFC 4291 IPv4-compatible, RFC 6145 IPv4-translated; 6to4 and Teredo
# are Python's `sixtofour` and `teredo`).
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries, in whatever form a host or network might act on."""
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        found.append(address.ipv4_mapped)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (IPv4-compatible; :: and ::1 are themselves)
        found.append(ipaddress.IPv4Address(value))
    if value >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d (IPv4-translated)
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in NAT64_LOCAL_USE:  # /48: octets 1-2 in bits 48-63, bits 64-71 zero, octets 3-4 in bits 72-87
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client), the client already de-obfuscated
    return found


def platform_refusal(address: IPAddress) -> str | None:
    """Why an address is one of Azure's platform endpoints (in any form), or None."""
    inner: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner += embedded_ipv4(address)
    for candidate in inner:
        for network, reason in PLATFORM_NETWORKS:
            if candidate.version == network.version and candidate in network:
                return reason if candidate == address else f"IPv6 form of {candidate}: {reason}"
    return None


def refusal(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why an address may not be called, or None when it may. Platform endpoints are refused always; the
    private, loopback and reserved ranges unless the policy allows private networks (development)."""
    if platform := platform_refusal(address):
        return platform
    if policy.allow_private or any(address in net for net in policy.extra_allowed_networks):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        for inner_address in carried:
            if inner := refusal(inner_address, policy):
                return f"IPv6 form of {inner_address}: {inner}"
        if address.ipv4_mapped is not None or address.sixtofour is not None:
            return None  # the IPv4 address it carries decides, and it is public
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
    if name.endswith(".") and ":" not in name:
        name = name[:-1]  # a trailing dot: the same address
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", name) and re.search(r"[0-9]", name):
        packed = inet_aton(name)
        return ipaddress.IPv4Address(packed) if packed is not None else None
    return None


def inet_aton(name: str) -> int | None:
    """An IPv4 address in the shorthand resolvers accept (BSD inet_aton, which getaddrinfo follows for numeric
    hosts): 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes, so
    `127.1`, `0x7f.0.0.1` and `2130706433` all name 127.0.0.1. None when it is not such an address."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", part):
            values.append(int(part[2:], 16))
        elif re.fullmatch(r"0[0-7]*", part):
            values.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            values.append(int(part, 10))
        else:
            return None
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    address = last
    for index, value in enumerate(head):
        address |= value << (8 * (3 - index))
    return address


_LABEL = re.compile(r"[a-z0-9-]{1,63}")


def _valid_host(host: str, *, bracketed: bool) -> bool:
    """A DNS name a resolver accepts (RFC 1035 lengths: labels of 1-63, 253 in all; no empty label, which IDNA
    encoding refuses with an exception rather than a lookup failure), or a bracketed IPv6 address."""
    if bracketed:
        try:
            return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
        except ValueError:
            return False
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


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
    if "%" in host:  # a percent-encoded host (or an IPv6 zone): no webhook receiver needs one
        raise Refused("the host must not be percent-encoded")
    if not _valid_host(host, bracketed="[" in parts.netloc):
        raise Refused("the host must be a DNS name (letters, digits, hyphens; dot-separated labels) or an IP address")
    if policy.allowed_hosts and not _host_allowed(host, policy.allowed_hosts):
        raise Refused(f"host {host} is not in WEBHOOK_ALLOWED_HOSTS")
    if not policy.allow_private and (host in ("localhost", "localhost.localdomain") or host.endswith(".localhost")):
        raise Refused(f"{host} is a loopback name")
    address = literal_address(host)
    if address is not None and (reason := refusal(address, policy)):
        raise Refused(f"{address} is a {reason}" if not reason.startswith("IPv6") else f"{host}: {reason}")
    return parts
