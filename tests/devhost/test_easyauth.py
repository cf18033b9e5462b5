"""devhost's App Service Authentication emulation: token checks and the principal headers the app sees.

The tokens are the emulator's Entra's (signed with its key, its discovery document and JWKS fetched over HTTP),
as Easy Auth would get them from Entra ID; only the forged signature is made here (tests/harness/tokens.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.easyauth import (
    EasyAuth,
    EasyAuthConfig,
    Unauthenticated,
    principal_headers,
    strip_client_principal,
)
from tests.devhost.devhost_testlib import Service, start_devhost
from tests.harness.emulator import Emulator
from tests.harness.tokens import foreign_signed

TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "99999999-0000-4000-8000-000000000000"
AUDIENCE = "api://excel-bridge"
USER, OID = "ada.easyauth@contoso.example", "user-oid-1"
STRANGER = "eve.easyauth@fabrikam.example"  # a user of another tenant of the same emulator


@pytest.fixture(scope="module")
def issuer(emulator: Emulator) -> str:
    """The OpenID issuer Easy Auth trusts here: the emulator's Entra, tenant TENANT."""
    emulator.entra_user(USER, oid=OID, tid=TENANT, roles=["Operations.ReadAll"])
    emulator.entra_user(STRANGER, tid=OTHER_TENANT)
    return emulator.issuer(TENANT)


def token(emulator: Emulator, audience: str = AUDIENCE, lifetime: float = 600, upn: str = USER) -> str:
    return emulator.user_token(upn, audience, ["access_as_user"], lifetime)


def validate(issuer: str, authorization: str | None, tenants: tuple[str, ...] = ()) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        auth = EasyAuth(EasyAuthConfig(issuer, (AUDIENCE,), tenants, clock_skew=60))
        try:
            return await auth.validate(authorization)
        finally:
            await auth.close()

    return asyncio.run(run())


def test_a_valid_token_gives_its_claims(issuer: str, emulator: Emulator) -> None:
    claims = validate(issuer, f"Bearer {token(emulator)}", tenants=(TENANT,))
    assert claims["oid"] == OID and claims["tid"] == TENANT and claims["iss"] == issuer


@pytest.mark.parametrize(
    ("make", "tenants", "reason"),
    [
        (lambda e: None, (TENANT,), "bearer token is required"),
        (lambda e: "Basic dXNlcjpwdw==", (TENANT,), "bearer token is required"),
        (lambda e: "Bearer not-a-jwt", (TENANT,), "not a JWT"),
        (lambda e: f"Bearer {token(e, lifetime=-600)}", (TENANT,), "expired"),
        (lambda e: f"Bearer {token(e, audience='api://someone-else')}", (TENANT,), "audience"),
        # signed with the trusted key, but by the issuer of another tenant
        (lambda e: f"Bearer {token(e, upn=STRANGER)}", (TENANT,), "another issuer"),
        (lambda e: f"Bearer {foreign_signed(token(e))}", (TENANT,), "signature"),
        # the emulator's tid is its issuer's tenant: here that tenant is not on the allowed list
        (lambda e: f"Bearer {token(e)}", (OTHER_TENANT,), "tenant"),
    ],
    ids=["missing", "basic", "garbage", "expired", "wrong-audience", "wrong-issuer", "bad-signature", "tenant"],
)
def test_bad_tokens_are_refused_with_a_reason(
    issuer: str, emulator: Emulator, make: Any, tenants: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        validate(issuer, make(emulator), tenants=tenants)


def test_client_sent_principal_headers_are_dropped() -> None:
    kept = strip_client_principal(
        [
            ("X-MS-CLIENT-PRINCIPAL", "forged"),
            ("x-ms-client-principal-id", "x"),
            ("X-MS-TOKEN-AAD-ACCESS-TOKEN", "t"),
            ("Accept", "*/*"),
        ]
    )
    assert kept == [("Accept", "*/*")]


def test_principal_headers_carry_the_claims() -> None:
    headers = dict(principal_headers({"oid": "o1", "preferred_username": "ada@x", "roles": ["A", "B"]}))
    principal = json.loads(base64.b64decode(headers["X-MS-CLIENT-PRINCIPAL"]))
    assert headers["X-MS-CLIENT-PRINCIPAL-ID"] == "o1" and headers["X-MS-CLIENT-PRINCIPAL-NAME"] == "ada@x"
    assert {"typ": "roles", "val": "B"} in principal["claims"] and principal["role_typ"] == "roles"


WHOAMI_APP = """
import json, os
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _seen(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "principal": req.headers.get("x-ms-client-principal"),
        "oid": req.headers.get("x-ms-client-principal-id"),
        "authorization": bool(req.headers.get("authorization")),
        "authEnabled": os.environ.get("WEBSITE_AUTH_ENABLED"),
    }), mimetype="application/json")


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    return _seen(req)


@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_route(req: func.HttpRequest) -> func.HttpResponse:
    return _seen(req)
"""


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory, issuer: str) -> Iterator[Service]:
    app_dir = tmp_path_factory.mktemp("whoami")
    (app_dir / "function_app.py").write_text(WHOAMI_APP)
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0"}))
    host = start_devhost(
        app_dir,
        {
            "DEVHOST_AUTH_ISSUER": issuer,
            "DEVHOST_AUTH_AUDIENCES": AUDIENCE,
            "DEVHOST_AUTH_ALLOWED_TENANTS": TENANT,
        },
        app_dir / "devhost.log",
    )
    yield host
    host.stop()


def test_devhost_checks_tokens_and_passes_the_principal(protected: Service, emulator: Emulator) -> None:
    url = f"{protected.url}/api/whoami"
    forged = {"X-MS-CLIENT-PRINCIPAL-ID": "someone-else", "X-MS-CLIENT-PRINCIPAL": "Zm9yZ2Vk"}
    refused = httpx.get(url, headers=forged)
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")
    assert (
        refused.json()["detail"] == "a bearer token is required"
        and "invalid_token" in refused.headers["www-authenticate"]
    )
    expired = httpx.get(url, headers={"Authorization": f"Bearer {token(emulator, lifetime=-600)}"})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    seen = httpx.get(url, headers={"Authorization": f"Bearer {token(emulator)}", **forged}).json()
    assert seen["oid"] == OID and seen["authorization"] and seen["authEnabled"] == "True"
    claims = json.loads(base64.b64decode(seen["principal"]))["claims"]
    assert {"typ": "tid", "val": TENANT} in claims


def test_anonymous_routes_need_no_token_and_never_see_forged_headers(protected: Service) -> None:
    seen = httpx.get(f"{protected.url}/api/open", headers={"X-MS-CLIENT-PRINCIPAL-ID": f"forged-{uuid.uuid4()}"}).json()
    assert seen["oid"] is None and seen["principal"] is None


def test_devhost_without_auth_still_drops_forged_headers(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(WHOAMI_APP)
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    host = start_devhost(tmp_path, {}, tmp_path / "devhost.log")
    try:
        seen = httpx.get(f"{host.url}/api/whoami", headers={"X-MS-CLIENT-PRINCIPAL-ID": "forged"}).json()
    finally:
        host.stop()
    assert seen["oid"] is None and seen["authEnabled"] is None
