"""The Entra ID look-alike's vocabulary: its constants, its two errors, the records of its directory (apps,
users, refresh grants), who a Graph token speaks for, and the claims of a user token."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

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

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SP_NAMESPACE = uuid.UUID("6f1c0b3e-2d4a-4c5e-9f70-8a9b0c1d2e3f")


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


def resource_of(scope: str) -> tuple[str, str]:
    """Split a scope into (resource, permission); bare names belong to Microsoft Graph."""
    if scope.endswith("/.default"):
        return scope[: -len("/.default")], ".default"
    if "/" in scope:
        resource, _, name = scope.rpartition("/")
        return resource, name
    return GRAPH_RESOURCE, scope


def user_claims(upn: str, oid: str, tid: str, name: str) -> dict[str, Any]:
    """The claims naming the user in every user token (delegated grants and the admin's user tokens)."""
    return {
        "oid": oid,
        "sub": hashlib.sha256(f"{oid}".encode()).hexdigest()[:43],
        "tid": tid,
        "upn": upn,
        "preferred_username": upn,
        "name": name,
        "idtyp": "user",
    }
