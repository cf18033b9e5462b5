"""Who is calling: the owner of the operations a request creates and may see.

App Service Authentication (Easy Auth) validates the caller's token in front of the app and passes the
claims in `X-MS-CLIENT-PRINCIPAL`. Those headers are trusted only when authentication is really on
(App Service sets WEBSITE_AUTH_ENABLED=True; devhost does the same when it emulates it): otherwise anyone
holding a function key could forge them, so every caller is the configured default owner (DEFAULT_OWNER).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

READ_ALL_ROLE = "Operations.ReadAll"
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
TENANT_CLAIMS = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")
OBJECT_CLAIMS = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")


@dataclass(frozen=True)
class Caller:
    owner: str
    tenant_id: str | None = None
    object_id: str | None = None
    roles: frozenset[str] = frozenset()

    @property
    def reads_all(self) -> bool:
        return READ_ALL_ROLE in self.roles

    def may_see(self, owner: str | None) -> bool:
        return self.reads_all or (owner or "") == self.owner


def _claims(encoded: str) -> dict[str, list[str]]:
    try:
        principal = json.loads(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    claims: dict[str, list[str]] = {}
    for claim in principal.get("claims", []) if isinstance(principal, dict) else []:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str):
            claims.setdefault(claim["typ"], []).append(str(claim.get("val", "")))
    return claims


def _first(claims: dict[str, list[str]], names: tuple[str, ...]) -> str | None:
    for name in names:
        if claims.get(name):
            return claims[name][0]
    return None


def caller_from_headers(headers: Mapping[str, str], *, auth_enabled: bool, default_owner: str) -> Caller:
    """The caller as Easy Auth describes it, or the default owner when there is no trustworthy principal."""
    encoded = headers.get("x-ms-client-principal") or headers.get("X-MS-CLIENT-PRINCIPAL")
    if not auth_enabled or not encoded:
        return Caller(default_owner)
    claims = _claims(encoded)
    tenant, oid = _first(claims, TENANT_CLAIMS), _first(claims, OBJECT_CLAIMS)
    if not tenant or not oid:
        return Caller(default_owner)
    roles = frozenset(role for name in ROLE_CLAIMS for role in claims.get(name, []))
    return Caller(f"{tenant}/{oid}", tenant, oid, roles)
