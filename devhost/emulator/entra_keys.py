"""The Entra look-alike's signing key: the JWKS it publishes, signing access tokens (RS256), verifying the
ones presented back to Graph, and revoking them (by their ``uti``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .entra_model import Principal


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """A key generated when the emulator starts; the tokens it signed and the ones revoked since."""

    def __init__(self) -> None:
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
        self._issued_utis: set[str] = set()
        self._revoked_utis: set[str] = set()

    def reset(self) -> None:
        self._issued_utis.clear()
        self._revoked_utis.clear()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def revoke_access_tokens(self) -> int:
        """Revoke every access token signed so far (Graph then answers 401 for them)."""
        fresh = self._issued_utis - self._revoked_utis
        self._revoked_utis |= fresh
        return len(fresh)

    def sign(self, claims: dict[str, Any], origin: str, tenant: str, lifetime: float) -> str:
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
