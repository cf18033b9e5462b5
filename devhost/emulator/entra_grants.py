"""The Entra look-alike's token endpoint (``/{tenant}/oauth2/v2.0/token``): the client credentials, on-behalf-of
(jwt-bearer) and refresh token grants, the refresh tokens it issued (only their SHA-256), and the admin API's
user tokens. Nothing here ever logs or returns a secret it was given."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from typing import Any

from .entra_client_auth import authenticate_client
from .entra_directory import Directory, check_fields, number, opt_str, str_list
from .entra_keys import SigningKey
from .entra_model import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    GRANT_REFRESH_TOKEN,
    OIDC_SCOPES,
    SP_NAMESPACE,
    AdminError,
    ClientApp,
    EntraError,
    RefreshGrant,
    resource_of,
    user_claims,
)
from .entra_obo import check_assertion


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def _scopes(scope: str) -> tuple[str, list[str], bool, bool]:
    """(resource, permission names, offline_access asked, openid asked) for a space-separated scope."""
    parts = scope.split()
    if not parts:
        raise _missing("scope")
    offline = "offline_access" in parts
    openid = "openid" in parts
    resources: dict[str, list[str]] = {}
    for part in parts:
        if part in OIDC_SCOPES:
            continue
        resource, name = resource_of(part)
        resources.setdefault(resource.rstrip("/"), []).append(name)
    if len(resources) > 1:
        raise EntraError(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because "
            "it contains more than one resource. Scope " + scope + " is not valid.",
        )
    if not resources:
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. "
            f"The scope {scope} does not name a resource.",
        )
    resource, names = next(iter(resources.items()))
    return resource, names, offline, openid


def _client_info(claims: dict[str, Any]) -> str:
    raw = json.dumps({"uid": claims.get("oid"), "utid": claims.get("tid")}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenEndpoint:
    def __init__(self, directory: Directory, keys: SigningKey) -> None:
        self.directory = directory
        self.keys = keys
        self.refresh_tokens: dict[str, RefreshGrant] = {}

    def reset(self) -> None:
        self.refresh_tokens.clear()

    def revoke_refresh_tokens(self) -> int:
        count = 0
        for grant in self.refresh_tokens.values():
            if not grant.revoked:
                grant.revoked = True
                count += 1
        return count

    def token(self, form: dict[str, str], origin: str, tenant: str) -> dict[str, Any]:
        """Answer a token-endpoint POST (form already parsed). Raises EntraError."""
        if not self.directory.known_tenant(tenant):
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        token_url = f"{origin}/{tenant}/oauth2/v2.0/token"
        grant_type = form.get("grant_type", "")
        if grant_type not in (GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN):
            raise EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        app = authenticate_client(self.directory, form, token_url, origin, tenant)
        scope = form.get("scope", "")
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            return self._client_credentials(app, scope, origin, tenant)
        if grant_type == GRANT_JWT_BEARER:
            if form.get("requested_token_use") != "on_behalf_of":
                raise EntraError(400, "invalid_request", 50034, "Only requested_token_use=on_behalf_of is emulated.")
            assertion = form.get("assertion")
            if not assertion:
                raise _missing("assertion")
            user = check_assertion(self.keys.public_key, self.directory.tenant_id, app, assertion)
            return self._delegated_response(app, user, scope, form, origin, tenant)
        return self._refresh(app, scope, form, origin)

    def _client_credentials(self, app: ClientApp, scope: str, origin: str, tenant: str) -> dict[str, Any]:
        resource, names, _, _ = _scopes(scope)
        if names != [".default"]:
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        sp_oid = str(uuid.uuid5(SP_NAMESPACE, f"sp:{app.client_id}"))
        claims: dict[str, Any] = {
            "aud": resource,
            "azp": app.client_id,
            "appid": app.client_id,
            "azpacr": "1",
            "oid": sp_oid,
            "sub": sp_oid,
            "idtyp": "app",
        }
        if app.app_roles:
            claims["roles"] = list(app.app_roles)
        lifetime = self.directory.access_token_lifetime
        return {
            "token_type": "Bearer",
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": self.keys.sign(claims, origin, tenant, lifetime),
        }

    def _refresh(self, app: ClientApp, scope: str, form: dict[str, str], origin: str) -> dict[str, Any]:
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise _missing("refresh_token")
        grant = self.refresh_tokens.get(_hash(refresh_token))
        if grant is None:
            raise EntraError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if grant.revoked:
            raise EntraError(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
            )
        if grant.used:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed: the refresh "
                "token was already redeemed (the emulator rotates refresh tokens; use the new one).",
            )
        if time.time() >= grant.expires_at:
            raise EntraError(400, "invalid_grant", 700082, "The refresh token has expired due to inactivity.")
        if grant.client_id != app.client_id:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
            )
        grant.used = True
        if "offline_access" not in scope.split():
            scope = f"{scope} offline_access"  # a refresh token grant always gets a new refresh token
        return self._delegated_response(app, grant.user, scope, form, origin, grant.tenant)

    def _delegated_response(
        self,
        app: ClientApp,
        user: dict[str, Any],
        scope: str,
        form: dict[str, str],
        origin: str,
        tenant: str,
    ) -> dict[str, Any]:
        resource, names, offline, _ = _scopes(scope)
        granted = list(app.delegated_scopes) if names == [".default"] else [n for n in names if n != ".default"]
        claims = user_claims(user["upn"], user["oid"], user["tid"], user.get("name") or user["upn"])
        claims.update({"aud": resource, "azp": app.client_id, "appid": app.client_id, "scp": " ".join(granted)})
        lifetime = self.directory.access_token_lifetime
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{name}" for name in granted),
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": self.keys.sign(claims, origin, user["tid"], lifetime),
        }
        if offline:
            refresh_token = "1.emu." + secrets.token_urlsafe(64)
            self.refresh_tokens[_hash(refresh_token)] = RefreshGrant(
                client_id=app.client_id,
                tenant=tenant,
                user=dict(user),
                expires_at=time.time() + self.directory.refresh_token_lifetime,
            )
            body["refresh_token"] = refresh_token
            body["scope"] += " offline_access"
        if form.get("client_info") == "1":
            body["client_info"] = _client_info(claims)
        return body

    def user_token(self, upn: str, origin: str, obj: Any) -> str:
        """``POST /_emulator/entra/users/{upn}/token``: a user access token for an API (the caller's token)."""
        user = self.directory.users.get(upn)
        if user is None:
            raise AdminError(f"no user '{upn}' (PUT /_emulator/entra/users/{upn} first)")
        body = check_fields(obj, {"audience", "scopes", "lifetimeSeconds", "roles", "clientId"}, "token request")
        audience = opt_str(body, "audience")
        if not audience:
            raise AdminError("'audience' is required (e.g. api://<clientId>)")
        scopes = str_list(body, "scopes") or ()
        roles = str_list(body, "roles")
        lifetime = number(body, "lifetimeSeconds", allow_negative=True)
        caller = opt_str(body, "clientId") or str(uuid.uuid5(SP_NAMESPACE, "caller-app"))
        claims = user_claims(user.upn, user.oid, user.tid, user.name)
        claims.update({"aud": audience, "azp": caller, "appid": caller})
        if scopes:
            claims["scp"] = " ".join(scopes)
        granted_roles = roles if roles is not None else user.roles
        if granted_roles:
            claims["roles"] = list(granted_roles)
        return self.keys.sign(claims, origin, user.tid, lifetime if lifetime is not None else 3600.0)
