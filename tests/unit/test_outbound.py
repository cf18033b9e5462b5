"""SSRF rules for callback URLs: a table of refused targets, each with a clear reason."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from shared.delivery.resolver import PinnedResolver, check_target
from shared.delivery.targets import OutboundPolicy, Refused, check_url, parse_allowed_hosts

STRICT = OutboundPolicy()

REFUSED_LITERALS = [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("https://172.31.255.254/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://100.64.0.1/hook", "carrier-grade NAT"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://[::]/hook", "unspecified"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fc00::1]/hook", "private"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://127.1/hook", "loopback"),
    ("https://2130706433/hook", "loopback"),
    ("https://localhost/hook", "loopback name"),
    ("https://localhost./hook", "loopback name"),
    ("https://api.localhost/hook", "loopback name"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_LITERALS, ids=[u for u, _ in REFUSED_LITERALS])
def test_literal_targets_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        check_url(url, STRICT)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "user information"),
        ("https://user@example.com/hook", "user information"),
        ("https://example.com:22/hook", "port 22"),
        ("https://example.com:80/hook", "port 80"),
        ("https://example.com:99999/hook", "invalid port"),
        ("https://example.com/" + "a" * 2100, "longer than"),
        ("ftp://example.com/hook", "https"),
        ("/relative/hook", "https"),
    ],
)
def test_url_shape_rules(url: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        check_url(url, STRICT)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://example.com:443/h",
        "https://example.com:8443/h",
        "https://93.184.216.34/hook",
        "https://[2606:4700::1111]/hook",
    ],
)
def test_public_targets_pass_the_static_checks(url: str) -> None:
    assert check_url(url, STRICT).hostname


def test_private_networks_flag_allows_loopback_and_http_but_not_user_info() -> None:
    dev = OutboundPolicy(allow_private=True)
    assert check_url("http://127.0.0.1:8080/hook", dev)
    with pytest.raises(Refused):
        check_url("http://u:p@127.0.0.1:8080/hook", dev)


def test_allowlist_narrows_hosts() -> None:
    policy = OutboundPolicy(allowed_hosts=parse_allowed_hosts("hooks.example.com, *.logic.azure.com"))
    assert check_url("https://hooks.example.com/x", policy)
    assert check_url("https://prod-01.westeurope.logic.azure.com/workflows/x", policy)
    for url in ("https://example.com/x", "https://logic.azure.com/x", "https://evil.com/hooks.example.com"):
        with pytest.raises(Refused, match="WEBHOOK_ALLOWED_HOSTS"):
            check_url(url, policy)


def fake_lookup(*answers: list[str]):
    """A getaddrinfo stand-in: each call returns the next list of addresses; counts calls."""
    calls: list[str] = []

    async def lookup(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        calls.append(host)
        addresses = answers[min(len(calls), len(answers)) - 1]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return lookup, calls


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (["10.0.0.5"], "private"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad answer poisons the name
        (["169.254.169.254"], "link-local"),
        (["::ffff:192.168.0.1"], "private"),
        (["100.100.100.100"], "carrier-grade NAT"),
    ],
)
def test_a_name_resolving_to_a_private_address_is_refused(addresses: list[str], reason: str) -> None:
    lookup, _ = fake_lookup(addresses)
    resolver = PinnedResolver(STRICT, lookup)
    with pytest.raises(Refused) as refused:
        asyncio.run(check_target("https://innocent.example.com/hook", STRICT, resolver))
    assert reason in refused.value.reason and "innocent.example.com resolves to" in refused.value.reason


def test_the_resolver_returns_exactly_what_it_checked() -> None:
    lookup, calls = fake_lookup(["93.184.216.34"], ["127.0.0.1"])
    resolver = PinnedResolver(STRICT, lookup)
    results = asyncio.run(resolver.resolve("rebind.example.com", 443))
    assert [r["host"] for r in results] == ["93.184.216.34"] and calls == ["rebind.example.com"]
    assert results[0]["hostname"] == "rebind.example.com"  # TLS still verifies the name


def test_unresolvable_names_are_refused_at_creation() -> None:
    async def lookup(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(Refused, match="does not resolve"):
        asyncio.run(check_target("https://nowhere.invalid/hook", STRICT, PinnedResolver(STRICT, lookup)))


def test_extra_allowed_networks_are_for_tests_only() -> None:
    policy = OutboundPolicy(extra_allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
    lookup, _ = fake_lookup(["127.0.0.2"])
    assert asyncio.run(PinnedResolver(policy, lookup).resolve("x.test", 443))
    with pytest.raises(Refused):
        check_url("https://127.0.0.1/hook", policy)


@pytest.mark.parametrize("url", ["https://example.com/a b", "https://example.com/caf\u00e9", 'https://example.com/"x"'])
def test_unencoded_urls_are_refused(url: str) -> None:
    with pytest.raises(Refused, match="encoded URL"):
        check_url(url, STRICT)


# make fuzz (schemathesis, 600 s) found a subscription whose callbackUrl host began with a dot answered 500: with
# private networks allowed the name is now resolved at submit, and IDNA encoding refuses an empty label with a
# UnicodeError (not a lookup failure); and "http://0000*" was accepted although the OpenAPI pattern says a host is
# letters, digits, dots and hyphens. A host is a DNS name or an IP address, checked before any lookup.
BAD_HOSTS = [".s10pnplkqjty6mlbx", "a..b.example.com", "0000*", "exa_mple.com", "x" * 64 + ".com", "h!st.com"]


@pytest.mark.parametrize("host", BAD_HOSTS)
@pytest.mark.parametrize("policy", [STRICT, OutboundPolicy(allow_private=True)], ids=["strict", "private allowed"])
def test_a_host_that_is_no_dns_name_is_refused_before_any_lookup(host: str, policy: OutboundPolicy) -> None:
    lookup, calls = fake_lookup(["93.184.216.34"])
    with pytest.raises(Refused, match="DNS name"):
        asyncio.run(check_target(f"https://{host}:42500/hook#x", policy, PinnedResolver(policy, lookup)))
    assert calls == []


def test_a_name_idna_refuses_is_refused_not_raised_by_the_resolver() -> None:
    resolver = PinnedResolver(OutboundPolicy(allow_private=True))  # the real loop.getaddrinfo
    with pytest.raises(Refused, match="not a host name"):
        asyncio.run(resolver.addresses(".s10pnplkqjty6mlbx", 443))


def test_a_subscription_with_such_a_callback_is_a_400_naming_it() -> None:
    import json

    from shared.api.identity import Caller
    from shared.api.problems import Problem
    from shared.subscriptions import api as subscription_api
    from tests.unit.fakes import fake_runtime

    rt, f = fake_runtime(WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    body = {
        "actions": ["createTableRow"],
        "callbackUrl": "https://.S10PNPLKqjtY6MLBx:42500#19[fC,[@a4&!PYugk;MRfSn#qw*",
    }
    with pytest.raises(Problem) as caught:
        asyncio.run(subscription_api.create(rt, json.dumps(body).encode(), "https://b/api", Caller("default")))
    assert caught.value.status == 400 and [e.field for e in caught.value.errors] == ["callbackUrl"]
    assert f.table.entities == {}
