"""An Entra ID (v2.0 endpoint) look-alike: discovery, JWKS, the token endpoint and its admin state.

Tokens are RS256 JWTs signed with a key generated when the emulator starts. Refresh tokens are opaque
and kept in memory (only their SHA-256). Nothing here ever logs or returns a secret it was given.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

DEFAULT_TENANT_ID = "72f988bf-0000-4000-8000-00000000e1a1"
GRAPH_RESOURCE = "https://graph.microsoft.com"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DEFAULT_DELEGATED_SCOPES = ("Files.ReadWrite.All", "User.Read")
DEFAULT_ACCESS_TOKEN_LIFETIME = 3600.0
DEFAULT_REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600.0

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant type name)
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SP_NAMESPACE = uuid.UUID("6f1c0b3e-2d4a-4c5e-9f70-8a9b0c1d2e3f")


class EntraError(Exception):
    """An OAuth error answered in Entra's shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def to_json(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                f"Timestamp: {now}"
            ),
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }


class AdminError(Exception):
    """A bad admin request body."""


@dataclass
class ClientApp:
    client_id: str
    secret: str | None = None
    api_scopes: tuple[str, ...] = ()
    app_roles: tuple[str, ...] = ()
    delegated_scopes: tuple[str, ...] = DEFAULT_DELEGATED_SCOPES
    public_keys: tuple[PublicKeyTypes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "hasSecret": self.secret is not None,
            "apiScopes": list(self.api_scopes),
            "appRoles": list(self.app_roles),
            "delegatedScopes": list(self.delegated_scopes),
            "certificates": len(self.public_keys),
        }


@dataclass
class User:
    upn: str
    oid: str
    tid: str
    name: str
    roles: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"upn": self.upn, "oid": self.oid, "tid": self.tid, "name": self.name, "roles": list(self.roles)}


@dataclass
class RefreshGrant:
    client_id: str
    tenant: str
    user: dict[str, Any]
    expires_at: float
    revoked: bool = False
    used: bool = False


@dataclass
class Principal:
    """Who a valid Graph bearer token speaks for."""

    delegated: bool
    label: str
    claims: dict[str, Any] = field(default_factory=dict)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _str_list(obj: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"'{name}' must be a list of strings")
    return tuple(value)


def _opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"'{name}' must be a string")
    return value


def _number(obj: dict[str, Any], name: str, allow_negative: bool = False) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (value < 0 and not allow_negative):
        raise AdminError(f"'{name}' must be a {'' if allow_negative else 'non-negative '}number")
    return float(value)


def _check_fields(obj: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise AdminError(f"{what} must be a JSON object")
    unknown = set(obj) - allowed
    if unknown:
        raise AdminError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return obj


def _load_public_key(pem: str) -> PublicKeyTypes:
    data = pem.encode()
    if b"CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def resource_of(scope: str) -> tuple[str, str]:
    """Split a scope into (resource, permission); bare names belong to Microsoft Graph."""
    if scope.endswith("/.default"):
        return scope[: -len("/.default")], ".default"
    if "/" in scope:
        resource, _, name = scope.rpartition("/")
        return resource, name
    return GRAPH_RESOURCE, scope


class EntraService:
    """State of the emulated tenant(s): signing key, app registrations, users, refresh tokens."""

    def __init__(self, tenant_id: str = DEFAULT_TENANT_ID) -> None:
        self.tenant_id = tenant_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self._key.public_key().public_numbers()
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(f"{public.n}:{public.e}".encode()).digest()[:15]).decode()
        self._jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "alg": "RS256",
            "n": _b64url_uint(public.n),
            "e": _b64url_uint(public.e),
        }
        self.clients: dict[str, ClientApp] = {}
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.access_token_lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
        self.refresh_token_lifetime = DEFAULT_REFRESH_TOKEN_LIFETIME
        self.extra_tenants: set[str] = set()
        self._issued_utis: set[str] = set()
        self._revoked_utis: set[str] = set()

    # ------------------------------------------------------------------ basics
    def reset(self) -> None:
        self.clients.clear()
        self.users.clear()
        self.refresh_tokens.clear()
        self.access_token_lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
        self.refresh_token_lifetime = DEFAULT_REFRESH_TOKEN_LIFETIME
        self.extra_tenants.clear()
        self._issued_utis.clear()
        self._revoked_utis.clear()

    def revoke_access_tokens(self) -> int:
        """Revoke every access token signed so far (Graph then answers 401 for them)."""
        fresh = self._issued_utis - self._revoked_utis
        self._revoked_utis |= fresh
        return len(fresh)

    def known_tenant(self, tenant: str) -> bool:
        return bool(_GUID_RE.match(tenant)) or tenant == self.tenant_id or tenant in self.extra_tenants

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def openid_configuration(self, origin: str, tenant: str) -> dict[str, Any]:
        base = f"{origin}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{origin}/{tenant}/discovery/v2.0/keys",
            "userinfo_endpoint": f"{origin}/oidc/userinfo",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "upn", "roles"],
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator",
            "cloud_graph_host_name": origin.split("://", 1)[-1],
            "msgraph_host": origin.split("://", 1)[-1],
            "rbac_url": origin,
        }

    def instance_discovery(self, origin: str, authorization_endpoint: str | None) -> dict[str, Any]:
        tenant = self.tenant_id
        if authorization_endpoint:
            path = authorization_endpoint.split("://", 1)[-1].split("/")
            if len(path) > 1 and path[1]:
                tenant = path[1]
        host = origin.split("://", 1)[-1]
        return {
            "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    # ------------------------------------------------------------------ admin
    def put_client(self, client_id: str, obj: Any) -> ClientApp:
        body = _check_fields(obj, {"secret", "apiScopes", "appRoles", "delegatedScopes", "certificates"}, "client")
        certs = _str_list(body, "certificates") or ()
        try:
            keys = tuple(_load_public_key(pem) for pem in certs)
        except ValueError as exc:
            raise AdminError(f"'certificates' must hold PEM certificates or public keys: {exc}") from exc
        app = ClientApp(
            client_id=client_id,
            secret=_opt_str(body, "secret"),
            api_scopes=_str_list(body, "apiScopes") or (),
            app_roles=_str_list(body, "appRoles") or (),
            delegated_scopes=_str_list(body, "delegatedScopes") or DEFAULT_DELEGATED_SCOPES,
            public_keys=keys,
        )
        self.clients[client_id] = app
        return app

    def put_user(self, upn: str, obj: Any) -> User:
        body = _check_fields(obj, {"oid", "tid", "roles", "name"}, "user")
        user = User(
            upn=upn,
            oid=_opt_str(body, "oid") or str(uuid.uuid5(_SP_NAMESPACE, f"user:{upn}")),
            tid=_opt_str(body, "tid") or self.tenant_id,
            name=_opt_str(body, "name") or upn.partition("@")[0],
            roles=_str_list(body, "roles") or (),
        )
        self.users[upn] = user
        if not _GUID_RE.match(user.tid):
            self.extra_tenants.add(user.tid)
        return user

    def put_config(self, obj: Any) -> None:
        body = _check_fields(obj, {"accessTokenLifetimeSeconds", "refreshTokenLifetimeSeconds"}, "entra config")
        lifetime = _number(body, "accessTokenLifetimeSeconds")
        if lifetime is not None:
            self.access_token_lifetime = lifetime
        rt_lifetime = _number(body, "refreshTokenLifetimeSeconds")
        if rt_lifetime is not None:
            self.refresh_token_lifetime = rt_lifetime

    def config_json(self) -> dict[str, Any]:
        return {
            "accessTokenLifetimeSeconds": self.access_token_lifetime,
            "refreshTokenLifetimeSeconds": self.refresh_token_lifetime,
            "tenantId": self.tenant_id,
        }

    def revoke_refresh_tokens(self) -> int:
        count = 0
        for grant in self.refresh_tokens.values():
            if not grant.revoked:
                grant.revoked = True
                count += 1
        return count

    def user_token(self, upn: str, origin: str, obj: Any) -> str:
        """``POST /_emulator/entra/users/{upn}/token``: a user access token for an API (the caller's token)."""
        user = self.users.get(upn)
        if user is None:
            raise AdminError(f"no user '{upn}' (PUT /_emulator/entra/users/{upn} first)")
        body = _check_fields(obj, {"audience", "scopes", "lifetimeSeconds", "roles", "clientId"}, "token request")
        audience = _opt_str(body, "audience")
        if not audience:
            raise AdminError("'audience' is required (e.g. api://<clientId>)")
        scopes = _str_list(body, "scopes") or ()
        roles = _str_list(body, "roles")
        lifetime = _number(body, "lifetimeSeconds", allow_negative=True)
        caller = _opt_str(body, "clientId") or str(uuid.uuid5(_SP_NAMESPACE, "caller-app"))
        claims = self._user_claims(user.upn, user.oid, user.tid, user.name)
        claims.update({"aud": audience, "azp": caller, "appid": caller})
        if scopes:
            claims["scp"] = " ".join(scopes)
        granted_roles = roles if roles is not None else user.roles
        if granted_roles:
            claims["roles"] = list(granted_roles)
        return self._sign(claims, origin, user.tid, lifetime if lifetime is not None else 3600.0)

    # ------------------------------------------------------------------ tokens
    @staticmethod
    def _user_claims(upn: str, oid: str, tid: str, name: str) -> dict[str, Any]:
        return {
            "oid": oid,
            "sub": hashlib.sha256(f"{oid}".encode()).hexdigest()[:43],
            "tid": tid,
            "upn": upn,
            "preferred_username": upn,
            "name": name,
            "idtyp": "user",
        }

    def _sign(self, claims: dict[str, Any], origin: str, tenant: str, lifetime: float) -> str:
        now = int(time.time())
        uti = secrets.token_urlsafe(16)
        self._issued_utis.add(uti)
        payload = {
            "iss": f"{origin}/{tenant}/v2.0",
            "iat": now,
            "nbf": min(now, now + int(lifetime)),
            "exp": now + int(lifetime),
            "ver": "2.0",
            "uti": uti,
            "tid": tenant,
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def verify(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """Check signature, expiry and audience of a token this emulator signed (raises PyJWT errors)."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.public_key,
            algorithms=["RS256"],
            audience=audiences,
            options={"require": ["exp", "iat", "aud"]},
        )
        return claims

    def graph_principal(self, token: str, graph_audiences: list[str]) -> tuple[str, Principal | None]:
        """Validate a JWT presented to Graph: ('valid', principal) or ('expired'|'invalid', None)."""
        try:
            claims = self.verify(token, graph_audiences)
        except jwt.ExpiredSignatureError:
            return "expired", None
        except jwt.PyJWTError:
            return "invalid", None
        if claims.get("uti") in self._revoked_utis:
            return "revoked", None
        if claims.get("idtyp") == "app" or "scp" not in claims:
            return "valid", Principal(False, f"app:{claims.get('azp') or claims.get('appid')}", claims)
        return "valid", Principal(True, str(claims.get("upn") or claims.get("oid")), claims)

    # ------------------------------------------------------------------ token endpoint
    def _authenticate_client(self, form: dict[str, str], token_url: str, origin: str, tenant: str) -> ClientApp:
        client_id = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if not client_id and assertion:
            try:
                client_id = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
            except jwt.PyJWTError:
                client_id = ""
        if not client_id:
            raise EntraError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        app = self.clients.get(client_id)
        if app is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        secret = form.get("client_secret")
        if secret is not None:
            if app.secret is None or not secrets.compare_digest(secret.encode(), app.secret.encode()):
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent "
                    f"in the request is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{client_id}'.",
                )
            return app
        if assertion is not None:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise EntraError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
            self._verify_client_assertion(app, assertion, token_url, origin, tenant)
            return app
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _verify_client_assertion(
        self, app: ClientApp, assertion: str, token_url: str, origin: str, tenant: str
    ) -> None:
        audiences = [token_url, f"{origin}/{tenant}/oauth2/token", f"{origin}/{tenant}/v2.0"]
        for key in app.public_keys:
            try:
                claims = jwt.decode(
                    assertion,
                    key,  # type: ignore[arg-type]
                    algorithms=["PS256", "RS256"],
                    audience=audiences,
                    options={"require": ["exp", "aud", "iss", "sub"]},
                )
            except jwt.ExpiredSignatureError as exc:
                raise EntraError(
                    401, "invalid_client", 700024, "Client assertion is not within its valid time range."
                ) from exc
            except jwt.InvalidAudienceError as exc:
                raise EntraError(
                    401,
                    "invalid_client",
                    700212,
                    f"No matching federated identity record found for presented "
                    f"assertion audience; expected the token endpoint {token_url}.",
                ) from exc
            except jwt.PyJWTError:
                continue
            if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
                raise EntraError(
                    401,
                    "invalid_client",
                    700023,
                    "Client assertion audience claim does not match Realm issuer "
                    "or the iss/sub claims are not the client id.",
                )
            return
        raise EntraError(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation (no registered "
            f"certificate of app '{app.client_id}' verifies it).",
        )

    def _scopes(self, scope: str) -> tuple[str, list[str], bool, bool]:
        """(resource, permission names, offline_access asked, openid asked) for a space-separated scope."""
        parts = scope.split()
        if not parts:
            raise EntraError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
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

    @staticmethod
    def _client_info(claims: dict[str, Any]) -> str:
        raw = json.dumps({"uid": claims.get("oid"), "utid": claims.get("tid")}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def _delegated_response(
        self,
        app: ClientApp,
        user: dict[str, Any],
        scope: str,
        form: dict[str, str],
        origin: str,
        tenant: str,
    ) -> dict[str, Any]:
        resource, names, offline, _ = self._scopes(scope)
        granted = list(app.delegated_scopes) if names == [".default"] else [n for n in names if n != ".default"]
        claims = self._user_claims(user["upn"], user["oid"], user["tid"], user.get("name") or user["upn"])
        claims.update({"aud": resource, "azp": app.client_id, "appid": app.client_id, "scp": " ".join(granted)})
        lifetime = self.access_token_lifetime
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{name}" for name in granted),
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": self._sign(claims, origin, user["tid"], lifetime),
        }
        if offline:
            refresh_token = "1.emu." + secrets.token_urlsafe(64)
            self.refresh_tokens[_hash(refresh_token)] = RefreshGrant(
                client_id=app.client_id,
                tenant=tenant,
                user=dict(user),
                expires_at=time.time() + self.refresh_token_lifetime,
            )
            body["refresh_token"] = refresh_token
            body["scope"] += " offline_access"
        if form.get("client_info") == "1":
            body["client_info"] = self._client_info(claims)
        return body

    def token(self, form: dict[str, str], origin: str, tenant: str) -> dict[str, Any]:
        """Answer a token-endpoint POST (form already parsed). Raises EntraError."""
        if not self.known_tenant(tenant):
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        token_url = f"{origin}/{tenant}/oauth2/v2.0/token"
        grant_type = form.get("grant_type", "")
        if grant_type not in (GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN):
            raise EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        app = self._authenticate_client(form, token_url, origin, tenant)
        scope = form.get("scope", "")
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            resource, names, _, _ = self._scopes(scope)
            if names != [".default"]:
                raise EntraError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client "
                    "credential flows must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
            sp_oid = str(uuid.uuid5(_SP_NAMESPACE, f"sp:{app.client_id}"))
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
            lifetime = self.access_token_lifetime
            return {
                "token_type": "Bearer",
                "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime),
                "access_token": self._sign(claims, origin, tenant, lifetime),
            }
        if grant_type == GRANT_JWT_BEARER:
            if form.get("requested_token_use") != "on_behalf_of":
                raise EntraError(400, "invalid_request", 50034, "Only requested_token_use=on_behalf_of is emulated.")
            assertion = form.get("assertion")
            if not assertion:
                raise EntraError(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'assertion'.",
                )
            user = self._check_assertion(app, assertion)
            return self._delegated_response(app, user, scope, form, origin, tenant)
        # refresh_token
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'refresh_token'.",
            )
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

    def _check_assertion(self, app: ClientApp, assertion: str) -> dict[str, Any]:
        audiences = [f"api://{app.client_id}", app.client_id]
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "aud"], "verify_aud": False, "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise EntraError(
                400, "invalid_grant", 50013, f"Assertion failed signature validation. [Reason - {type(exc).__name__}]"
            ) from exc
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now >= exp:
            expiry = dt.datetime.fromtimestamp(float(exp) if isinstance(exp, int | float) else 0, dt.UTC)
            current = dt.datetime.fromtimestamp(now, dt.UTC)
            raise EntraError(
                400,
                "invalid_grant",
                500133,
                "Assertion is not within its valid time range. Ensure that the access token is not expired before "
                "using it for user assertion, or request a new token. Current time: "
                f"{current:%Y-%m-%dT%H:%M:%S.%f}Z, expiry time of assertion {expiry:%Y-%m-%dT%H:%M:%S.%f}Z.",
            )
        if claims.get("aud") not in audiences:
            raise EntraError(
                400,
                "invalid_grant",
                50013,
                "Assertion audience does not match the Client app "
                f"presenting the assertion. The audience in the assertion was '{claims.get('aud')}' "
                f"and the expected audience is '{audiences[0]}' or one of the Application Id URIs of "
                "this application.",
            )
        if claims.get("idtyp") == "app" or (not claims.get("upn") and not claims.get("oid")):
            raise EntraError(400, "invalid_grant", 50013, "Assertion is not a user token.")
        return {
            "upn": claims.get("upn") or claims.get("preferred_username") or claims.get("oid"),
            "oid": claims.get("oid"),
            "tid": claims.get("tid") or self.tenant_id,
            "name": claims.get("name"),
        }
