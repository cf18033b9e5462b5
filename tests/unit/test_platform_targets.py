"""Azure's platform endpoints are never a webhook target (issue 18, item 4), in any spelling, at submit and at
delivery, for operations and subscriptions, whatever WEBHOOK_ALLOW_PRIVATE_NETWORKS says.

The addresses: learn.microsoft.com, "What is IP address 168.63.129.16?" (the WireServer: a virtual public IP of
the host node, which "only the internal Azure platform can source a message from") and "Azure Instance Metadata
Service" (169.254.169.254: "treat 169.254.169.254 the same as 168.63.129.16"). Python calls 168.63.129.16
global, so before this only the private-range rules stood in the way of the metadata service, and nothing in
the way of the WireServer; with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true nothing stood in the way of either.

The spellings are the ones a resolver accepts for a numeric host (BSD inet_aton, which glibc's getaddrinfo
follows: decimal, octal, hex, 1-4 parts) and the IPv6 forms that carry an IPv4 address to a host or a translator
(RFC 4291 mapped and compatible, RFC 6145 translated, RFC 6052/8215 NAT64, 6to4, Teredo).
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from shared.api.identity import Caller
from shared.api.problems import Problem
from shared.delivery.resolver import PinnedResolver, check_target
from shared.delivery.targets import OutboundPolicy, Refused, check_url, literal_address
from shared.operations import start as operations
from shared.subscriptions import api as subscription_api
from tests.unit.fakes import FakeClock, fake_runtime, reply

STRICT = OutboundPolicy()
DEV = OutboundPolicy(allow_private=True)

WIRESERVER = [
    "168.63.129.16",
    "168.63.129.16.",  # a trailing dot: the same address
    "2822734096",  # one decimal number
    "0xa83f8110",  # one hex number
    "0XA83F8110",
    "025017700420",  # one octal number
    "0250.077.0201.020",  # octal parts
    "0250.0077.0201.0020",  # octal parts, padded
    "0xa8.0x3f.0x81.0x10",  # hex parts
    "0xa8.63.0201.16",  # mixed
    "168.63.33040",  # three parts: the last fills 16 bits
    "168.4161808",  # two parts: the last fills 24 bits
    "[::ffff:168.63.129.16]",  # IPv4-mapped
    "[::ffff:a83f:8110]",
    "[0:0:0:0:0:ffff:a83f:8110]",
    "[::FFFF:A83F:8110]",
    "[::168.63.129.16]",  # IPv4-compatible (deprecated, still parsed)
    "[::ffff:0:a83f:8110]",  # IPv4-translated
    "[64:ff9b::168.63.129.16]",  # NAT64, the well-known prefix
    "[64:ff9b::a83f:8110]",
    "[64:ff9b:1:a83f:81:1000::]",  # NAT64, the local-use prefix (/48: the address split around bits 64-71)
    "[2002:a83f:8110::1]",  # 6to4
    "[2001:0:a83f:8110::1]",  # Teredo, as the server
    "[2001:0:4136:e378:8000:63bf:57c0:7eef]",  # Teredo, as the (obfuscated) client
]
METADATA = [
    "169.254.169.254",
    "169.254.169.254.",
    "2852039166",
    "0xa9fea9fe",
    "025177524776",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::]",
    "169.254.0.1",  # the rest of the link-local range
    "[fe80::1]",
]
SPELLINGS = [(host, "WireServer") for host in WIRESERVER] + [(host, "link-local") for host in METADATA]


@pytest.mark.parametrize("policy", [STRICT, DEV], ids=["strict", "private networks allowed"])
@pytest.mark.parametrize(("host", "reason"), SPELLINGS, ids=[h for h, _ in SPELLINGS])
def test_every_spelling_of_a_platform_address_is_refused_by_the_static_check(
    host: str, reason: str, policy: OutboundPolicy
) -> None:
    for url in (f"https://{host}/hook", f"https://{host}:8443/hook", f"http://{host}/hook"):
        with pytest.raises(Refused) as refused:
            check_url(url, policy)
        if policy is DEV or url.startswith("https"):
            assert reason in refused.value.reason, (url, refused.value.reason)


@pytest.mark.parametrize("host", ["%31%36%38.63.129.16", "169.254.169.254%2f", "[fe80::1%25eth0]"])
def test_a_percent_encoded_host_is_refused(host: str) -> None:
    for policy in (STRICT, DEV):
        with pytest.raises(Refused):
            check_url(f"https://{host}/hook", policy)


@pytest.mark.parametrize("policy", [STRICT, DEV], ids=["strict", "private networks allowed"])
@pytest.mark.parametrize(
    "answer", ["168.63.129.16", "169.254.169.254", "::ffff:168.63.129.16", "64:ff9b::a9fe:a9fe", "fe80::1%eth0"]
)
def test_a_name_resolving_to_a_platform_address_is_refused_at_submit_and_by_the_pinned_resolver(
    answer: str, policy: OutboundPolicy
) -> None:
    async def lookup(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        family = socket.AF_INET6 if ":" in answer else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port))]

    resolver = PinnedResolver(policy, lookup)
    with pytest.raises(Refused, match=r"platform address|link-local"):
        asyncio.run(check_target("https://metadata.attacker.example/hook", policy, resolver))
    with pytest.raises(Refused, match=r"platform address|link-local"):
        asyncio.run(resolver.resolve("metadata.attacker.example", 443))


def test_private_networks_allowed_still_reach_loopback_and_private_addresses() -> None:
    """What WEBHOOK_ALLOW_PRIVATE_NETWORKS is for (development, tests): loopback and private receivers."""
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/h", "https://10.1.2.3/h", "https://[::1]/h"):
        assert check_url(url, DEV)

    async def lookup(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    asyncio.run(check_target("https://not-yet.example/hook", DEV, PinnedResolver(DEV, lookup)))  # as before


def test_public_addresses_and_their_ipv6_forms_still_pass() -> None:
    for host in ("93.184.216.34", "[::ffff:93.184.216.34]", "[2002:5db8:d822::1]", "168.63.129.17", "[2606:4700::1]"):
        assert check_url(f"https://{host}/hook", STRICT)


def test_literal_address_reads_the_spellings_a_resolver_reads() -> None:
    assert {str(literal_address(h.strip("[]").rstrip("."))) for h in WIRESERVER[:12]} == {"168.63.129.16"}


BASE = "https://bridge.example.test/api"


def _problem(call: object) -> Problem:
    with pytest.raises(Problem) as caught:
        asyncio.run(call)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("allow_private", ["false", "true"])
@pytest.mark.parametrize("host", ["168.63.129.16", "2822734096", "[::ffff:a83f:8110]", "169.254.169.254"])
def test_an_operation_or_a_subscription_with_a_platform_callback_is_refused_and_nothing_is_stored(
    host: str, allow_private: str
) -> None:
    rt, f = fake_runtime(WEBHOOK_ALLOW_PRIVATE_NETWORKS=allow_private)
    callback = f"https://{host}/hook"
    body = {"workbook": "/me/drive/items/01ITEM", "action": "createSession", "callbackUrl": callback}
    problem = _problem(operations.start(rt, json.dumps(body).encode(), "key-1", "https://bridge.example.test/api"))
    assert problem.status == 400 and [e.field for e in problem.errors] == ["callbackUrl"]
    subscription = {"callbackUrl": callback}
    problem = _problem(subscription_api.create(rt, json.dumps(subscription).encode(), BASE, Caller("default")))
    assert problem.status == 400 and [e.field for e in problem.errors] == ["callbackUrl"]
    assert f.table.entities == {} and f.polls.texts() == [] and f.graph.calls == []


@pytest.mark.parametrize("allow_private", ["false", "true"])
def test_a_name_that_resolves_to_the_wireserver_is_refused_at_submit(allow_private: str) -> None:
    rt, f = fake_runtime(WEBHOOK_ALLOW_PRIVATE_NETWORKS=allow_private)
    f.dns.names["wire.attacker.example"] = "168.63.129.16"
    body = {
        "workbook": "/me/drive/items/01ITEM",
        "action": "createSession",
        "callbackUrl": "https://wire.attacker.example/h",
    }
    problem = _problem(operations.start(rt, json.dumps(body).encode(), None, "https://bridge.example.test/api"))
    assert [e.field for e in problem.errors] == ["callbackUrl"] and "WireServer" in problem.errors[0].message
    assert f.table.entities == {} and f.graph.calls == []


@pytest.mark.parametrize("allow_private", ["false", "true"])
def test_a_name_that_later_resolves_to_the_wireserver_gets_no_webhook(clock: FakeClock, allow_private: str) -> None:
    """DNS may change between submit and delivery (rebinding): the pinned resolver checks again, and sends nothing."""
    from tests.unit.fakes import GRAPH, drain, succeeded, workbook_url

    rt, f = fake_runtime(WEBHOOK_ALLOW_PRIVATE_NETWORKS=allow_private)
    location = f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1"
    f.graph.script("POST", workbook_url() + "/createSession", reply(202, None, {"Location": location}))
    f.graph.script("GET", location, succeeded())
    body = {"workbook": "/me/drive/items/01ITEM", "action": "createSession", "callbackUrl": "https://rebind.example/h"}
    answer = asyncio.run(operations.start(rt, json.dumps(body).encode(), None, "https://bridge.example.test/api"))
    f.dns.names["rebind.example"] = "168.63.129.16"  # after the submit-time check
    asyncio.run(drain(rt, clock, f))
    op = asyncio.run(rt.store.get(answer.operation.id))
    assert op is not None and op.webhook_state == "failed" and f.webhooks.calls == []
    assert "WireServer" in (op.webhook_last_error or "")
