"""GRAPH_AUTH=delegated end to end: callers sign in (Entra-like emulator over HTTPS), devhost plays App
Service Authentication, the bridge calls Graph on each caller's behalf, and the Graph emulator (strict:
app-only tokens refused, as Graph documents) records who each call acted for."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devhost.services import Service, free_port, start_emulator

from .harness import Bridge, BridgeFactory, Emulator, new_item, restart, wait_for

TENANT = "3f9c2d1e-0000-4000-8000-00000000d31e"
CLIENT = "b41d9e2c-0000-4000-8000-0000000b41d6"  # the bridge API's app registration
CLIENT_SECRET = "bridge-api-secret-" + "x" * 16
SEALING_KEY = base64.b64encode(b"k" * 32).decode()
USERS = {"ada": "ada@contoso.example", "bob": "bob@contoso.example"}


@dataclass
class Entra:
    """The HTTPS emulator of this module (its own: TLS and a tenant of its own), through the one admin client."""

    service: Service
    url: str
    ca: Path
    admin: Emulator

    def user_token(self, name: str, lifetime: float = 600, audience: str = f"api://{CLIENT}") -> str:
        return self.admin.user_token(USERS[name], audience, ["access_as_user"], lifetime)

    def requests(self, item: str) -> list[dict[str, Any]]:
        return self.admin.requests(item=item)


@pytest.fixture(scope="module")
def entra(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entra]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    for n, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(folder / "server.pem"), append=n > 0)
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    service = start_emulator(
        free_port(),
        log_dir,
        name="emulator-tls",
        extra_args=[
            "--tls-cert",
            str(folder / "server.pem"),
            "--tls-key",
            str(folder / "server.key"),
            "--tenant-id",
            TENANT,
        ],
    )
    with httpx.Client(verify=ssl.create_default_context(cafile=str(folder / "ca.pem")), timeout=20) as client:
        admin = Emulator(service.url, client)
        admin.entra_client(CLIENT, secret=CLIENT_SECRET, apiScopes=["access_as_user"], appRoles=["Operations.ReadAll"])
        for upn in USERS.values():
            admin.entra_user(upn, tid=TENANT)
        admin.config(strictDelegated=True)
        yield Entra(service, service.url, folder / "ca.pem", admin)
    service.stop()


def tls_env(entra: Entra) -> dict[str, str]:
    return {
        "GRAPH_BASE_URL": f"{entra.url}/v1.0",
        "IDENTITY_ENDPOINT": f"{entra.url}/msi/token",
        "AZURE_AUTHORITY_HOST": entra.url,
        "SSL_CERT_FILE": str(entra.ca),  # the test CA (aiohttp, azure-identity)
        "REQUESTS_CA_BUNDLE": str(entra.ca),
        "DEVHOST_AUTH_ISSUER": f"{entra.url}/{TENANT}/v2.0",
        "DEVHOST_AUTH_AUDIENCES": f"api://{CLIENT},{CLIENT}",
        "DEVHOST_AUTH_ALLOWED_TENANTS": TENANT,
    }


@pytest.fixture(scope="module")
def delegated(make_bridge: BridgeFactory, entra: Entra) -> Bridge:
    return make_bridge(
        "delegated",
        GRAPH_AUTH="delegated",
        DELEGATED_TENANT_ID=TENANT,
        DELEGATED_CLIENT_ID=CLIENT,
        DELEGATED_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_SEALING_KEYS=f"seal1:{SEALING_KEY}",
        **tls_env(entra),
    )


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start(bridge: Bridge, entra: Entra, token: str, item: str, **scenario: Any) -> httpx.Response:
    entra.admin.scenario(item, scenario or {"runningPolls": 2})
    return bridge.client.post(
        f"{bridge.api}/operations",
        headers=as_user(token),
        json={"workbook": f"/me/drive/items/{item}", "action": "createSession"},
    )


def finished(bridge: Bridge, operation_id: str, token: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = bridge.client.get(f"{bridge.api}/operations/{operation_id}", headers=as_user(token))
        assert response.status_code in (200, 202), response.text
        return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

    return wait_for(done, 60, f"{operation_id} to finish", interval=0.2)  # type: ignore[no-any-return]


def test_two_users_each_act_as_themselves_and_see_only_their_own(delegated: Bridge, entra: Entra) -> None:
    tokens = {name: entra.user_token(name) for name in USERS}
    items = {name: new_item() for name in USERS}
    ids = {}
    for name in USERS:
        response = start(delegated, entra, tokens[name], items[name])
        assert response.status_code == 202, response.text
        ids[name] = response.json()["id"]
    for name in USERS:
        record = finished(delegated, ids[name], tokens[name])
        assert record["status"] == "succeeded" and record["result"]["id"]
        assert record["owner"].startswith(f"{TENANT}/")
        graph_calls = entra.requests(items[name])
        assert graph_calls and {call["user"] for call in graph_calls} == {USERS[name]}  # every call as them
        assert all(call["status"] < 400 for call in graph_calls)
    ada_sees_bob = delegated.client.get(f"{delegated.api}/operations/{ids['bob']}", headers=as_user(tokens["ada"]))
    assert ada_sees_bob.status_code == 404
    listed = delegated.client.get(f"{delegated.api}/operations", headers=as_user(tokens["bob"])).json()["value"]
    assert [r["id"] for r in listed] == [ids["bob"]]
    assert delegated.entity(ids["ada"])["CredentialSealed"] == ""  # erased once the operation ended


def test_an_operation_outliving_the_callers_token_fails_clearly(delegated: Bridge, entra: Entra) -> None:
    token = entra.user_token("ada", lifetime=4)
    item = new_item()
    response = start(delegated, entra, token, item, runningPolls=10_000)
    assert response.status_code == 202, response.text
    operation_id = response.json()["id"]
    assert delegated.entity(operation_id)["CredentialSealed"].startswith("k1.seal1.")
    fresh = entra.user_token("ada")  # the caller signs in again to look
    record = finished(delegated, operation_id, fresh)
    assert record["status"] == "failed" and record["error"]["code"] == "delegatedCredentialExpired"
    assert delegated.entity(operation_id)["CredentialSealed"] == ""


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda e: None, "bearer token is required"),
        (lambda e: e.user_token("ada", lifetime=-600), "expired"),
        (lambda e: e.user_token("ada", audience="api://someone-else"), "audience"),
    ],
    ids=["missing", "expired", "wrong-audience"],
)
def test_bad_tokens_get_401_problems(delegated: Bridge, entra: Entra, make: Any, reason: str) -> None:
    token = make(entra)
    response = delegated.client.post(
        f"{delegated.api}/operations",
        headers=as_user(token) if token else {},
        json={"workbook": "/me/drive/items/01X", "action": "createSession"},
    )
    assert response.status_code == 401 and reason in response.json()["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")


def test_app_only_tokens_are_refused_by_strict_graph(make_bridge: BridgeFactory, entra: Entra) -> None:
    """App mode against strict Graph: Graph's own 403 comes back as a problem with its code, nothing breaks."""
    app_mode = make_bridge("apponly", **{k: v for k, v in tls_env(entra).items() if not k.startswith("DEVHOST")})
    item = new_item()
    entra.admin.scenario(item, runningPolls=1)
    response = app_mode.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["code"] == "forbidden" and problem["graphError"]["code"] == "accessDenied"
    assert [call["user"] for call in entra.requests(item)] == ["app:msi"]
    assert app_mode.entities() == []


def test_no_token_or_key_material_anywhere(make_bridge: BridgeFactory, delegated: Bridge, entra: Entra) -> None:
    """A full lifecycle, then every log line, stored entity and queue message is searched for secrets."""
    token = entra.user_token("ada")
    item = new_item()
    response = start(delegated, entra, token, item)
    record = finished(delegated, response.json()["id"], token)
    assert record["status"] == "succeeded"
    # Queue messages are consumed as they are handled; a twin bridge with its functions disabled keeps them.
    frozen = make_bridge(
        "frozen",
        GRAPH_AUTH="delegated",
        DELEGATED_TENANT_ID=TENANT,
        DELEGATED_CLIENT_ID=CLIENT,
        DELEGATED_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_SEALING_KEYS=f"seal1:{SEALING_KEY}",
        POLL_INITIAL_DELAY_SECONDS="0",
        **tls_env(entra),
        **{"AzureWebJobs.poll_operation.Disabled": "true"},
    )
    kept = start(frozen, entra, token, new_item())
    assert kept.status_code == 202
    with frozen.queue as queue:
        messages = wait_for(lambda: [m.content for m in queue.peek_messages(max_messages=32)], 20, "a queued poll")
    haystack = "\n".join(
        [
            delegated.service.log_path.read_text(errors="replace"),
            frozen.service.log_path.read_text(errors="replace"),
            json.dumps(delegated.entities(), default=str),
            json.dumps(frozen.entities(), default=str),
            *messages,
        ]
    )
    secrets = [token, token.split(".")[2], CLIENT_SECRET, SEALING_KEY, os.environ.get("NEVER", "\x00")]
    for secret in secrets:
        assert secret not in haystack, f"found secret material ({secret[:6]}...)"
    # No JWT of any kind ("eyJ" is base64 of '{"'). Sealed values and URL signatures are random base64 and may
    # hold those three characters by chance (about 1 in 260,000 per position), so they are left out of this check.
    unsealed = re.sub(r"k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|s1\.[A-Za-z0-9_-]+|sig=[A-Za-z0-9._%-]+", "", haystack)
    assert re.search(r"eyJ[A-Za-z0-9_-]+\.eyJ", unsealed) is None, "found a JWT"
    assert "eyJ" not in unsealed, "found base64 JSON (a token?) outside sealed values"
    assert "k1.seal1." in json.dumps(frozen.entities(), default=str)  # it is there, sealed


def test_a_retired_sealing_key_fails_the_operation_clearly(make_bridge: BridgeFactory, entra: Entra) -> None:
    bridge = make_bridge(
        "retired",
        GRAPH_AUTH="delegated",
        DELEGATED_TENANT_ID=TENANT,
        DELEGATED_CLIENT_ID=CLIENT,
        DELEGATED_CLIENT_SECRET=CLIENT_SECRET,
        TOKEN_SEALING_KEYS=f"old:{SEALING_KEY}",
        **tls_env(entra),
    )
    token = entra.user_token("bob")
    response = start(bridge, entra, token, new_item(), runningPolls=10_000)
    assert response.status_code == 202, response.text
    operation_id = response.json()["id"]
    bridge.service.kill()
    bridge.env["TOKEN_SEALING_KEYS"] = f"new:{base64.b64encode(b'n' * 32).decode()}"  # "old" was dropped too soon
    restart(bridge)
    record = finished(bridge, operation_id, token)
    assert record["status"] == "failed" and record["error"]["code"] == "credentialUnavailable"
    assert "'old'" in record["error"]["message"] and "retired" in record["error"]["message"]


def test_the_app_can_prove_itself_with_a_certificate(make_bridge: BridgeFactory, entra: Entra, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "excel-bridge-api")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client = "c3e7a1d0-0000-4000-8000-0000000c3e7a"
    entra.admin.entra_client(client, apiScopes=["access_as_user"], certificates=[cert_pem.decode()])
    bridge = make_bridge(
        "certificate",
        GRAPH_AUTH="delegated",
        DELEGATED_TENANT_ID=TENANT,
        DELEGATED_CLIENT_ID=client,
        DELEGATED_CLIENT_CERTIFICATE=base64.b64encode(key_pem + cert_pem).decode(),
        TOKEN_SEALING_KEYS=f"seal1:{SEALING_KEY}",
        **{**tls_env(entra), "DEVHOST_AUTH_AUDIENCES": f"api://{client}"},
    )
    token = entra.user_token("ada", audience=f"api://{client}")
    item = new_item()
    response = start(bridge, entra, token, item)
    assert response.status_code == 202, response.text
    assert finished(bridge, response.json()["id"], token)["status"] == "succeeded"
    assert {call["user"] for call in entra.requests(item)} == {USERS["ada"]}
