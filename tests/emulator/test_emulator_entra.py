"""The Entra-like token service over HTTPS, driven by the real azure-identity (and MSAL) clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
import trustme
from azure.core.exceptions import ClientAuthenticationError

from tests.emulator.entra_harness import (
    API_CLIENT,
    API_SECRET,
    DAEMON_CLIENT,
    DAEMON_SECRET,
    TENANT,
    USER,
    USER_OID,
    TlsEmu,
    TlsFiles,
    jwt_claims,
    make_tls_files,
    run_tls,
)

ITEM_PATH = "/v1.0/me/drive/items/01ENTRAITEM/workbook"


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _verify_with_jwks(token: str, jwks: dict, audience: str) -> dict:
    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = jwt.PyJWK(jwk).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience)


async def _secret_credential_token(e: TlsEmu, client: str, secret: str, scope: str) -> str:
    from azure.identity.aio import ClientSecretCredential

    async with ClientSecretCredential(
        TENANT,
        client,
        secret,
        authority=e.base,
        disable_instance_discovery=True,
        connection_verify=str(e.tls.ca),
    ) as credential:
        return (await credential.get_token(scope)).token


def _obo(e: TlsEmu, assertion: str) -> Any:
    """The real azure-identity on-behalf-of credential of the bridge's API app, pointed at the emulator."""
    from azure.identity.aio import OnBehalfOfCredential

    return OnBehalfOfCredential(
        TENANT,
        API_CLIENT,
        client_secret=API_SECRET,
        user_assertion=assertion,
        authority=e.base,
        disable_instance_discovery=True,
        connection_verify=str(e.tls.ca),
    )


async def _obo_token(e: TlsEmu, assertion: str, *scopes: str) -> str:
    async with _obo(e, assertion) as credential:
        return (await credential.get_token(*(scopes or (f"{e.base}/.default",)))).token


def test_discovery_jwks_and_msal(tls, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE (set in many environments) win over Session.verify: point it at the test CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    async def body(e: TlsEmu) -> None:
        status, config = await e.call("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration")
        assert status == 200
        assert config["issuer"] == f"{e.base}/{TENANT}/v2.0"
        assert config["token_endpoint"] == f"{e.base}/{TENANT}/oauth2/v2.0/token"
        assert config["authorization_endpoint"] == f"{e.base}/{TENANT}/oauth2/v2.0/authorize"
        assert config["jwks_uri"] == f"{e.base}/{TENANT}/discovery/v2.0/keys"
        assert config["id_token_signing_alg_values_supported"] == ["RS256"]

        status, jwks = await e.call("GET", f"/{TENANT}/discovery/v2.0/keys")
        assert status == 200
        (key,) = jwks["keys"]
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["kid"] and key["n"] and key["e"]

        status, error = await e.call("GET", "/not-a-tenant/v2.0/.well-known/openid-configuration")
        assert status == 400 and error["error_codes"] == [90002]

        status, disco = await e.call(
            "GET",
            "/common/discovery/instance",
            params={"api-version": "1.1", "authorization_endpoint": f"{e.base}/{TENANT}/oauth2/v2.0/authorize"},
        )
        assert status == 200
        assert disco["tenant_discovery_endpoint"] == f"{e.base}/{TENANT}/v2.0/.well-known/openid-configuration"

        # Real MSAL (sync, requests): tenant discovery, then with instance discovery left on.
        e.setup_tenant()
        import msal

        def acquire(instance_discovery: bool | str) -> dict:
            app = msal.ConfidentialClientApplication(
                DAEMON_CLIENT,
                client_credential=DAEMON_SECRET,
                authority=f"{e.base}/{TENANT}",
                instance_discovery=instance_discovery,
            )
            return app.acquire_token_for_client([f"{e.base}/.default"])

        # MSAL sends instance discovery for unknown hosts to login.microsoftonline.com; given a URL it asks that.
        for discovery in (False, f"{e.base}/common/discovery/instance"):
            result = await asyncio.to_thread(acquire, discovery)
            assert "access_token" in result, result
            claims = _verify_with_jwks(result["access_token"], jwks, e.base)
            assert jwt.get_unverified_header(result["access_token"])["kid"] == key["kid"]
            assert claims["iss"] == f"{e.base}/{TENANT}/v2.0"
        # The sync azure-identity credentials sit on MSAL (tenant discovery, then the token endpoint).
        assertion = e.user_token()

        def sync_credentials() -> tuple[str, str]:
            from azure.identity import ClientSecretCredential, OnBehalfOfCredential

            common = {"authority": e.base, "disable_instance_discovery": True}
            app = ClientSecretCredential(TENANT, DAEMON_CLIENT, DAEMON_SECRET, **common)
            obo = OnBehalfOfCredential(TENANT, API_CLIENT, client_secret=API_SECRET, user_assertion=assertion, **common)
            return app.get_token(f"{e.base}/.default").token, obo.get_token(f"{e.base}/.default").token

        app_token, user_token = await asyncio.to_thread(sync_credentials)
        assert _verify_with_jwks(app_token, jwks, e.base)["idtyp"] == "app"
        assert _verify_with_jwks(user_token, jwks, e.base)["upn"] == USER

        log = e.admin.requests(kind="entra")
        assert "/common/discovery/instance" in [r["path"] for r in log]
        assert [r["grantType"] for r in log if r["path"].endswith("/token")] == [
            "client_credentials",
            "client_credentials",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ]

    run_tls(tls, body)


def test_client_secret_credential_gets_app_token(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        token = await _secret_credential_token(e, DAEMON_CLIENT, DAEMON_SECRET, f"{e.base}/.default")
        claims = jwt_claims(token)
        assert claims["aud"] == e.base
        assert claims["idtyp"] == "app" and claims["roles"] == ["Ops.All"] and "scp" not in claims
        assert claims["azp"] == DAEMON_CLIENT and claims["tid"] == TENANT

        # The app token works on Graph (not strict), and the log names the app.
        status, _ = await e.call("POST", f"{ITEM_PATH}/createSession", json={}, headers=_bearer(token))
        assert status == 201
        (start,) = e.admin.requests(kind="start")
        assert start["user"] == f"app:{DAEMON_CLIENT}" and start["auth"] == "valid"

        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await _secret_credential_token(e, DAEMON_CLIENT, "wrong", f"{e.base}/.default")
        with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
            await _secret_credential_token(e, "unknown-client", "x", f"{e.base}/.default")

    run_tls(tls, body)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_on_behalf_of_gets_user_graph_token(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        assertion = e.user_token()
        a_claims = jwt_claims(assertion)
        assert a_claims["aud"] == f"api://{API_CLIENT}" and a_claims["scp"] == "access_as_user"
        assert a_claims["roles"] == ["Operator"] and a_claims["upn"] == USER

        token = await _obo_token(e, assertion)
        claims = jwt_claims(token)
        assert claims["aud"] == e.base
        assert (claims["upn"], claims["oid"], claims["tid"]) == (USER, USER_OID, TENANT)
        assert claims["scp"] == "Files.ReadWrite.All User.Read" and claims["azp"] == API_CLIENT
        assert claims["idtyp"] == "user" and "roles" not in claims

        # Explicit Graph scopes (Graph's public resource) give exactly those scopes.
        token2 = await _obo_token(e, assertion, "https://graph.microsoft.com/Files.ReadWrite")
        assert jwt_claims(token2)["scp"] == "Files.ReadWrite"
        assert jwt_claims(token2)["aud"] == "https://graph.microsoft.com"

        status, _ = await e.call("POST", f"{ITEM_PATH}/createSession", json={}, headers=_bearer(token2))
        assert status == 201
        (start,) = e.admin.requests(kind="start")
        assert start["user"] == USER

        # An assertion for another audience, or a forged one, is refused.
        other = e.user_token(audience="api://someone-else")
        with pytest.raises(ClientAuthenticationError, match="AADSTS50013"):
            await _obo_token(e, other)
        forged = jwt.encode({**a_claims, "exp": a_claims["exp"] + 10}, "x" * 32, algorithm="HS256")
        with pytest.raises(ClientAuthenticationError, match="AADSTS50013"):
            await _obo_token(e, forged)

    run_tls(tls, body)


def test_expired_assertion_is_aadsts500133(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        expired = e.user_token(lifetime=-30)
        with pytest.raises(ClientAuthenticationError, match="AADSTS500133") as info:
            await _obo_token(e, expired)
        assert "Assertion is not within its valid time range" in str(info.value)

        status, error = await e.token_endpoint(
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "requested_token_use": "on_behalf_of",
                "client_id": API_CLIENT,
                "client_secret": API_SECRET,
                "assertion": expired,
                "scope": f"{e.base}/.default",
            }
        )
        assert status == 400
        assert error["error"] == "invalid_grant" and error["error_codes"] == [500133]
        assert error["error_description"].startswith("AADSTS500133: Assertion is not within its valid time range")

    run_tls(tls, body)


def test_refresh_token_grant_rotates(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        assertion = e.user_token()
        base_form = {"client_id": API_CLIENT, "client_secret": API_SECRET}
        status, first = await e.token_endpoint(
            {
                **base_form,
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "requested_token_use": "on_behalf_of",
                "assertion": assertion,
                "scope": f"{e.base}/.default offline_access",
            }
        )
        assert status == 200, first
        assert first["refresh_token"] and first["token_type"] == "Bearer" and first["expires_in"] == 3600
        status, no_offline = await e.token_endpoint(
            {
                **base_form,
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "requested_token_use": "on_behalf_of",
                "assertion": assertion,
                "scope": f"{e.base}/.default",
            }
        )
        assert status == 200 and "refresh_token" not in no_offline

        e.admin.entra_config(accessTokenLifetimeSeconds=120)
        form = {**base_form, "grant_type": "refresh_token", "scope": f"{e.base}/.default"}
        status, second = await e.token_endpoint({**form, "refresh_token": first["refresh_token"]})
        assert status == 200, second
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"] and second["expires_in"] == 120
        claims = jwt_claims(second["access_token"])
        assert claims["upn"] == USER and claims["exp"] - claims["iat"] == 120

        # The redeemed refresh token is spent; the rotated one works until revoked.
        status, error = await e.token_endpoint({**form, "refresh_token": first["refresh_token"]})
        assert status == 400 and error["error"] == "invalid_grant"
        status, wrong_client = await e.token_endpoint(
            {
                **form,
                "client_id": DAEMON_CLIENT,
                "client_secret": DAEMON_SECRET,
                "refresh_token": second["refresh_token"],
            }
        )
        assert status == 400 and wrong_client["error"] == "invalid_grant"
        assert e.admin.revoke_refresh_tokens() >= 1
        status, error = await e.token_endpoint({**form, "refresh_token": second["refresh_token"]})
        assert status == 400 and error["error_codes"] == [50173]

        # The real OnBehalfOfCredential redeems its cached refresh token once the access token is stale.
        e.admin.entra_config(accessTokenLifetimeSeconds=0)
        async with _obo(e, assertion) as credential:
            t1 = await credential.get_token(f"{e.base}/.default", "offline_access")
            t2 = await credential.get_token(f"{e.base}/.default", "offline_access")
            t3 = await credential.get_token(f"{e.base}/.default", "offline_access")
        assert len({t1.token, t2.token, t3.token}) == 3
        grants = [r["grantType"] for r in e.admin.requests(kind="entra")][-3:]
        assert grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token", "refresh_token"]
        assert all(r["status"] == 200 for r in (e.admin.requests(kind="entra"))[-3:])

    run_tls(tls, body)


def test_strict_delegated_mode(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        assert e.admin.config(strictDelegated=True) == {"tokenLifetimeSeconds": 3600.0, "strictDelegated": True}

        status, msi = await e.call(
            "GET",
            "/msi/token",
            params={"api-version": "2019-08-01", "resource": e.base},
            headers={"X-IDENTITY-HEADER": "tls-identity-secret"},
        )
        assert status == 200
        app_jwt = await _secret_credential_token(e, DAEMON_CLIENT, DAEMON_SECRET, f"{e.base}/.default")
        for token in (msi["access_token"], app_jwt):
            status, error = await e.call(
                "POST", f"{ITEM_PATH}/createSession", json={}, headers={**_bearer(token), "Prefer": "respond-async"}
            )
            assert status == 403, error
            assert error["error"]["code"] == "accessDenied"
            assert error["error"]["innerError"]["code"] == "forbidden"
            assert error["error"]["innerError"]["request-id"]

        user_token = await _obo_token(e, e.user_token())
        headers = {**_bearer(user_token), "Prefer": "respond-async"}
        status, _ = await e.call("POST", f"{ITEM_PATH}/createSession", json={}, headers=headers)
        assert status == 202
        log = e.admin.requests(kind="start")
        assert [(r["status"], r["user"]) for r in log] == [
            (403, "app:msi"),
            (403, f"app:{DAEMON_CLIENT}"),
            (202, USER),
        ]
        # Operation polls are delegated-only too.
        status, _ = await e.call("GET", f"{ITEM_PATH}/operations/nope", headers=_bearer(app_jwt))
        assert status == 403
        status, _ = await e.call("GET", f"{ITEM_PATH}/operations/nope", headers=_bearer(user_token))
        assert status == 404

        e.admin.config(strictDelegated=False)
        status, _ = await e.call("POST", f"{ITEM_PATH}/createSession", json={}, headers=_bearer(app_jwt))
        assert status == 201

    run_tls(tls, body)


def test_graph_rejects_bad_jwts(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        url = f"{ITEM_PATH}/createSession"
        expired_user = e.user_token(lifetime=-5, audience=e.base)
        status, error = await e.call("POST", url, json={}, headers=_bearer(expired_user))
        assert status == 401 and error["error"]["code"] == "InvalidAuthenticationToken"
        wrong_audience = e.user_token()  # a token for the bridge API, not for Graph
        status, _ = await e.call("POST", url, json={}, headers=_bearer(wrong_audience))
        assert status == 401
        good = await _obo_token(e, wrong_audience)
        status, _ = await e.call("POST", url, json={}, headers=_bearer(good))
        assert status == 201
        e.admin.revoke_tokens()
        status, _ = await e.call("POST", url, json={}, headers=_bearer(good))
        assert status == 401
        assert [(r["auth"], r["user"]) for r in e.admin.requests(kind="start")] == [
            ("expired", None),
            ("invalid", None),
            ("valid", USER),
            ("revoked", None),
        ]

    run_tls(tls, body)


def test_client_assertion_with_certificate(tls, tmp_path):
    async def body(e: TlsEmu) -> None:
        from azure.identity.aio import CertificateCredential

        client_cert = e.tls.ca_obj.issue_cert("cert-client.example", key_type=trustme.KeyType.RSA)
        pem = tmp_path / "client.pem"
        client_cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        cert_only = client_cert.cert_chain_pems[0].bytes().decode()
        e.admin.entra_client("cert-app", certificates=[cert_only], appRoles=["Ops.Read"])
        async with CertificateCredential(
            TENANT,
            "cert-app",
            certificate_path=str(pem),
            authority=e.base,
            disable_instance_discovery=True,
            connection_verify=str(e.tls.ca),
        ) as credential:
            token = (await credential.get_token(f"{e.base}/.default")).token
        assert jwt_claims(token)["azp"] == "cert-app" and jwt_claims(token)["roles"] == ["Ops.Read"]

        other = e.tls.ca_obj.issue_cert("someone-else.example", key_type=trustme.KeyType.RSA)
        other_pem = tmp_path / "other.pem"
        other.private_key_and_cert_chain_pem.write_to_path(str(other_pem))
        async with CertificateCredential(
            TENANT,
            "cert-app",
            certificate_path=str(other_pem),
            authority=e.base,
            disable_instance_discovery=True,
            connection_verify=str(e.tls.ca),
        ) as credential:
            with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
                await credential.get_token(f"{e.base}/.default")

    run_tls(tls, body)


def test_request_log_never_holds_tokens_or_secrets(tls):
    async def body(e: TlsEmu) -> None:
        e.setup_tenant()
        assertion = e.user_token()
        app_token = await _secret_credential_token(e, DAEMON_CLIENT, DAEMON_SECRET, f"{e.base}/.default")
        status, obo = await e.token_endpoint(
            {
                "client_id": API_CLIENT,
                "client_secret": API_SECRET,
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "requested_token_use": "on_behalf_of",
                "assertion": assertion,
                "scope": f"{e.base}/.default offline_access",
            }
        )
        assert status == 200
        status, refreshed = await e.token_endpoint(
            {
                "client_id": API_CLIENT,
                "client_secret": API_SECRET,
                "grant_type": "refresh_token",
                "refresh_token": obo["refresh_token"],
                "scope": f"{e.base}/.default",
            }
        )
        assert status == 200
        for token in (obo["access_token"], app_token):
            await e.call("POST", f"{ITEM_PATH}/createSession", json={}, headers=_bearer(token))
        # A credential in a query string is redacted too.
        await e.call("GET", f"/{TENANT}/discovery/v2.0/keys", params={"client_secret": API_SECRET})

        log = json.dumps(e.admin.requests())
        for secret in (
            API_SECRET,
            DAEMON_SECRET,
            assertion,
            app_token,
            obo["access_token"],
            obo["refresh_token"],
            refreshed["access_token"],
            refreshed["refresh_token"],
        ):
            assert secret not in log
        # Signatures alone must not leak either.
        for token in (assertion, app_token, obo["access_token"]):
            assert token.rsplit(".", 1)[1] not in log
        grants = [r["grantType"] for r in e.admin.requests(kind="entra") if r["path"].endswith("/token")]
        assert grants == ["client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token"]

    run_tls(tls, body)
