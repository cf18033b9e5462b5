"""App Service managed-identity token endpoint (protocol 2019-08-01) and the token registry."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

AuthState = Literal["none", "valid", "expired", "revoked", "invalid"]

FAKE_CLIENT_ID = "8c7b1f2e-4d3a-4b6c-9e5f-0a1b2c3d4e5f"
API_VERSION = "2019-08-01"


@dataclass
class IssuedToken:
    resource: str
    client_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


class TokenRegistry:
    """Remembers every issued token (in memory only) with its expiry and revocation state."""

    def __init__(self, lifetime: float) -> None:
        self.default_lifetime = lifetime
        self.lifetime = lifetime
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, resource: str, client_id: str) -> tuple[str, IssuedToken]:
        token = secrets.token_urlsafe(48)
        now = time.time()
        info = IssuedToken(resource=resource, client_id=client_id, issued_at=now, expires_at=now + self.lifetime)
        self._tokens[token] = info
        return token, info

    def check(self, authorization: str | None) -> AuthState:
        if authorization is None or not authorization.strip():
            return "none"
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "invalid"
        info = self._tokens.get(token.strip())
        if info is None:
            return "invalid"
        if info.revoked:
            return "revoked"
        if time.time() >= info.expires_at:
            return "expired"
        return "valid"

    def revoke_all(self) -> int:
        count = 0
        for info in self._tokens.values():
            if not info.revoked:
                info.revoked = True
                count += 1
        return count

    def reset(self) -> None:
        self._tokens.clear()
        self.lifetime = self.default_lifetime

    def __len__(self) -> int:
        return len(self._tokens)


def _msi_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": {"code": error, "message": description}}, status=status)


def token_response(request: web.Request, registry: TokenRegistry, identity_header: str) -> web.Response:
    """Answer ``GET /msi/token`` the way App Service's identity endpoint does."""
    if request.method != "GET":
        return _msi_error(405, "methodNotAllowed", "Only GET is supported on the identity endpoint.")
    given = request.headers.get("X-IDENTITY-HEADER")
    if given is None:
        return _msi_error(401, "unauthorized", "The X-IDENTITY-HEADER header is missing.")
    if not secrets.compare_digest(given.encode(), identity_header.encode()):
        return _msi_error(401, "unauthorized", "The X-IDENTITY-HEADER header is not valid.")
    api_version = request.query.get("api-version")
    if api_version != API_VERSION:
        return _msi_error(400, "invalidRequest", f"api-version must be {API_VERSION}.")
    resource = request.query.get("resource", "")
    if not resource:
        return _msi_error(400, "invalidRequest", "The 'resource' query parameter is required.")
    client_id = request.query.get("client_id") or FAKE_CLIENT_ID
    token, info = registry.issue(resource, client_id)
    return web.json_response(
        {
            "access_token": token,
            "expires_on": str(int(info.expires_at)),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }
    )
