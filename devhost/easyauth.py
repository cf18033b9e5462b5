"""What App Service Authentication ("Easy Auth") does in front of a function app, done locally.

Enabled when DEVHOST_AUTH_ISSUER is set (the OpenID issuer, e.g. https://login.microsoftonline.com/<tenant>/v2.0
or the emulator's), with DEVHOST_AUTH_AUDIENCES (comma separated; the token's `aud` must be one of them) and
optionally DEVHOST_AUTH_ALLOWED_TENANTS and DEVHOST_AUTH_CLOCK_SKEW_SECONDS (default 60). Then, like Easy
Auth with "return 401 for unauthenticated requests":

- every request's client-sent `X-MS-CLIENT-PRINCIPAL*` and `X-MS-TOKEN-*` headers are dropped (always,
  enabled or not: an app must never see forged ones);
- a function whose authLevel is not anonymous needs `Authorization: Bearer <JWT>`, checked for signature
  (keys from the issuer's OpenID configuration `jwks_uri`), issuer, audience, expiry and tenant; failures
  answer 401 (a problem body and `WWW-Authenticate`), the function is not called;
- a valid token adds `X-MS-CLIENT-PRINCIPAL` (base64 JSON of the claims), `-ID` (oid), `-NAME` and `-IDP`;
  the Authorization header is passed on unchanged, as App Service does;
- the app sees WEBSITE_AUTH_ENABLED=True, as on App Service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

logger = logging.getLogger("devhost.easyauth")

STRIPPED_PREFIXES = ("x-ms-client-principal", "x-ms-token-")
ROLE_CLAIM = "roles"
NAME_CLAIM = "name"
JWKS_REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class EasyAuthConfig:
    issuer: str
    audiences: tuple[str, ...]
    allowed_tenants: tuple[str, ...] = ()
    clock_skew: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EasyAuthConfig | None:
        issuer = env.get("DEVHOST_AUTH_ISSUER", "").strip()
        if not issuer:
            return None
        audiences = tuple(a.strip() for a in env.get("DEVHOST_AUTH_AUDIENCES", "").split(",") if a.strip())
        if not audiences:
            raise ValueError("DEVHOST_AUTH_AUDIENCES is required when DEVHOST_AUTH_ISSUER is set")
        tenants = tuple(t.strip() for t in env.get("DEVHOST_AUTH_ALLOWED_TENANTS", "").split(",") if t.strip())
        skew = float(env.get("DEVHOST_AUTH_CLOCK_SKEW_SECONDS", "60") or 60)
        return cls(issuer.rstrip("/"), audiences, tenants, skew)


class Unauthenticated(Exception):
    """The request has no valid token; the message says why (it goes back to the caller)."""


def strip_client_principal(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if not k.lower().startswith(STRIPPED_PREFIXES)]


def principal_headers(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headers Easy Auth adds for an authenticated caller."""
    flat: list[dict[str, str]] = []
    for typ, value in claims.items():
        for item in value if isinstance(value, list) else [value]:
            flat.append({"typ": typ, "val": str(item)})
    principal = {"auth_typ": "aad", "claims": flat, "name_typ": NAME_CLAIM, "role_typ": ROLE_CLAIM}
    encoded = base64.b64encode(json.dumps(principal, separators=(",", ":")).encode()).decode()
    name = str(claims.get("preferred_username") or claims.get("upn") or claims.get("name") or "")
    return [
        ("X-MS-CLIENT-PRINCIPAL", encoded),
        ("X-MS-CLIENT-PRINCIPAL-ID", str(claims.get("oid") or claims.get("sub") or "")),
        ("X-MS-CLIENT-PRINCIPAL-NAME", name),
        ("X-MS-CLIENT-PRINCIPAL-IDP", "aad"),
    ]


class EasyAuth:
    def __init__(self, config: EasyAuthConfig) -> None:
        self.config = config
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch_keys(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        discovery = f"{self.config.issuer}/.well-known/openid-configuration"
        async with self._session.get(discovery) as response:
            response.raise_for_status()
            jwks_uri = (await response.json(content_type=None))["jwks_uri"]
        async with self._session.get(jwks_uri) as response:
            response.raise_for_status()
            jwks = await response.json(content_type=None)
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks.get("keys", []) if "kid" in k}
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> Any:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > JWKS_REFRESH_SECONDS
            if kid not in self._keys or stale:
                try:
                    await self._fetch_keys()
                except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
                    logger.warning("could not fetch signing keys from %s: %s", self.config.issuer, exc)
                    raise Unauthenticated("the token's signing keys could not be fetched") from None
        if kid not in self._keys:
            raise Unauthenticated("the token is signed with an unknown key")
        return self._keys[kid]

    async def validate(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or Unauthenticated with the reason."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthenticated("a bearer token is required")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("the token must be signed with RS256")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=list(self.config.audiences),
                issuer=self.config.issuer,
                leeway=self.config.clock_skew,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature is not valid") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid ({type(exc).__name__})") from None
        if self.config.allowed_tenants and str(claims.get("tid")) not in self.config.allowed_tenants:
            raise Unauthenticated("the token's tenant is not allowed")
        return claims


def enable_for_app(config: EasyAuthConfig | None) -> None:
    """What App Service tells the app when authentication is on."""
    if config is not None:
        os.environ["WEBSITE_AUTH_ENABLED"] = "True"


def unauthenticated_body(reason: str, instance: str) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "code": "unauthenticated",
            "detail": reason,
            "instance": instance,
        }
    ).encode()
