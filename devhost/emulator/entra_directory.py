"""The Entra look-alike's directory, set through the admin API: app registrations, users, the tenants it
knows and the token lifetimes. The parsers of admin bodies (AdminError names the field) live here too."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .entra_model import (
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_DELEGATED_SCOPES,
    DEFAULT_REFRESH_TOKEN_LIFETIME,
    GUID_RE,
    SP_NAMESPACE,
    AdminError,
    ClientApp,
    User,
)


def str_list(obj: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"'{name}' must be a list of strings")
    return tuple(value)


def opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"'{name}' must be a string")
    return value


def number(obj: dict[str, Any], name: str, allow_negative: bool = False) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (value < 0 and not allow_negative):
        raise AdminError(f"'{name}' must be a {'' if allow_negative else 'non-negative '}number")
    return float(value)


def check_fields(obj: Any, allowed: set[str], what: str) -> dict[str, Any]:
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


class Directory:
    """The emulated tenant's registrations and settings (in memory; reset clears them)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.clients: dict[str, ClientApp] = {}
        self.users: dict[str, User] = {}
        self.access_token_lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
        self.refresh_token_lifetime = DEFAULT_REFRESH_TOKEN_LIFETIME
        self.extra_tenants: set[str] = set()

    def reset(self) -> None:
        self.clients.clear()
        self.users.clear()
        self.access_token_lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
        self.refresh_token_lifetime = DEFAULT_REFRESH_TOKEN_LIFETIME
        self.extra_tenants.clear()

    def known_tenant(self, tenant: str) -> bool:
        return bool(GUID_RE.match(tenant)) or tenant == self.tenant_id or tenant in self.extra_tenants

    def put_client(self, client_id: str, obj: Any) -> ClientApp:
        body = check_fields(obj, {"secret", "apiScopes", "appRoles", "delegatedScopes", "certificates"}, "client")
        certs = str_list(body, "certificates") or ()
        try:
            keys = tuple(_load_public_key(pem) for pem in certs)
        except ValueError as exc:
            raise AdminError(f"'certificates' must hold PEM certificates or public keys: {exc}") from exc
        app = ClientApp(
            client_id=client_id,
            secret=opt_str(body, "secret"),
            api_scopes=str_list(body, "apiScopes") or (),
            app_roles=str_list(body, "appRoles") or (),
            delegated_scopes=str_list(body, "delegatedScopes") or DEFAULT_DELEGATED_SCOPES,
            public_keys=keys,
        )
        self.clients[client_id] = app
        return app

    def put_user(self, upn: str, obj: Any) -> User:
        body = check_fields(obj, {"oid", "tid", "roles", "name"}, "user")
        user = User(
            upn=upn,
            oid=opt_str(body, "oid") or str(uuid.uuid5(SP_NAMESPACE, f"user:{upn}")),
            tid=opt_str(body, "tid") or self.tenant_id,
            name=opt_str(body, "name") or upn.partition("@")[0],
            roles=str_list(body, "roles") or (),
        )
        self.users[upn] = user
        if not GUID_RE.match(user.tid):
            self.extra_tenants.add(user.tid)
        return user

    def put_config(self, obj: Any) -> None:
        body = check_fields(obj, {"accessTokenLifetimeSeconds", "refreshTokenLifetimeSeconds"}, "entra config")
        lifetime = number(body, "accessTokenLifetimeSeconds")
        if lifetime is not None:
            self.access_token_lifetime = lifetime
        rt_lifetime = number(body, "refreshTokenLifetimeSeconds")
        if rt_lifetime is not None:
            self.refresh_token_lifetime = rt_lifetime

    def config_json(self) -> dict[str, Any]:
        return {
            "accessTokenLifetimeSeconds": self.access_token_lifetime,
            "refreshTokenLifetimeSeconds": self.refresh_token_lifetime,
            "tenantId": self.tenant_id,
        }
